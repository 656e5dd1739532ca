//! Streaming parser for QEMU's `-d in_asm` log: the guest code of every
//! translation block, logged once when the block is translated.
//!
//! This is the cheapest way to learn which instructions ran (it costs nothing
//! at run time, unlike `-d exec,nochain` or `-icount`), and for code that
//! does not fault mid-block it names exactly the instructions a counting TCG
//! plugin sees execute. It gives no counts: re-executing a block logs nothing.
//!
//! The parser is sans-IO: the caller feeds byte chunks of any size as they
//! come from the log file or pipe; a line split across chunks is kept until
//! its end arrives. Only the addresses are kept, never the log.
//!
//! # Formats understood
//!
//! QEMU 7.2, Cortex-M (capstone disassembly):
//! ```text
//! ----------------
//! IN: checksum
//! 0x0000002a:  4602       mov      r2, r0
//! 0x0000002c:  4b08       ldr      r3, [pc, #0x20]
//! ```
//! riscv adds a `Priv: 3; Virt: 0` line after `IN:`, and the symbol may be
//! empty (`IN: `). Later versions (up to 10.x) keep the `0x<hex>:` prefix and
//! vary the columns after it, which are not read. A QEMU built without a
//! disassembler for the target prints the block's bytes instead:
//! ```text
//! 0x00000124:
//! OBJD-T: 0877014b1b6883f00103...
//! ```
//! The block's first address is all such a log names; every byte address of
//! the block is then recorded. For coverage that is exact (a line-table row
//! starts at an instruction boundary, so it overlaps the block exactly when one
//! of its instructions ran), but [`ExecutedAddresses::count`] then counts bytes.
//!
//! Other `-d` items mixed into the same log are tolerated: `OUT:` and
//! `PROLOGUE:` host code, `OP:` dumps and `OBJD-H:` lines switch the parser to
//! a state where address lines are host addresses and are skipped, until the
//! next `IN:` or `----------------`. Anything unrecognised is ignored.

use crate::addresses::AddressAccumulator;
pub use crate::addresses::ExecutedAddresses;

/// Longest line kept while waiting for its end; a longer line is dropped
/// (counted in [`InAsmStats::overlong_lines`]), so a log without newlines
/// cannot grow the parser's memory. Real in_asm lines are under 200 bytes.
pub const MAX_LINE_LEN: usize = 4096;

/// What the parser saw, for diagnostics ("was this really an in_asm log?").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InAsmStats {
    /// Complete lines processed.
    pub lines: u64,
    /// `IN:` headers, one per logged translation block.
    pub blocks: u64,
    /// Guest instruction lines (`0x<hex>:`) recorded.
    pub instruction_lines: u64,
    /// Bytes recorded from `OBJD-T:` dumps.
    pub objdump_bytes: u64,
    /// Address lines skipped because they were host code (`OUT:` sections).
    pub host_lines: u64,
    /// Lines longer than [`MAX_LINE_LEN`], dropped.
    pub overlong_lines: u64,
}

/// Whose code the address lines currently describe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    /// Guest code: after `IN:`, after a `----------------` separator, or at
    /// the start of the log (a log opened mid-block still counts).
    Guest,
    /// Host code or TCG ops: after `OUT:`, `PROLOGUE:`, `OP...:`.
    Other,
}

/// Streaming `-d in_asm` parser. Feed chunks, then [`InAsmParser::finish`].
#[derive(Debug)]
pub struct InAsmParser {
    /// Start of a line whose end has not arrived yet.
    partial: Vec<u8>,
    /// The current partial line exceeded [`MAX_LINE_LEN`]; drop until newline.
    partial_overlong: bool,
    section: Section,
    /// Next address an `OBJD-T:` continuation line describes.
    objdump_cursor: Option<u64>,
    collected: AddressAccumulator,
    stats: InAsmStats,
}

impl Default for InAsmParser {
    fn default() -> Self {
        Self::new()
    }
}

