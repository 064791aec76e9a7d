//! Flow identity: endpoints, keys, ids and direction.

use crate::time::Timestamp;
use serde::Serialize;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;

/// One side of a TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    pub ip: IpAddr,
    pub port: u16,
}

impl Endpoint {
    pub fn new(ip: IpAddr, port: u16) -> Self {
        Endpoint { ip, port }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.ip {
            IpAddr::V4(ip) => write!(f, "{ip}:{}", self.port),
            IpAddr::V6(ip) => write!(f, "[{ip}]:{}", self.port),
        }
    }
}

/// The addresses of one packet, as seen on the wire (source → destination).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub src: Endpoint,
    pub dst: Endpoint,
}

impl FlowKey {
    /// The same key for both directions of a connection: the smaller endpoint first.
    /// Returns the canonical key and whether this packet's source is the canonical first endpoint.
    pub fn canonical(&self) -> (FlowKey, bool) {
        if self.src <= self.dst {
            (*self, true)
        } else {
            (self.reversed(), false)
        }
    }

    /// The key of the other direction: source and destination swapped.
    pub fn reversed(&self) -> FlowKey {
        FlowKey {
            src: self.dst,
            dst: self.src,
        }
    }

    /// A hash that is the same for both directions, for sharding flows across workers.
    pub fn symmetric_hash(&self) -> u64 {
        let (c, _) = self.canonical();
        let mut h = std::collections::hash_map::DefaultHasher::new();
        c.hash(&mut h);
        h.finish()
    }
}

/// Stable id of a TCP connection within one run (CONTRACT §2 `flow_id`).
///
/// Derived from the canonical 5-tuple and the first packet's time rather than from a counter, so
/// the same connection gets the same id whichever worker owns it, in replay and live alike.
/// Masked to 53 bits so JSON consumers that parse numbers as doubles (JavaScript, jq) keep it exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct FlowId(pub u64);

impl FlowId {
    pub fn derive(key: &FlowKey, first_seen: Timestamp) -> FlowId {
        // FNV-1a: fixed across Rust versions and platforms, unlike DefaultHasher.
        let (c, _) = key.canonical();
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |bytes: &[u8]| {
            for b in bytes {
                h ^= u64::from(*b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        };
        for ep in [c.src, c.dst] {
            match ep.ip {
                IpAddr::V4(ip) => eat(&ip.octets()),
                IpAddr::V6(ip) => eat(&ip.octets()),
            }
            eat(&ep.port.to_be_bytes());
        }
        eat(&first_seen.0.to_be_bytes());
        FlowId(h & ((1u64 << 53) - 1))
    }

    /// The id after this one (within 53 bits): for a connection whose derived id is still taken
    /// by a just-ended one on the same 5-tuple that started at the same instant (a RST and a new
    /// connection in one timestamp), so that two connections never share an id.
    pub fn next(self) -> FlowId {
        FlowId(self.0.wrapping_add(1) & ((1u64 << 53) - 1))
    }
}

/// Direction of data within a connection, relative to the client (the initiator).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Direction {
    #[serde(rename = "toserver")]
    ToServer,
    #[serde(rename = "toclient")]
    ToClient,
}

impl Direction {
    pub fn reverse(self) -> Direction {
        match self {
            Direction::ToServer => Direction::ToClient,
            Direction::ToClient => Direction::ToServer,
        }
    }

    /// Both directions, to-server first.
    pub const BOTH: [Direction; 2] = [Direction::ToServer, Direction::ToClient];

    /// 0 for to-server, 1 for to-client: for per-direction arrays (prefer [`PerDirection`]).
    pub fn index(self) -> usize {
        match self {
            Direction::ToServer => 0,
            Direction::ToClient => 1,
        }
    }
}

/// One `T` per direction of a connection, indexed by [`Direction`].
///
/// Replaces `[T; 2]` indexed by `dir.index()`: `x[dir]` cannot be out of bounds, so per-direction
/// state needs neither a `get` that can never fail nor an indexing-lint exception.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PerDirection<T> {
    pub to_server: T,
    pub to_client: T,
}

