//! The whole analyzer under a tiny decoder memory budget: every protocol's refusal path (a
//! control PDU, command set or data set prefix, an HTTP head, a TLS handshake message, HL7
//! header segments given up) on hostile conversations. The first input byte picks the port
//! (DICOM, HTTP, TLS, HL7, or content probes only). `pacstap_fuzz::feed` checks the budget
//! holds after every chunk and is empty once the flow ends.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pacstap_fuzz::{feed, Conversation};
use pacstap_proto::ProtoConfig;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let server_port = [104, 8042, 443, 2575, 9999][usize::from(pick % 5)];
    let cfg = ProtoConfig {
        max_decoder_memory_bytes: 4096 + usize::from(pick >> 3) * 256,
        decoder_memory_guaranteed_per_flow: 256,
        ..ProtoConfig::default()
    };
    feed(
        cfg,
        &Conversation {
            server_port,
            wide_lengths: pick & 4 != 0,
            gap_unit: 7,
        },
        rest,
    );
});
