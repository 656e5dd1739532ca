//! Registers: `g` (read all), `G XX...` (write all), `p n` (read one) and
//! `P n=XX...` (write one).
//!
//! Register contents travel as hex bytes in target memory order; register
//! numbers are hex and index the target description (target.xml). On QEMU
//! 7.2, `g` returns a legacy 168-byte layout and `p` fails until the client
//! has read target.xml: a proxy that caches registers must read it first.
//! Replies: `g` and `p` answer with hex data (or `Exx`), `G` and `P` with `OK`.

use super::{Command, split_once};
use crate::error::ParseError;
use crate::hex::{decode_hex, parse_hex_u32};

/// Parses the arguments of `G` (after the letter).
pub(super) fn parse_write_registers(args: &[u8]) -> Result<Command, ParseError> {
    let data = decode_hex(args).map_err(ParseError::hex("G"))?;
    Ok(Command::WriteRegisters { data })
}

/// Parses the arguments of `p`.
pub(super) fn parse_read_register(args: &[u8]) -> Result<Command, ParseError> {
    let regno = parse_hex_u32(args).map_err(ParseError::hex("p"))?;
    Ok(Command::ReadRegister { regno })
}

/// Parses the arguments of `P`.
pub(super) fn parse_write_register(args: &[u8]) -> Result<Command, ParseError> {
    let (regno, value) = split_once(args, b'=').ok_or(ParseError::malformed("P", "no '='"))?;
    Ok(Command::WriteRegister {
        regno: parse_hex_u32(regno).map_err(ParseError::hex("P"))?,
        value: decode_hex(value).map_err(ParseError::hex("P"))?,
    })
}

/// Decodes the reply to `g` or `p` (hex bytes). Check
/// [`StandardReply`](super::StandardReply) for `Exx` first.
///
/// GDB allows `xx` for bytes a stub cannot read; QEMU never sends it, and it
/// is reported here as a hex error.
pub fn parse_register_reply(payload: &[u8]) -> Result<Vec<u8>, ParseError> {
    decode_hex(payload).map_err(ParseError::hex("g/p reply"))
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
    fn register_commands() {
        check("g", Ok(Command::ReadRegisters));
        check("G", Ok(Command::WriteRegisters { data: Vec::new() }));
        check(
            "G0100000002000000",
            Ok(Command::WriteRegisters {
                data: vec![1, 0, 0, 0, 2, 0, 0, 0],
            }),
        );
        check("p19", Ok(Command::ReadRegister { regno: 25 }));
        check("p0", Ok(Command::ReadRegister { regno: 0 }));
        check(
            "P19=00000001",
            Ok(Command::WriteRegister {
                regno: 25,
                value: vec![0, 0, 0, 1],
            }),
        );
        check("P f=", Err(()));
        check("G012", Err(()));
        check("p", Err(()));
        check("pzz", Err(()));
        check("P19", Err(()));
        check("P19=0", Err(()));
    }

    #[test]
    fn register_replies() {
        assert_eq!(
            parse_register_reply(b"00000020ff"),
            Ok(vec![0, 0, 0, 0x20, 0xff])
        );
        assert!(parse_register_reply(b"xxxxxxxx").is_err());
        let command = Command::WriteRegister {
            regno: 0xf,
            value: vec![0x08, 0, 0, 0],
        };
        assert_eq!(command.to_payload(), b"Pf=08000000");
    }
}
