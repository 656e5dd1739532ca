//! The block-count file this plugin writes at exit, encoded from the table.
//!
//! The format is specified (and parsed) by `virserver_coverage::hitcounts`;
//! this is its only writer. In short, all integers little-endian:
//!
//! ```text
//! header   "VSBLKCNT" | format u16 = 1 | API level u16 | flags u32 = 0
//!          | n_blocks u64 | n_edges u64 | target name: len u8, bytes
//! block    start u64 | n_insns u32 | n_insns x size u8
//!          | n_insns x executions (unsigned LEB128)
//! edge     from u32 | to u32 | count u64          (none written yet)
//! trailer  "VSBLKEND" | FNV-1a-64 of every byte before the trailer
//! ```
//!
//! The checksum and explicit counts let the reader tell a truncated or
//! corrupt file from a valid one instead of reporting partial coverage.

use std::io;
use std::path::Path;

/// First bytes of the file.
pub const MAGIC: &[u8; 8] = b"VSBLKCNT";
/// Bytes before the checksum.
pub const END_MAGIC: &[u8; 8] = b"VSBLKEND";
/// Version of the layout above.
pub const FORMAT_VERSION: u16 = 1;

/// One block as written: start, instruction sizes, executions.
#[derive(Debug, Clone, Copy)]
pub struct BlockCount<'a> {
    /// Guest virtual address of the first instruction.
    pub start: u64,
    /// Instruction sizes in bytes, each at least 1.
    pub sizes: &'a [u8],
    /// Times each instruction ran (as many as `sizes`).
    pub executions: &'a [u64],
}

/// Appends `value` as unsigned LEB128: 7 bits per byte, low first, high bit
/// set on every byte but the last (most counts fit in one or two bytes).
pub fn push_leb128(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let low = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(low);
            return;
        }
        out.push(low | 0x80);
    }
}

/// FNV-1a, 64 bits: tiny, dependency-free, enough to catch corruption.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Encodes the whole file. A block is cut to the shorter of its sizes and
/// counts (they are always equal in the plugin); a target name is cut at
/// 255 bytes.
pub fn encode<'a>(
    api_level: u16,
    target: &str,
    blocks: impl ExactSizeIterator<Item = BlockCount<'a>>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + blocks.len() * 32);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&api_level.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&(blocks.len() as u64).to_le_bytes());
    out.extend_from_slice(&0u64.to_le_bytes());
    let target = target.as_bytes();
    let target = target.get(..255).unwrap_or(target);
    out.push(target.len() as u8);
    out.extend_from_slice(target);
    for block in blocks {
        let n_insns = block
            .sizes
            .len()
            .min(block.executions.len())
            .min(u32::MAX as usize);
        out.extend_from_slice(&block.start.to_le_bytes());
        out.extend_from_slice(&(n_insns as u32).to_le_bytes());
        out.extend_from_slice(block.sizes.get(..n_insns).unwrap_or_default());
        for &count in block.executions.get(..n_insns).unwrap_or_default() {
            push_leb128(&mut out, count);
        }
    }
    let checksum = fnv1a64(&out);
    out.extend_from_slice(END_MAGIC);
    out.extend_from_slice(&checksum.to_le_bytes());
    out
}

/// Writes `bytes` to `path` through a sibling temporary file and a rename,
/// so a reader never sees half a file (a crash leaves the old one, or none).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    std::fs::write(&temporary, bytes)?;
    std::fs::rename(&temporary, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use virserver_coverage::hitcounts::BlockCounts;

    #[test]
    fn encoded_file_parses_back() {
        let blocks = [
            BlockCount {
                start: 0x100,
                sizes: &[2, 4, 2],
                executions: &[7, 7, 300],
            },
            BlockCount {
                start: 0x200,
                sizes: &[2],
                executions: &[0],
            },
        ];
        let bytes = encode(2, "arm", blocks.iter().copied());
        let parsed = BlockCounts::parse(&bytes).expect("valid file");
        assert_eq!(parsed.api_level(), 2);
        assert_eq!(parsed.target(), "arm");
        assert_eq!(parsed.blocks().len(), 2);
        let counts = parsed.hit_counts();
        assert_eq!(counts.get(0x100), Some(7));
        assert_eq!(counts.get(0x102), Some(7));
        assert_eq!(counts.get(0x106), Some(300));
        assert_eq!(counts.get(0x104), None, "inside a 4-byte instruction");
        assert_eq!(counts.get(0x200), None, "translated, never run");
    }

    #[test]
    fn leb128_reference_values() {
        let encode = |value| {
            let mut out = Vec::new();
            push_leb128(&mut out, value);
            out
        };
        assert_eq!(encode(0), [0]);
        assert_eq!(encode(127), [0x7f]);
        assert_eq!(encode(128), [0x80, 0x01]);
        assert_eq!(encode(624_485), [0xe5, 0x8e, 0x26]);
        assert_eq!(encode(u64::MAX).len(), 10);
    }

    #[test]
    fn checksum_matches_reference_values() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn written_file_replaces_the_old_one_whole() {
        let dir = std::env::temp_dir().join(format!("vs-plugin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("counts.bin");
        write_atomically(&path, b"first").expect("write");
        write_atomically(&path, b"second").expect("rewrite");
        assert_eq!(std::fs::read(&path).expect("read"), b"second");
        assert!(!dir.join("counts.bin.tmp").exists());
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