impl InAsmParser {
    /// A parser at the start of a log.
    pub fn new() -> Self {
        Self {
            partial: Vec::new(),
            partial_overlong: false,
            section: Section::Guest,
            objdump_cursor: None,
            collected: AddressAccumulator::default(),
            stats: InAsmStats::default(),
        }
    }

    /// Consumes the next chunk of the log. Chunks may split lines anywhere.
    pub fn feed(&mut self, chunk: &[u8]) {
        let mut rest = chunk;
        while let Some(newline) = rest.iter().position(|&b| b == b'\n') {
            let (head, tail) = rest.split_at(newline);
            if self.partial.is_empty() && !self.partial_overlong {
                self.process_line(head);
            } else {
                self.append_partial(head);
                self.flush_partial();
            }
            rest = tail.get(1..).unwrap_or_default();
        }
        self.append_partial(rest);
    }

    /// Counters so far (complete lines only).
    pub fn stats(&self) -> &InAsmStats {
        &self.stats
    }

    /// Ends the log: a last line without a newline is processed too.
    pub fn finish(self) -> ExecutedAddresses {
        self.finish_with_stats().0
    }

    /// Like [`InAsmParser::finish`], also returning the final counters.
    pub fn finish_with_stats(mut self) -> (ExecutedAddresses, InAsmStats) {
        if !self.partial.is_empty() || self.partial_overlong {
            self.flush_partial();
        }
        (self.collected.finish(), self.stats)
    }

    fn append_partial(&mut self, bytes: &[u8]) {
        if self.partial_overlong {
            return;
        }
        if self.partial.len() + bytes.len() > MAX_LINE_LEN {
            self.partial.clear();
            self.partial_overlong = true;
        } else {
            self.partial.extend_from_slice(bytes);
        }
    }

    fn flush_partial(&mut self) {
        if self.partial_overlong {
            self.partial_overlong = false;
            self.stats.lines += 1;
            self.stats.overlong_lines += 1;
            self.objdump_cursor = None;
        } else {
            let line = std::mem::take(&mut self.partial);
            self.process_line(&line);
            self.partial = line;
        }
        self.partial.clear();
    }

    fn process_line(&mut self, line: &[u8]) {
        if line.len() > MAX_LINE_LEN {
            self.stats.lines += 1;
            self.stats.overlong_lines += 1;
            self.objdump_cursor = None;
            return;
        }
        self.stats.lines += 1;
        let line = line.trim_ascii();
        let cursor = self.objdump_cursor.take();

        if let Some((address, rest)) = parse_address_line(line) {
            if self.section != Section::Guest {
                self.stats.host_lines += 1;
                return;
            }
            self.collected.push(address);
            self.stats.instruction_lines += 1;
            if rest.is_empty() {
                // Without a disassembler the bytes follow on OBJD-T lines.
                self.objdump_cursor = Some(address);
            } else if let Some(hex) = rest.strip_prefix(b"OBJD-T:") {
                self.record_objdump(address, hex);
            }
        } else if let Some(hex) = line.strip_prefix(b"OBJD-T:") {
            if let (Some(address), Section::Guest) = (cursor, self.section) {
                self.record_objdump(address, hex);
            }
        } else if line.starts_with(b"IN:") {
            self.section = Section::Guest;
            self.stats.blocks += 1;
        } else if is_separator(line) {
            self.section = Section::Guest;
        } else if starts_other_section(line) {
            self.section = Section::Other;
        }
    }

    /// Records the bytes of one `OBJD-T:` line starting at `address` and
    /// leaves the cursor after them for the next line.
    fn record_objdump(&mut self, address: u64, hex: &[u8]) {
        let hex = hex.trim_ascii();
        if hex.is_empty() || !hex.iter().all(u8::is_ascii_hexdigit) {
            return;
        }
        let n_bytes = (hex.len() / 2) as u64;
        let end = address.saturating_add(n_bytes);
        self.collected.push_range(address, end);
        self.stats.objdump_bytes += end - address;
        self.objdump_cursor = Some(end);
    }
}

