//! Byte-level cases for the block-count parser: a reference encoder written
//! from the format table (independent of the plugin's), then valid files,
//! every kind of damage, and every truncation point of a real-looking file.

use super::*;

/// Builds a file field by field, as the format table in the module doc says.
#[derive(Default)]
struct FileBuilder {
    version: Option<u16>,
    api_level: u16,
    target: &'static str,
    /// start, sizes, encoded counts
    blocks: Vec<(u64, Vec<u8>, Vec<u8>)>,
    edges: Vec<(u32, u32, u64)>,
    /// Overrides the block count written in the header.
    claimed_blocks: Option<u64>,
}

impl FileBuilder {
    /// A block whose instructions all ran `executions` times.
    fn block(self, start: u64, executions: u64, sizes: &[u8]) -> Self {
        self.counted_block(start, sizes, &vec![executions; sizes.len()])
    }

    fn counted_block(self, start: u64, sizes: &[u8], counts: &[u64]) -> Self {
        let encoded: Vec<u8> = counts.iter().flat_map(|&count| leb128(count)).collect();
        self.raw_block(start, sizes, &encoded)
    }

    fn raw_block(mut self, start: u64, sizes: &[u8], encoded_counts: &[u8]) -> Self {
        self.blocks
            .push((start, sizes.to_vec(), encoded_counts.to_vec()));
        self
    }

    fn edge(mut self, from: u32, to: u32, count: u64) -> Self {
        self.edges.push((from, to, count));
        self
    }

    fn body(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(b"VSBLKCNT");
        out.extend_from_slice(&self.version.unwrap_or(1).to_le_bytes());
        out.extend_from_slice(&self.api_level.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        let blocks = self.claimed_blocks.unwrap_or(self.blocks.len() as u64);
        out.extend_from_slice(&blocks.to_le_bytes());
        out.extend_from_slice(&(self.edges.len() as u64).to_le_bytes());
        out.push(self.target.len() as u8);
        out.extend_from_slice(self.target.as_bytes());
        for (start, sizes, counts) in &self.blocks {
            out.extend_from_slice(&start.to_le_bytes());
            out.extend_from_slice(&(sizes.len() as u32).to_le_bytes());
            out.extend_from_slice(sizes);
            out.extend_from_slice(counts);
        }
        for (from, to, count) in &self.edges {
            out.extend_from_slice(&from.to_le_bytes());
            out.extend_from_slice(&to.to_le_bytes());
            out.extend_from_slice(&count.to_le_bytes());
        }
        out
    }

    fn build(&self) -> Vec<u8> {
        let mut out = self.body();
        let checksum = fnv1a64(&out);
        out.extend_from_slice(b"VSBLKEND");
        out.extend_from_slice(&checksum.to_le_bytes());
        out
    }
}

/// Unsigned LEB128, straight from its definition.
fn leb128(mut value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (value % 128) as u8;
        value /= 128;
        if value == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte + 128);
    }
}

fn thumb_file() -> FileBuilder {
    FileBuilder {
        api_level: 1,
        target: "arm",
        ..FileBuilder::default()
    }
    // A loop body run 10 times and its entry, translated twice; the second
    // translation stopped after its first instruction once.
    .block(0x100, 1, &[2, 2, 4])
    .block(0x108, 10, &[2, 2])
    .counted_block(0x100, &[2, 2, 4], &[3, 2, 2])
    .block(0x200, 0, &[4])
}

#[test]
fn valid_file_gives_counts_per_instruction() {
    let parsed = BlockCounts::parse(&thumb_file().build()).expect("valid");
    assert_eq!(parsed.api_level(), 1);
    assert_eq!(parsed.target(), "arm");
    assert_eq!(parsed.blocks().len(), 4);
    assert!(parsed.edges().is_empty());
    assert_eq!(parsed.blocks()[0].end(), 0x108);
    assert_eq!(
        parsed.blocks()[0].addresses().collect::<Vec<_>>(),
        [0x100, 0x102, 0x104]
    );
    assert_eq!(parsed.blocks()[2].executions, [3, 2, 2]);
    assert_eq!(parsed.instructions_executed(), 3 + 20 + 7);
    let counts = parsed.hit_counts();
    assert_eq!(
        counts.iter().collect::<Vec<_>>(),
        [(0x100, 4), (0x102, 3), (0x104, 3), (0x108, 10), (0x10a, 10)],
        "translations add up; the never-run block is absent"
    );
}

#[test]
fn empty_file_and_edges() {
    let empty = FileBuilder {
        api_level: 2,
        ..FileBuilder::default()
    };
    let parsed = BlockCounts::parse(&empty.build()).expect("no blocks is valid");
    assert!(parsed.blocks().is_empty() && parsed.hit_counts().is_empty());
    assert_eq!(parsed.target(), "");

    let with_edges = thumb_file().edge(0, 1, 1).edge(1, 1, 9);
    let parsed = BlockCounts::parse(&with_edges.build()).expect("valid");
    assert_eq!(
        parsed.edges(),
        &[
            Edge {
                from: 0,
                to: 1,
                count: 1
            },
            Edge {
                from: 1,
                to: 1,
                count: 9
            }
        ]
    );
}

