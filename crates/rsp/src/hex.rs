//! Hex helpers: almost every number and most data in the RSP travel as ASCII hex.
//!
//! Numbers (addresses, lengths, register numbers, thread ids) are big-endian
//! hex of any length, written by GDB without leading zeros and by QEMU
//! sometimes with them (`p01.01`). Data (memory, registers, console output)
//! is a string of hex byte pairs in memory order. Everything here accepts
//! both cases and writes lower case, as GDB does.

use crate::error::HexError;

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Marks a byte that is not a hex digit in [`DIGIT_VALUES`].
const NOT_HEX: u8 = 0xff;

/// The value of every byte as a hex digit, [`NOT_HEX`] for the others:
/// data payloads are hex, and a table keeps decoding them branch-free.
const DIGIT_VALUES: [u8; 256] = {
    let mut table = [NOT_HEX; 256];
    let mut index = 0;
    while index < 10 {
        table[b'0' as usize + index] = index as u8;
        index += 1;
    }
    let mut index = 0;
    while index < 6 {
        table[b'a' as usize + index] = 10 + index as u8;
        table[b'A' as usize + index] = 10 + index as u8;
        index += 1;
    }
    table
};

/// Every byte's two lower-case digits.
const BYTE_DIGITS: [[u8; 2]; 256] = {
    let mut table = [[0u8; 2]; 256];
    let mut byte = 0;
    while byte < 256 {
        table[byte] = [DIGITS[byte >> 4], DIGITS[byte & 0xf]];
        byte += 1;
    }
    table
};

/// Value of one hex digit, or `None` if `byte` is not `0-9a-fA-F`.
pub fn hex_digit_value(byte: u8) -> Option<u8> {
    match DIGIT_VALUES[usize::from(byte)] {
        NOT_HEX => None,
        value => Some(value),
    }
}

/// True if `bytes` is non-empty and made only of hex digits.
pub fn is_hex(bytes: &[u8]) -> bool {
    // Digit values fit in four bits; NOT_HEX sets the high ones.
    !bytes.is_empty()
        && bytes
            .iter()
            .fold(0u8, |bad, &byte| bad | DIGIT_VALUES[usize::from(byte)])
            & 0xf0
            == 0
}

/// Parses a big-endian hex number of any length into a `u64`.
///
/// Leading zeros are allowed in any number; an empty string is an error.
pub fn parse_hex_u64(digits: &[u8]) -> Result<u64, HexError> {
    if digits.is_empty() {
        return Err(HexError::Empty);
    }
    let mut value: u64 = 0;
    for &byte in digits {
        let digit = hex_digit_value(byte).ok_or(HexError::InvalidDigit { byte })?;
        if value >> 60 != 0 {
            return Err(HexError::Overflow { bits: 64 });
        }
        value = (value << 4) | u64::from(digit);
    }
    Ok(value)
}

/// Parses a big-endian hex number into a `u32`.
pub fn parse_hex_u32(digits: &[u8]) -> Result<u32, HexError> {
    let value = parse_hex_u64(digits)?;
    u32::try_from(value).map_err(|_| HexError::Overflow { bits: 32 })
}

/// Parses a big-endian hex number into a `u8` (signals, exit codes).
pub fn parse_hex_u8(digits: &[u8]) -> Result<u8, HexError> {
    let value = parse_hex_u64(digits)?;
    u8::try_from(value).map_err(|_| HexError::Overflow { bits: 8 })
}

/// Appends `value` as lower-case hex without leading zeros (`0` for zero).
pub fn write_hex_u64(value: u64, out: &mut Vec<u8>) {
    if value == 0 {
        out.push(b'0');
        return;
    }
    let n_digits = (64 - value.leading_zeros()).div_ceil(4);
    for index in (0..n_digits).rev() {
        out.push(DIGITS[((value >> (index * 4)) & 0xf) as usize]);
    }
}

/// Appends `value` as exactly two lower-case hex digits (signals, checksums).
pub fn write_hex_u8(value: u8, out: &mut Vec<u8>) {
    out.push(DIGITS[usize::from(value >> 4)]);
    out.push(DIGITS[usize::from(value & 0xf)]);
}

/// Appends each byte of `data` as two lower-case hex digits.
pub fn encode_hex(data: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.resize(start + data.len() * 2, 0);
    for (pair, &byte) in out[start..].chunks_exact_mut(2).zip(data) {
        pair.copy_from_slice(&BYTE_DIGITS[usize::from(byte)]);
    }
}

/// Returns `data` as a lower-case hex string.
pub fn hex_string(data: &[u8]) -> String {
    let mut out = Vec::with_capacity(data.len() * 2);
    encode_hex(data, &mut out);
    // Only ASCII hex digits were written.
    String::from_utf8_lossy(&out).into_owned()
}

