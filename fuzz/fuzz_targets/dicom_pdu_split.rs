//! PDU header parsing and the resync probes on any bytes: never panic, lengths stay in bounds.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pacstap_proto::dicom::{parse_pdu_header, plausible_pdu_header, probe_associate_rq, Parsed};

fuzz_target!(|data: &[u8]| {
    if let Parsed::Done { consumed, .. } = parse_pdu_header(data) {
        assert!(consumed <= data.len());
    }
    let _ = plausible_pdu_header(data, 256 * 1024);
    let _ = probe_associate_rq(data, 256 * 1024);
});
