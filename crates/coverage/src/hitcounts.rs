//! Parser for the block-count file of VirServer's QEMU TCG plugin
//! (`crates/qemu-trace-plugin`): per translated block, its instructions and
//! how many times it ran, turned into [`HitCounts`] per instruction address.
//!
//! The plugin counts with inline ops (one add in the generated code in
//! front of each instruction) and writes this file once, at QEMU's exit; the
//! whole file is then parsed from bytes. It is small (about 2-4 bytes per
//! translated instruction plus 12 per block), so there is no streaming API.
//!
//! # Format (version 1)
//!
//! All integers little-endian. Offsets in bytes.
//!
//! ```text
//! header   magic "VSBLKCNT"            8
//!          format version u16 = 1      2
//!          plugin API level u16        2   what the plugin declared (1 or 2)
//!          flags u32 = 0               4   reserved
//!          n_blocks u64                8
//!          n_edges u64                 8   0: edges are not recorded yet
//!          target name length u8       1
//!          target name (UTF-8)         n   QEMU's target, e.g. "arm", "riscv32"
//! block    start u64                   8   guest virtual address
//!   x      n_insns u32                 4   at least 1
//!   n_blocks  sizes u8 x n_insns           each at least 1; instruction i
//!                                          starts at start + sum(sizes[..i])
//!          executions x n_insns            unsigned LEB128 (7 bits a byte,
//!                                          low first, at most 10 bytes):
//!                                          times instruction i ran
//! edge     from u32, to u32            8   block indexes: `to` ran right
//!   x      count u64                   8   after `from`, `count` times
//!   n_edges
//! trailer  magic "VSBLKEND"            8
//!          FNV-1a 64 of all bytes      8
//!          before the trailer
//! ```
//!
//! Each translation is one block record; QEMU can translate the same code
//! more than once, and the counts of every record covering an address add
//! up. Counts are per instruction, so they stay exact when a block stops
//! midway (a fault, the end of the run); the `-d in_asm` trace counts the
//! rest of such a block as executed.
//!
//! A file that is cut short, has a wrong checksum, or holds impossible values
//! gives a [`BlockCountsError`]; parsing never panics and never allocates
//! more than the input's size justifies.

use crate::counts::HitCounts;

/// First bytes of a block-count file.
pub const MAGIC: &[u8; 8] = b"VSBLKCNT";
/// Trailer magic, before the checksum.
pub const END_MAGIC: &[u8; 8] = b"VSBLKEND";
/// The layout version this parser reads.
pub const FORMAT_VERSION: u16 = 1;

/// Smallest encoded block record: start, n_insns, one size, one count.
const MIN_BLOCK_BYTES: usize = 8 + 4 + 1 + 1;
/// Longest LEB128 encoding of a u64.
const MAX_LEB128_BYTES: usize = 10;
/// Encoded edge record.
const EDGE_BYTES: usize = 4 + 4 + 8;

/// Why a block-count file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockCountsError {
    /// The file does not start with `VSBLKCNT`.
    #[error("not a block-count file (bad magic)")]
    BadMagic,
    /// A layout version this parser does not know.
    #[error("block-count format version {0} is not supported (expected {FORMAT_VERSION})")]
    UnsupportedVersion(u16),
    /// The file ends before a field it needs.
    #[error(
        "block-count file truncated: {what} needs {needed} bytes at offset {offset}, file has {len}"
    )]
    Truncated {
        /// The field being read.
        what: &'static str,
        /// Where it starts.
        offset: usize,
        /// Its size.
        needed: usize,
        /// The file's size.
        len: usize,
    },
    /// The header promises more records than the file could hold.
    #[error(
        "block-count header claims {blocks} blocks and {edges} edges, more than {len} bytes can hold"
    )]
    ImpossibleCounts {
        /// Claimed block records.
        blocks: u64,
        /// Claimed edge records.
        edges: u64,
        /// The file's size.
        len: usize,
    },
    /// The target name is not UTF-8.
    #[error("block-count target name is not UTF-8")]
    TargetNotUtf8,
    /// A block with no instructions.
    #[error("block {block} has no instructions")]
    EmptyBlock {
        /// Index of the block record.
        block: usize,
    },
    /// An instruction of size 0.
    #[error("block {block} instruction {instruction} has size 0")]
    ZeroSizeInstruction {
        /// Index of the block record.
        block: usize,
        /// Index of the instruction in the block.
        instruction: usize,
    },
    /// An execution count that is not valid LEB128 for a u64.
    #[error("block {block} instruction {instruction}: execution count is not a valid LEB128 u64")]
    BadCount {
        /// Index of the block record.
        block: usize,
        /// Index of the instruction in the block.
        instruction: usize,
    },
    /// A block whose instructions run past the end of the address space.
    #[error("block {block} at {start:#x} runs past the end of the address space")]
    AddressOverflow {
        /// Index of the block record.
        block: usize,
        /// Its start address.
        start: u64,
    },
    /// An edge naming a block that does not exist.
    #[error("edge {edge} names block {block}, but there are {blocks} blocks")]
    EdgeOutOfRange {
        /// Index of the edge record.
        edge: usize,
        /// The bad block index.
        block: u32,
        /// Number of block records.
        blocks: usize,
    },
    /// The bytes where the trailer should be are not `VSBLKEND`.
    #[error("block-count trailer missing at offset {offset} (corrupt record counts?)")]
    BadTrailer {
        /// Where the trailer was expected.
        offset: usize,
    },
    /// The checksum does not match the content.
    #[error("block-count checksum mismatch: stored {stored:#018x}, computed {computed:#018x}")]
    ChecksumMismatch {
        /// The checksum in the file.
        stored: u64,
        /// The checksum of the bytes read.
        computed: u64,
    },
    /// Bytes after the trailer.
    #[error("{0} unexpected bytes after the block-count trailer")]
    TrailingBytes(usize),
}

