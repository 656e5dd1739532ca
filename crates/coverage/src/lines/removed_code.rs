//! Recognises debug info of code the linker removed, so it is not mistaken
//! for code at a real address.
//!
//! With `--gc-sections`, a discarded function keeps its DWARF: GNU ld
//! rewrites its addresses to 0, lld to a tombstone (-1, or -2 in
//! `.debug_ranges`). On a Cortex-M, address 0 holds the vector table and the
//! code right after it, so a removed function "at 0" would overlap real code
//! and be reported as found (or even hit). A sequence or range is dropped
//! when it is empty, starts at a tombstone, starts outside every executable
//! section, or starts at 0 while another sequence also covers low addresses.

use std::ops::Range;

/// The lowest tombstone address (-2) for an address size in bytes.
pub(super) fn tombstone_for(address_size: u8) -> u64 {
    match address_size {
        1..=7 => (1u64 << (u32::from(address_size) * 8)) - 2,
        _ => u64::MAX - 1,
    }
}

/// Decides which address ranges are real code.
#[derive(Debug)]
pub(super) struct CodeFilter {
    /// Address ranges of executable ELF sections (empty: trust everything).
    text: Vec<Range<u64>>,
    /// A sequence at address 0 overlaps another one, so 0 means "removed".
    zero_is_removed: bool,
}

impl CodeFilter {
    /// `text`: the executable sections; `sequences`: the spans of every
    /// line-table sequence, used to detect removed code stacked at 0.
    pub(super) fn new(
        text: Vec<Range<u64>>,
        sequences: impl Iterator<Item = Range<u64>> + Clone,
    ) -> Self {
        let zero_end = sequences
            .clone()
            .filter(|span| span.start == 0)
            .map(|span| span.end)
            .max()
            .unwrap_or(0);
        let zero_is_removed = sequences
            .into_iter()
            .any(|span| span.start > 0 && span.start < zero_end && span.start < span.end);
        Self {
            text,
            zero_is_removed,
        }
    }

    fn is_code(&self, address: u64) -> bool {
        self.text.is_empty() || self.text.iter().any(|range| range.contains(&address))
    }

    /// True when `range` (from a unit whose tombstone is `tombstone`) is code.
    pub(super) fn keep_range(&self, range: &Range<u64>, tombstone: u64) -> bool {
        range.start < range.end
            && range.start < tombstone
            && self.is_code(range.start)
            && !(range.start == 0 && self.zero_is_removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_TOMBSTONE: u64 = u64::MAX - 1;

    #[test]
    fn tombstones_by_address_size() {
        assert_eq!(tombstone_for(4), 0xffff_fffe);
        assert_eq!(tombstone_for(8), u64::MAX - 1);
        assert_eq!(tombstone_for(0), u64::MAX - 1);
        assert_eq!(tombstone_for(200), u64::MAX - 1);
    }

    #[test]
    fn removed_code_at_zero_is_dropped_only_when_it_overlaps() {
        let overlapping = CodeFilter::new(Vec::new(), [0..0x40, 0x20..0x80].into_iter());
        assert!(overlapping.zero_is_removed);
        assert!(!overlapping.keep_range(&(0..0x40), NO_TOMBSTONE));
        assert!(overlapping.keep_range(&(0x20..0x80), NO_TOMBSTONE));

        let alone = CodeFilter::new(Vec::new(), [0..0x40, 0x40..0x80].into_iter());
        assert!(!alone.zero_is_removed);
        assert!(alone.keep_range(&(0..0x40), NO_TOMBSTONE));
        assert!(!alone.keep_range(&(0x40..0x40), NO_TOMBSTONE), "empty");
    }

    #[test]
    fn ranges_outside_text_and_tombstones_are_dropped() {
        let text_elsewhere = CodeFilter::new(
            std::iter::once(0x100..0x200).collect(),
            std::iter::once(0..0x40),
        );
        assert!(!text_elsewhere.keep_range(&(0..0x40), NO_TOMBSTONE));
        assert!(text_elsewhere.keep_range(&(0x100..0x140), NO_TOMBSTONE));
        assert!(!text_elsewhere.keep_range(&(0xffff_fffe..0xffff_ffff), 0xffff_fffe));
    }
}
