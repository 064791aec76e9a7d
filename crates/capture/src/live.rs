//! Live capture from a network interface through libpcap (the `pcap` crate).
//!
//! # Settings, and why
//!
//! * **Immediate mode off, 100 ms timeout.** On Linux libpcap uses TPACKET_V3: the kernel fills
//!   blocks of the capture ring and hands a block over when it is full or when the timeout
//!   expires. Immediate mode would hand over every packet on its own, which costs a wake-up per
//!   packet and drops heavily at mirror-port rates with a large snaplen. The timeout bounds how
//!   long a packet waits in a half-filled block on a quiet link.
//! * **Non-blocking reads.** With TPACKET_V3 libpcap waits in `poll()` with no timeout of its
//!   own (the kernel's block timeout is meant to wake it), so on a link with no traffic at all a
//!   blocking `pcap_next_ex` never returns — not even to notice a shutdown request. The handle is
//!   therefore non-blocking: [`LiveSource::next_frame_or_idle`] returns `Ok(None)` when no block
//!   is ready, and the caller flushes what it holds, looks at its flags and sleeps
//!   ([`LiveSource::wait_idle`]): 1 ms, doubling while nothing comes, up to [`IDLE_WAIT_MAX`]
//!   (20 ms), back to 1 ms at the next frame. An idle link costs ~50 wake-ups a second; a busy
//!   one none (a ready block is read without a system call: at 10 Gbit/s a block fills in well
//!   under a millisecond). The added delay is small next to the 100 ms block timeout, and the
//!   64 MiB ring holds 20 ms of a saturated 10 Gbit/s link three times over.
//! * **Buffer 64 MiB** ([`DEFAULT_BUFFER_SIZE`]): the kernel ring. At 10 Gbit/s it holds ~50 ms
//!   of traffic, enough to ride out a pause of the reading thread (a page fault, a burst of
//!   events); larger buffers only delay drops when the pipeline is slower than the link.
//! * **Snaplen 262144** ([`DEFAULT_SNAPLEN`]): libpcap's maximum, so no payload is cut (DICOM
//!   and HL7 decoding need whole streams; a cut frame is a reassembly gap).
//! * **Promiscuous mode on** by default: a SPAN / mirror port delivers frames addressed to
//!   other hosts, which a NIC not in promiscuous mode discards.
//!
//! # Privileges
//!
//! Opening a capture needs `CAP_NET_RAW` (and `CAP_NET_ADMIN` for promiscuous mode on some
//! drivers). pacstap does not drop privileges itself: run it as an unprivileged user that is
//! granted only those capabilities (the systemd unit's `AmbientCapabilities=` /
//! `CapabilityBoundingSet=`), so there is nothing to drop.
//!
//! # Counters
//!
//! libpcap's `pcap_stats` counters are 32-bit and wrap (after ~71 minutes at 1 Mpps);
//! [`LiveSource::stats`] accumulates their wrapping differences into 64-bit totals.

use crate::{PacketSource, RawFrame};
use pacstap_core::Timestamp;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Kernel capture buffer (ring) size, bytes. See the module docs.
pub const DEFAULT_BUFFER_SIZE: usize = 64 << 20;

/// libpcap's `MAXIMUM_SNAPLEN`: whole frames, even jumbo and offloaded (GRO) ones.
pub const DEFAULT_SNAPLEN: u32 = 262_144;

/// How long libpcap waits before handing over a partly filled block (ms). See the module docs.
pub const DEFAULT_TIMEOUT_MS: i32 = 100;

/// The first and the longest sleep of [`LiveSource::wait_idle`]. See the module docs.
pub const IDLE_WAIT: std::time::Duration = std::time::Duration::from_millis(1);
pub const IDLE_WAIT_MAX: std::time::Duration = std::time::Duration::from_millis(20);

/// How to open a live capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveConfig {
    /// Interface name (`eth1`, `ens1f0`, `any`).
    pub interface: String,
    pub snaplen: u32,
    /// Kernel buffer size, bytes.
    pub buffer_size: usize,
    pub promiscuous: bool,
    /// BPF filter expression (tcpdump syntax), compiled and attached in the kernel.
    pub bpf: Option<String>,
    pub timeout_ms: i32,
}

