//! Execution counts per guest instruction address: what a counting collector
//! (the TCG plugin, parsed by [`crate::hitcounts`]) produces and what
//! [`crate::lines::LineMap::coverage_with_counts`] turns into line hits.
//!
//! It is the counted sibling of [`ExecutedAddresses`]: the same sorted
//! address vector plus a parallel vector of counts, so range queries stay a
//! binary search. Only executed addresses (count > 0) are kept, so
//! [`HitCounts::executed`] is exactly the set the in_asm collector would give
//! for the same run.

use crate::addresses::ExecutedAddresses;

/// Sorted guest addresses with how many times each instruction ran (> 0).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HitCounts {
    /// Strictly increasing.
    addresses: Vec<u64>,
    /// `counts[i]` belongs to `addresses[i]`; never 0.
    counts: Vec<u64>,
}

impl HitCounts {
    /// No executions.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds counts from `(address, count)` pairs in any order; pairs of the
    /// same address add up (saturating), pairs with count 0 are dropped.
    pub fn from_pairs(mut pairs: Vec<(u64, u64)>) -> Self {
        pairs.retain(|&(_, count)| count > 0);
        pairs.sort_unstable_by_key(|&(address, _)| address);
        let mut addresses: Vec<u64> = Vec::with_capacity(pairs.len());
        let mut counts: Vec<u64> = Vec::with_capacity(pairs.len());
        for (address, count) in pairs {
            match (addresses.last(), counts.last_mut()) {
                (Some(&last), Some(total)) if last == address => {
                    *total = total.saturating_add(count);
                }
                _ => {
                    addresses.push(address);
                    counts.push(count);
                }
            }
        }
        Self { addresses, counts }
    }

    /// Number of distinct executed addresses.
    pub fn len(&self) -> usize {
        self.addresses.len()
    }

    /// True when nothing was executed.
    pub fn is_empty(&self) -> bool {
        self.addresses.is_empty()
    }

    /// How many times the instruction at `address` ran, `None` if never.
    pub fn get(&self, address: u64) -> Option<u64> {
        let index = self.addresses.binary_search(&address).ok()?;
        self.counts.get(index).copied()
    }

    /// The counts of the executed addresses in `start..end` (end excluded).
    fn in_range(&self, start: u64, end: u64) -> &[u64] {
        if start >= end {
            return &[];
        }
        let first = self.addresses.partition_point(|&a| a < start);
        let last = self.addresses.partition_point(|&a| a < end);
        self.counts.get(first..last).unwrap_or_default()
    }

    /// The highest count in `start..end`, 0 when nothing there ran.
    pub fn max_in_range(&self, start: u64, end: u64) -> u64 {
        self.in_range(start, end).iter().copied().max().unwrap_or(0)
    }

    /// The count of the lowest executed address in `start..end`, 0 if none.
    pub fn first_in_range(&self, start: u64, end: u64) -> u64 {
        self.in_range(start, end).first().copied().unwrap_or(0)
    }

    /// Iterates `(address, count)`, ascending by address.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.addresses
            .iter()
            .copied()
            .zip(self.counts.iter().copied())
    }

    /// Total instructions executed (the sum of all counts, saturating).
    pub fn total(&self) -> u64 {
        self.counts
            .iter()
            .fold(0u64, |sum, &count| sum.saturating_add(count))
    }

    /// The executed addresses without their counts.
    pub fn executed(&self) -> ExecutedAddresses {
        // Already sorted and unique: from_unsorted's sort is a linear check.
        ExecutedAddresses::from_unsorted(self.addresses.clone())
    }

    /// Adds `other`'s counts to these (several runs of one firmware).
    pub fn merge(&mut self, other: &HitCounts) {
        let mut pairs: Vec<(u64, u64)> = self.iter().collect();
        pairs.extend(other.iter());
        *self = Self::from_pairs(pairs);
    }
}

impl FromIterator<(u64, u64)> for HitCounts {
    fn from_iter<I: IntoIterator<Item = (u64, u64)>>(iter: I) -> Self {
        Self::from_pairs(iter.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_sorted_summed_and_zeros_dropped() {
        let counts = HitCounts::from_pairs(vec![(8, 2), (4, 1), (8, 3), (6, 0)]);
        assert_eq!(counts.iter().collect::<Vec<_>>(), [(4, 1), (8, 5)]);
        assert_eq!(counts.get(8), Some(5));
        assert_eq!(counts.get(6), None, "count 0 means not executed");
        assert_eq!(counts.len(), 2);
        assert_eq!(counts.total(), 6);
        assert_eq!(counts.executed().as_slice(), &[4, 8]);
        let saturated: HitCounts = [(1, u64::MAX), (1, 5)].into_iter().collect();
        assert_eq!(saturated.get(1), Some(u64::MAX));
    }

    #[test]
    fn range_queries() {
        let counts: HitCounts = [(0x10, 3), (0x12, 9), (0x14, 1)].into_iter().collect();
        assert_eq!(counts.max_in_range(0x10, 0x16), 9);
        assert_eq!(counts.max_in_range(0x13, 0x14), 0);
        assert_eq!(counts.max_in_range(0x14, 0x14), 0, "empty range");
        assert_eq!(counts.max_in_range(0x16, 0x10), 0, "reversed range");
        assert_eq!(counts.first_in_range(0x11, 0x20), 9);
        assert_eq!(counts.first_in_range(0x20, 0x30), 0);
        assert_eq!(HitCounts::new().max_in_range(0, u64::MAX), 0);
    }

    #[test]
    fn merge_adds_counts() {
        let mut a: HitCounts = [(1, 1), (2, 2)].into_iter().collect();
        a.merge(&[(2, 3), (5, 1)].into_iter().collect());
        assert_eq!(a.iter().collect::<Vec<_>>(), [(1, 1), (2, 5), (5, 1)]);
    }
}
