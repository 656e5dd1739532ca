//! Framing: cutting a byte stream into RSP events, and writing frames back.
//!
//! The [`Decoder`] is sans-IO: the caller reads bytes from wherever it likes,
//! hands them over with [`Decoder::feed`] in chunks of any size, and pulls
//! [`Event`]s with [`Decoder::next_event`] until it returns `None`, which only
//! means "feed me more". The decoder keeps no more than one packet of state
//! ([`DecoderConfig::max_packet_size`]) plus whatever input it has been fed and
//! not yet examined.
//!
//! # What the decoder recognises
//!
//! Between frames: `$` starts a packet, `%` a notification, `+` and `-` are
//! acknowledgements, 0x03 is an interrupt request; any other bytes are
//! [`Event::Garbage`]. Inside a frame every byte is payload (0x03 and `%`
//! included) except:
//!
//! - `}` escapes the next byte, whatever it is: `}#` and `}$` neither end nor
//!   start a frame.
//! - `*` is followed by a run-length count byte, taken literally (`*}` is a
//!   count of 96, not an escape), except that `#` and `$`, never valid counts,
//!   keep their framing meaning.
//! - `#` ends the payload; two checksum digits follow.
//! - an unescaped `$` abandons the frame ([`FrameError::Truncated`]) and starts
//!   a new one, as GDB's own reader does.
//!
//! A payload that grows past the limit is dropped with one
//! [`FrameError::PacketTooLong`], and the rest of it is skipped up to its
//! checksum or the next `$`, whichever comes first.
//!
//! # What the caller does with events
//!
//! In ack mode a peer waits for `+` after a [`Event::Packet`] and for `-`
//! after an [`Event::BadChecksum`]; the decoder never answers by itself.
//! Garbage is reported in as few events as the fed chunks allow (consecutive
//! garbage bytes from one chunk form one event, capped at the size limit).
//!
//! The layout of this module: `packet.rs` holds [`Packet`] and the decoding of
//! escapes and run-length encoding, `encode.rs` writes frames, and `tests.rs`
//! holds the table-driven tests of the decoder.

mod encode;
mod packet;
#[cfg(test)]
mod tests;

use std::mem;

pub use encode::{
    ACK, ESCAPE, ESCAPE_XOR, INTERRUPT, NACK, RUN_LENGTH, checksum, encode_notification,
    encode_notification_raw, encode_packet, encode_packet_raw, escape_into, find_special,
    needs_escape, packet_frame,
};
pub use packet::{Packet, PacketKind, decode_payload};

use crate::error::FrameError;
use crate::hex::hex_digit_value;

/// Default for [`DecoderConfig::max_packet_size`]: 64 KiB of raw payload,
/// sixteen times the `PacketSize=1000` (hex) that QEMU advertises.
pub const DEFAULT_MAX_PACKET_SIZE: usize = 64 * 1024;

/// How a [`Decoder`] behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecoderConfig {
    /// Largest raw (still escaped) payload accepted, in bytes. Longer packets
    /// become [`FrameError::PacketTooLong`]; runs of garbage are reported in
    /// pieces of at most this size (at least 1).
    pub max_packet_size: usize,
    /// Check the two checksum digits. Turn off once no-ack mode is agreed on,
    /// where GDB ignores checksums too.
    pub verify_checksums: bool,
}

impl Default for DecoderConfig {
    fn default() -> Self {
        DecoderConfig {
            max_packet_size: DEFAULT_MAX_PACKET_SIZE,
            verify_checksums: true,
        }
    }
}

/// One thing found in the byte stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `$payload#cs` with a good checksum (or any checksum, when not verified).
    Packet(Packet),
    /// `%payload#cs` with a good checksum: an asynchronous notification.
    Notification(Packet),
    /// `+`
    Ack,
    /// `-`
    Nack,
    /// 0x03 between frames: the client asks the target to stop.
    Interrupt,
    /// A complete frame whose checksum digits do not match its payload.
    /// In ack mode, answer `-` so that the peer retransmits.
    BadChecksum {
        /// Whether it was a packet or a notification.
        kind: PacketKind,
        /// The payload as received.
        packet: Packet,
        /// The checksum of the payload as received.
        computed: u8,
        /// The value of the two digits, or `None` if they were not hex.
        received: Option<u8>,
    },
    /// Bytes between frames that are none of `$ % + - 0x03`.
    Garbage(Vec<u8>),
    /// The stream could not be framed; the decoder has already resynchronised.
    Error(FrameError),
}

/// Where the decoder is inside a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Inside {
    /// Ordinary payload bytes.
    Plain,
    /// Just after `}`: the next byte is literal.
    AfterEscape,
    /// Just after `*`: the next byte is a run-length count.
    AfterRunMarker,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between frames.
    Idle,
    /// Reading a payload.
    Payload { kind: PacketKind, inside: Inside },
    /// After `#`, reading the two checksum digits.
    Checksum { kind: PacketKind, first: Option<u8> },
    /// Skipping the rest of an over-long payload.
    SkipPayload { inside: Inside },
    /// Skipping the checksum digits of an over-long packet.
    SkipChecksum { remaining: u8 },
}