impl LiveConfig {
    pub fn new(interface: impl Into<String>) -> Self {
        LiveConfig {
            interface: interface.into(),
            snaplen: DEFAULT_SNAPLEN,
            buffer_size: DEFAULT_BUFFER_SIZE,
            promiscuous: true,
            bpf: None,
            timeout_ms: DEFAULT_TIMEOUT_MS,
        }
    }
}

/// Why a live capture could not be opened, or stopped.
#[derive(thiserror::Error, Debug)]
pub enum LiveError {
    #[error("cannot open capture on interface {interface}: {message}{hint}")]
    Open {
        interface: String,
        message: String,
        /// A hint for the usual causes (permissions, a missing interface).
        hint: &'static str,
    },
    #[error("invalid capture setting: {0}")]
    Setting(String),
    #[error("invalid BPF filter {filter:?}: {message}")]
    Filter { filter: String, message: String },
    #[error("capture on {interface} failed: {message}")]
    Read { interface: String, message: String },
}

/// Cumulative capture counters since the capture was opened (64-bit, wrap-corrected).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LiveStats {
    /// Frames handed to pacstap.
    pub frames: u64,
    /// libpcap `ps_recv`: frames the kernel passed the filter (including those dropped later).
    pub received: u64,
    /// libpcap `ps_drop`: dropped because the kernel buffer was full.
    pub dropped: u64,
    /// libpcap `ps_ifdrop`: dropped by the interface or its driver.
    pub if_dropped: u64,
}

/// 32-bit counter → 64-bit total, across wraps.
#[derive(Debug, Clone, Copy, Default)]
struct Wrapping {
    last: u32,
    total: u64,
}

impl Wrapping {
    fn update(&mut self, now: u32) -> u64 {
        self.total = self.total.saturating_add(u64::from(now.wrapping_sub(self.last)));
        self.last = now;
        self.total
    }
}

/// A live capture: frames from a network interface.
///
/// [`LiveSource::next_frame_or_idle`] returns `Ok(None)` when no frame is ready ("nothing
/// now"), so the caller can flush, check flags, wait a little and come back. The
/// [`PacketSource`] impl hides the idle returns and ends only when the stop flag is set (or the
/// capture fails), for code that wants a plain stream of frames.
pub struct LiveSource {
    cap: pcap::Capture<pcap::Active>,
    interface: String,
    linktype: u32,
    stop: Arc<AtomicBool>,
    frames: u64,
    received: Wrapping,
    dropped: Wrapping,
    if_dropped: Wrapping,
    error: Option<LiveError>,
    /// The last frame, for the [`PacketSource`] path only.
    copy: Vec<u8>,
    /// The next [`LiveSource::wait_idle`] sleep.
    idle: std::time::Duration,
}

fn open_hint(message: &str) -> &'static str {
    let m = message.to_ascii_lowercase();
    if m.contains("permission") || m.contains("operation not permitted") {
        " (live capture needs CAP_NET_RAW: run as root or grant the capability, e.g. the systemd unit's AmbientCapabilities=CAP_NET_RAW)"
    } else if m.contains("no such device") || m.contains("doesn't exist") {
        " (no such interface: `ip link` lists them)"
    } else {
        ""
    }
}

impl LiveSource {
    /// Opens and activates the capture, and attaches the BPF filter.
    pub fn open(cfg: &LiveConfig) -> Result<LiveSource, LiveError> {
        let snaplen = i32::try_from(cfg.snaplen)
            .ok()
            .filter(|&s| s > 0)
            .ok_or_else(|| LiveError::Setting(format!("snaplen {} out of range", cfg.snaplen)))?;
        let buffer = i32::try_from(cfg.buffer_size)
            .ok()
            .filter(|&b| b > 0)
            .ok_or_else(|| LiveError::Setting(format!("buffer size {} out of range (max 2 GiB)", cfg.buffer_size)))?;
        let open_err = |e: pcap::Error| {
            let message = e.to_string();
            LiveError::Open {
                interface: cfg.interface.clone(),
                hint: open_hint(&message),
                message,
            }
        };
        let inactive = pcap::Capture::from_device(cfg.interface.as_str()).map_err(open_err)?;
        let mut cap = inactive
            .snaplen(snaplen)
            .buffer_size(buffer)
            .promisc(cfg.promiscuous)
            .immediate_mode(false)
            .timeout(cfg.timeout_ms)
            .open()
            .map_err(open_err)?
            .setnonblock()
            .map_err(open_err)?;
        if let Some(filter) = cfg.bpf.as_deref().filter(|f| !f.trim().is_empty()) {
            cap.filter(filter, true).map_err(|e| LiveError::Filter {
                filter: filter.to_owned(),
                message: e.to_string(),
            })?;
        }
        // DLT_ and LINKTYPE_ numbers agree for every link type pacstap-wire decodes (Ethernet 1,
        // raw IP 101, Linux SLL 113, SLL2 276).
        let linktype = u32::try_from(cap.get_datalink().0).unwrap_or(u32::MAX);
        Ok(LiveSource {
            cap,
            interface: cfg.interface.clone(),
            linktype,
            stop: Arc::new(AtomicBool::new(false)),
            frames: 0,
            received: Wrapping::default(),
            dropped: Wrapping::default(),
            if_dropped: Wrapping::default(),
            error: None,
            copy: Vec::new(),
            idle: IDLE_WAIT,
        })
    }

