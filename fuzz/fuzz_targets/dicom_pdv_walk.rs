//! P-DATA-TF body walk: items are borrowed slices inside the body, the walk terminates.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pacstap_proto::dicom::{parse_pdv_header, pdv_items};

fuzz_target!(|data: &[u8]| {
    let _ = parse_pdv_header(data);
    let mut n = 0usize;
    for item in pdv_items(data) {
        n += 1;
        assert!(n <= data.len() / 4 + 1, "more PDV items than the body can hold");
        let _ = item;
    }
});
