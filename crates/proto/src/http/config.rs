//! Settings and caps of the http decoder (`[http]` of the config file, CONTRACT §3).

use super::patterns::{default_admin_patterns, default_share_patterns, AdminPattern};

/// A flow that never shows an HTTP start line within this many bytes is given up. A
/// midstream pickup may begin inside a large response body (a WADO-RS study is tens to
/// hundreds of MiB) and the scan for the next start line is a `memchr` for `\n`, so the budget
/// is generous: 16 MiB.
pub const RESYNC_GIVE_UP_BYTES: u64 = 16 << 20;

/// Settings of the http decoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// Cap on a buffered header block (and on a trailer section). Servers refuse far less:
    /// Apache 8 KiB per line and ~800 KiB in all, nginx 4×8 KiB, Node.js 16 KiB, Tomcat 8 KiB;
    /// 64 KiB holds any head a server accepts (large cookies and bearer tokens included).
    pub max_header_bytes: usize,
    /// `url` in events is cut at this many characters and marked `url_truncated`. DICOMweb
    /// URLs with three UIDs and a query are ~300 characters; 2048 is the classic browser limit.
    pub max_url_chars: usize,
    /// Requests awaiting responses per connection (pipelining depth). Browsers never pipeline,
    /// curl and DICOMweb clients keep 1-8 in flight; 64 is far above real use.
    pub max_pending_requests: usize,
    /// Admin actions by method and path (first match wins): `admin_action` of the event.
    pub admin_patterns: Vec<AdminPattern>,
    /// Share-link creation by method and path (first match wins): `share_action` of the event.
    pub share_patterns: Vec<AdminPattern>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_header_bytes: 64 << 10,
            max_url_chars: 2048,
            max_pending_requests: 64,
            admin_patterns: default_admin_patterns(),
            share_patterns: default_share_patterns(),
        }
    }
}
