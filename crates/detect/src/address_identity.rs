//! Who a client address last showed itself as, remembered so that an act seen without its own
//! identity can be counted for it. A capture gap can take the part of a session that names
//! who is acting and leave the act: a WADO-RS response without its request
//! (`http.request_missing`) names no user, a C-MOVE on an association whose A-ASSOCIATE-RQ was
//! lost names no calling AE. Counted for the bare address, one user's bulk export would split
//! into two counts that may each stay under the threshold. So such an act is counted for the one
//! identity the same address showed just before (or, for an association, just after): the
//! user it authenticated as over HTTP, the user identity or calling AE of its associations.
//! An address that showed two identities lately (a shared workstation, a NAT) names neither
//! and the act stays with the address.

use crate::bounded_map::BoundedMap;
use std::net::IpAddr;

/// How near in packet time the address's last authenticated request must be (either side: a
/// mirror may deliver events a little out of order): a viewer or script retrieving studies
/// sends requests seconds apart, and five minutes of one user alone at an address is a
/// session, not a coincidence.
pub(crate) const INHERIT_WINDOW_NS: u64 = 5 * 60 * 1_000_000_000;
/// Addresses remembered (oldest forgotten first): bounded like the detector's other memories.
const MAX_ADDRESSES: usize = 65_536;

#[derive(Clone)]
struct Last<V> {
    who: V,
    last: i64,
    /// Another user authenticated at the address within the window before `last`: until this
    /// time the address is shared and names no one.
    shared_until: i64,
}

/// Address → the identity it last showed (bounded): a user name over HTTP, a
/// [`crate::entity::Caller`] over DICOM.
pub(crate) struct AddressIdentity<V> {
    by_address: BoundedMap<IpAddr, Last<V>>,
}

impl<V: Clone + PartialEq> AddressIdentity<V> {
    pub(crate) fn new() -> Self {
        AddressIdentity {
            by_address: BoundedMap::new(MAX_ADDRESSES),
        }
    }

    /// `client` showed itself as `who` at `ts` (an authenticated 2xx, an association's AE).
    pub(crate) fn seen(&mut self, client: IpAddr, who: &V, ts: i64) {
        let next = match self.by_address.get(&client) {
            Some(s) if &s.who == who => Last {
                last: s.last.max(ts),
                ..s.clone()
            },
            Some(s) if s.last.abs_diff(ts) <= INHERIT_WINDOW_NS => Last {
                who: who.clone(),
                last: ts,
                shared_until: ts.saturating_add(INHERIT_WINDOW_NS as i64),
            },
            _ => Last {
                who: who.clone(),
                last: ts,
                shared_until: i64::MIN,
            },
        };
        self.by_address.insert(client, next);
    }

    /// The one identity `client` showed near `ts`, if there is one.
    pub(crate) fn at(&self, client: IpAddr, ts: i64) -> Option<&V> {
        let s = self.by_address.get(&client)?;
        (s.last.abs_diff(ts) <= INHERIT_WINDOW_NS && ts > s.shared_until).then_some(&s.who)
    }

    /// Whether `client` showed two identities near `ts` (a shared workstation, a NAT): waiting
    /// for its next one would not name anyone either.
    pub(crate) fn shared_at(&self, client: IpAddr, ts: i64) -> bool {
        self.by_address
            .get(&client)
            .is_some_and(|s| s.last.abs_diff(ts) <= INHERIT_WINDOW_NS && ts <= s.shared_until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_address_names_its_one_recent_user() {
        let mut w = AddressIdentity::<&str>::new();
        let a = ip("10.0.0.9");
        assert_eq!(w.at(a, 0), None);
        w.seen(a, &"rad1", 100 * S);
        assert_eq!(w.at(a, 101 * S), Some(&"rad1"));
        assert_eq!(w.at(a, 99 * S), Some(&"rad1"), "a little out of order");
        assert_eq!(w.at(ip("10.0.0.8"), 101 * S), None, "another address");
        // Past the window the address names no one.
        assert_eq!(w.at(a, 100 * S + INHERIT_WINDOW_NS as i64 + 1), None);
        // The same user again keeps it named.
        w.seen(a, &"rad1", 400 * S);
        assert_eq!(w.at(a, 401 * S), Some(&"rad1"));
    }

    #[test]
    fn an_address_two_users_share_names_neither_for_a_window() {
        let mut w = AddressIdentity::<&str>::new();
        let a = ip("10.0.0.9");
        w.seen(a, &"rad1", 100 * S);
        w.seen(a, &"rad2", 160 * S);
        assert_eq!(w.at(a, 161 * S), None);
        w.seen(a, &"rad2", 300 * S);
        assert_eq!(w.at(a, 301 * S), None, "still shared");
        let later = 160 * S + INHERIT_WINDOW_NS as i64 + S;
        w.seen(a, &"rad2", later);
        assert_eq!(w.at(a, later + S), Some(&"rad2"), "rad2 alone for a window");
        // A user who comes back after the window is the address's one user again.
        let much_later = later + 2 * INHERIT_WINDOW_NS as i64;
        w.seen(a, &"rad1", much_later);
        assert_eq!(w.at(a, much_later + S), Some(&"rad1"));
    }
}
