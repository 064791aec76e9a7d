//! Settings and caps of the hl7 decoder (`[hl7]` of the config file, CONTRACT §3).

/// Bytes scanned without a frame after which a flow used to be given up. It no longer is: the
/// scan for `<VT>` is a `memchr` with no copy, and giving up let 4 MiB of start blocks blind
/// the decoder to a later MFN staff change. What was passed over is one anomaly when the next
/// frame is found (or when the flow ends).
pub const RESYNC_GIVE_UP_BYTES: u64 = 4 << 20;

/// Settings of the hl7 decoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hl7Config {
    /// Bytes of each message's kept segments (MSH, MSA, MFI, MFE) held for parsing. An MSH is
    /// under 300 bytes in practice (HL7 v2.5 §2.14.9 field lengths add up to ~800 at most);
    /// MFN messages add one MFE per record. 8 KiB covers the header and dozens of records;
    /// past it, records are still counted.
    pub max_kept_bytes: usize,
    /// A frame without an end block after this many bytes is reported as
    /// `hl7.message_too_large` and the stream resynchronised. Messages carrying base64 PDFs or
    /// images (OBX-5 ED) reach a few MiB; 16 MiB leaves a wide margin while bounding how long a
    /// lost end block keeps the decoder out of step.
    pub max_message_bytes: u64,
    /// Messages per direction remembered while awaiting their acknowledgment. Original-mode
    /// senders wait for each ACK (HL7 v2.5 §2.9.2), so one is normal; 1024 covers pipelined
    /// enhanced-mode senders. Evictions are counted.
    pub max_outstanding: usize,
    /// Characters kept of each emitted value. HL7 v2.5 gives MSH fields at most 227 characters
    /// (HD components); 256 covers them.
    pub max_value_chars: usize,
}

impl Default for Hl7Config {
    fn default() -> Self {
        Hl7Config {
            max_kept_bytes: 8 << 10,
            max_message_bytes: 16 << 20,
            max_outstanding: 1024,
            max_value_chars: 256,
        }
    }
}
