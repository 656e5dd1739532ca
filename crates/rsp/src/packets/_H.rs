//! Thread selection and liveness: `H op thread-id` and `T thread-id`.
//!
//! `Hg` picks the thread that later `g`, `G`, `p`, `P`, `m` and `M` apply to,
//! `Hc` the one the legacy `c`/`s` resume. The selection is state held by the
//! stub for its single connection, so a proxy that multiplexes clients must
//! track each client's choice and replay it before that client's next
//! thread-dependent command. `T` asks whether a thread is alive (`OK` or
//! `Exx`). Thread ids are described in [`ThreadId`].

use super::{Command, ThreadId};
use crate::error::ParseError;

/// Which selection an `H` packet sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ThreadOperation {
    /// `Hg`: registers and memory.
    General,
    /// `Hc`: legacy continue and step.
    Continue,
}

impl ThreadOperation {
    /// The letter after `H`.
    pub fn letter(self) -> u8 {
        match self {
            ThreadOperation::General => b'g',
            ThreadOperation::Continue => b'c',
        }
    }
}

/// Parses the arguments of `H` (after the letter).
pub(super) fn parse_set_thread(args: &[u8]) -> Result<Command, ParseError> {
    let (operation, thread) = match args.split_first() {
        Some((b'g', thread)) => (ThreadOperation::General, thread),
        Some((b'c', thread)) => (ThreadOperation::Continue, thread),
        _ => return Err(ParseError::malformed("H", "operation is not 'g' or 'c'")),
    };
    Ok(Command::SetThread {
        operation,
        thread: ThreadId::parse(thread)?,
    })
}

/// Parses the arguments of `T`.
pub(super) fn parse_thread_alive(args: &[u8]) -> Result<Command, ParseError> {
    Ok(Command::ThreadAlive {
        thread: ThreadId::parse(args)?,
    })
}

/// Appends `H`, the operation letter and the thread id.
pub(super) fn write_set_thread(operation: ThreadOperation, thread: &ThreadId, out: &mut Vec<u8>) {
    out.push(b'H');
    out.push(operation.letter());
    thread.write(out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packets::Id;

    fn check(input: &str, expected: Result<Command, ()>) {
        let parsed = Command::parse(input.as_bytes()).map_err(drop);
        assert_eq!(parsed, expected, "input {input:?}");
        if let Ok(command) = parsed {
            assert_eq!(command.to_payload(), input.as_bytes());
        }
    }

    fn set(operation: ThreadOperation, thread: ThreadId) -> Result<Command, ()> {
        Ok(Command::SetThread { operation, thread })
    }

    #[test]
    fn set_thread() {
        check("Hg0", set(ThreadOperation::General, ThreadId::ANY));
        check("Hc-1", set(ThreadOperation::Continue, ThreadId::ALL));
        check(
            "Hg1",
            set(
                ThreadOperation::General,
                ThreadId {
                    pid: None,
                    tid: Id::from_u64(1),
                },
            ),
        );
        check(
            "Hgp1.1",
            set(ThreadOperation::General, ThreadId::multiprocess(1, 1)),
        );
        check(
            "Hcp1.-1",
            set(
                ThreadOperation::Continue,
                ThreadId {
                    pid: Some(Id::from_u64(1)),
                    tid: Id::All,
                },
            ),
        );
        check(
            "Hgp0.0",
            set(ThreadOperation::General, ThreadId::multiprocess(0, 0)),
        );
        check("H", Err(()));
        check("Hg", Err(()));
        check("Hx1", Err(()));
        check("Hgz", Err(()));
    }

    #[test]
    fn thread_alive() {
        check(
            "Tp1.2",
            Ok(Command::ThreadAlive {
                thread: ThreadId::multiprocess(1, 2),
            }),
        );
        check(
            "T1",
            Ok(Command::ThreadAlive {
                thread: ThreadId {
                    pid: None,
                    tid: Id::from_u64(1),
                },
            }),
        );
        check("T", Err(()));
        // QEMU's zero-padded form parses; it is written back without padding.
        assert_eq!(
            Command::parse(b"Tp01.02"),
            Ok(Command::ThreadAlive {
                thread: ThreadId::multiprocess(1, 2)
            })
        );
    }
}
