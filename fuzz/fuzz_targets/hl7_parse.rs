//! The pure HL7 parsers on hostile bytes: the content probe, the frame-byte scan, the header
//! summary of a message (MSH numbering, delimiters from the message, unescaping, capping).
//! Never panics; every emitted value respects the character cap.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pacstap_proto::hl7::{find_frame_byte, parse_message, probe, render, Delimiters, Render};

fuzz_target!(|data: &[u8]| {
    let _ = probe(data);
    if let Some(i) = find_frame_byte(data) {
        assert!(matches!(data[i], 0x0A | 0x0B | 0x0D | 0x1C));
        assert!(!data[..i].iter().any(|b| matches!(b, 0x0A | 0x0B | 0x0D | 0x1C)));
    }
    let cap = 1 + usize::from(data.first().copied().unwrap_or(0) % 64);
    if let Ok(h) = parse_message(data, cap) {
        for v in [
            &h.message_type,
            &h.control_id,
            &h.sending_application,
            &h.version,
            &h.message_time,
        ] {
            assert!(v.as_ref().map_or(0, |s| s.chars().count()) <= cap);
        }
    }
    let r = Render {
        components: 3,
        max_chars: cap,
    };
    if let Some(v) = render(data, &Delimiters::default(), r) {
        assert!(v.chars().count() <= cap);
    }
});
