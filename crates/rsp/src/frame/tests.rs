//! Table-driven tests of the [`Decoder`]: every case is run whole, split in
//! two and in three at every byte boundary, and one byte at a time, and must
//! give the same events each way.

use super::*;

fn packet(raw: &[u8]) -> Event {
    Event::Packet(Packet::from_raw(raw.to_vec()))
}

fn notification(raw: &[u8]) -> Event {
    Event::Notification(Packet::from_raw(raw.to_vec()))
}

fn garbage(bytes: &[u8]) -> Event {
    Event::Garbage(bytes.to_vec())
}

fn bad_checksum(raw: &[u8], received: Option<u8>) -> Event {
    Event::BadChecksum {
        kind: PacketKind::Packet,
        packet: Packet::from_raw(raw.to_vec()),
        computed: checksum(raw),
        received,
    }
}

fn too_long(limit: usize) -> Event {
    Event::Error(FrameError::PacketTooLong { limit })
}

fn truncated(discarded: usize) -> Event {
    Event::Error(FrameError::Truncated { discarded })
}

/// Feeds `chunks` one by one, draining events after each, and merges
/// neighbouring garbage events (their boundaries depend on the chunking).
fn decode_chunks(config: &DecoderConfig, chunks: &[&[u8]]) -> Vec<Event> {
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
        assert_eq!(decoder.buffered_len(), 0);
    }
    events
}

fn check_with(config: DecoderConfig, input: &[u8], expected: &[Event]) {
    let shown = input.escape_ascii().to_string();
    assert_eq!(
        decode_chunks(&config, &[input]),
        expected,
        "whole input {shown:?}"
    );
    for split in 0..=input.len() {
        let (first, second) = input.split_at(split);
        assert_eq!(
            decode_chunks(&config, &[first, second]),
            expected,
            "{shown:?} split at {split}"
        );
    }
    if input.len() <= 64 {
        for first_split in 0..=input.len() {
            for second_split in first_split..=input.len() {
                let chunks = [
                    &input[..first_split],
                    &input[first_split..second_split],
                    &input[second_split..],
                ];
                assert_eq!(
                    decode_chunks(&config, &chunks),
                    expected,
                    "{shown:?} split at {first_split} and {second_split}"
                );
            }
        }
    }
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(
        decode_chunks(&config, &bytes),
        expected,
        "{shown:?} one byte at a time"
    );
}

fn check(input: &[u8], expected: &[Event]) {
    check_with(DecoderConfig::default(), input, expected);
}

fn small(max_packet_size: usize) -> DecoderConfig {
    DecoderConfig {
        max_packet_size,
        ..DecoderConfig::default()
    }
}

#[test]
fn packets_and_acks() {
    check(b"", &[]);
    check(b"$g#67", &[packet(b"g")]);
    check(b"$#00", &[packet(b"")]);
    check(b"+$OK#9a", &[Event::Ack, packet(b"OK")]);
    check(b"$OK#9A", &[packet(b"OK")]);
    check(b"-", &[Event::Nack]);
    check(b"++--", &[Event::Ack, Event::Ack, Event::Nack, Event::Nack]);
    check(b"$m0,4#fd$m4,4#01", &[packet(b"m0,4"), packet(b"m4,4")]);
    check(
        b"$m0,4#fd+$m4,4#01+",
        &[packet(b"m0,4"), Event::Ack, packet(b"m4,4"), Event::Ack],
    );
}

#[test]
fn incomplete_input_is_not_an_event() {
    check(b"$g", &[]);
    check(b"$g#", &[]);
    check(b"$g#6", &[]);
    check(b"+$qSupported:multi", &[Event::Ack]);
}

#[test]
fn notifications() {
    check(b"%Stop:T05#99", &[notification(b"Stop:T05")]);
    // `%` inside a packet is data.
    check(b"$a%b#e8", &[packet(b"a%b")]);
    check(
        b"%Stop:T05#00",
        &[Event::BadChecksum {
            kind: PacketKind::Notification,
            packet: Packet::from_raw(b"Stop:T05".to_vec()),
            computed: 0x99,
            received: Some(0),
        }],
    );
}