    /// The flag that ends the [`PacketSource`] stream (set it from a signal handler or another
    /// thread; seen within [`IDLE_WAIT_MAX`] on a quiet link, at the next frame on a busy one).
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stop)
    }

    /// Use `flag` as the stop flag (e.g. the one the signal handlers set).
    pub fn set_stop_flag(&mut self, flag: Arc<AtomicBool>) {
        self.stop = flag;
    }

    /// tcpdump LINKTYPE_ of the interface.
    pub fn linktype(&self) -> u32 {
        self.linktype
    }

    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// The next frame; `Ok(None)` when none is ready now (call [`LiveSource::wait_idle`], then
    /// again).
    pub fn next_frame_or_idle(&mut self) -> Result<Option<RawFrame<'_>>, LiveError> {
        let r = read(&mut self.cap, &mut self.frames, self.linktype, &self.interface);
        if matches!(r, Ok(Some(_))) {
            self.idle = IDLE_WAIT;
        }
        r
    }

    /// Sleep a little after `Ok(None)` from [`LiveSource::next_frame_or_idle`].
    pub fn wait_idle(&mut self) {
        std::thread::sleep(self.idle);
        self.idle = (self.idle * 2).min(IDLE_WAIT_MAX);
    }

    /// Cumulative counters (libpcap's, wrap-corrected). Errors reading them leave the last
    /// values.
    pub fn stats(&mut self) -> LiveStats {
        if let Ok(s) = self.cap.stats() {
            self.received.update(s.received);
            self.dropped.update(s.dropped);
            self.if_dropped.update(s.if_dropped);
        }
        LiveStats {
            frames: self.frames,
            received: self.received.total,
            dropped: self.dropped.total,
            if_dropped: self.if_dropped.total,
        }
    }

    /// The error that ended the [`PacketSource`] stream, if one did.
    pub fn error(&self) -> Option<&LiveError> {
        self.error.as_ref()
    }
}

/// One `pcap_next_ex`: a frame, `None` on timeout, or the capture's error.
fn read<'a>(
    cap: &'a mut pcap::Capture<pcap::Active>,
    frames: &mut u64,
    linktype: u32,
    interface: &str,
) -> Result<Option<RawFrame<'a>>, LiveError> {
    match cap.next_packet() {
        Ok(p) => {
            *frames += 1;
            let h = p.header;
            // timeval from the kernel: seconds and microseconds (libpcap's default precision).
            // Negative values only on a clock set before 1970: clamp.
            let secs = u64::try_from(h.ts.tv_sec).unwrap_or(0);
            let micros = u64::try_from(h.ts.tv_usec).unwrap_or(0).min(999_999);
            Ok(Some(RawFrame {
                ts: Timestamp::from_secs_nanos(secs, micros * 1000),
                source: 0,
                linktype,
                data: p.data,
                orig_len: h.len,
            }))
        }
        // Non-blocking: nothing ready (`pcap_next_ex` returned 0). -2 (`NoMorePackets`) comes
        // only after `pcap_breakloop`, which nothing here calls; both mean "no frame now".
        Err(pcap::Error::TimeoutExpired | pcap::Error::NoMorePackets) => Ok(None),
        Err(e) => Err(LiveError::Read {
            interface: interface.to_owned(),
            message: e.to_string(),
        }),
    }
}

