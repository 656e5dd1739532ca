//! Writing frames: `$payload#cs` and `%payload#cs`, the checksum, and the escaping.
//!
//! Two kinds of input exist. A *payload* is the meaning of a packet, any bytes
//! at all (binary memory for `X`, a thread list, ...): [`encode_packet`]
//! escapes the four bytes that cannot appear on the wire. A *raw payload* is
//! what already travelled on the wire, escapes and run-length encoding
//! included (what [`Packet::raw`](super::Packet::raw) keeps):
//! [`encode_packet_raw`] writes it untouched, so a proxy forwards a packet
//! without decoding it.
//!
//! Escaping follows GDB: `$`, `#`, `}` and `*` are sent as `}` followed by the
//! byte XOR 0x20. Escaping `*` is what keeps a literal star in binary data from
//! being read as run-length encoding. This module never compresses.

/// Positive acknowledgement: the previous packet arrived intact.
pub const ACK: u8 = b'+';
/// Negative acknowledgement: please send the previous packet again.
pub const NACK: u8 = b'-';
/// The interrupt request (Ctrl-C), sent by a client outside any packet.
pub const INTERRUPT: u8 = 0x03;
/// The escape byte: the byte after it is XORed with [`ESCAPE_XOR`].
pub const ESCAPE: u8 = b'}';
/// What an escaped byte is XORed with.
pub const ESCAPE_XOR: u8 = 0x20;
/// The run-length marker: `X*n` repeats `X` a further `n - 29` times.
pub const RUN_LENGTH: u8 = b'*';

/// True for the bytes that [`escape_into`] escapes: `$ # } *`.
pub fn needs_escape(byte: u8) -> bool {
    matches!(byte, b'$' | b'#' | b'}' | b'*')
}

/// The position of the first byte of `bytes` that [`needs_escape`], which
/// is also the set of bytes with a meaning inside a raw payload.
///
/// Payloads are mostly hex digits, tens of kilobytes of them for a large
/// memory read, so this looks at eight bytes at a time: a byte equal to `c`
/// makes `word ^ c*0x01..01` have a zero byte, found with the classic
/// "has a zero byte" test. That test can flag a byte above a real zero
/// (borrow), never below one, so the lowest flag is a real match.
pub fn find_special(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let zero_bytes = |word: u64, byte: u8| {
        let x = word ^ (ONES * u64::from(byte));
        x.wrapping_sub(ONES) & !x & HIGHS
    };
    let mut chunks = bytes.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word);
        let found = zero_bytes(word, b'$')
            | zero_bytes(word, b'#')
            | zero_bytes(word, b'}')
            | zero_bytes(word, b'*');
        if found != 0 {
            let index = offset + (found.trailing_zeros() / 8) as usize;
            debug_assert!(needs_escape(bytes[index]));
            return Some(index);
        }
        offset += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&byte| needs_escape(byte))
        .map(|position| offset + position)
}

/// The RSP checksum: the sum of the raw payload bytes, modulo 256.
pub fn checksum(raw_payload: &[u8]) -> u8 {
    raw_payload
        .iter()
        .fold(0u8, |sum, &byte| sum.wrapping_add(byte))
}

/// Appends `payload` with `$ # } *` escaped.
pub fn escape_into(payload: &[u8], out: &mut Vec<u8>) {
    out.reserve(payload.len());
    let mut rest = payload;
    while let Some(index) = find_special(rest) {
        out.extend_from_slice(&rest[..index]);
        out.push(ESCAPE);
        out.push(rest[index] ^ ESCAPE_XOR);
        rest = &rest[index + 1..];
    }
    out.extend_from_slice(rest);
}

/// Appends the frame `$payload#cs`, escaping `payload`.
pub fn encode_packet(payload: &[u8], out: &mut Vec<u8>) {
    encode_escaped(b'$', payload, out);
}

/// Appends the notification frame `%payload#cs`, escaping `payload`.
pub fn encode_notification(payload: &[u8], out: &mut Vec<u8>) {
    encode_escaped(b'%', payload, out);
}

/// Appends the frame `$raw_payload#cs` without escaping anything.
///
/// `raw_payload` must already be in wire form: no unescaped `#` or `$`.
/// Any [`Packet::raw`](super::Packet::raw) from the decoder qualifies.
pub fn encode_packet_raw(raw_payload: &[u8], out: &mut Vec<u8>) {
    encode_raw(b'$', raw_payload, out);
}

