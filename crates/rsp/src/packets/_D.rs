//! Ending a debug session: `D` and `D;pid` (detach), `k` and `vKill;pid`
//! (kill), and `qAttached[:pid]`, which GDB asks to choose between them when
//! the user quits.
//!
//! On QEMU these have effects far beyond one client: `D` resumes the whole VM,
//! `vKill` (and `k`) make QEMU exit. A multiplexing proxy therefore answers
//! them itself for every client but the last (detach = forget the client;
//! kill = refuse or detach), and answers `qAttached` with `1` so that GDB
//! detaches rather than kills on quit. Replies: `OK` or `Exx` for `D` and
//! `vKill`; `k` may get no reply at all.

use super::Command;
use crate::error::ParseError;
use crate::hex::{parse_hex_u64, write_hex_u64};

/// Parses the arguments of `D` (after the letter): nothing or `;pid`.
pub(super) fn parse_detach(args: &[u8]) -> Result<Command, ParseError> {
    if args.is_empty() {
        return Ok(Command::Detach { pid: None });
    }
    let pid = args
        .strip_prefix(b";")
        .ok_or(ParseError::malformed("D", "expected ';pid'"))?;
    Ok(Command::Detach {
        pid: Some(parse_hex_u64(pid).map_err(ParseError::hex("D"))?),
    })
}

/// Parses what follows `vKill`: `;pid`.
pub(super) fn parse_vkill(args: &[u8]) -> Result<Command, ParseError> {
    let pid = args
        .strip_prefix(b";")
        .ok_or(ParseError::malformed("vKill", "expected ';pid'"))?;
    Ok(Command::VKill {
        pid: parse_hex_u64(pid).map_err(ParseError::hex("vKill"))?,
    })
}

/// Parses what follows `qAttached`: nothing or `:pid`.
pub(super) fn parse_attached(args: &[u8]) -> Result<Command, ParseError> {
    if args.is_empty() {
        return Ok(Command::QueryAttached { pid: None });
    }
    let pid = args
        .strip_prefix(b":")
        .ok_or(ParseError::malformed("qAttached", "expected ':pid'"))?;
    Ok(Command::QueryAttached {
        pid: Some(parse_hex_u64(pid).map_err(ParseError::hex("qAttached"))?),
    })
}

/// Appends `name`, then `separator` and the pid if there is one.
pub(super) fn write_with_pid(name: &[u8], separator: u8, pid: Option<u64>, out: &mut Vec<u8>) {
    out.extend_from_slice(name);
    if let Some(pid) = pid {
        out.push(separator);
        write_hex_u64(pid, out);
    }
}

/// Parses the reply to `qAttached`: `1` (attached to an existing process:
/// detach on quit) or `0` (created by the stub: kill on quit). `None` for
/// anything else, such as `Exx` or the empty reply.
pub fn parse_attached_reply(payload: &[u8]) -> Option<bool> {
    match payload {
        b"1" => Some(true),
        b"0" => Some(false),
        _ => None,
    }
}

/// Appends the reply to `qAttached`.
pub fn write_attached_reply(attached: bool, out: &mut Vec<u8>) {
    out.push(if attached { b'1' } else { b'0' });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Result<Command, ()>) {
        let parsed = Command::parse(input.as_bytes()).map_err(drop);
        assert_eq!(parsed, expected, "input {input:?}");
        if let Ok(command) = parsed {
            assert_eq!(command.to_payload(), input.as_bytes());
        }
    }

    #[test]
    fn detach_and_kill() {
        check("D", Ok(Command::Detach { pid: None }));
        check("D;1", Ok(Command::Detach { pid: Some(1) }));
        check("D;2a", Ok(Command::Detach { pid: Some(0x2a) }));
        check("k", Ok(Command::Kill));
        check("vKill;1", Ok(Command::VKill { pid: 1 }));
        check("D1", Err(()));
        check("D;", Err(()));
        check("vKill", Err(()));
        check("vKill;x", Err(()));
        // `k` takes no argument.
        check("k1", Err(()));
    }

    #[test]
    fn attached() {
        check("qAttached", Ok(Command::QueryAttached { pid: None }));
        check("qAttached:1", Ok(Command::QueryAttached { pid: Some(1) }));
        check("qAttached:", Err(()));
        check("qAttached;1", Err(()));
        assert_eq!(parse_attached_reply(b"1"), Some(true));
        assert_eq!(parse_attached_reply(b"0"), Some(false));
        assert_eq!(parse_attached_reply(b"E01"), None);
        let mut out = Vec::new();
        write_attached_reply(true, &mut out);
        write_attached_reply(false, &mut out);
        assert_eq!(out, b"10");
    }
}