impl PacketSource for LiveSource {
    /// Blocks until a frame arrives; `None` once the stop flag is set or the capture failed
    /// (see [`LiveSource::error`]).
    ///
    /// Copies the frame into the source's own buffer: a frame borrowed from libpcap cannot be
    /// returned from inside the retry-on-timeout loop (the borrow checker cannot see that the
    /// timeout branch holds no borrow). The capture loop of `pacstap capture` uses
    /// [`LiveSource::next_frame_or_idle`], which copies nothing.
    fn next_frame(&mut self) -> Option<RawFrame<'_>> {
        let (ts, orig_len) = loop {
            if self.stop.load(Ordering::Relaxed) || self.error.is_some() {
                return None;
            }
            match read(&mut self.cap, &mut self.frames, self.linktype, &self.interface) {
                Ok(Some(f)) => {
                    self.idle = IDLE_WAIT;
                    self.copy.clear();
                    self.copy.extend_from_slice(f.data);
                    break (f.ts, f.orig_len);
                }
                Ok(None) => self.wait_idle(),
                Err(e) => {
                    self.error = Some(e);
                    return None;
                }
            }
        };
        Some(RawFrame {
            ts,
            source: 0,
            linktype: self.linktype,
            data: &self.copy,
            orig_len,
        })
    }
}

impl std::fmt::Debug for LiveSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveSource")
            .field("interface", &self.interface)
            .field("linktype", &self.linktype)
            .field("frames", &self.frames)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapping_counters_accumulate_across_the_32_bit_wrap() {
        let mut w = Wrapping::default();
        assert_eq!(w.update(10), 10);
        assert_eq!(w.update(u32::MAX - 5), u64::from(u32::MAX) - 5);
        assert_eq!(w.update(4), u64::from(u32::MAX) + 5);
    }

    #[test]
    fn a_missing_interface_is_a_clear_error() {
        let err = LiveSource::open(&LiveConfig::new("pacstap-no-such-if0")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("pacstap-no-such-if0"), "{msg}");
    }

    #[test]
    fn out_of_range_settings_are_refused_before_opening() {
        let mut cfg = LiveConfig::new("lo");
        cfg.buffer_size = usize::MAX;
        assert!(matches!(LiveSource::open(&cfg), Err(LiveError::Setting(_))));
        let mut cfg = LiveConfig::new("lo");
        cfg.snaplen = 0;
        assert!(matches!(LiveSource::open(&cfg), Err(LiveError::Setting(_))));
    }

    /// Loopback capture with a BPF filter, through the plain [`PacketSource`] path; needs
    /// CAP_NET_RAW (skipped without it).
    #[test]
    fn captures_filtered_loopback_frames_and_stops_on_the_flag() {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = sock.local_addr().unwrap().port();
        let mut cfg = LiveConfig::new("lo");
        cfg.bpf = Some(format!("udp dst port {port}"));
        cfg.buffer_size = 1 << 20;
        let mut src = match LiveSource::open(&cfg) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("SKIPPED: cannot capture on lo: {e}");
                return;
            }
        };
        let stop = src.stop_flag();
        let done = Arc::new(AtomicBool::new(false));
        let done2 = Arc::clone(&done);
        let sender = std::thread::spawn(move || {
            for _ in 0..200 {
                if done2.load(Ordering::Relaxed) {
                    break;
                }
                let _ = sock.send_to(b"pacstap-live-test", ("127.0.0.1", port));
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        });
        let f = src.next_frame().expect("a frame");
        assert!(f.data.windows(17).any(|w| w == b"pacstap-live-test"));
        assert!(f.ts.as_secs_f64() > 1.0e9, "kernel timestamp");
        assert_eq!(f.orig_len as usize, f.data.len());
        stop.store(true, Ordering::Relaxed);
        assert!(src.next_frame().is_none(), "stops on the flag");
        assert!(src.error().is_none());
        assert!(src.stats().frames >= 1);
        done.store(true, Ordering::Relaxed);
        sender.join().unwrap();
    }

    #[test]
    fn a_bad_filter_is_named() {
        let mut cfg = LiveConfig::new("lo");
        cfg.bpf = Some("tcp port not-a-port".into());
        match LiveSource::open(&cfg) {
            Err(LiveError::Filter { filter, .. }) => assert_eq!(filter, "tcp port not-a-port"),
            Err(e) => eprintln!("SKIPPED: cannot capture on lo: {e}"),
            Ok(_) => panic!("a bad filter was accepted"),
        }
    }
}
