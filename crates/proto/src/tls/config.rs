//! Caps of the tls decoder. It has no settings of its own beyond its ports
//! ([`crate::ProtoConfig::tls_ports`]); the handshake message cap is
//! [`super::MAX_HANDSHAKE_MESSAGE`], next to the reader it bounds.

/// A flow claimed by port that shows no two consecutive record headers (and no hello) within
/// this many bytes is not TLS and is given up. Records are at most 2^14 + 2048 bytes, so a
/// real TLS stream chains two headers within ~37 KB of any point; 1 MiB is ample.
pub const RESYNC_GIVE_UP_BYTES: u64 = 1 << 20;
