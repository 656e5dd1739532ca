//! Listing threads: `qfThreadInfo` / `qsThreadInfo` (first and next piece of
//! the thread list) and `qC` (the current thread), with their replies.
//!
//! The list comes in pieces: `m id,id,...` while more may follow, then `l`.
//! QEMU lists one thread per vCPU (`mp01.01,p01.02` on a two-core board) and
//! answers `qC` with `QCp01.01`. The commands take no argument and are parsed
//! in [`Command`](super::Command); this file holds the replies, which a proxy
//! may answer from a cache since they only change when vCPUs come and go.

use super::ThreadId;
use crate::error::ParseError;

/// A reply to `qfThreadInfo` or `qsThreadInfo`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ThreadInfoReply {
    /// `m id,id,...`: some threads; ask again with `qsThreadInfo`.
    More(Vec<ThreadId>),
    /// `l`: the end of the list.
    Last,
}

impl ThreadInfoReply {
    /// Parses `m id,id,...` or `l`.
    pub fn parse(payload: &[u8]) -> Result<ThreadInfoReply, ParseError> {
        match payload.split_first() {
            Some((b'l', [])) => Ok(ThreadInfoReply::Last),
            Some((b'm', ids)) => ids
                .split(|&byte| byte == b',')
                .map(ThreadId::parse)
                .collect::<Result<_, _>>()
                .map(ThreadInfoReply::More),
            _ => Err(ParseError::malformed(
                "qfThreadInfo reply",
                "neither 'm' nor 'l'",
            )),
        }
    }

    /// Appends `m id,id,...` or `l`.
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            ThreadInfoReply::Last => out.push(b'l'),
            ThreadInfoReply::More(threads) => {
                out.push(b'm');
                for (index, thread) in threads.iter().enumerate() {
                    if index > 0 {
                        out.push(b',');
                    }
                    thread.write(out);
                }
            }
        }
    }
}

/// Parses the reply to `qC`: `QC` and a thread id.
pub fn parse_current_thread_reply(payload: &[u8]) -> Result<ThreadId, ParseError> {
    let thread = payload
        .strip_prefix(b"QC")
        .ok_or(ParseError::malformed("qC reply", "no 'QC'"))?;
    ThreadId::parse(thread)
}

/// Appends the reply to `qC`.
pub fn write_current_thread_reply(thread: &ThreadId, out: &mut Vec<u8>) {
    out.extend_from_slice(b"QC");
    thread.write(out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packets::Command;

    fn check(input: &str, expected: Result<ThreadInfoReply, ()>) {
        let parsed = ThreadInfoReply::parse(input.as_bytes()).map_err(drop);
        assert_eq!(parsed, expected, "input {input:?}");
        if let Ok(reply) = parsed {
            let mut out = Vec::new();
            reply.write(&mut out);
            assert_eq!(ThreadInfoReply::parse(&out), Ok(reply));
        }
    }

    #[test]
    fn thread_lists() {
        check(
            "mp01.01",
            Ok(ThreadInfoReply::More(vec![ThreadId::multiprocess(1, 1)])),
        );
        check(
            "mp01.01,p01.02",
            Ok(ThreadInfoReply::More(vec![
                ThreadId::multiprocess(1, 1),
                ThreadId::multiprocess(1, 2),
            ])),
        );
        check(
            "m1,2",
            Ok(ThreadInfoReply::More(vec![
                ThreadId {
                    pid: None,
                    tid: crate::packets::Id::from_u64(1),
                },
                ThreadId {
                    pid: None,
                    tid: crate::packets::Id::from_u64(2),
                },
            ])),
        );
        check("l", Ok(ThreadInfoReply::Last));
        check("m", Err(()));
        check("m1,", Err(()));
        check("lx", Err(()));
        check("", Err(()));
    }

    #[test]
    fn current_thread() {
        assert_eq!(
            parse_current_thread_reply(b"QCp01.01"),
            Ok(ThreadId::multiprocess(1, 1))
        );
        assert!(parse_current_thread_reply(b"QC").is_err());
        assert!(parse_current_thread_reply(b"E01").is_err());
        let mut out = Vec::new();
        write_current_thread_reply(&ThreadId::multiprocess(1, 2), &mut out);
        assert_eq!(out, b"QCp1.2");
    }

    #[test]
    fn commands() {
        assert_eq!(Command::parse(b"qC"), Ok(Command::QueryCurrentThread));
        assert_eq!(
            Command::parse(b"qfThreadInfo"),
            Ok(Command::ThreadInfoFirst)
        );
        assert_eq!(Command::parse(b"qsThreadInfo"), Ok(Command::ThreadInfoNext));
        // qCRC is another packet, not qC.
        assert_eq!(
            Command::parse(b"qCRC:0,4"),
            Ok(Command::Other(b"qCRC:0,4".to_vec()))
        );
    }
}
