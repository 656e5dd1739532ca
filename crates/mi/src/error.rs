//! The error types of the codec: one for output that does not parse, one for a command
//! that cannot be written safely.
//!
//! Neither carries the offending input beyond a byte, an offset or a length, so they
//! are cheap and safe to log or to show: GDB's output may hold target memory, and a
//! rejected argument came from a user.

use thiserror::Error;

/// A line of GDB's output that is not a well-formed MI record.
///
/// The decoder has already moved past the line when it reports one: the next record
/// is about the lines that follow.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    /// The line does not start like any record (GDB or the target printed raw text).
    #[error("not an MI record (starts with byte 0x{0:02x})")]
    NotARecord(u8),
    /// An empty line.
    #[error("empty line")]
    Empty,
    /// `^` followed by a class other than done, running, connected, error or exit.
    #[error("unknown result class")]
    UnknownResultClass,
    /// The grammar wanted `expected` at byte `offset` of the line.
    #[error("expected {expected} at byte {offset}")]
    Expected {
        expected: &'static str,
        offset: usize,
    },
    /// A c-string with a backslash escape GDB does not write.
    #[error("invalid escape in a c-string at byte {offset}")]
    InvalidEscape { offset: usize },
    /// The line ended inside a c-string.
    #[error("unterminated c-string")]
    UnterminatedString,
    /// Tuples and lists nested deeper than [`MAX_DEPTH`](crate::MAX_DEPTH).
    #[error("values nested deeper than {0} levels")]
    TooDeep(usize),
    /// A line longer than the decoder's limit; it was skipped.
    #[error("line longer than the limit of {limit} bytes; skipped")]
    LineTooLong { limit: usize },
    /// A token too large for a u64.
    #[error("token out of range")]
    TokenOutOfRange,
}

/// A command that cannot be written without changing its meaning.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CommandError {
    /// A control character (newline, carriage return, NUL, ...) in an argument: it
    /// could end the command line and start another one.
    #[error("control character 0x{byte:02x} at byte {offset} of argument {argument}")]
    ControlCharacter {
        argument: usize,
        offset: usize,
        byte: u8,
    },
    /// An operation name that is not `[a-z0-9-]+`.
    #[error("invalid MI operation name")]
    BadOperation,
    /// An unquoted word (an option, a `host:port`) with a character outside the safe set.
    #[error("word {argument} is empty or holds a character that needs quoting")]
    BadWord { argument: usize },
}
