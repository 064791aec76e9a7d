//! One memory budget for everything the decoders hold across connections: control PDUs,
//! command sets and data set prefixes (DICOM), request/response heads (HTTP), handshake
//! messages (TLS), kept segments (HL7).
//!
//! Each decoder already caps what one message may hold; without a global cap only the flow
//! count bounds the sum (2,000 connections each pinning 250 KB of an unfinished
//! A-ASSOCIATE-RQ hold 500 MB). Here every growth of a decoder buffer is charged to its flow's
//! [`Lease`] and granted by the worker's [`MemBudget`], which is split in two so that filling
//! it cannot starve ordinary decoding cheaply:
//!
//! - the **reserve** (half the budget) serves each flow's first `guaranteed` bytes. Real
//!   commands, HTTP heads, MSH segments, ClientHellos and most A-ASSOCIATE-RQs fit in it, so a
//!   flow doing ordinary work never competes with flows pinning large messages; starving it
//!   takes `reserve / guaranteed` connections (4,096 with the defaults) each pinning a
//!   partial message at once, not a few fat ones;
//! - the **pool** (the other half) serves what a flow holds beyond that (a 200-context RQ, a
//!   long certificate chain, a data set prefix past its first sniff). When it is used up the
//!   flow asking gives up buffering that one message (an anomaly says why, counted in
//!   [`MemBudget::cap_hits`]) and resynchronises; flows already holding memory keep it, so
//!   nobody is evicted by a newcomer.
//!
//! The sum of all leases never exceeds the budget: charges happen before a buffer grows
//! (callers reserve exact capacities), and the analyzer re-reads each flow's real holding after
//! every chunk ([`MemBudget::settle`]) and releases it when the flow ends.

/// What one flow holds, as charged to the budget.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    held: usize,
}

impl Lease {
    pub fn held(&self) -> usize {
        self.held
    }
}

/// The per-worker budget (see the module docs).
#[derive(Debug, Clone)]
pub struct MemBudget {
    guaranteed: usize,
    reserve_limit: usize,
    pool_limit: usize,
    reserve_used: usize,
    pool_used: usize,
    /// Growths refused (each gives up one message's buffering).
    pub cap_hits: u64,
    /// Highest total ever held.
    pub peak: usize,
}

impl MemBudget {
    /// `total`: the whole budget; `guaranteed`: what each flow draws from the reserve half
    /// before it draws from the pool half.
    pub fn new(total: usize, guaranteed: usize) -> Self {
        let reserve_limit = total / 2;
        MemBudget {
            guaranteed: guaranteed.min(reserve_limit),
            reserve_limit,
            pool_limit: total - reserve_limit,
            reserve_used: 0,
            pool_used: 0,
            cap_hits: 0,
            peak: 0,
        }
    }

    /// Bytes held by all flows now.
    pub fn used(&self) -> usize {
        self.reserve_used + self.pool_used
    }

    pub fn limit(&self) -> usize {
        self.reserve_limit + self.pool_limit
    }

    fn split(&self, held: usize) -> (usize, usize) {
        let r = held.min(self.guaranteed);
        (r, held - r)
    }

    /// Whether `lease` may grow by `extra` bytes; charges them if so. A refusal counts as a
    /// cap hit.
    pub fn grow(&mut self, lease: &mut Lease, extra: usize) -> bool {
        if extra == 0 {
            return true;
        }
        let new = lease.held.saturating_add(extra);
        let (r0, p0) = self.split(lease.held);
        let (r1, p1) = self.split(new);
        let reserve = self.reserve_used - r0 + r1;
        let pool = self.pool_used - p0 + p1;
        if reserve > self.reserve_limit || pool > self.pool_limit {
            self.cap_hits += 1;
            return false;
        }
        self.reserve_used = reserve;
        self.pool_used = pool;
        lease.held = new;
        self.peak = self.peak.max(self.used());
        true
    }

