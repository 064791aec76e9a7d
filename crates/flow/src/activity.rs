//! The flows' activity lists: least recently active first, one list per eviction class.
//!
//! Eviction by least-recent activity alone lets a flood decide which flows survive: 270 000
//! half-open SYNs sent while a DICOM association idles push the association out, and the rest of
//! it is decoded mid-stream without its AE titles. So flows are ranked by what losing them costs
//! ([`Class`]): a full table evicts the least recently active flow of the lowest non-empty class.
//! Each class is its own doubly-linked list threaded through the slab slots, so touching,
//! re-classing, evicting and finding the oldest flow (for timeouts: the oldest of the three list
//! heads) are all O(1).

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

const ALL_CLASSES: [Class; 3] = [Class::NoPayload, Class::Ignored, Class::Decoding];

type List = hashlink::LinkedHashSet<u32, ahash::RandomState>;

#[derive(Debug)]
pub(crate) struct Activity {
    lists: [List; 3],
    class: Vec<Option<Class>>,
}

impl Activity {
    pub fn with_capacity(n: usize) -> Self {
        Activity {
            lists: std::array::from_fn(|_| List::with_hasher(ahash::RandomState::new())),
            class: Vec::with_capacity(n),
        }
    }

    fn list(&mut self, c: Class) -> &mut List {
        let [a, b, d] = &mut self.lists;
        match c {
            Class::NoPayload => a,
            Class::Ignored => b,
            Class::Decoding => d,
        }
    }

    fn list_ref(&self, c: Class) -> &List {
        let [a, b, d] = &self.lists;
        match c {
            Class::NoPayload => a,
            Class::Ignored => b,
            Class::Decoding => d,
        }
    }

    /// Make room for slot `idx` (slots are added one at a time, in order).
    pub fn grow_to(&mut self, idx: u32) {
        while self.class.len() <= idx as usize {
            self.class.push(None);
        }
    }

    /// Append `idx` to the tail (most recent) of `class`'s list.
    pub fn push_back(&mut self, idx: u32, class: Class) {
        if let Some(c) = self.class.get_mut(idx as usize) {
            *c = Some(class);
        }
        self.list(class).insert(idx);
    }

    pub fn unlink(&mut self, idx: u32) {
        if let Some(c) = self.class.get_mut(idx as usize).and_then(Option::take) {
            self.list(c).remove(&idx);
        }
    }

    /// Move `idx` to the tail of `class`'s list (it was just active).
    pub fn touch(&mut self, idx: u32, class: Class) {
        let current = self.class.get(idx as usize).copied().flatten();
        if current == Some(class) {
            let l = self.list(class);
            if l.back() != Some(&idx) {
                l.to_back(&idx);
            }
            return;
        }
        self.unlink(idx);
        self.push_back(idx, class);
    }

    /// The flow a full table gives up: the least recently active of the lowest class.
    pub fn victim(&self) -> Option<(u32, Class)> {
        ALL_CLASSES
            .into_iter()
            .find_map(|c| self.list_ref(c).front().map(|&h| (h, c)))
    }

    /// The least recently active flow of all, given each flow's last activity.
    pub fn oldest<T: Ord>(&self, last_active: impl Fn(u32) -> Option<T>) -> Option<u32> {
        self.lists
            .iter()
            .filter_map(|l| l.front().copied())
            .filter_map(|h| last_active(h).map(|t| (t, h)))
            .min_by(|a, b| a.0.cmp(&b.0))
            .map(|(_, h)| h)
    }

    /// The class whose list `idx` is on (tests).
    #[cfg(test)]
    pub fn class_of(&self, idx: u32) -> Option<Class> {
        Some(
            self.class
                .get(idx as usize)
                .copied()
                .flatten()
                .unwrap_or(Class::NoPayload),
        )
    }

    /// Every listed slot, class by class, oldest first (tests).
    #[cfg(test)]
    pub fn lists(&self) -> Vec<Vec<u32>> {
        self.lists.iter().map(|l| l.iter().copied().collect()).collect()
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
