//! Group-0000 command set scan on any bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pacstap_proto::dicom::{command_name, parse_command_set};

fuzz_target!(|data: &[u8]| {
    if let Ok(cmd) = parse_command_set(data) {
        let _ = command_name(cmd.field().0);
        let _ = cmd.has_data_set();
    }
});
