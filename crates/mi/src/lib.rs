//! A sans-IO codec for GDB/MI (the `mi3` interpreter): GDB's output in, typed records
//! out; commands out with every argument quoted.
//!
//! This crate is the wire layer of VirServer's symbolic debug API, which runs one
//! `gdb --interpreter=mi3` per debugged session and answers backtraces, locals and
//! expressions from it. Like `virserver-rsp` it does no I/O: the caller writes the
//! lines [`Command::encode`] produces to GDB's stdin, feeds whatever GDB's stdout gives
//! to a [`Decoder`], and takes [`Record`]s, with "need more bytes" as a normal `None`.
//! The process handling around it (timeouts, restarts) is then thin, and the parser is
//! tested with recorded GDB output and fuzzed.
//!
//! ```
//! use virserver_mi::{Command, Decoder, Record, ResultClass};
//!
//! let line = Command::new("data-evaluate-expression").arg("tick_count").encode(9).unwrap();
//! assert_eq!(line, "9-data-evaluate-expression \"tick_count\"\n");
//!
//! let mut decoder = Decoder::new();
//! decoder.feed(b"9^done,value=\"4");
//! assert_eq!(decoder.next_record(), None); // need more bytes
//! decoder.feed(b"2\"\n(gdb) \n");
//! let Some(Ok(Record::Result(done))) = decoder.next_record() else { panic!("a result") };
//! assert_eq!((done.token, done.class), (Some(9), ResultClass::Done));
//! assert_eq!(done.results.get_str("value"), Some("42"));
//! assert_eq!(decoder.next_record(), Some(Ok(Record::Prompt)));
//! ```
//!
//! # Layout
//!
//! - [`record`]: one output line as a [`Record`] (result, async, stream, prompt) and
//!   the grammar that reads it.
//! - [`value`]: MI values ([`Value`]: constant, tuple, list) and lookups.
//! - [`decoder`]: [`Decoder`], lines out of arbitrary chunks, bounded.
//! - [`command`]: [`Command`], the builder that quotes arguments.
//! - [`error`]: [`ParseError`] and [`CommandError`].
//!
//! # Architecture invariants
//!
//! - No I/O and no dependency that does I/O: only `std` and `thiserror`.
//! - No panic on any input: every byte of GDB's output is checked, nesting is bounded
//!   ([`MAX_DEPTH`]), and so is a line ([`decoder::DEFAULT_MAX_LINE`]). The decoder is
//!   fuzzed (`crates/mi/fuzz`).
//! - A command argument is one argument: quotes and backslashes are escaped, control
//!   characters are refused, so text from a user never becomes a second command.
//!   Refusing is the crate's part; what GDB makes of an expression (convenience
//!   functions such as `$_shell`) is its caller's to restrict.

pub mod command;
mod cstring;
pub mod decoder;
pub mod error;
pub mod record;
pub mod value;

pub use command::Command;
pub use decoder::Decoder;
pub use error::{CommandError, ParseError};
pub use record::{
    AsyncKind, AsyncRecord, MAX_DEPTH, Record, ResultClass, ResultRecord, StreamKind,
};
pub use value::{Field, Results, Value};

#[cfg(test)]
mod tests;
