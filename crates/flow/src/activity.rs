//! The flows' activity lists: least recently active first, one list per eviction class.
//!
//! Eviction by least-recent activity alone lets a flood decide which flows survive: 270 000
//! half-open SYNs sent while a DICOM association idles push the association out, and the rest of
//! it is decoded mid-stream without its AE titles. So flows are ranked by what losing them costs
//! ([`Class`]): a full table evicts the least recently active flow of the lowest non-empty class.
//! Each class is its own doubly-linked list threaded through the slab slots, so touching,
//! re-classing, evicting and finding the oldest flow (for timeouts: the oldest of the three list
//! heads) are all O(1).
//!
//! Hand-written rather than `hashlink` (which the detector's LRUs and the output's evidence ring
//! use): the flow table already finds a flow's slab slot with its one hash lookup per packet, and
//! these lists link the slots by index, so a touch costs no second hash and no node allocation.
//! Three `hashlink::LinkedHashSet<u32>` lists (one per class) cost that second hash on every
//! packet: on a replay of 60 000 interleaved flows (900 000 data packets, each of a different
//! flow than the one before) pacstap used 0.47 s of user time instead of 0.36 s (best of 5, the
//! same build otherwise). The class ranking (evict half-open flows first) is also not what an
//! `LruCache` offers. This is the one slab-plus-LRU type of the flow stage.

/// End of a list.
pub(crate) const NIL: u32 = u32::MAX;

/// What evicting a flow costs, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Class {
    /// No payload yet: half-open connections, SYN floods, scans.
    NoPayload = 0,
    /// Payload that no decoder wanted.
    Ignored = 1,
    /// A decoder is reading it.
    Decoding = 2,
}

impl Class {
    /// Every class, cheapest to evict first.
    const ALL: [Class; 3] = [Class::NoPayload, Class::Ignored, Class::Decoding];
}

/// One list end per class, indexed by [`Class`] (no index can be out of bounds).
#[derive(Debug, Clone, Copy)]
struct PerClass([u32; 3]);

impl std::ops::Index<Class> for PerClass {
    type Output = u32;
    fn index(&self, c: Class) -> &u32 {
        let [a, b, d] = &self.0;
        match c {
            Class::NoPayload => a,
            Class::Ignored => b,
            Class::Decoding => d,
        }
    }
}

impl std::ops::IndexMut<Class> for PerClass {
    fn index_mut(&mut self, c: Class) -> &mut u32 {
        let [a, b, d] = &mut self.0;
        match c {
            Class::NoPayload => a,
            Class::Ignored => b,
            Class::Decoding => d,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Link {
    prev: u32,
    next: u32,
    class: Class,
}

const UNLINKED: Link = Link {
    prev: NIL,
    next: NIL,
    class: Class::NoPayload,
};

#[derive(Debug)]
pub(crate) struct Activity {
    links: Vec<Link>,
    head: PerClass,
    tail: PerClass,
}

impl Activity {
    pub fn with_capacity(n: usize) -> Self {
        Activity {
            links: Vec::with_capacity(n),
            head: PerClass([NIL; 3]),
            tail: PerClass([NIL; 3]),
        }
    }

    /// Make room for slot `idx` (slots are added one at a time, in order).
    pub fn grow_to(&mut self, idx: u32) {
        while self.links.len() <= idx as usize {
            self.links.push(UNLINKED);
        }
    }

    /// Append `idx` to the tail (most recent) of `class`'s list.
    pub fn push_back(&mut self, idx: u32, class: Class) {
        let c = class;
        let tail = self.tail[c];
        if let Some(l) = self.links.get_mut(idx as usize) {
            *l = Link {
                prev: tail,
                next: NIL,
                class,
            };
        }
        match self.links.get_mut(tail as usize) {
            Some(t) => t.next = idx,
            None => self.head[c] = idx,
        }
        self.tail[c] = idx;
    }

    pub fn unlink(&mut self, idx: u32) {
        let Some(&Link { prev, next, class }) = self.links.get(idx as usize) else {
            return;
        };
        let c = class;
        match self.links.get_mut(prev as usize) {
            Some(p) => p.next = next,
            None => {
                if self.head[c] == idx {
                    self.head[c] = next;
                }
            }
        }
        match self.links.get_mut(next as usize) {
            Some(n) => n.prev = prev,
            None => {
                if self.tail[c] == idx {
                    self.tail[c] = prev;
                }
            }
        }
        if let Some(l) = self.links.get_mut(idx as usize) {
            *l = UNLINKED;
        }
    }

    /// Move `idx` to the tail of `class`'s list (it was just active).
    pub fn touch(&mut self, idx: u32, class: Class) {
        let current = self.links.get(idx as usize).map(|l| l.class);
        if current == Some(class) && self.tail[class] == idx {
            return;
        }
        self.unlink(idx);
        self.push_back(idx, class);
    }

    /// The flow a full table gives up: the least recently active of the lowest class.
    pub fn victim(&self) -> Option<(u32, Class)> {
        Class::ALL
            .into_iter()
            .find_map(|c| Some(self.head[c]).filter(|&h| h != NIL).map(|h| (h, c)))
    }

    /// The least recently active flow of all, given each flow's last activity.
    pub fn oldest<T: Ord>(&self, last_active: impl Fn(u32) -> Option<T>) -> Option<u32> {
        self.head
            .0
            .iter()
            .filter(|&&h| h != NIL)
            .filter_map(|&h| last_active(h).map(|t| (t, h)))
            .min_by(|a, b| a.0.cmp(&b.0))
            .map(|(_, h)| h)
    }

    /// The class whose list `idx` is on (tests).
    #[cfg(test)]
    pub fn class_of(&self, idx: u32) -> Option<Class> {
        self.links.get(idx as usize).map(|l| l.class)
    }

    /// Every listed slot, class by class, oldest first (tests).
    #[cfg(test)]
    pub fn lists(&self) -> Vec<Vec<u32>> {
        Class::ALL
            .into_iter()
            .map(|c| {
                let mut out = Vec::new();
                let (mut prev, mut cur) = (NIL, self.head[c]);
                while cur != NIL {
                    let l = self.links[cur as usize];
                    assert_eq!(l.prev, prev, "links");
                    assert_eq!(l.class, c, "class");
                    out.push(cur);
                    prev = cur;
                    cur = l.next;
                }
                assert_eq!(self.tail[c], prev, "tail");
                out
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_evict_lowest_first_and_oldest_spans_the_lists() {
        let mut a = Activity::with_capacity(4);
        a.grow_to(3);
        a.push_back(0, Class::Decoding);
        a.push_back(1, Class::NoPayload);
        a.push_back(2, Class::NoPayload);
        a.push_back(3, Class::Ignored);
        assert_eq!(a.victim(), Some((1, Class::NoPayload)));
        a.touch(1, Class::NoPayload);
        assert_eq!(a.victim(), Some((2, Class::NoPayload)));
        a.touch(2, Class::Decoding); // it carried data a decoder took
        a.touch(1, Class::Ignored);
        assert_eq!(a.lists(), vec![vec![], vec![3, 1], vec![0, 2]]);
        assert_eq!(a.victim(), Some((3, Class::Ignored)));
        let times = [5, 9, 7, 6];
        assert_eq!(a.oldest(|i| times.get(i as usize).copied()), Some(0));
        a.unlink(0);
        a.unlink(3);
        assert_eq!(a.oldest(|i| times.get(i as usize).copied()), Some(2));
        assert_eq!(a.lists(), vec![vec![], vec![1], vec![2]]);
    }
}
