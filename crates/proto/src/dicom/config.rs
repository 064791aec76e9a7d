//! Caps of the dicom decoder. Its settings (`dicom_ports`, `max_control_pdu_bytes`,
//! `max_command_bytes`, `dataset_prefix_bytes`, `max_pending_commands`) are fields of
//! [`crate::ProtoConfig`] itself, where the config file (CONTRACT §3) has always set them.

/// A flow on a DICOM port that never yields a plausible PDU within this many bytes is given up
/// (`Interest::Ignore`). Resynchronising needs at most one maximum-length PDU to pass; real
/// maximum PDU lengths are 16 KiB to a few MiB, so 4 MiB finds a boundary in practice.
pub const RESYNC_GIVE_UP_BYTES: u64 = 4 << 20;