/// One translated block and how many times each instruction ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// Guest virtual address of the first instruction.
    pub start: u64,
    /// Size in bytes of each instruction, in order (never empty, never 0).
    pub sizes: Vec<u8>,
    /// Times each instruction ran (as many as `sizes`).
    pub executions: Vec<u64>,
}

impl Block {
    /// The address of every instruction of the block, in order.
    pub fn addresses(&self) -> impl Iterator<Item = u64> + '_ {
        self.sizes.iter().scan(self.start, |next, &size| {
            let address = *next;
            *next = next.wrapping_add(u64::from(size));
            Some(address)
        })
    }

    /// One past the last byte of the block.
    pub fn end(&self) -> u64 {
        let length: u64 = self.sizes.iter().map(|&size| u64::from(size)).sum();
        self.start.wrapping_add(length)
    }
}

/// A block-to-block transition: block `to` ran right after block `from`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edge {
    /// Index into [`BlockCounts::blocks`].
    pub from: u32,
    /// Index into [`BlockCounts::blocks`].
    pub to: u32,
    /// Times this transition happened.
    pub count: u64,
}

/// The parsed content of a block-count file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockCounts {
    api_level: u16,
    target: String,
    blocks: Vec<Block>,
    edges: Vec<Edge>,
}

/// Reads fields from the front of the file, with typed truncation errors.
struct Cursor<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, needed: usize, what: &'static str) -> Result<&'a [u8], BlockCountsError> {
        let truncated = || BlockCountsError::Truncated {
            what,
            offset: self.offset,
            needed,
            len: self.bytes.len(),
        };
        let end = self.offset.checked_add(needed).ok_or_else(truncated)?;
        let field = self.bytes.get(self.offset..end).ok_or_else(truncated)?;
        self.offset = end;
        Ok(field)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], BlockCountsError> {
        let mut array = [0u8; N];
        array.copy_from_slice(self.take(N, what)?);
        Ok(array)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, BlockCountsError> {
        Ok(u8::from_le_bytes(self.array(what)?))
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, BlockCountsError> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, BlockCountsError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, BlockCountsError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// An unsigned LEB128 u64; `None` if it is longer than 10 bytes or
    /// overflows, `Err` if the file ends inside it.
    fn leb128(&mut self, what: &'static str) -> Result<Option<u64>, BlockCountsError> {
        let mut value = 0u64;
        for index in 0..MAX_LEB128_BYTES {
            let byte = self.u8(what)?;
            let bits = u64::from(byte & 0x7f);
            let shift = 7 * index as u32;
            if index == MAX_LEB128_BYTES - 1 && bits > 1 {
                return Ok(None);
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(Some(value));
            }
        }
        Ok(None)
    }

    fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.offset)
    }
}

