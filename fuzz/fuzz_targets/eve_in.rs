//! EVE lines back into events (`pacstap detect --from`, the central detector) on hostile bytes:
//! never panics, and whatever parses writes a line that parses back to the same line (the
//! parser and the writer agree on every field they both know).
#![no_main]
use libfuzzer_sys::fuzz_target;
use pacstap_output::{parse_line, JsonLinesSink};

fn write(ev: &pacstap_core::ProtocolEvent) -> Vec<u8> {
    let mut buf = Vec::new();
    {
        let mut sink = JsonLinesSink::new(&mut buf, false);
        sink.write(ev).expect("writing to memory");
        sink.flush().expect("flushing to memory");
    }
    buf
}

fuzz_target!(|data: &[u8]| {
    let Ok(line) = parse_line(data) else { return };
    let Some(ev) = line.event() else { return };
    // Internal events are never written; parse_line cannot make one.
    assert!(!ev.body.is_internal());
    let once = write(ev);
    let again = parse_line(&once).expect("a written line parses back");
    let ev2 = again.event().expect("still an event");
    assert_eq!(write(ev2), once, "parse → write is a fixed point after one round");
});
