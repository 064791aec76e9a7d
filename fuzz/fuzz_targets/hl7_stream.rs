//! The whole analyzer fed a hostile HL7/MLLP conversation on the HL7 port, with small caps so
//! the fuzzer reaches them (`pacstap_fuzz::feed`).
#![no_main]
use libfuzzer_sys::fuzz_target;
use pacstap_fuzz::{feed, Conversation};
use pacstap_proto::ProtoConfig;

fuzz_target!(|data: &[u8]| {
    let mut cfg = ProtoConfig::default();
    cfg.hl7.max_message_bytes = 4096;
    cfg.hl7.max_kept_bytes = 512;
    cfg.hl7.max_outstanding = 4;
    feed(
        cfg,
        &Conversation {
            server_port: 2575,
            wide_lengths: false,
            gap_unit: 1,
        },
        data,
    );
});
