//! Thread ids, the one piece of syntax shared by `H`, `T`, `vCont`, `qC`,
//! `qfThreadInfo` and the `thread:` field of stop replies.
//!
//! A thread id is a hex number, `-1` (all threads) or `0` (any thread). When
//! the multiprocess extension is on (QEMU always offers it and GDB accepts) it
//! is `pPID.TID`, each part following the same rules; `pPID` alone means
//! every thread of that process. QEMU writes its ids with leading zeros
//! (`p01.01`), GDB without; both parse, and writing follows GDB.

use std::fmt;
use std::num::NonZeroU64;

use crate::error::ParseError;
use crate::hex::{parse_hex_u64, write_hex_u64};

/// One part (process or thread) of a [`ThreadId`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Id {
    /// `-1`: all processes or all threads.
    All,
    /// `0`: any process or thread, the stub picks.
    Any,
    /// A specific process or thread.
    Value(NonZeroU64),
}

impl Id {
    /// Parses `-1`, `0` or a hex number.
    pub fn parse(bytes: &[u8]) -> Result<Id, ParseError> {
        if bytes == b"-1" {
            return Ok(Id::All);
        }
        let value = parse_hex_u64(bytes).map_err(ParseError::hex("thread-id"))?;
        Ok(NonZeroU64::new(value).map_or(Id::Any, Id::Value))
    }

    /// A specific id, or [`Id::Any`] for zero.
    pub fn from_u64(value: u64) -> Id {
        NonZeroU64::new(value).map_or(Id::Any, Id::Value)
    }

    /// Appends `-1`, `0` or the hex number.
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            Id::All => out.extend_from_slice(b"-1"),
            Id::Any => out.push(b'0'),
            Id::Value(value) => write_hex_u64(value.get(), out),
        }
    }
}

/// A thread id, with its process when the multiprocess syntax is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ThreadId {
    /// The process, present only in the `pPID.TID` form.
    pub pid: Option<Id>,
    /// The thread.
    pub tid: Id,
}

impl ThreadId {
    /// `-1`, every thread (of every process).
    pub const ALL: ThreadId = ThreadId {
        pid: None,
        tid: Id::All,
    };
    /// `0`, any thread.
    pub const ANY: ThreadId = ThreadId {
        pid: None,
        tid: Id::Any,
    };

    /// `pPID.TID` with specific numbers (zero means "any").
    pub fn multiprocess(pid: u64, tid: u64) -> ThreadId {
        ThreadId {
            pid: Some(Id::from_u64(pid)),
            tid: Id::from_u64(tid),
        }
    }

    /// Parses `TID`, `pPID` or `pPID.TID`.
    pub fn parse(bytes: &[u8]) -> Result<ThreadId, ParseError> {
        let Some(multiprocess) = bytes.strip_prefix(b"p") else {
            return Ok(ThreadId {
                pid: None,
                tid: Id::parse(bytes)?,
            });
        };
        match multiprocess.iter().position(|&byte| byte == b'.') {
            Some(dot) => Ok(ThreadId {
                pid: Some(Id::parse(&multiprocess[..dot])?),
                tid: Id::parse(&multiprocess[dot + 1..])?,
            }),
            None => Ok(ThreadId {
                pid: Some(Id::parse(multiprocess)?),
                tid: Id::All,
            }),
        }
    }

    /// Appends `TID` or `pPID.TID`.
    pub fn write(&self, out: &mut Vec<u8>) {
        if let Some(pid) = &self.pid {
            out.push(b'p');
            pid.write(out);
            out.push(b'.');
        }
        self.tid.write(out);
    }
}

impl fmt::Display for ThreadId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Vec::new();
        self.write(&mut out);
        formatter.write_str(&String::from_utf8_lossy(&out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Result<ThreadId, ()>, written: &str) {
        let parsed = ThreadId::parse(input.as_bytes()).map_err(drop);
        assert_eq!(parsed, expected, "input {input:?}");
        if let Ok(thread) = parsed {
            assert_eq!(thread.to_string(), written);
            assert_eq!(ThreadId::parse(written.as_bytes()), Ok(thread));
        }
    }

    fn value(value: u64) -> Id {
        Id::from_u64(value)
    }

    #[test]
    fn thread_ids() {
        check("-1", Ok(ThreadId::ALL), "-1");
        check("0", Ok(ThreadId::ANY), "0");
        check(
            "1",
            Ok(ThreadId {
                pid: None,
                tid: value(1),
            }),
            "1",
        );
        check(
            "1f",
            Ok(ThreadId {
                pid: None,
                tid: value(0x1f),
            }),
            "1f",
        );
        // QEMU's form.
        check("p01.01", Ok(ThreadId::multiprocess(1, 1)), "p1.1");
        check(
            "p1.-1",
            Ok(ThreadId {
                pid: Some(value(1)),
                tid: Id::All,
            }),
            "p1.-1",
        );
        check(
            "p1",
            Ok(ThreadId {
                pid: Some(value(1)),
                tid: Id::All,
            }),
            "p1.-1",
        );
        check(
            "p-1.-1",
            Ok(ThreadId {
                pid: Some(Id::All),
                tid: Id::All,
            }),
            "p-1.-1",
        );
        check(
            "p0.0",
            Ok(ThreadId {
                pid: Some(Id::Any),
                tid: Id::Any,
            }),
            "p0.0",
        );
        check("", Err(()), "");
        check("p", Err(()), "");
        check("p1.", Err(()), "");
        check("-2", Err(()), "");
        check("x1", Err(()), "");
        check("p1.2.3", Err(()), "");
    }
}
