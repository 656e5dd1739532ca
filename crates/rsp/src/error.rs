//! The error types of every layer of the codec, in one place.
//!
//! Each layer has its own thiserror enum so that a caller can tell a broken
//! frame (the peer or the line is misbehaving: answer `-` or drop the peer)
//! from a well-framed packet whose contents it does not understand (forward it
//! verbatim, or answer `E`):
//!
//! - [`FrameError`]: the byte stream could not be cut into a packet. Reported
//!   by the [`Decoder`](crate::frame::Decoder) as an event, never returned,
//!   because the decoder always recovers by itself.
//! - [`DecodeError`]: a framed payload whose `}` escapes or `*` run-length
//!   encoding are malformed ([`Packet::decoded`](crate::frame::Packet::decoded)).
//! - [`HexError`]: a hex number or hex byte string is malformed ([`crate::hex`]).
//! - [`ParseError`]: a decoded payload does not match the grammar of the
//!   packet family its mnemonic names ([`crate::packets`]).
//!
//! None of these errors carries the offending input beyond a byte or a
//! length, so they are cheap to create and safe to log.

use thiserror::Error;

/// A problem cutting the byte stream into frames.
///
/// The decoder has already resynchronised when it reports one of these: the
/// next event is about the bytes that follow.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    /// The payload grew past [`DecoderConfig::max_packet_size`](crate::frame::DecoderConfig::max_packet_size).
    /// The rest of that frame is skipped, up to its checksum or to the next `$`.
    #[error("packet longer than the limit of {limit} bytes; skipped")]
    PacketTooLong {
        /// The configured limit, in raw (still escaped) payload bytes.
        limit: usize,
    },
    /// A `$` arrived before the `#` (or before both checksum digits) of the
    /// packet being read. The partial packet is dropped and a new one starts
    /// at that `$`, as GDB itself does.
    #[error("packet cut short by a new '$' after {discarded} payload bytes")]
    Truncated {
        /// How many raw payload bytes were dropped.
        discarded: usize,
    },
}

/// A framed payload whose escapes or run-length encoding are malformed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The payload ends with the escape byte `}`.
    #[error("payload ends inside a '}}' escape")]
    TrailingEscape,
    /// The payload ends with the run-length marker `*` and no count.
    #[error("payload ends after a '*' run-length marker")]
    MissingRunLength,
    /// A `*` run-length marker with nothing before it to repeat.
    #[error("run-length marker '*' at the start of the payload")]
    RunLengthWithoutByte,
    /// A run-length count byte outside the printable range `' '..='~'`.
    #[error("invalid run-length count byte 0x{byte:02x}")]
    InvalidRunLength {
        /// The byte that followed `*`.
        byte: u8,
    },
}

/// A malformed hex number or hex byte string.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HexError {
    /// A number with no digits at all.
    #[error("empty hex number")]
    Empty,
    /// A byte that is not one of `0-9a-fA-F`.
    #[error("invalid hex digit 0x{byte:02x}")]
    InvalidDigit {
        /// The offending byte.
        byte: u8,
    },
    /// A hex byte string with an odd number of digits.
    #[error("hex byte string has an odd number of digits")]
    OddLength,
    /// A number that does not fit the target integer type.
    #[error("hex number does not fit in {bits} bits")]
    Overflow {
        /// Width of the target type.
        bits: u32,
    },
}

/// A decoded payload that does not match the grammar of its packet family.
///
/// A proxy that gets this for a client packet usually forwards the packet
/// verbatim anyway and lets the stub answer.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    /// A field that should be hex is not.
    #[error("bad hex field in {packet}: {source}")]
    Hex {
        /// Mnemonic of the packet being parsed.
        packet: &'static str,
        /// What was wrong with the field.
        source: HexError,
    },
    /// The packet does not have the shape its mnemonic requires.
    #[error("malformed {packet} packet: {reason}")]
    Malformed {
        /// Mnemonic of the packet being parsed.
        packet: &'static str,
        /// Short human-readable explanation.
        reason: &'static str,
    },
    /// A field that must be text is not valid UTF-8.
    #[error("{packet} packet holds text that is not UTF-8")]
    NotUtf8 {
        /// Mnemonic of the packet being parsed.
        packet: &'static str,
    },
    /// `M` or `X` declared a length different from the data it carries.
    #[error("{packet} declares {declared} bytes but carries {actual}")]
    LengthMismatch {
        /// Mnemonic of the packet being parsed.
        packet: &'static str,
        /// The length field.
        declared: u64,
        /// The number of data bytes actually present.
        actual: u64,
    },
    /// The payload's escapes or run-length encoding are malformed.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

impl ParseError {
    /// Shorthand for [`ParseError::Malformed`].
    pub(crate) fn malformed(packet: &'static str, reason: &'static str) -> Self {
        ParseError::Malformed { packet, reason }
    }

    /// Returns a closure that wraps a [`HexError`] for `packet`, for `map_err`.
    pub(crate) fn hex(packet: &'static str) -> impl Fn(HexError) -> ParseError {
        move |source| ParseError::Hex { packet, source }
    }

    /// Shorthand for [`ParseError::NotUtf8`].
    pub(crate) fn not_utf8(packet: &'static str) -> Self {
        ParseError::NotUtf8 { packet }
    }
}