/// The streaming, sans-IO frame decoder. See the [module doc](self).
#[derive(Debug, Clone)]
pub struct Decoder {
    config: DecoderConfig,
    input: Vec<u8>,
    position: usize,
    state: State,
    payload: Vec<u8>,
    garbage: Vec<u8>,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new()
    }
}

impl Decoder {
    /// A decoder with [`DecoderConfig::default`].
    pub fn new() -> Decoder {
        Decoder::with_config(DecoderConfig::default())
    }

    /// A decoder with the given configuration.
    pub fn with_config(config: DecoderConfig) -> Decoder {
        Decoder {
            config,
            input: Vec::new(),
            position: 0,
            state: State::Idle,
            payload: Vec::new(),
            garbage: Vec::new(),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &DecoderConfig {
        &self.config
    }

    /// Turns checksum verification on or off from now on (for no-ack mode).
    pub fn set_verify_checksums(&mut self, verify: bool) {
        self.config.verify_checksums = verify;
    }

    /// Appends bytes received from the peer. Nothing is parsed until
    /// [`Decoder::next_event`] is called; fed bytes are kept until then, so
    /// drain the events between feeds to keep memory bounded.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.position > 0 {
            self.input.drain(..self.position);
            self.position = 0;
        }
        self.input.extend_from_slice(bytes);
    }

    /// Number of fed bytes not examined yet.
    pub fn buffered_len(&self) -> usize {
        self.input.len() - self.position
    }

    /// True when the decoder is not in the middle of a frame.
    pub fn is_between_frames(&self) -> bool {
        self.state == State::Idle
    }

    /// Forgets every fed byte and any partial frame.
    pub fn reset(&mut self) {
        self.input.clear();
        self.position = 0;
        self.state = State::Idle;
        self.payload.clear();
        self.garbage.clear();
    }