/// Decodes a string of hex byte pairs, appending the bytes to `out`.
///
/// On error `out` may hold part of the data.
pub fn decode_hex_into(hex: &[u8], out: &mut Vec<u8>) -> Result<(), HexError> {
    if !hex.len().is_multiple_of(2) {
        return Err(HexError::OddLength);
    }
    let start = out.len();
    out.resize(start + hex.len() / 2, 0);
    // Branch-free: decode everything, remember whether any digit was bad.
    let mut bad = 0u8;
    for (byte, pair) in out[start..].iter_mut().zip(hex.chunks_exact(2)) {
        let high = DIGIT_VALUES[usize::from(pair[0])];
        let low = DIGIT_VALUES[usize::from(pair[1])];
        bad |= high | low;
        *byte = (high << 4) | (low & 0xf);
    }
    if bad & 0xf0 != 0 {
        let byte = hex
            .iter()
            .copied()
            .find(|&byte| DIGIT_VALUES[usize::from(byte)] == NOT_HEX)
            .unwrap_or_default();
        out.truncate(start);
        return Err(HexError::InvalidDigit { byte });
    }
    Ok(())
}

/// Decodes a string of hex byte pairs into a new vector.
pub fn decode_hex(hex: &[u8]) -> Result<Vec<u8>, HexError> {
    let mut out = Vec::with_capacity(hex.len() / 2);
    decode_hex_into(hex, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Result<u64, HexError>) {
        assert_eq!(parse_hex_u64(input.as_bytes()), expected, "input {input:?}");
        if let Ok(value) = expected {
            let mut out = Vec::new();
            write_hex_u64(value, &mut out);
            assert_eq!(parse_hex_u64(&out), Ok(value));
        }
    }

    #[test]
    fn numbers() {
        check("0", Ok(0));
        check("00000001", Ok(1));
        check("ffb", Ok(0xffb));
        check("FFB", Ok(0xffb));
        check("20000000", Ok(0x2000_0000));
        check("ffffffffffffffff", Ok(u64::MAX));
        check("0000ffffffffffffffff", Ok(u64::MAX));
        check("10000000000000000", Err(HexError::Overflow { bits: 64 }));
        check("", Err(HexError::Empty));
        check("12g4", Err(HexError::InvalidDigit { byte: b'g' }));
        check("-1", Err(HexError::InvalidDigit { byte: b'-' }));
    }

    #[test]
    fn narrow_numbers() {
        assert_eq!(parse_hex_u32(b"19"), Ok(25));
        assert_eq!(
            parse_hex_u32(b"100000000"),
            Err(HexError::Overflow { bits: 32 })
        );
        assert_eq!(parse_hex_u8(b"05"), Ok(5));
        assert_eq!(parse_hex_u8(b"100"), Err(HexError::Overflow { bits: 8 }));
    }

    #[test]
    fn writing_numbers() {
        for (value, expected) in [
            (0u64, "0"),
            (1, "1"),
            (0x800, "800"),
            (u64::MAX, "ffffffffffffffff"),
        ] {
            let mut out = Vec::new();
            write_hex_u64(value, &mut out);
            assert_eq!(out, expected.as_bytes());
        }
    }

    #[test]
    fn byte_strings() {
        assert_eq!(decode_hex(b"48656c6C6f"), Ok(b"Hello".to_vec()));
        assert_eq!(decode_hex(b""), Ok(Vec::new()));
        assert_eq!(decode_hex(b"486"), Err(HexError::OddLength));
        assert_eq!(
            decode_hex(b"4x"),
            Err(HexError::InvalidDigit { byte: b'x' })
        );
        assert_eq!(hex_string(&[0, 0x7f, 0xff]), "007fff");
        let all: Vec<u8> = (0..=255).collect();
        let mut encoded = Vec::new();
        encode_hex(&all, &mut encoded);
        assert_eq!(decode_hex(&encoded), Ok(all));
    }

    #[test]
    fn tables_agree_with_the_definition() {
        for byte in 0..=255u8 {
            let expected = match byte {
                b'0'..=b'9' => Some(byte - b'0'),
                b'a'..=b'f' => Some(byte - b'a' + 10),
                b'A'..=b'F' => Some(byte - b'A' + 10),
                _ => None,
            };
            assert_eq!(hex_digit_value(byte), expected, "byte {byte:#x}");
            assert_eq!(is_hex(&[b'0', byte]), expected.is_some(), "byte {byte:#x}");
            let mut out = Vec::new();
            encode_hex(&[byte], &mut out);
            assert_eq!(out, format!("{byte:02x}").as_bytes());
        }
        assert!(!is_hex(b""));
        // The first bad digit is reported, wherever it is, and `out` keeps
        // only what it had.
        let mut out = vec![1];
        let mut long = b"00".repeat(100);
        long[151] = b'z';
        assert_eq!(
            decode_hex_into(&long, &mut out),
            Err(HexError::InvalidDigit { byte: b'z' })
        );
        assert_eq!(out, [1]);
    }
}