#[test]
fn bad_checksums() {
    check(b"$g#00", &[bad_checksum(b"g", Some(0))]);
    check(b"$g#zz", &[bad_checksum(b"g", None)]);
    check(b"$g#6", &[]);
    check(b"$g#00$g#67", &[bad_checksum(b"g", Some(0)), packet(b"g")]);
    // Not verified (no-ack mode): any two bytes will do.
    let unverified = DecoderConfig {
        verify_checksums: false,
        ..DecoderConfig::default()
    };
    check_with(unverified.clone(), b"$g#00", &[packet(b"g")]);
    check_with(unverified, b"$g#zz", &[packet(b"g")]);
}

#[test]
fn garbage_between_packets() {
    check(b"abc", &[garbage(b"abc")]);
    check(
        b"abc$g#67\r\n+",
        &[garbage(b"abc"), packet(b"g"), garbage(b"\r\n"), Event::Ack],
    );
    // A lone `#` or checksum-looking bytes outside a frame are garbage.
    check(
        b"#67$g#67#",
        &[garbage(b"#67"), packet(b"g"), garbage(b"#")],
    );
    check(b"\x00\xff\x03", &[garbage(b"\x00\xff"), Event::Interrupt]);
}

#[test]
fn interrupts() {
    check(b"\x03", &[Event::Interrupt]);
    check(
        b"\x03\x03$g#67\x03",
        &[
            Event::Interrupt,
            Event::Interrupt,
            packet(b"g"),
            Event::Interrupt,
        ],
    );
    // Inside a packet 0x03 is payload, not an interrupt.
    check(b"$X0,1:\x03#22", &[packet(b"X0,1:\x03")]);
    check(b"$c#63\x03+", &[packet(b"c"), Event::Interrupt, Event::Ack]);
}

#[test]
fn escapes_never_end_or_start_a_frame() {
    check(b"$X0,2:}\x03}\x04#21", &[packet(b"X0,2:}\x03}\x04")]);
    check(b"$a}#b#63", &[packet(b"a}#b")]);
    check(b"$a}$b#64", &[packet(b"a}$b")]);
    let escaped = packet(b"X0,4:a}\x04}\x03}]");
    check(b"$X0,4:a}\x04}\x03}]#5e+", &[escaped, Event::Ack]);
}

#[test]
fn run_length_in_frames() {
    check(b"$0* #7a", &[packet(b"0* ")]);
    // `*}` is a count of 96; the `}` does not escape the `#`.
    check(b"$0*}#d7", &[packet(b"0*}")]);
    // `#` and `$` are never counts: they keep their framing meaning.
    check(b"$0*#5a", &[packet(b"0*")]);
    check(b"$0*$g#67", &[truncated(2), packet(b"g")]);
}

#[test]
fn a_dollar_inside_a_frame_starts_over() {
    check(b"$m0,4$g#67", &[truncated(4), packet(b"g")]);
    check(b"$g#$g#67", &[truncated(1), packet(b"g")]);
    check(b"$g#6$g#67", &[truncated(1), packet(b"g")]);
    check(b"$$g#67", &[truncated(0), packet(b"g")]);
}

#[test]
fn over_long_packets() {
    let limit = 8;
    check_with(small(limit), b"$01234567#9c", &[packet(b"01234567")]);
    check_with(
        small(limit),
        b"$012345678#00+$g#67",
        &[too_long(limit), Event::Ack, packet(b"g")],
    );
    check_with(
        small(limit),
        b"$0123456789$g#67",
        &[too_long(limit), packet(b"g")],
    );
    // The skipped part still honours escapes and run-length counts.
    check_with(
        small(limit),
        b"$0123456789}#a*}#00+",
        &[too_long(limit), Event::Ack],
    );
    check_with(
        small(limit),
        b"$0123456789*$g#67",
        &[too_long(limit), packet(b"g")],
    );
    check_with(
        small(limit),
        b"$0123456}]#00-",
        &[too_long(limit), Event::Nack],
    );
    // An over-long frame cut short in its checksum.
    check_with(
        small(limit),
        b"$0123456789#0$g#67",
        &[too_long(limit), packet(b"g")],
    );
    check_with(small(0), b"$#00$g#67", &[packet(b""), too_long(0)]);
}