    /// The events of the bytes fed so far, until more input is needed.
    pub fn events(&mut self) -> impl Iterator<Item = Event> + '_ {
        std::iter::from_fn(move || self.next_event())
    }

    /// The next event, or `None` when all fed bytes are consumed and more are
    /// needed. Never panics, whatever was fed.
    pub fn next_event(&mut self) -> Option<Event> {
        loop {
            let Some(&byte) = self.input.get(self.position) else {
                self.input.clear();
                self.position = 0;
                return self.take_garbage();
            };
            let event = match self.state {
                State::Idle => self.step_idle(byte),
                State::Payload { kind, inside } => self.step_payload(kind, inside, byte),
                State::Checksum { kind, first } => self.step_checksum(kind, first, byte),
                State::SkipPayload { inside } => self.step_skip_payload(inside, byte),
                State::SkipChecksum { remaining } => self.step_skip_checksum(remaining, byte),
            };
            if event.is_some() {
                return event;
            }
        }
    }

    fn take_garbage(&mut self) -> Option<Event> {
        if self.garbage.is_empty() {
            None
        } else {
            Some(Event::Garbage(mem::take(&mut self.garbage)))
        }
    }

    /// Length of the run of bytes from the read position that `is_special`
    /// does not stop at.
    fn plain_run(&self, is_special: fn(u8) -> bool) -> usize {
        let rest = self.input.get(self.position..).unwrap_or_default();
        rest.iter()
            .position(|&byte| is_special(byte))
            .unwrap_or(rest.len())
    }

    /// [`Decoder::plain_run`] for payload bytes, eight at a time: this is
    /// the decoder's hot loop (a 64 KiB memory read is 128 KiB of hex).
    fn payload_run(&self) -> usize {
        let rest = self.input.get(self.position..).unwrap_or_default();
        encode::find_special(rest).unwrap_or(rest.len())
    }

    fn step_idle(&mut self, byte: u8) -> Option<Event> {
        if !is_frame_start_or_control(byte) {
            let limit = self.config.max_packet_size.max(1);
            let room = limit.saturating_sub(self.garbage.len());
            let count = self.plain_run(is_frame_start_or_control).min(room);
            let end = self.position + count;
            self.garbage
                .extend_from_slice(self.input.get(self.position..end).unwrap_or_default());
            self.position = end;
            if self.garbage.len() >= limit {
                return self.take_garbage();
            }
            return None;
        }
        if !self.garbage.is_empty() {
            // Report the garbage before the byte that ends it.
            return self.take_garbage();
        }
        self.position += 1;
        match byte {
            b'$' => self.start_payload(PacketKind::Packet),
            b'%' => self.start_payload(PacketKind::Notification),
            ACK => Some(Event::Ack),
            NACK => Some(Event::Nack),
            _ => Some(Event::Interrupt),
        }
    }

    fn start_payload(&mut self, kind: PacketKind) -> Option<Event> {
        self.payload.clear();
        self.state = State::Payload {
            kind,
            inside: Inside::Plain,
        };
        None
    }

    fn step_payload(&mut self, kind: PacketKind, inside: Inside, byte: u8) -> Option<Event> {
        match inside {
            Inside::Plain => match byte {
                b'#' => {
                    self.position += 1;
                    self.state = State::Checksum { kind, first: None };
                    None
                }
                b'$' => self.truncate(),
                ESCAPE => self.take_into_payload(1, kind, Inside::AfterEscape),
                RUN_LENGTH => self.take_into_payload(1, kind, Inside::AfterRunMarker),
                _ => {
                    let count = self.payload_run();
                    self.take_into_payload(count, kind, Inside::Plain)
                }
            },
            Inside::AfterEscape => self.take_into_payload(1, kind, Inside::Plain),
            Inside::AfterRunMarker if byte == b'#' || byte == b'$' => {
                // Not a valid count: let the byte keep its framing meaning.
                self.state = State::Payload {
                    kind,
                    inside: Inside::Plain,
                };
                None
            }
            Inside::AfterRunMarker => self.take_into_payload(1, kind, Inside::Plain),
        }
    }

    /// Moves `count` input bytes into the payload, or starts skipping the
    /// packet if that would pass the size limit.
    fn take_into_payload(
        &mut self,
        count: usize,
        kind: PacketKind,
        after: Inside,
    ) -> Option<Event> {
        let end = self.position + count;
        let room = self
            .config
            .max_packet_size
            .saturating_sub(self.payload.len());
        if count > room {
            self.position = end;
            self.payload.clear();
            self.state = State::SkipPayload { inside: after };
            return Some(Event::Error(FrameError::PacketTooLong {
                limit: self.config.max_packet_size,
            }));
        }
        self.payload
            .extend_from_slice(self.input.get(self.position..end).unwrap_or_default());
        self.position = end;
        self.state = State::Payload {
            kind,
            inside: after,
        };
        None
    }

    /// A `$` cut the current frame short: drop it, and let the `$` start the
    /// next one (it is not consumed here).
    fn truncate(&mut self) -> Option<Event> {
        let discarded = self.payload.len();
        self.payload.clear();
        self.state = State::Idle;
        Some(Event::Error(FrameError::Truncated { discarded }))
    }

    fn step_checksum(&mut self, kind: PacketKind, first: Option<u8>, byte: u8) -> Option<Event> {
        if byte == b'$' {
            return self.truncate();
        }
        self.position += 1;
        let Some(high) = first else {
            self.state = State::Checksum {
                kind,
                first: Some(byte),
            };
            return None;
        };
        self.state = State::Idle;
        let packet = Packet::from_raw(mem::take(&mut self.payload));
        let received = match (hex_digit_value(high), hex_digit_value(byte)) {
            (Some(high), Some(low)) => Some((high << 4) | low),
            _ => None,
        };
        let computed = packet.checksum();
        if self.config.verify_checksums && received != Some(computed) {
            return Some(Event::BadChecksum {
                kind,
                packet,
                computed,
                received,
            });
        }
        Some(match kind {
            PacketKind::Packet => Event::Packet(packet),
            PacketKind::Notification => Event::Notification(packet),
        })
    }

    fn step_skip_payload(&mut self, inside: Inside, byte: u8) -> Option<Event> {
        let (consumed, next) = match (inside, byte) {
            (Inside::Plain, b'#') => (1, State::SkipChecksum { remaining: 2 }),
            (Inside::Plain | Inside::AfterRunMarker, b'$') => (0, State::Idle),
            (Inside::Plain, ESCAPE) => (
                1,
                State::SkipPayload {
                    inside: Inside::AfterEscape,
                },
            ),
            (Inside::Plain, RUN_LENGTH) => (
                1,
                State::SkipPayload {
                    inside: Inside::AfterRunMarker,
                },
            ),
            (Inside::Plain, _) => (self.payload_run(), self.state),
            (Inside::AfterRunMarker, b'#') => (
                0,
                State::SkipPayload {
                    inside: Inside::Plain,
                },
            ),
            (Inside::AfterEscape | Inside::AfterRunMarker, _) => (
                1,
                State::SkipPayload {
                    inside: Inside::Plain,
                },
            ),
        };
        self.position += consumed;
        self.state = next;
        None
    }

    fn step_skip_checksum(&mut self, remaining: u8, byte: u8) -> Option<Event> {
        if byte == b'$' {
            self.state = State::Idle;
            return None;
        }
        self.position += 1;
        self.state = match remaining {
            0 | 1 => State::Idle,
            _ => State::SkipChecksum {
                remaining: remaining - 1,
            },
        };
        None
    }
}

/// Bytes with a meaning between frames.
fn is_frame_start_or_control(byte: u8) -> bool {
    matches!(byte, b'$' | b'%' | ACK | NACK | INTERRUPT)
}

// Bytes with a meaning inside a payload are `# $ } *`, found by
// `encode::find_special` (the bytes `escape_into` escapes).