/// FNV-1a, 64 bits, as the plugin computes it.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl BlockCounts {
    /// Parses a whole block-count file.
    pub fn parse(bytes: &[u8]) -> Result<BlockCounts, BlockCountsError> {
        match bytes.get(..MAGIC.len()) {
            Some(magic) if magic == MAGIC => {}
            None if MAGIC.starts_with(bytes) => {
                return Err(BlockCountsError::Truncated {
                    what: "magic",
                    offset: 0,
                    needed: MAGIC.len(),
                    len: bytes.len(),
                });
            }
            _ => return Err(BlockCountsError::BadMagic),
        }
        let mut cursor = Cursor {
            bytes,
            offset: MAGIC.len(),
        };
        let version = cursor.u16("format version")?;
        if version != FORMAT_VERSION {
            return Err(BlockCountsError::UnsupportedVersion(version));
        }
        let api_level = cursor.u16("API level")?;
        let _flags = cursor.u32("flags")?;
        let n_blocks = cursor.u64("block count")?;
        let n_edges = cursor.u64("edge count")?;
        let target_len = cursor.u8("target name length")?;
        let target = cursor.take(usize::from(target_len), "target name")?;
        let target = std::str::from_utf8(target)
            .map_err(|_| BlockCountsError::TargetNotUtf8)?
            .to_owned();

        let impossible = || BlockCountsError::ImpossibleCounts {
            blocks: n_blocks,
            edges: n_edges,
            len: bytes.len(),
        };
        let n_blocks = usize::try_from(n_blocks).map_err(|_| impossible())?;
        let n_edges = usize::try_from(n_edges).map_err(|_| impossible())?;
        let needed = n_blocks
            .checked_mul(MIN_BLOCK_BYTES)
            .and_then(|b| {
                n_edges
                    .checked_mul(EDGE_BYTES)
                    .and_then(|e| b.checked_add(e))
            })
            .ok_or_else(impossible)?;
        if needed > cursor.remaining() {
            return Err(impossible());
        }

        let mut blocks = Vec::with_capacity(n_blocks);
        for index in 0..n_blocks {
            let start = cursor.u64("block start")?;
            let n_insns = cursor.u32("block instruction count")?;
            let sizes = cursor.take(n_insns as usize, "instruction sizes")?;
            if sizes.is_empty() {
                return Err(BlockCountsError::EmptyBlock { block: index });
            }
            if let Some(instruction) = sizes.iter().position(|&size| size == 0) {
                return Err(BlockCountsError::ZeroSizeInstruction {
                    block: index,
                    instruction,
                });
            }
            let length: u64 = sizes.iter().map(|&size| u64::from(size)).sum();
            if start.checked_add(length - 1).is_none() {
                return Err(BlockCountsError::AddressOverflow {
                    block: index,
                    start,
                });
            }
            let mut executions = Vec::with_capacity(sizes.len());
            for instruction in 0..sizes.len() {
                let count =
                    cursor
                        .leb128("execution count")?
                        .ok_or(BlockCountsError::BadCount {
                            block: index,
                            instruction,
                        })?;
                executions.push(count);
            }
            blocks.push(Block {
                start,
                sizes: sizes.to_vec(),
                executions,
            });
        }

        let mut edges = Vec::with_capacity(n_edges);
        for index in 0..n_edges {
            let from = cursor.u32("edge source")?;
            let to = cursor.u32("edge target")?;
            let count = cursor.u64("edge count")?;
            for block in [from, to] {
                if block as usize >= blocks.len() {
                    return Err(BlockCountsError::EdgeOutOfRange {
                        edge: index,
                        block,
                        blocks: blocks.len(),
                    });
                }
            }
            edges.push(Edge { from, to, count });
        }

        let body_end = cursor.offset;
        let trailer = cursor.take(END_MAGIC.len(), "trailer")?;
        if trailer != END_MAGIC {
            return Err(BlockCountsError::BadTrailer { offset: body_end });
        }
        let stored = cursor.u64("checksum")?;
        let computed = fnv1a64(bytes.get(..body_end).unwrap_or_default());
        if stored != computed {
            return Err(BlockCountsError::ChecksumMismatch { stored, computed });
        }
        if cursor.remaining() > 0 {
            return Err(BlockCountsError::TrailingBytes(cursor.remaining()));
        }
        Ok(BlockCounts {
            api_level,
            target,
            blocks,
            edges,
        })
    }

    /// The plugin API level the plugin declared to QEMU (1 or 2).
    pub fn api_level(&self) -> u16 {
        self.api_level
    }

    /// QEMU's target name (`arm`, `riscv32`, ...).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Every block record, in the plugin's order.
    pub fn blocks(&self) -> &[Block] {
        &self.blocks
    }

    /// Recorded block-to-block transitions (empty when not recorded).
    pub fn edges(&self) -> &[Edge] {
        &self.edges
    }

    /// Guest instructions executed: the sum of all counts (saturating).
    pub fn instructions_executed(&self) -> u64 {
        self.blocks
            .iter()
            .flat_map(|block| block.executions.iter())
            .fold(0u64, |sum, &count| sum.saturating_add(count))
    }

    /// Execution count per instruction address: every record covering an
    /// address adds its count; never-executed addresses are left out.
    pub fn hit_counts(&self) -> HitCounts {
        self.blocks
            .iter()
            .flat_map(|block| block.addresses().zip(block.executions.iter().copied()))
            .collect()
    }
}

#[cfg(test)]
#[path = "hitcounts_tests.rs"]
mod tests;
