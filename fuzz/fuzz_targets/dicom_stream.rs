//! The whole analyzer fed a hostile DICOM conversation on a DICOM port (see
//! `pacstap_fuzz::feed` for how the input becomes chunks, gaps and closes).
#![no_main]
use libfuzzer_sys::fuzz_target;
use pacstap_fuzz::{feed, Conversation};
use pacstap_proto::ProtoConfig;

fuzz_target!(|data: &[u8]| {
    feed(
        ProtoConfig::default(),
        &Conversation {
            server_port: 104,
            wide_lengths: false,
            gap_unit: 1,
        },
        data,
    );
});
