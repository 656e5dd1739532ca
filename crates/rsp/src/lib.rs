//! A sans-IO codec for the GDB remote serial protocol (RSP): bytes in,
//! packets out, and back.
//!
//! This crate is the wire layer of VirServer's RSP proxy, the multiplexer that
//! lets several GDB clients share one emulator's GDB stub. It does no I/O at
//! all: no sockets, no async runtime, no clocks. The caller reads bytes from
//! wherever it likes and feeds them to a [`Decoder`], which returns
//! [`Event`]s, with "need more bytes" as a normal `None`; the caller writes
//! the frames that [`encode_packet`] and the packet builders produce. That
//! keeps the proxy's state machine testable with scripted bytes and the
//! tokio loops around it thin.
//!
//! ```
//! use virserver_rsp::{Command, Decoder, Event, encode_packet};
//!
//! let mut decoder = Decoder::new();
//! decoder.feed(b"+$m20000000,4#4f");
//! assert_eq!(decoder.next_event(), Some(Event::Ack));
//! let Some(Event::Packet(packet)) = decoder.next_event() else { panic!("a packet") };
//! assert_eq!(
//!     Command::from_packet(&packet),
//!     Ok(Command::ReadMemory { addr: 0x2000_0000, length: 4 })
//! );
//! assert_eq!(decoder.next_event(), None); // need more bytes
//!
//! let mut reply = Vec::new();
//! encode_packet(b"00b50020", &mut reply);
//! assert_eq!(reply, b"$00b50020#b9");
//! ```
//!
//! # Layout
//!
//! - [`frame`]: framing. [`Decoder`] cuts a byte stream into packets,
//!   notifications, acks, interrupts and garbage; [`Packet`] keeps a payload
//!   exactly as it was on the wire and decodes escapes and run-length
//!   encoding on demand; `encode_*` write frames back.
//! - [`packets`]: what payloads mean. [`Command`] for what clients send, and
//!   one file per packet family (named after its RSP mnemonic, like
//!   `_vCont.rs`) for both the requests and the replies a proxy has to
//!   understand: stop replies, `qSupported` features, `qXfer` chunks, ...
//! - [`hex`]: the hex numbers and hex byte strings the protocol is made of.
//! - [`error`]: one thiserror enum per layer ([`FrameError`],
//!   [`DecodeError`], [`HexError`], [`ParseError`]).
//!
//! # Architecture invariants
//!
//! - No I/O and no dependency that does I/O: only `std` and `thiserror`.
//! - No panic on any input: every length, digit and escape coming from the
//!   peer is checked. The decoder is fuzzed (`crates/rsp/fuzz`).
//! - Bounded memory: a packet longer than
//!   [`DecoderConfig::max_packet_size`] is dropped and reported, never
//!   buffered.
//! - Raw payloads survive untouched, so a packet the proxy does not
//!   understand is forwarded byte for byte.
//!
//! # Why not the `gdbstub` crate
//!
//! `gdbstub` is an excellent implementation of the *stub* side: a library for
//! writing a debug target, whose state machine parses the packets it supports
//! into calls on a `Target` trait and answers them itself. A proxy needs
//! something else. It must forward packets it has never heard of verbatim,
//! keep raw payloads (escapes, run-length encoding, checksums) instead of
//! re-serialising them, and speak both sides of the protocol: parse what
//! clients send *and* what a stub replies (stop replies, `qSupported`
//! features, `qXfer` chunks, `O` output), neither of which gdbstub's state
//! machine exposes. So the gateway has its own small codec, organised the way
//! gdbstub's `protocol/` module is.

pub mod error;
pub mod frame;
pub mod hex;
pub mod packets;

pub use error::{DecodeError, FrameError, HexError, ParseError};
pub use frame::{
    ACK, Decoder, DecoderConfig, Event, INTERRUPT, NACK, Packet, PacketKind, checksum,
    encode_notification, encode_notification_raw, encode_packet, encode_packet_raw,
};
pub use packets::{Command, StandardReply, StopReply, ThreadId};
