//! Observers: protocol events in, observations out.

/// `s` trimmed, unless that leaves nothing (names on the wire are often space-padded).
pub(crate) fn non_empty(s: &str) -> Option<&str> {
    let t = s.trim();
    (!t.is_empty()).then_some(t)
}