impl<T> PerDirection<T> {
    pub const fn new(to_server: T, to_client: T) -> Self {
        PerDirection { to_server, to_client }
    }

    /// The same value for both directions.
    pub fn splat(v: T) -> Self
    where
        T: Clone,
    {
        PerDirection {
            to_server: v.clone(),
            to_client: v,
        }
    }

    /// Both values, to-server first.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        [&self.to_server, &self.to_client].into_iter()
    }

    /// Both values, to-server first.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        [&mut self.to_server, &mut self.to_client].into_iter()
    }

    /// Each direction's value mapped.
    pub fn map<U>(self, mut f: impl FnMut(T) -> U) -> PerDirection<U> {
        PerDirection {
            to_server: f(self.to_server),
            to_client: f(self.to_client),
        }
    }

    /// Both directions' values: `(own, peer)` as seen from `dir`.
    pub fn pair_mut(&mut self, dir: Direction) -> (&mut T, &mut T) {
        match dir {
            Direction::ToServer => (&mut self.to_server, &mut self.to_client),
            Direction::ToClient => (&mut self.to_client, &mut self.to_server),
        }
    }
}

impl<T> std::ops::Index<Direction> for PerDirection<T> {
    type Output = T;
    fn index(&self, dir: Direction) -> &T {
        match dir {
            Direction::ToServer => &self.to_server,
            Direction::ToClient => &self.to_client,
        }
    }
}

impl<T> std::ops::IndexMut<Direction> for PerDirection<T> {
    fn index_mut(&mut self, dir: Direction) -> &mut T {
        match dir {
            Direction::ToServer => &mut self.to_server,
            Direction::ToClient => &mut self.to_client,
        }
    }
}

/// What the stages after reassembly know about a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowMeta {
    pub id: FlowId,
    /// The initiator: the SYN sender, else a guess (see `pacstap-flow`).
    pub client: Endpoint,
    pub server: Endpoint,
    /// Time of the first packet seen of this connection.
    pub start: Timestamp,
    /// Whether the three-way handshake was seen (false: picked up mid-stream).
    pub handshake_seen: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ep(a: u8, port: u16) -> Endpoint {
        Endpoint::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, a)), port)
    }

    #[test]
    fn canonical_key_is_direction_free() {
        let k1 = FlowKey {
            src: ep(1, 5000),
            dst: ep(2, 104),
        };
        let k2 = FlowKey {
            src: ep(2, 104),
            dst: ep(1, 5000),
        };
        assert_eq!(k1.canonical().0, k2.canonical().0);
        assert_ne!(k1.canonical().1, k2.canonical().1);
        assert_eq!(k1.symmetric_hash(), k2.symmetric_hash());
        let t = Timestamp(42);
        assert_eq!(FlowId::derive(&k1, t), FlowId::derive(&k2, t));
        assert!(FlowId::derive(&k1, t).0 < (1 << 53));
    }

    #[test]
    fn per_direction_is_indexed_by_direction() {
        let mut p = PerDirection::new(1, 2);
        assert_eq!((p[Direction::ToServer], p[Direction::ToClient]), (1, 2));
        p[Direction::ToClient] += 10;
        assert_eq!(p.iter().copied().collect::<Vec<_>>(), [1, 12]);
        let (own, peer) = p.pair_mut(Direction::ToClient);
        *own += 1;
        *peer += 100;
        assert_eq!(p, PerDirection::new(101, 13));
        assert_eq!(p.map(|v| v * 2), PerDirection::new(202, 26));
        assert_eq!(PerDirection::splat(7), PerDirection::new(7, 7));
        for d in Direction::BOTH {
            assert_eq!(p[d], *p.iter().nth(d.index()).unwrap());
        }
    }
}
