//! The set of executed guest instruction addresses: what a trace collector
//! produces and what [`crate::lines::LineMap::coverage`] consumes.
//!
//! It exists as its own type so that every collector (the `-d in_asm` parser
//! today, a TCG plugin later) hands the line mapper the same compact value: a
//! sorted, deduplicated `Vec<u64>` (8 bytes per executed instruction, range
//! queries by binary search). A run of ten million instructions touches a few
//! thousand distinct addresses, so the set stays small even when the log that
//! produced it does not.

/// Sorted, deduplicated guest addresses that were executed at least once.
///
/// The in_asm collector gives no execution counts, so this is a set: a line
/// or function is "hit" when one of its addresses is in it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecutedAddresses {
    /// Strictly increasing.
    addresses: Vec<u64>,
}

impl ExecutedAddresses {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a set from addresses in any order, with duplicates.
    pub fn from_unsorted(mut addresses: Vec<u64>) -> Self {
        addresses.sort_unstable();
        addresses.dedup();
        Self { addresses }
    }

    /// Number of distinct executed addresses.
    pub fn count(&self) -> usize {
        self.addresses.len()
    }

    /// True when nothing was executed (or nothing was parsed).
    pub fn is_empty(&self) -> bool {
        self.addresses.is_empty()
    }

    /// True when `address` was executed.
    pub fn contains(&self, address: u64) -> bool {
        self.addresses.binary_search(&address).is_ok()
    }

    /// True when any executed address lies in `start..end` (end excluded).
    pub fn any_in_range(&self, start: u64, end: u64) -> bool {
        if start >= end {
            return false;
        }
        let first_not_below = self.addresses.partition_point(|&a| a < start);
        self.addresses
            .get(first_not_below)
            .is_some_and(|&a| a < end)
    }

    /// The addresses, ascending.
    pub fn as_slice(&self) -> &[u64] {
        &self.addresses
    }

    /// Iterates the addresses, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.addresses.iter().copied()
    }

    /// Adds every address of `other` (set union, linear time).
    pub fn merge(&mut self, other: &ExecutedAddresses) {
        if other.addresses.is_empty() {
            return;
        }
        if self.addresses.is_empty() {
            self.addresses = other.addresses.clone();
            return;
        }
        self.addresses = union_sorted(&self.addresses, &other.addresses);
    }

    /// The union of several sets (for example the traces of several runs).
    pub fn merge_all<'a>(sets: impl IntoIterator<Item = &'a ExecutedAddresses>) -> Self {
        let mut merged = ExecutedAddresses::new();
        for set in sets {
            merged.merge(set);
        }
        merged
    }
}

impl FromIterator<u64> for ExecutedAddresses {
    fn from_iter<I: IntoIterator<Item = u64>>(iter: I) -> Self {
        Self::from_unsorted(iter.into_iter().collect())
    }
}

/// Union of two strictly increasing slices, strictly increasing.
fn union_sorted(left: &[u64], right: &[u64]) -> Vec<u64> {
    let mut out = Vec::with_capacity(left.len() + right.len());
    let (mut i, mut j) = (0, 0);
    while let (Some(&a), Some(&b)) = (left.get(i), right.get(j)) {
        if a < b {
            out.push(a);
            i += 1;
        } else if b < a {
            out.push(b);
            j += 1;
        } else {
            out.push(a);
            i += 1;
            j += 1;
        }
    }
    out.extend_from_slice(left.get(i..).unwrap_or_default());
    out.extend_from_slice(right.get(j..).unwrap_or_default());
    out
}

/// Collects addresses as a parser meets them, keeping memory near the number
/// of distinct addresses: the pending buffer is sorted and deduplicated each
/// time it doubles, so a log that re-translates the same blocks many times
/// does not grow it without bound.
#[derive(Debug, Default)]
pub(crate) struct AddressAccumulator {
    addresses: Vec<u64>,
    /// Length of the sorted, deduplicated prefix after the last compaction.
    compacted_len: usize,
}

impl AddressAccumulator {
    const MIN_COMPACTION: usize = 4096;

    pub(crate) fn push(&mut self, address: u64) {
        self.addresses.push(address);
        if self.addresses.len() >= 2 * self.compacted_len + Self::MIN_COMPACTION {
            self.compact();
        }
    }

    /// Pushes every address of `start..end`.
    pub(crate) fn push_range(&mut self, start: u64, end: u64) {
        for address in start..end {
            self.push(address);
        }
    }

    fn compact(&mut self) {
        self.addresses.sort_unstable();
        self.addresses.dedup();
        self.compacted_len = self.addresses.len();
    }

    pub(crate) fn finish(self) -> ExecutedAddresses {
        ExecutedAddresses::from_unsorted(self.addresses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_unsorted_sorts_and_dedups() {
        let set = ExecutedAddresses::from_unsorted(vec![5, 1, 5, 3, 1]);
        assert_eq!(set.as_slice(), &[1, 3, 5]);
        assert_eq!(set.count(), 3);
        assert!(set.contains(3));
        assert!(!set.contains(4));
    }

    #[test]
    fn range_queries_exclude_the_end() {
        let set: ExecutedAddresses = [0x10, 0x20].into_iter().collect();
        assert!(set.any_in_range(0x10, 0x11));
        assert!(!set.any_in_range(0x11, 0x20));
        assert!(set.any_in_range(0x11, 0x21));
        assert!(!set.any_in_range(0x21, u64::MAX));
        assert!(!set.any_in_range(0x20, 0x20), "empty range holds nothing");
        assert!(!ExecutedAddresses::new().any_in_range(0, u64::MAX));
    }

    #[test]
    fn merge_is_a_set_union() {
        let mut a: ExecutedAddresses = [1, 4, 9].into_iter().collect();
        let b: ExecutedAddresses = [2, 4, 10, 11].into_iter().collect();
        a.merge(&b);
        assert_eq!(a.as_slice(), &[1, 2, 4, 9, 10, 11]);
        let mut empty = ExecutedAddresses::new();
        empty.merge(&b);
        assert_eq!(empty, b);
        let all = ExecutedAddresses::merge_all([&a, &b, &ExecutedAddresses::new()]);
        assert_eq!(all, a);
    }

    #[test]
    fn accumulator_compacts_repeats() {
        let mut acc = AddressAccumulator::default();
        for round in 0..10_000u64 {
            acc.push(round % 7);
        }
        assert!(acc.addresses.len() < 2 * AddressAccumulator::MIN_COMPACTION);
        assert_eq!(acc.finish().as_slice(), &[0, 1, 2, 3, 4, 5, 6]);
    }
}
