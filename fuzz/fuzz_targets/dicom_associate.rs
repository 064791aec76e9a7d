//! A-ASSOCIATE-RQ/AC/RJ, A-RELEASE, A-ABORT bodies (bounded first, then dicom-ul strict):
//! never panic, and never hang on a hostile length.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pacstap_proto::dicom::{find_user_identity, parse_control_pdu};

fuzz_target!(|data: &[u8]| {
    let _ = parse_control_pdu(data);
    let _ = find_user_identity(data);
});
