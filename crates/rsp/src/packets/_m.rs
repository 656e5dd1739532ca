//! Memory: `m addr,length` (read), `M addr,length:XX...` (write hex) and
//! `X addr,length:binary` (write binary).
//!
//! Addresses and lengths are hex. `X` carries raw bytes, escaped on the wire
//! like any payload (so parse it from [`Packet::decoded`](crate::frame::Packet::decoded));
//! GDB probes for it with `X addr,0:` and falls back to `M` if the reply is
//! empty. The reply to `m` is hex data, possibly shorter than asked for when
//! the end of the range is unreadable, or `Exx`.
//!
//! QEMU caps one `m` at [`QEMU_MAX_READ`] bytes (larger ones get `E22`) and
//! answers `E14` for unmapped memory. [`split_read`] cuts a larger read into
//! requests a stub accepts, which a proxy can pipeline: QEMU does not wait for
//! acks in system mode.

use super::{Command, split_once};
use crate::error::ParseError;
use crate::hex::{decode_hex, parse_hex_u64, write_hex_u64};

/// The largest `m` length QEMU's stub accepts (0x800 bytes).
pub const QEMU_MAX_READ: u64 = 0x800;

/// Parses `addr,length` as found in `m`, `M` and `X`.
fn parse_range(packet: &'static str, args: &[u8]) -> Result<(u64, u64), ParseError> {
    let (addr, length) = split_once(args, b',').ok_or(ParseError::malformed(packet, "no ','"))?;
    Ok((
        parse_hex_u64(addr).map_err(ParseError::hex(packet))?,
        parse_hex_u64(length).map_err(ParseError::hex(packet))?,
    ))
}

fn check_length(packet: &'static str, declared: u64, data: &[u8]) -> Result<(), ParseError> {
    let actual = data.len() as u64;
    if declared != actual {
        return Err(ParseError::LengthMismatch {
            packet,
            declared,
            actual,
        });
    }
    Ok(())
}

/// Parses the arguments of `m`.
pub(super) fn parse_read_memory(args: &[u8]) -> Result<Command, ParseError> {
    let (addr, length) = parse_range("m", args)?;
    Ok(Command::ReadMemory { addr, length })
}

/// Parses the arguments of `M`.
pub(super) fn parse_write_memory(args: &[u8]) -> Result<Command, ParseError> {
    let (range, hex) = split_once(args, b':').ok_or(ParseError::malformed("M", "no ':'"))?;
    let (addr, length) = parse_range("M", range)?;
    let data = decode_hex(hex).map_err(ParseError::hex("M"))?;
    check_length("M", length, &data)?;
    Ok(Command::WriteMemory { addr, data })
}

/// Parses the arguments of `X` (already unescaped).
pub(super) fn parse_write_memory_binary(args: &[u8]) -> Result<Command, ParseError> {
    let (range, data) = split_once(args, b':').ok_or(ParseError::malformed("X", "no ':'"))?;
    let (addr, length) = parse_range("X", range)?;
    check_length("X", length, data)?;
    Ok(Command::WriteMemoryBinary {
        addr,
        data: data.to_vec(),
    })
}

/// Appends `addr,length`.
pub(super) fn write_range(addr: u64, length: u64, out: &mut Vec<u8>) {
    write_hex_u64(addr, out);
    out.push(b',');
    write_hex_u64(length, out);
}

/// Decodes the reply to `m` (hex bytes). Check
/// [`StandardReply`](super::StandardReply) for `Exx` first.
pub fn parse_read_memory_reply(payload: &[u8]) -> Result<Vec<u8>, ParseError> {
    decode_hex(payload).map_err(ParseError::hex("m reply"))
}

/// Cuts the read of `length` bytes at `addr` into `(addr, length)` requests
/// of at most `max_chunk` bytes each (a `max_chunk` of 0 is taken as 1).
/// Stops at the end of the address space instead of wrapping.
pub fn split_read(addr: u64, length: u64, max_chunk: u64) -> impl Iterator<Item = (u64, u64)> {
    let max_chunk = max_chunk.max(1);
    let length = length.min((u64::MAX - addr).saturating_add(1));
    let mut offset = 0u64;
    std::iter::from_fn(move || {
        if offset >= length {
            return None;
        }
        let chunk = (length - offset).min(max_chunk);
        let start = addr.checked_add(offset)?;
        offset += chunk;
        Some((start, chunk))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &[u8], expected: Result<Command, ()>) {
        let parsed = Command::parse(input).map_err(drop);
        assert_eq!(
            parsed,
            expected,
            "input {:?}",
            input.escape_ascii().to_string()
        );
        if let Ok(command) = parsed {
            assert_eq!(command.to_payload(), input);
        }
    }

    #[test]
    fn memory_commands() {
        check(
            b"m20000000,4",
            Ok(Command::ReadMemory {
                addr: 0x2000_0000,
                length: 4,
            }),
        );
        check(
            b"m0,800",
            Ok(Command::ReadMemory {
                addr: 0,
                length: 0x800,
            }),
        );
        check(
            b"mffffffffffffffff,1",
            Ok(Command::ReadMemory {
                addr: u64::MAX,
                length: 1,
            }),
        );
        check(
            b"M20000000,2:beef",
            Ok(Command::WriteMemory {
                addr: 0x2000_0000,
                data: vec![0xbe, 0xef],
            }),
        );
        check(
            b"M0,0:",
            Ok(Command::WriteMemory {
                addr: 0,
                data: Vec::new(),
            }),
        );
        // GDB's probe for binary downloads, and binary data with framing bytes.
        check(
            b"X20000000,0:",
            Ok(Command::WriteMemoryBinary {
                addr: 0x2000_0000,
                data: Vec::new(),
            }),
        );
        check(
            b"X0,5:$#}*:",
            Ok(Command::WriteMemoryBinary {
                addr: 0,
                data: b"$#}*:".to_vec(),
            }),
        );
        check(
            b"X0,2:\x00\xff",
            Ok(Command::WriteMemoryBinary {
                addr: 0,
                data: vec![0, 0xff],
            }),
        );
        check(b"m20000000", Err(()));
        check(b"m,4", Err(()));
        check(b"mx,4", Err(()));
        check(b"M0,2:be", Err(()));
        check(b"M0,1", Err(()));
        check(b"X0,3:ab", Err(()));
    }

    #[test]
    fn length_mismatch_is_typed() {
        assert_eq!(
            Command::parse(b"M0,2:be"),
            Err(ParseError::LengthMismatch {
                packet: "M",
                declared: 2,
                actual: 1
            })
        );
    }

    #[test]
    fn memory_replies() {
        assert_eq!(parse_read_memory_reply(b"00b5"), Ok(vec![0, 0xb5]));
        assert!(parse_read_memory_reply(b"E14").is_err());
    }

    #[test]
    fn splitting_reads() {
        let chunks: Vec<_> = split_read(0x2000_0000, 0x1001, QEMU_MAX_READ).collect();
        assert_eq!(
            chunks,
            [(0x2000_0000, 0x800), (0x2000_0800, 0x800), (0x2000_1000, 1)]
        );
        assert_eq!(split_read(0, 0, 0x800).count(), 0);
        assert_eq!(
            split_read(5, 3, 0).collect::<Vec<_>>(),
            [(5, 1), (6, 1), (7, 1)]
        );
        let top: Vec<_> = split_read(u64::MAX - 1, 10, 0x800).collect();
        assert_eq!(top, [(u64::MAX - 1, 2)]);
    }
}
