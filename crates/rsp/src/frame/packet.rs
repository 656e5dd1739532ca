//! [`Packet`]: one framed payload, kept exactly as it was on the wire.
//!
//! A proxy mostly forwards packets, so the raw form (escapes and run-length
//! encoding still in place) is what a packet *is*; [`Packet::decoded`] gives
//! the meaning on demand and borrows when there is nothing to undo, which is
//! the case for nearly every packet QEMU and GDB exchange.
//!
//! Decoding reads the raw bytes left to right with the same three states the
//! [`Decoder`](super::Decoder) uses to find the end of a frame, so the two can
//! never disagree about where an escape or a run starts:
//!
//! - `}` then `b`: the literal byte `b ^ 0x20`.
//! - `*` then `n`: the previous decoded byte repeated `n - 29` more times
//!   (`n` printable, so 3 to 97 repeats: `0* ` is `0000`).
//! - anything else: itself.
//!
//! GDB only promises run-length encoding in replies, but decoding it in every
//! packet is correct: senders escape every literal `*` in binary data.

use std::borrow::Cow;
use std::fmt;

use super::encode::{self, ESCAPE, ESCAPE_XOR, RUN_LENGTH};
use crate::error::DecodeError;

/// Smallest and largest run-length count bytes (the printable range).
const RUN_COUNT_MIN: u8 = b' ';
const RUN_COUNT_MAX: u8 = b'~';
/// `n - 29` repeats, see the module doc.
const RUN_COUNT_OFFSET: u8 = 29;

/// Which of the two frame kinds a payload came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketKind {
    /// `$payload#cs`: a command or a reply, acknowledged with `+`/`-` unless
    /// no-ack mode is on.
    Packet,
    /// `%payload#cs`: an asynchronous notification (non-stop mode), never
    /// acknowledged.
    Notification,
}

impl PacketKind {
    /// The byte that starts a frame of this kind.
    pub fn start_byte(self) -> u8 {
        match self {
            PacketKind::Packet => b'$',
            PacketKind::Notification => b'%',
        }
    }
}

/// One packet payload, in raw wire form (between `$`/`%` and `#`).
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Packet {
    raw: Vec<u8>,
}

impl Packet {
    /// Wraps a raw payload as it appears on the wire (already escaped).
    pub fn from_raw(raw: Vec<u8>) -> Packet {
        Packet { raw }
    }

    /// Builds a packet from a decoded payload, escaping `$ # } *`.
    pub fn from_payload(payload: &[u8]) -> Packet {
        let mut raw = Vec::with_capacity(payload.len());
        encode::escape_into(payload, &mut raw);
        Packet { raw }
    }

    /// The payload exactly as it was on the wire.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// Takes the raw payload out of the packet.
    pub fn into_raw(self) -> Vec<u8> {
        self.raw
    }

    /// The checksum this payload travels with.
    pub fn checksum(&self) -> u8 {
        encode::checksum(&self.raw)
    }

    /// Appends the whole frame, `$raw#cs` or `%raw#cs`, ready to forward.
    pub fn write_frame(&self, kind: PacketKind, out: &mut Vec<u8>) {
        match kind {
            PacketKind::Packet => encode::encode_packet_raw(&self.raw, out),
            PacketKind::Notification => encode::encode_notification_raw(&self.raw, out),
        }
    }

    /// The payload with `}` escapes and `*` run-length encoding undone.
    ///
    /// Borrows from the packet when the raw payload has neither.
    pub fn decoded(&self) -> Result<Cow<'_, [u8]>, DecodeError> {
        decode_payload(&self.raw)
    }
}

impl fmt::Debug for Packet {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "Packet(\"{}\")", self.raw.escape_ascii())
    }
}

impl From<&[u8]> for Packet {
    /// Same as [`Packet::from_payload`]: the bytes are escaped.
    fn from(payload: &[u8]) -> Packet {
        Packet::from_payload(payload)
    }
}

