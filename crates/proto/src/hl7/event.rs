//! What the hl7 decoder emits beyond its `hl7` events: its anomaly names.

use crate::anomaly::anomaly_names;

anomaly_names! {
    /// Anomaly names (ARCHITECTURE rule 6), all counted in `ProtoStats::anomalies`.
    pub enum Hl7Anomaly ("hl7") {
        /// Bytes were passed over to find the next frame (after a capture gap, a mid-message
        /// pickup or an oversized message).
        Resync = "hl7.resync",
        /// Bytes of the flow were lost to a capture gap.
        Gap = "hl7.gap",
        /// No end block within `max_message_bytes`; the message is reported truncated.
        MessageTooLarge = "hl7.message_too_large",
        /// A frame whose content does not start with MSH (or a batch header).
        MissingMsh = "hl7.missing_msh",
        /// An MSH whose delimiters cannot be read, or without message type / control id.
        MalformedMsh = "hl7.malformed_msh",
        /// An MSA-2 that names no message sent the other way on a connection seen whole.
        AckWithoutMessage = "hl7.ack_without_message",
        /// Data outside a frame (other than CR/LF keep-alives), or `<FS>` without `<CR>`.
        BadFraming = "hl7.bad_framing",
        /// A start block inside a frame: the previous message had no end block.
        MissingEndBlock = "hl7.missing_end_block",
        /// The connection was closed (FIN/RST) in the middle of a message.
        TruncatedMessage = "hl7.truncated_message",
        /// More than `max_outstanding` messages awaiting acknowledgment; the oldest are forgotten.
        TooManyOutstanding = "hl7.too_many_outstanding",
        /// The decoder memory budget refused to keep more of a message's header segments.
        MemoryBudget = "hl7.memory_budget",
    }
}

#[cfg(test)]
mod tests {
    use super::Hl7Anomaly;

    /// The names are the CONTRACT's (events and `pacstap_anomalies_total` labels): pinned here
    /// so a renamed variant cannot change them.
    #[test]
    fn anomaly_names_are_fixed() {
        crate::anomaly::check::names(
            Hl7Anomaly::ALL,
            &[
                "hl7.resync",
                "hl7.gap",
                "hl7.message_too_large",
                "hl7.missing_msh",
                "hl7.malformed_msh",
                "hl7.ack_without_message",
                "hl7.bad_framing",
                "hl7.missing_end_block",
                "hl7.truncated_message",
                "hl7.too_many_outstanding",
                "hl7.memory_budget",
            ],
        );
    }
}