/// Parses `0x<1-16 hex digits>:` at the start of `line`; returns the address
/// and the trimmed text after the colon.
fn parse_address_line(line: &[u8]) -> Option<(u64, &[u8])> {
    let digits_and_rest = line.strip_prefix(b"0x")?;
    let n_digits = digits_and_rest
        .iter()
        .position(|b| !b.is_ascii_hexdigit())
        .unwrap_or(digits_and_rest.len());
    if n_digits == 0 || n_digits > 16 {
        return None;
    }
    let (digits, rest) = digits_and_rest.split_at(n_digits);
    let rest = rest.strip_prefix(b":")?;
    if rest.first().is_some_and(|b| !b.is_ascii_whitespace()) {
        return None;
    }
    let mut address = 0u64;
    for &digit in digits {
        let value = char::from(digit).to_digit(16)?;
        address = (address << 4) | u64::from(value);
    }
    Some((address, rest.trim_ascii()))
}

/// The `----------------` line QEMU prints before each `IN:` block.
fn is_separator(line: &[u8]) -> bool {
    line.len() >= 8 && line.iter().all(|&b| b == b'-')
}

/// Headers of log items whose address lines are not guest code.
fn starts_other_section(line: &[u8]) -> bool {
    const PREFIXES: [&[u8]; 5] = [b"OUT:", b"PROLOGUE:", b"EPILOGUE:", b"OP:", b"OP "];
    PREFIXES.iter().any(|prefix| line.starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// QEMU 7.2 for Cortex-M, then riscv with `Priv:` and an empty symbol,
    /// then out_asm host code that must be skipped, then an OBJD-T block.
    const MIXED_LOG: &[u8] = b"----------------\n\
IN: Reset_Handler\n\
0x000000e0:  b508       push     {r3, lr}\n\
0x000000e2:  4a12       ldr      r2, [pc, #0x48]\n\
\n\
----------------\n\
IN: \n\
Priv: 3; Virt: 0\n\
0x80000000:  00020117          auipc                   sp,131072               # 0x80020000\n\
0x80000008:  28e9              jal                     ra,218                  # 0x800000e2\n\
\n\
OUT: [size=64]\n\
  -- guest addr 0x0000000080000000 + tb prologue\n\
0x7f0000001000:  8b 5d f0                 movl     -0x10(%rbp), %ebx\n\
OBJD-H: 8b5df0\n\
\n\
----------------\n\
IN: finalize\n\
0x00000070:\n\
OBJD-T: f080005a4b01\n\
OBJD-T: fb03\n\
\n";

    fn parse_whole(log: &[u8]) -> (ExecutedAddresses, InAsmStats) {
        let mut parser = InAsmParser::new();
        parser.feed(log);
        parser.finish_with_stats()
    }

    fn check(log: &[u8], expected: &[u64]) {
        let (executed, _) = parse_whole(log);
        assert_eq!(
            executed.as_slice(),
            expected,
            "log: {}",
            String::from_utf8_lossy(log)
        );
    }

    #[test]
    fn arm_riscv_host_and_objdump() {
        let (executed, stats) = parse_whole(MIXED_LOG);
        let mut expected = vec![0xe0, 0xe2, 0x8000_0000, 0x8000_0008];
        expected.extend(0x70..0x78);
        expected.sort_unstable();
        assert_eq!(executed.as_slice(), expected.as_slice());
        assert_eq!(stats.blocks, 3);
        assert_eq!(stats.instruction_lines, 5);
        assert_eq!(stats.objdump_bytes, 8);
        assert_eq!(stats.host_lines, 1);
        assert_eq!(stats.overlong_lines, 0);
    }

    #[test]
    fn every_two_chunk_split_gives_the_same_set() {
        let (whole, whole_stats) = parse_whole(MIXED_LOG);
        for split in 0..=MIXED_LOG.len() {
            let (head, tail) = MIXED_LOG.split_at(split);
            let mut parser = InAsmParser::new();
            parser.feed(head);
            parser.feed(tail);
            let (executed, stats) = parser.finish_with_stats();
            assert_eq!(executed, whole, "split at {split}");
            assert_eq!(stats, whole_stats, "split at {split}");
        }
    }

    #[test]
    fn byte_at_a_time_and_empty_chunks() {
        let (whole, _) = parse_whole(MIXED_LOG);
        let mut parser = InAsmParser::new();
        for byte in MIXED_LOG {
            parser.feed(&[]);
            parser.feed(std::slice::from_ref(byte));
        }
        assert_eq!(parser.finish(), whole);
    }

    #[test]
    fn last_line_without_newline_and_crlf() {
        check(
            b"IN: f\r\n0x10:  bf00 nop\r\n0x12:  4770 bx lr",
            &[0x10, 0x12],
        );
    }

    #[test]
    fn empty_and_garbage_logs_give_nothing() {
        check(b"", &[]);
        check(b"\n\n\n", &[]);
        check(b"\xff\xfe\x00binary\n0x:\n0xzz: x\n0x12\n0x12:x\n", &[]);
        check(b"0x00000000000000001: too many digits\n", &[]);
    }

    #[test]
    fn sixty_four_bit_addresses_and_leading_blanks() {
        check(
            b"IN: _start\n  0x0000000080000000:  00000297  auipc t0,0\n0xFFFFFFFFFFFFFFF0:  nop\n",
            &[0x8000_0000, 0xffff_ffff_ffff_fff0],
        );
    }

    #[test]
    fn repeated_blocks_count_once() {
        let block = b"----------------\nIN: loop\n0x3c:  f813 2f01  ldrb r2, [r3, #1]!\n0x40:  4050 eors r0, r2\n\n";
        let mut parser = InAsmParser::new();
        for _ in 0..10_000 {
            parser.feed(block);
        }
        let (executed, stats) = parser.finish_with_stats();
        assert_eq!(executed.as_slice(), &[0x3c, 0x40]);
        assert_eq!(executed.count(), 2);
        assert_eq!(stats.blocks, 10_000);
    }

    #[test]
    fn host_code_is_skipped_until_the_next_guest_block() {
        check(
            b"PROLOGUE: [size=45]\n0x7f00:  push rbp\nOP:\n ---- 00000124\n0x7f10:  ret\n----------------\n0x124:  4770 bx lr\n",
            &[0x124],
        );
        check(b"OUT: [size=8]\n0x7f00:  ret\nIN: f\n0x20:  nop\n", &[0x20]);
    }

    #[test]
    fn objdump_needs_a_preceding_address_line() {
        check(b"IN: f\nOBJD-T: 0011\n", &[]);
        check(
            b"IN: f\n0x40:  OBJD-T: 00112233\n",
            &[0x40, 0x41, 0x42, 0x43],
        );
        check(b"IN: f\n0x40:\nPriv: 3\nOBJD-T: 0011\n", &[0x40]);
        check(b"IN: f\n0x40:\nOBJD-T: 00zz\n", &[0x40]);
    }

    #[test]
    fn overlong_lines_are_dropped_not_buffered() {
        let mut log = b"IN: f\n0x10:  nop\n".to_vec();
        log.extend(std::iter::repeat_n(b'x', MAX_LINE_LEN * 3));
        log.extend_from_slice(b"\n0x20:  nop\n");
        let (executed, stats) = parse_whole(&log);
        assert_eq!(executed.as_slice(), &[0x10, 0x20]);
        assert_eq!(stats.overlong_lines, 1);

        let mut parser = InAsmParser::new();
        for chunk in log.chunks(1000) {
            parser.feed(chunk);
            assert!(parser.partial.len() <= MAX_LINE_LEN);
        }
        let (split_executed, split_stats) = parser.finish_with_stats();
        assert_eq!(split_executed, executed);
        assert_eq!(split_stats, stats);
    }

    #[test]
    fn unterminated_overlong_tail_is_counted() {
        let mut parser = InAsmParser::new();
        parser.feed(b"0x10:  nop\n");
        parser.feed(&vec![b'y'; MAX_LINE_LEN + 1]);
        let (executed, stats) = parser.finish_with_stats();
        assert_eq!(executed.as_slice(), &[0x10]);
        assert_eq!(stats.overlong_lines, 1);
        assert_eq!(stats.lines, 2);
    }
}