    /// Set `lease` to what its flow really holds now (buffers freed or shrunk since the last
    /// charge). Never raises it past what was granted: a holding above the charge (a buffer
    /// grown without asking) is charged only as far as the budget allows.
    pub fn settle(&mut self, lease: &mut Lease, actual: usize) {
        if actual < lease.held {
            let (r0, p0) = self.split(lease.held);
            let (r1, p1) = self.split(actual);
            self.reserve_used -= r0 - r1;
            self.pool_used -= p0 - p1;
            lease.held = actual;
        } else if actual > lease.held {
            let extra = actual - lease.held;
            if !self.grow(lease, extra) {
                // Not counted as a hit: nothing was refused to the flow.
                self.cap_hits -= 1;
            }
        }
    }

    /// The flow ended: everything it held is free again.
    pub fn release(&mut self, lease: &mut Lease) {
        self.settle(lease, 0);
    }

    /// Grow `buf` so that `more` bytes fit, charging the growth to `lease`. Capacity doubles
    /// while the budget allows (amortised O(1) appends), else grows to exactly what is needed;
    /// `false` (and nothing changed) when even that is refused.
    pub fn reserve(&mut self, lease: &mut Lease, buf: &mut Vec<u8>, more: usize) -> bool {
        let need = buf.len().saturating_add(more);
        let cap = buf.capacity();
        if need <= cap {
            return true;
        }
        let hits = self.cap_hits;
        let doubled = need.max(cap.saturating_mul(2)).max(64);
        let target = if doubled > need && self.grow(lease, doubled - cap) {
            doubled
        } else if self.grow(lease, need - cap) {
            need
        } else {
            self.cap_hits = hits + 1;
            return false;
        };
        // A refused doubling followed by a granted exact growth is not a hit.
        self.cap_hits = hits;
        buf.reserve_exact(target - buf.len());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_and_pool_are_separate() {
        let mut b = MemBudget::new(1000, 100);
        let mut big = Lease::default();
        // A fat flow gets its guarantee from the reserve and at most the pool beyond it.
        assert!(b.grow(&mut big, 600));
        assert!(!b.grow(&mut big, 1));
        assert_eq!((b.reserve_used, b.pool_used, b.cap_hits), (100, 500, 1));
        // A small flow still gets its guaranteed share.
        let mut small = Lease::default();
        assert!(b.grow(&mut small, 100));
        // ...but nothing beyond it while the pool is full.
        assert!(!b.grow(&mut small, 1));
        assert!(b.used() <= b.limit());
        // Freed memory returns.
        b.settle(&mut big, 50);
        assert_eq!((b.reserve_used, b.pool_used), (150, 0));
        assert!(b.grow(&mut small, 400));
        b.release(&mut big);
        b.release(&mut small);
        assert_eq!(b.used(), 0);
        assert_eq!(b.peak, 700);
    }

    #[test]
    fn the_reserve_fills_too() {
        let mut b = MemBudget::new(1000, 100);
        let mut leases = [Lease::default(); 6];
        let granted = leases.iter_mut().map(|l| b.grow(l, 100)).filter(|&g| g).count();
        assert_eq!(granted, 5);
        assert_eq!(b.used(), 500);
        assert_eq!(b.cap_hits, 1);
    }

    #[test]
    fn reserve_grows_buffers_within_budget() {
        // Reserve half 1024, pool half 1024: one flow may hold 128 + 1024.
        let mut b = MemBudget::new(2048, 128);
        let mut l = Lease::default();
        let mut v = Vec::new();
        assert!(b.reserve(&mut l, &mut v, 10));
        assert_eq!(v.capacity(), 64);
        assert_eq!(l.held(), v.capacity());
        v.extend_from_slice(&[0; 10]);
        assert!(b.reserve(&mut l, &mut v, 500));
        assert_eq!(l.held(), v.capacity());
        v.resize(510, 0);
        assert!(b.reserve(&mut l, &mut v, 300));
        assert_eq!(v.capacity(), 1020);
        v.resize(1020, 0);
        // Doubling would pass the budget: exactly what is needed is granted.
        assert!(b.reserve(&mut l, &mut v, 100));
        assert_eq!(v.capacity(), 1120);
        assert_eq!(l.held(), 1120);
        assert_eq!(b.cap_hits, 0);
        v.resize(1120, 0);
        assert!(!b.reserve(&mut l, &mut v, 100));
        assert_eq!(v.capacity(), 1120);
        assert_eq!(b.cap_hits, 1);
        assert!(b.used() <= b.limit());
        b.settle(&mut l, 0);
        assert_eq!(b.used(), 0);
    }
}
