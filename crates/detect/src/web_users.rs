//! Which user a client address last authenticated as over HTTP. A WADO-RS response seen
//! without its request (the request lost to a capture gap: `http.request_missing`) names no
//! user, though the retrieval had one; counted for the address instead, it would split one
//! user's bulk export into two counts that may each stay under the threshold. So its download is
//! counted for the user the same address authenticated as just before, when only that user did
//! there lately (a shared workstation or a NAT with several users leaves it with the address).

use crate::bounded_map::BoundedMap;
use crate::name::Name;
use std::net::IpAddr;

/// How near in packet time the address's last authenticated request must be (either side: a
/// mirror may deliver events a little out of order): a viewer or script retrieving studies
/// sends requests seconds apart, and five minutes of one user alone at an address is a
/// session, not a coincidence.
pub(crate) const INHERIT_WINDOW_NS: u64 = 5 * 60 * 1_000_000_000;
/// Addresses remembered (oldest forgotten first): bounded like the detector's other memories.
const MAX_ADDRESSES: usize = 65_536;

#[derive(Clone)]
struct LastUser {
    user: Name,
    last: i64,
    /// Another user authenticated at the address within the window before `last`: until this
    /// time the address is shared and names no one.
    shared_until: i64,
}

/// Address → the user it last authenticated as (bounded).
pub(crate) struct WebUsers {
    by_address: BoundedMap<IpAddr, LastUser>,
}

impl WebUsers {
    pub(crate) fn new() -> Self {
        WebUsers {
            by_address: BoundedMap::new(MAX_ADDRESSES),
        }
    }

    /// `user` authenticated from `client` at `ts` (an authenticated 2xx).
    pub(crate) fn seen(&mut self, client: IpAddr, user: &str, ts: i64) {
        let next = match self.by_address.get(&client) {
            Some(s) if s.user.as_str() == user => LastUser {
                last: s.last.max(ts),
                ..s.clone()
            },
            Some(s) if s.last.abs_diff(ts) <= INHERIT_WINDOW_NS => LastUser {
                user: Name::new(user),
                last: ts,
                shared_until: ts.saturating_add(INHERIT_WINDOW_NS as i64),
            },
            _ => LastUser {
                user: Name::new(user),
                last: ts,
                shared_until: i64::MIN,
            },
        };
        self.by_address.insert(client, next);
    }

    /// The one user `client` authenticated as near `ts`, if there is one.
    pub(crate) fn user_at(&self, client: IpAddr, ts: i64) -> Option<&str> {
        let s = self.by_address.get(&client)?;
        (s.last.abs_diff(ts) <= INHERIT_WINDOW_NS && ts > s.shared_until).then(|| s.user.as_str())
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
        let mut w = WebUsers::new();
        let a = ip("10.0.0.9");
        assert_eq!(w.user_at(a, 0), None);
        w.seen(a, "rad1", 100 * S);
        assert_eq!(w.user_at(a, 101 * S), Some("rad1"));
        assert_eq!(w.user_at(a, 99 * S), Some("rad1"), "a little out of order");
        assert_eq!(w.user_at(ip("10.0.0.8"), 101 * S), None, "another address");
        // Past the window the address names no one.
        assert_eq!(w.user_at(a, 100 * S + INHERIT_WINDOW_NS as i64 + 1), None);
        // The same user again keeps it named.
        w.seen(a, "rad1", 400 * S);
        assert_eq!(w.user_at(a, 401 * S), Some("rad1"));
    }

    #[test]
    fn an_address_two_users_share_names_neither_for_a_window() {
        let mut w = WebUsers::new();
        let a = ip("10.0.0.9");
        w.seen(a, "rad1", 100 * S);
        w.seen(a, "rad2", 160 * S);
        assert_eq!(w.user_at(a, 161 * S), None);
        w.seen(a, "rad2", 300 * S);
        assert_eq!(w.user_at(a, 301 * S), None, "still shared");
        let later = 160 * S + INHERIT_WINDOW_NS as i64 + S;
        w.seen(a, "rad2", later);
        assert_eq!(w.user_at(a, later + S), Some("rad2"), "rad2 alone for a window");
        // A user who comes back after the window is the address's one user again.
        let much_later = later + 2 * INHERIT_WINDOW_NS as i64;
        w.seen(a, "rad1", much_later);
        assert_eq!(w.user_at(a, much_later + S), Some("rad1"));
    }
}
