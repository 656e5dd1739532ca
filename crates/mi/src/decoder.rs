//! Cuts GDB's stdout, fed in chunks of any size, into lines and parses each.

use crate::error::ParseError;
use crate::record::Record;

/// The default longest line: large enough for the value of a big array.
pub const DEFAULT_MAX_LINE: usize = 1 << 20;

/// An incremental decoder: [`feed`](Decoder::feed) bytes as they arrive, then take
/// records with [`next_record`](Decoder::next_record) until it says `None` (need
/// more bytes). Empty lines are skipped; a line that is not a record is an `Err` and
/// decoding goes on with the next line. Memory is bounded: a line longer than the
/// limit is reported once and skipped, never buffered.
#[derive(Debug, Clone)]
pub struct Decoder {
    buffer: Vec<u8>,
    /// Where the current line starts in `buffer`.
    start: usize,
    /// How far `buffer` was searched for a newline.
    scanned: usize,
    /// Inside a line already reported as too long.
    skipping: bool,
    max_line: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    pub fn new() -> Self {
        Self::with_max_line(DEFAULT_MAX_LINE)
    }

    /// A decoder whose lines (without `\n` or `\r\n`) may be at most `max_line` bytes.
    pub fn with_max_line(max_line: usize) -> Self {
        Self {
            buffer: Vec::new(),
            start: 0,
            scanned: 0,
            skipping: false,
            max_line,
        }
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next record, an error for a line that is not one, or `None` when the bytes
    /// fed so far hold no complete line.
    pub fn next_record(&mut self) -> Option<Result<Record, ParseError>> {
        loop {
            let found = self.buffer[self.scanned..]
                .iter()
                .position(|&byte| byte == b'\n');
            let Some(offset) = found else {
                self.scanned = self.buffer.len();
                // A last '\r' may be the line ending's: not counted, as in a whole line.
                let pending = &self.buffer[self.start..];
                let pending = pending.strip_suffix(b"\r").unwrap_or(pending).len();
                let report = !self.skipping && pending > self.max_line;
                if report || self.skipping {
                    self.skipping = true;
                    self.start = self.buffer.len();
                }
                self.compact();
                return report.then_some(Err(ParseError::LineTooLong {
                    limit: self.max_line,
                }));
            };
            let end = self.scanned + offset;
            let (start, skipping) = (self.start, self.skipping);
            self.start = end + 1;
            self.scanned = self.start;
            self.skipping = false;
            let line = &self.buffer[start..end];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if skipping || line.is_empty() {
                continue;
            }
            if line.len() > self.max_line {
                return Some(Err(ParseError::LineTooLong {
                    limit: self.max_line,
                }));
            }
            return Some(Record::parse(line));
        }
    }

    /// Drops the consumed lines from the buffer.
    fn compact(&mut self) {
        self.buffer.drain(..self.start);
        self.scanned -= self.start;
        self.start = 0;
    }
}
