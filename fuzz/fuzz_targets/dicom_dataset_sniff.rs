//! Stop-at-tag data set sniff in every transfer syntax, deflate included (bounded inflation),
//! and the same behind a DICOM file's preamble and meta group (a WADO-RS body's study), and
//! inside a ZIP's first entries (a REST API archive's study).
#![no_main]
use libfuzzer_sys::fuzz_target;
use pacstap_proto::dicom::{sniff_dataset, study_in_file, TransferSyntax};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else { return };
    let uid = [
        "1.2.840.10008.1.2",
        "1.2.840.10008.1.2.1",
        "1.2.840.10008.1.2.2",
        "1.2.840.10008.1.2.1.99",
        "1.2.840.10008.1.2.4.50",
    ][usize::from(sel) % 5];
    let _ = sniff_dataset(body, TransferSyntax::from_uid(uid), 64 * 1024).facts();
    let _ = sniff_dataset(body, TransferSyntax::guess(body), 64 * 1024).facts();
    let _ = study_in_file(body, 64 * 1024);
    let _ = pacstap_proto::http::zip_prefix::studies_in_zip(body, 64 * 1024);
});