/// Appends the notification frame `%raw_payload#cs` without escaping anything.
pub fn encode_notification_raw(raw_payload: &[u8], out: &mut Vec<u8>) {
    encode_raw(b'%', raw_payload, out);
}

/// Returns the frame `$payload#cs` as a new vector, escaping `payload`.
pub fn packet_frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 4);
    encode_packet(payload, &mut out);
    out
}

fn encode_escaped(start: u8, payload: &[u8], out: &mut Vec<u8>) {
    out.push(start);
    let body_start = out.len();
    escape_into(payload, out);
    let sum = checksum(&out[body_start..]);
    push_trailer(sum, out);
}

fn encode_raw(start: u8, raw_payload: &[u8], out: &mut Vec<u8>) {
    out.reserve(raw_payload.len() + 4);
    out.push(start);
    out.extend_from_slice(raw_payload);
    push_trailer(checksum(raw_payload), out);
}

fn push_trailer(sum: u8, out: &mut Vec<u8>) {
    out.push(b'#');
    crate::hex::write_hex_u8(sum, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(payload: &[u8], expected: &[u8]) {
        let mut out = Vec::new();
        encode_packet(payload, &mut out);
        assert_eq!(
            out.escape_ascii().to_string(),
            expected.escape_ascii().to_string(),
            "payload {:?}",
            payload.escape_ascii().to_string()
        );
    }

    #[test]
    fn frames() {
        check(b"", b"$#00");
        check(b"OK", b"$OK#9a");
        check(b"g", b"$g#67");
        check(b"?", b"$?#3f");
        check(b"vCont?", b"$vCont?#49");
        check(b"m20000000,4", b"$m20000000,4#4f");
        check(b"T05thread:p01.01;", b"$T05thread:p01.01;#06");
        check(b"qSupported:multiprocess+", b"$qSupported:multiprocess+#c6");
    }

    #[test]
    fn escapes() {
        check(b"$", b"$}\x04#81");
        check(b"#", b"$}\x03#80");
        check(b"}", b"$}]#da");
        check(b"*", b"$}\x0a#87");
        check(b"X0,4:a$#}", b"$X0,4:a}\x04}\x03}]#5e");
        // Interrupt bytes and high bytes are data, not escaped.
        check(b"\x03\xff", b"$\x03\xff#02");
    }

    #[test]
    fn notifications_and_raw() {
        let mut out = Vec::new();
        encode_notification(b"Stop:T05", &mut out);
        assert_eq!(out, b"%Stop:T05#99");
        out.clear();
        encode_packet_raw(b"0* ", &mut out);
        assert_eq!(out, b"$0* #7a");
        out.clear();
        encode_notification_raw(b"Stop:T05", &mut out);
        assert_eq!(out, b"%Stop:T05#99");
        assert_eq!(packet_frame(b"OK"), b"$OK#9a");
    }

    #[test]
    fn find_special_agrees_with_a_plain_scan() {
        let naive = |bytes: &[u8]| bytes.iter().position(|&byte| needs_escape(byte));
        // Every special at every position of a 20-byte run, with neighbours
        // that stress the borrow of the word test (0x00, 0x01, 0x80, 0xff,
        // and the specials' own neighbours).
        let fillers = [
            b'0', b'f', 0x00, 0x01, 0x80, 0xff, b'"', b'%', b'|', b'~', b')', b'+',
        ];
        for filler in fillers {
            for special in [b'$', b'#', b'}', b'*'] {
                for position in 0..20 {
                    let mut bytes = vec![filler; 20];
                    bytes[position] = special;
                    assert_eq!(
                        find_special(&bytes),
                        Some(position),
                        "{filler:#x} {special}"
                    );
                    for length in 0..20 {
                        assert_eq!(find_special(&bytes[..length]), naive(&bytes[..length]));
                    }
                }
            }
            assert_eq!(find_special(&[filler; 33]), None);
        }
        // A pseudo-random walk over all byte values.
        let mut state = 0x1234_5678u32;
        let bytes: Vec<u8> = (0..4096)
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (state >> 24) as u8
            })
            .collect();
        for start in 0..64 {
            assert_eq!(find_special(&bytes[start..]), naive(&bytes[start..]));
        }
    }

    #[test]
    fn checksums() {
        assert_eq!(checksum(b""), 0);
        assert_eq!(checksum(b"OK"), 0x9a);
        assert_eq!(checksum(&[0xff, 0x02]), 0x01);
    }
}
