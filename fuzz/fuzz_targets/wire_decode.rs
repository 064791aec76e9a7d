//! Any frame bytes under any link type: decoding never panics, and a decoded packet's payload
//! lies inside the frame.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pacstap_core::Timestamp;
use pacstap_wire::WireDecoder;

fuzz_target!(|data: &[u8]| {
    let Some((&lt, frame)) = data.split_first() else { return };
    // The link types pacstap decodes, chosen by the first byte.
    let linktype = [0u32, 1, 12, 14, 101, 108, 113, 228, 229, 276][usize::from(lt) % 10];
    let mut dec = WireDecoder::new();
    if let Some(p) = dec.decode(Timestamp(0), linktype, frame) {
        assert!(p.payload.len() <= frame.len());
    }
});
