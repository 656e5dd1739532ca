//! The legacy resume commands `c [addr]`, `s [addr]`, `C sig[;addr]`,
//! `S sig[;addr]`, and the reverse-execution ones `bc` and `bs`.
//!
//! All of them resume the target: the reply is a stop reply (or `O` console
//! output first), which may come much later, and an interrupt (0x03) may be
//! sent meanwhile. Modern GDB prefers `vCont` once the stub lists it, but
//! still sends these to stubs without `vCont`.
//!
//! `bc` and `bs` need record/replay in QEMU: without it QEMU answers `E22`
//! and then aborts on an assertion, so a proxy must refuse them unless the
//! stub's `qSupported` reply listed `ReverseContinue+` / `ReverseStep+`.

use super::{Command, split_once};
use crate::error::ParseError;
use crate::hex::{parse_hex_u8, parse_hex_u64, write_hex_u8, write_hex_u64};

fn parse_optional_addr(packet: &'static str, args: &[u8]) -> Result<Option<u64>, ParseError> {
    if args.is_empty() {
        return Ok(None);
    }
    parse_hex_u64(args)
        .map(Some)
        .map_err(ParseError::hex(packet))
}

/// Parses the arguments of `c`.
pub(super) fn parse_continue(args: &[u8]) -> Result<Command, ParseError> {
    Ok(Command::Continue {
        addr: parse_optional_addr("c", args)?,
    })
}

/// Parses the arguments of `s`.
pub(super) fn parse_step(args: &[u8]) -> Result<Command, ParseError> {
    Ok(Command::Step {
        addr: parse_optional_addr("s", args)?,
    })
}

/// Parses `sig[;addr]`, the arguments of `C` and `S`.
fn parse_signal_and_addr(
    packet: &'static str,
    args: &[u8],
) -> Result<(u8, Option<u64>), ParseError> {
    let (signal, addr) = match split_once(args, b';') {
        Some((signal, addr)) => (
            signal,
            Some(parse_hex_u64(addr).map_err(ParseError::hex(packet))?),
        ),
        None => (args, None),
    };
    Ok((parse_hex_u8(signal).map_err(ParseError::hex(packet))?, addr))
}

/// Parses the arguments of `C`.
pub(super) fn parse_continue_with_signal(args: &[u8]) -> Result<Command, ParseError> {
    let (signal, addr) = parse_signal_and_addr("C", args)?;
    Ok(Command::ContinueWithSignal { signal, addr })
}

/// Parses the arguments of `S`.
pub(super) fn parse_step_with_signal(args: &[u8]) -> Result<Command, ParseError> {
    let (signal, addr) = parse_signal_and_addr("S", args)?;
    Ok(Command::StepWithSignal { signal, addr })
}

/// Appends `c`/`s` and the optional address.
pub(super) fn write_resume(letter: u8, addr: Option<u64>, out: &mut Vec<u8>) {
    out.push(letter);
    if let Some(addr) = addr {
        write_hex_u64(addr, out);
    }
}

/// Appends `C`/`S`, the signal and the optional address.
pub(super) fn write_resume_with_signal(
    letter: u8,
    signal: u8,
    addr: Option<u64>,
    out: &mut Vec<u8>,
) {
    out.push(letter);
    write_hex_u8(signal, out);
    if let Some(addr) = addr {
        out.push(b';');
        write_hex_u64(addr, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Result<Command, ()>) {
        let parsed = Command::parse(input.as_bytes()).map_err(drop);
        assert_eq!(parsed, expected, "input {input:?}");
        if let Ok(command) = parsed {
            assert_eq!(command.to_payload(), input.as_bytes());
            assert!(command.is_resume(), "{command:?} resumes");
        }
    }

    #[test]
    fn resume_commands() {
        check("c", Ok(Command::Continue { addr: None }));
        check("c8000", Ok(Command::Continue { addr: Some(0x8000) }));
        check("s", Ok(Command::Step { addr: None }));
        check("s1a4", Ok(Command::Step { addr: Some(0x1a4) }));
        check(
            "C05",
            Ok(Command::ContinueWithSignal {
                signal: 5,
                addr: None,
            }),
        );
        check(
            "C0b;100",
            Ok(Command::ContinueWithSignal {
                signal: 11,
                addr: Some(0x100),
            }),
        );
        check(
            "S02",
            Ok(Command::StepWithSignal {
                signal: 2,
                addr: None,
            }),
        );
        check(
            "S09;20",
            Ok(Command::StepWithSignal {
                signal: 9,
                addr: Some(0x20),
            }),
        );
        check("bc", Ok(Command::ReverseContinue));
        check("bs", Ok(Command::ReverseStep));
        check("cxyz", Err(()));
        check("C", Err(()));
        check("C100", Err(()));
        check("S05;", Err(()));
    }

    #[test]
    fn other_b_packets_are_unknown() {
        assert_eq!(
            Command::parse(b"b9600"),
            Ok(Command::Other(b"b9600".to_vec()))
        );
    }
}
