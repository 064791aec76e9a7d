//! Progress on stderr for long replays (only when stderr is a terminal).
//!
//! The one place below `main` that reads the wall clock: progress is about the operator's
//! patience, not about packets, so it must not leak into events or windows.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Prints `done / total (pct) rate` in place, at most every 500 ms, starting after 2 s.
pub struct Progress {
    enabled: bool,
    start: Instant,
    last: Instant,
    shown: bool,
}

const FIRST_AFTER: Duration = Duration::from_secs(2);
const EVERY: Duration = Duration::from_millis(500);

impl Progress {
    pub fn new(enabled: bool) -> Self {
        let now = Instant::now();
        Progress {
            enabled: enabled && std::io::stderr().is_terminal(),
            start: now,
            last: now,
            shown: false,
        }
    }

    /// Cheap to call often; reads the clock only when enabled.
    pub fn update(&mut self, done: u64, total: u64) {
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        if now.duration_since(self.start) < FIRST_AFTER || now.duration_since(self.last) < EVERY {
            return;
        }
        self.last = now;
        self.shown = true;
        let secs = now.duration_since(self.start).as_secs_f64().max(1e-9);
        let pct = if total > 0 {
            done as f64 * 100.0 / total as f64
        } else {
            0.0
        };
        let _ = write!(
            std::io::stderr(),
            "\r  {:.1} / {:.1} MB ({pct:.0}%)  {:.0} MB/s   ",
            done as f64 / 1e6,
            total as f64 / 1e6,
            done as f64 / 1e6 / secs
        );
    }

    /// Clear the progress line before the summary is printed.
    pub fn finish(&mut self) {
        if self.shown {
            let _ = write!(std::io::stderr(), "\r{:60}\r", "");
        }
    }
}
