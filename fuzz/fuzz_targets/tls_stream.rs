//! The whole analyzer fed a hostile TLS conversation, on a TLS port (midstream pickup) or off
//! it (content probe), chosen by the first byte; 2-byte record lengths so whole handshakes fit
//! (`pacstap_fuzz::feed`).
#![no_main]
use libfuzzer_sys::fuzz_target;
use pacstap_fuzz::{feed, Conversation};
use pacstap_proto::ProtoConfig;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    let port = if sel & 1 == 0 { 443 } else { 9000 };
    feed(
        ProtoConfig::default(),
        &Conversation {
            server_port: port,
            wide_lengths: true,
            gap_unit: 97,
        },
        rest,
    );
});
