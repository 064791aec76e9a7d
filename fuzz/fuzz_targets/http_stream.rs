//! The whole analyzer fed a hostile HTTP conversation: the first byte picks the port (an HTTP
//! port, so midstream resync runs, or another one, so only content claims the flow) and small
//! caps; the rest is the conversation (`pacstap_fuzz::feed`).
#![no_main]
use libfuzzer_sys::fuzz_target;
use pacstap_fuzz::{feed, Conversation};
use pacstap_proto::ProtoConfig;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    let mut cfg = ProtoConfig::default();
    if sel & 2 != 0 {
        // Small caps reach the cap paths with small inputs.
        cfg.http.max_header_bytes = 256;
        cfg.http.max_pending_requests = 4;
        cfg.http.max_url_chars = 16;
    }
    let port = if sel & 1 == 0 { 8042 } else { 9000 };
    feed(
        cfg,
        &Conversation {
            server_port: port,
            wide_lengths: false,
            gap_unit: 1,
        },
        rest,
    );
});
