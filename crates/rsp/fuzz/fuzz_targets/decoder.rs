//! Fuzzes the frame decoder, and the packet parsers behind it, with arbitrary
//! bytes fed in arbitrary chunks.
//!
//! Invariants checked on every input:
//! - nothing panics (decoder, `decoded()`, every parser);
//! - the events do not depend on how the input was chunked (neighbouring
//!   garbage events merged, since their boundaries follow the chunks);
//! - no packet or garbage event is longer than the configured limit;
//! - every packet re-encodes to a frame that decodes to the same packet, both
//!   raw (forwarding) and from its decoded payload (escaping);
//! - parsers round-trip: whatever parses writes back to something that parses
//!   to the same value.

#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use virserver_rsp::packets::{Features, StopReply};
use virserver_rsp::{
    Command, Decoder, DecoderConfig, Event, Packet, encode_packet, encode_packet_raw,
};

#[derive(Debug, Arbitrary)]
struct Input {
    /// Selects the packet size limit: small ones exercise over-long packets.
    limit_selector: u8,
    verify_checksums: bool,
    /// Chunk lengths, used in turn (0 is taken as 1).
    chunk_lengths: Vec<u8>,
    bytes: Vec<u8>,
}

fn config(input: &Input) -> DecoderConfig {
    let max_packet_size = match input.limit_selector {
        0..=63 => usize::from(input.limit_selector),
        _ => DecoderConfig::default().max_packet_size,
    };
    DecoderConfig {
        max_packet_size,
        verify_checksums: input.verify_checksums,
    }
}

fn decode<'a>(config: &DecoderConfig, chunks: impl Iterator<Item = &'a [u8]>) -> Vec<Event> {
    let mut decoder = Decoder::with_config(config.clone());
    let mut events: Vec<Event> = Vec::new();
    for chunk in chunks {
        decoder.feed(chunk);
        while let Some(event) = decoder.next_event() {
            match (events.last_mut(), event) {
                (Some(Event::Garbage(previous)), Event::Garbage(more)) => previous.extend(more),
                (_, event) => events.push(event),
            }
        }
    }
    events
}

fn chunks<'a>(bytes: &'a [u8], lengths: &'a [u8]) -> impl Iterator<Item = &'a [u8]> {
    let mut rest = bytes;
    let mut index = 0;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let wanted = lengths
            .get(index % lengths.len().max(1))
            .copied()
            .unwrap_or(1)
            .max(1);
        index += 1;
        let (chunk, tail) = rest.split_at(usize::from(wanted).min(rest.len()));
        rest = tail;
        Some(chunk)
    })
}

/// Decodes one frame with a fresh default decoder and returns its only packet.
fn single_packet(frame: &[u8]) -> Packet {
    let events = decode(&DecoderConfig::default(), std::iter::once(frame));
    match events.as_slice() {
        [Event::Packet(packet)] => packet.clone(),
        other => panic!(
            "frame {:?} decoded to {other:?}",
            frame.escape_ascii().to_string()
        ),
    }
}

fn check_packet(packet: &Packet) {
    let mut frame = Vec::new();
    encode_packet_raw(packet.raw(), &mut frame);
    assert_eq!(&single_packet(&frame), packet, "raw forwarding");

    let Ok(decoded) = packet.decoded() else {
        return;
    };
    frame.clear();
    encode_packet(&decoded, &mut frame);
    let again = single_packet(&frame);
    assert_eq!(
        again.decoded().expect("escaped frames decode"),
        decoded,
        "escaping"
    );

    if let Ok(command) = Command::parse(&decoded) {
        assert_eq!(Command::parse(&command.to_payload()), Ok(command));
    }
    if let Ok(stop) = StopReply::parse(&decoded) {
        let mut written = Vec::new();
        stop.write(&mut written);
        assert_eq!(StopReply::parse(&written), Ok(stop));
    }
    if let Ok(features) = Features::parse(&decoded) {
        let mut written = Vec::new();
        features.write(&mut written);
        assert_eq!(Features::parse(&written), Ok(features));
    }
}

fuzz_target!(|input: Input| {
    let config = config(&input);
    let whole = decode(&config, std::iter::once(input.bytes.as_slice()));
    let chunked = decode(&config, chunks(&input.bytes, &input.chunk_lengths));
    assert_eq!(whole, chunked, "chunking changed the events");

    let limit = config.max_packet_size;
    for event in &whole {
        match event {
            Event::Packet(packet) | Event::Notification(packet) => {
                assert!(packet.raw().len() <= limit);
                check_packet(packet);
            }
            Event::BadChecksum { packet, .. } => assert!(packet.raw().len() <= limit),
            _ => {}
        }
    }
});