#[test]
fn every_truncation_is_a_truncated_error() {
    let bytes = thumb_file().edge(0, 1, 1).build();
    for len in 0..bytes.len() {
        let error = BlockCounts::parse(&bytes[..len]).expect_err("cut short");
        assert!(
            matches!(
                error,
                BlockCountsError::Truncated { .. } | BlockCountsError::ImpossibleCounts { .. }
            ),
            "cut at {len}: {error}"
        );
    }
}

#[test]
fn every_flipped_byte_is_an_error() {
    let bytes = thumb_file().edge(0, 1, 1).build();
    for index in 0..bytes.len() {
        let mut damaged = bytes.clone();
        damaged[index] ^= 0x40;
        assert!(
            BlockCounts::parse(&damaged).is_err(),
            "flipping byte {index} went unnoticed"
        );
    }
}

fn check(bytes: &[u8], expected: BlockCountsError) {
    assert_eq!(BlockCounts::parse(bytes), Err(expected));
}

#[test]
fn damaged_files_give_typed_errors() {
    check(b"", truncated("magic", 0, 8, 0));
    check(b"VSBLK", truncated("magic", 0, 8, 5));
    check(b"ELF\x7f....", BlockCountsError::BadMagic);
    check(b"not a block file", BlockCountsError::BadMagic);

    let future = FileBuilder {
        version: Some(9),
        ..FileBuilder::default()
    };
    check(&future.build(), BlockCountsError::UnsupportedVersion(9));

    let mut lying = thumb_file();
    lying.claimed_blocks = Some(u64::MAX / 2);
    let bytes = lying.build();
    check(
        &bytes,
        BlockCountsError::ImpossibleCounts {
            blocks: u64::MAX / 2,
            edges: 0,
            len: bytes.len(),
        },
    );

    let mut fewer = thumb_file();
    fewer.claimed_blocks = Some(3);
    check(
        &fewer.build(),
        BlockCountsError::BadTrailer {
            // header, then 3 blocks: start, n_insns, sizes, 1-byte counts
            offset: 8 + 2 + 2 + 4 + 8 + 8 + 1 + 3 + 3 * 12 + 2 * (3 + 2 + 3),
        },
    );
    // An 11-byte count, and a 10th byte with more than u64's last bit.
    let overlong: Vec<u8> = [vec![0x80; 10], vec![0x00]].concat();
    let overflowing: Vec<u8> = [vec![0xff; 9], vec![0x02]].concat();
    for raw in [overlong, overflowing] {
        check(
            &thumb_file().raw_block(0x300, &[2], &raw).build(),
            BlockCountsError::BadCount {
                block: 4,
                instruction: 0,
            },
        );
    }
    let largest = thumb_file().counted_block(0x300, &[2], &[u64::MAX]).build();
    let parsed = BlockCounts::parse(&largest).expect("u64::MAX is a valid count");
    assert_eq!(parsed.hit_counts().get(0x300), Some(u64::MAX));

    check(
        &thumb_file().block(0x300, 1, &[]).build(),
        BlockCountsError::EmptyBlock { block: 4 },
    );
    check(
        &thumb_file().block(0x300, 1, &[2, 0]).build(),
        BlockCountsError::ZeroSizeInstruction {
            block: 4,
            instruction: 1,
        },
    );
    check(
        &thumb_file().block(u64::MAX - 1, 1, &[2, 2]).build(),
        BlockCountsError::AddressOverflow {
            block: 4,
            start: u64::MAX - 1,
        },
    );
    // The last byte of the address space is fine.
    assert!(BlockCounts::parse(&thumb_file().block(u64::MAX - 1, 1, &[2]).build()).is_ok());
    check(
        &thumb_file().edge(0, 4, 1).build(),
        BlockCountsError::EdgeOutOfRange {
            edge: 0,
            block: 4,
            blocks: 4,
        },
    );

    let mut bad_target = FileBuilder {
        target: "ab",
        ..FileBuilder::default()
    }
    .body();
    let target_at = bad_target.len() - 2;
    bad_target[target_at] = 0xff;
    check(&bad_target, BlockCountsError::TargetNotUtf8);

    let mut extra = thumb_file().build();
    extra.extend_from_slice(b"\n\n");
    check(&extra, BlockCountsError::TrailingBytes(2));

    let mut wrong_sum = thumb_file().build();
    let last = wrong_sum.len() - 1;
    wrong_sum[last] ^= 1;
    assert!(matches!(
        BlockCounts::parse(&wrong_sum),
        Err(BlockCountsError::ChecksumMismatch { .. })
    ));
}

fn truncated(what: &'static str, offset: usize, needed: usize, len: usize) -> BlockCountsError {
    BlockCountsError::Truncated {
        what,
        offset,
        needed,
        len,
    }
}

#[test]
fn errors_read_well() {
    let error = truncated("trailer", 120, 8, 124);
    assert_eq!(
        error.to_string(),
        "block-count file truncated: trailer needs 8 bytes at offset 120, file has 124"
    );
}