/// Undoes `}` escapes and `*` run-length encoding in a raw payload.
///
/// See the module doc for the rules. Borrows when there is nothing to undo.
pub fn decode_payload(raw: &[u8]) -> Result<Cow<'_, [u8]>, DecodeError> {
    // `$` and `#` never occur unescaped in a raw payload, so no special
    // byte at all means no escape and no run: the common case, found eight
    // bytes at a time.
    if encode::find_special(raw).is_none() {
        return Ok(Cow::Borrowed(raw));
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.iter().copied();
    while let Some(byte) = bytes.next() {
        match byte {
            ESCAPE => {
                let escaped = bytes.next().ok_or(DecodeError::TrailingEscape)?;
                out.push(escaped ^ ESCAPE_XOR);
            }
            RUN_LENGTH => {
                let count = bytes.next().ok_or(DecodeError::MissingRunLength)?;
                if !(RUN_COUNT_MIN..=RUN_COUNT_MAX).contains(&count) {
                    return Err(DecodeError::InvalidRunLength { byte: count });
                }
                let repeated = *out.last().ok_or(DecodeError::RunLengthWithoutByte)?;
                let repeats = usize::from(count - RUN_COUNT_OFFSET);
                out.resize(out.len() + repeats, repeated);
            }
            _ => out.push(byte),
        }
    }
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(raw: &[u8], expected: Result<&[u8], DecodeError>) {
        let packet = Packet::from_raw(raw.to_vec());
        let decoded = packet.decoded();
        assert_eq!(
            decoded
                .as_deref()
                .map(|bytes| bytes.escape_ascii().to_string())
                .map_err(Clone::clone),
            expected.map(|bytes| bytes.escape_ascii().to_string()),
            "raw {:?}",
            raw.escape_ascii().to_string()
        );
    }

    #[test]
    fn plain_payloads_borrow() {
        let packet = Packet::from_raw(b"qSupported:multiprocess+".to_vec());
        assert!(matches!(packet.decoded(), Ok(Cow::Borrowed(_))));
        check(b"", Ok(b""));
        check(b"OK", Ok(b"OK"));
    }

    #[test]
    fn escapes() {
        check(b"}\x04", Ok(b"$"));
        check(b"}\x03", Ok(b"#"));
        check(b"}]", Ok(b"}"));
        check(b"}\x0a", Ok(b"*"));
        // The byte after `}` is literal even when it is `#`, `$` or `*`.
        check(b"}#}$}*", Ok(b"\x03\x04\x0a"));
        check(b"X0,2:}]}]", Ok(b"X0,2:}}"));
        check(b"abc}", Err(DecodeError::TrailingEscape));
    }

    #[test]
    fn run_length() {
        // The example of the GDB manual: "0* " means "0000".
        check(b"0* ", Ok(b"0000"));
        check(b"0*!", Ok(b"00000"));
        check(b"0*\"", Ok(b"000000"));
        check(b"x*~", Ok(&[b'x'; 98]));
        check(b"ab*  cd", Ok(b"abbbb cd"));
        // A run after a run repeats the last decoded byte again.
        check(b"0* * ", Ok(b"0000000"));
        // `}` as a count byte is a count, not an escape (96 repeats).
        check(b"0*}", Ok(&[b'0'; 97]));
        // A run of an escaped byte repeats the decoded byte.
        check(b"}]* ", Ok(b"}}}}"));
        check(b"*  ", Err(DecodeError::RunLengthWithoutByte));
        check(b"0*", Err(DecodeError::MissingRunLength));
        check(b"0*\x1f", Err(DecodeError::InvalidRunLength { byte: 0x1f }));
        check(b"0*\x7f", Err(DecodeError::InvalidRunLength { byte: 0x7f }));
    }

    #[test]
    fn a_real_compressed_register_reply() {
        // A `g` reply from a stub that compresses, as gdbserver does:
        // r0-r3 are zero, r4 is 0x2000 (little-endian bytes 00 20 00 00).
        check(
            b"0*<0020*!",
            Ok(format!("{}00200000", "0".repeat(32)).as_bytes()),
        );
    }

    #[test]
    fn from_payload_escapes_and_round_trips() {
        let payload = b"X20000000,5:$#}*\x03".to_vec();
        let packet = Packet::from_payload(&payload);
        assert_eq!(packet.raw(), b"X20000000,5:}\x04}\x03}]}\x0a\x03");
        assert_eq!(packet.decoded().as_deref(), Ok(payload.as_slice()));
        let mut frame = Vec::new();
        packet.write_frame(PacketKind::Packet, &mut frame);
        assert!(frame.starts_with(b"$X2") && frame[frame.len() - 3] == b'#');
        assert_eq!(
            format!("{:?}", Packet::from_raw(b"a\x03".to_vec())),
            "Packet(\"a\\x03\")"
        );
    }
}