#[test]
fn garbage_is_reported_in_bounded_pieces() {
    let mut decoder = Decoder::with_config(small(16));
    decoder.feed(&[b'x'; 100]);
    let sizes: Vec<usize> = decoder
        .events()
        .map(|event| match event {
            Event::Garbage(bytes) => bytes.len(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(sizes, [16, 16, 16, 16, 16, 16, 4]);
}

#[test]
fn memory_stays_bounded() {
    let limit = 1024;
    let mut decoder = Decoder::with_config(small(limit));
    decoder.feed(b"$");
    let mut errors = 0;
    for _ in 0..1000 {
        decoder.feed(&[b'a'; 1000]);
        for event in decoder.events() {
            assert_eq!(event, too_long(limit));
            errors += 1;
        }
        assert!(decoder.payload.len() <= limit);
        assert!(decoder.input.capacity() <= 4 * 1000);
    }
    assert_eq!(errors, 1);
    decoder.feed(b"#00$g#67");
    assert_eq!(decoder.events().collect::<Vec<_>>(), [packet(b"g")]);
}

#[test]
fn state_queries_and_reset() {
    let mut decoder = Decoder::new();
    assert!(decoder.is_between_frames());
    decoder.feed(b"$qSupp");
    assert_eq!(decoder.buffered_len(), 6);
    assert_eq!(decoder.next_event(), None);
    assert!(!decoder.is_between_frames());
    decoder.reset();
    decoder.feed(b"$g#67");
    assert_eq!(decoder.next_event(), Some(packet(b"g")));
    decoder.set_verify_checksums(false);
    assert!(!decoder.config().verify_checksums);
}

/// A small deterministic generator (xorshift64*), so that no dependency is
/// needed and failures reproduce.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }

    /// Bytes biased towards the ones that matter to framing.
    fn byte(&mut self) -> u8 {
        const INTERESTING: &[u8] = b"$#}*%+-\x03 0a";
        if self.below(3) == 0 {
            INTERESTING[self.below(INTERESTING.len())]
        } else {
            self.next() as u8
        }
    }
}

#[test]
fn encode_then_decode_round_trips() {
    let mut random = Random(0x9e37_79b9_7f4a_7c15);
    for _ in 0..500 {
        let mut stream = Vec::new();
        let mut expected = Vec::new();
        for _ in 0..random.below(8) {
            match random.below(5) {
                0 => {
                    stream.push(b'+');
                    expected.push(Event::Ack);
                }
                1 => {
                    let junk: Vec<u8> = (0..1 + random.below(5))
                        .map(|_| random.byte())
                        .filter(|&byte| !is_frame_start_or_control(byte))
                        .collect();
                    stream.extend_from_slice(&junk);
                    match expected.last_mut() {
                        _ if junk.is_empty() => {}
                        Some(Event::Garbage(previous)) => previous.extend(junk),
                        _ => expected.push(Event::Garbage(junk)),
                    }
                }
                _ => {
                    let payload: Vec<u8> = (0..random.below(300)).map(|_| random.byte()).collect();
                    encode_packet(&payload, &mut stream);
                    expected.push(Event::Packet(Packet::from_payload(&payload)));
                }
            }
        }
        let mut chunks = Vec::new();
        let mut rest = stream.as_slice();
        while !rest.is_empty() {
            let (chunk, tail) = rest.split_at(1 + random.below(rest.len()));
            chunks.push(chunk);
            rest = tail;
        }
        let events = decode_chunks(&DecoderConfig::default(), &chunks);
        assert_eq!(events, expected);
        for event in events {
            if let Event::Packet(packet) = event {
                let decoded = packet.decoded().expect("encoder output decodes");
                assert_eq!(Packet::from_payload(&decoded), packet);
            }
        }
    }
}
