//! C-strings, the only scalar in MI: GDB writes them with C escapes (`\"`, `\\`, `\n`,
//! octal `\303` for non-ASCII bytes), and reads them back in command arguments.

use crate::error::ParseError;

/// Reads a c-string whose opening quote is at `line[start]`. Returns the unescaped
/// bytes and the offset just after the closing quote.
pub(crate) fn read(line: &[u8], start: usize) -> Result<(Vec<u8>, usize), ParseError> {
    if line.get(start) != Some(&b'"') {
        return Err(ParseError::Expected {
            expected: "'\"'",
            offset: start,
        });
    }
    let mut out = Vec::new();
    let mut at = start + 1;
    loop {
        let Some(&byte) = line.get(at) else {
            return Err(ParseError::UnterminatedString);
        };
        at += 1;
        match byte {
            b'"' => return Ok((out, at)),
            b'\\' => {
                let escape_at = at - 1;
                let Some(&next) = line.get(at) else {
                    return Err(ParseError::UnterminatedString);
                };
                at += 1;
                let plain = match next {
                    b'n' => b'\n',
                    b't' => b'\t',
                    b'r' => b'\r',
                    b'a' => 0x07,
                    b'b' => 0x08,
                    b'f' => 0x0c,
                    b'v' => 0x0b,
                    b'e' => 0x1b,
                    b'"' | b'\\' | b'\'' | b'?' => next,
                    b'0'..=b'7' => {
                        // One to three octal digits; GDB writes three.
                        let mut value = u32::from(next - b'0');
                        for _ in 0..2 {
                            match line.get(at) {
                                Some(&digit @ b'0'..=b'7') => {
                                    value = value * 8 + u32::from(digit - b'0');
                                    at += 1;
                                }
                                _ => break,
                            }
                        }
                        u8::try_from(value)
                            .map_err(|_| ParseError::InvalidEscape { offset: escape_at })?
                    }
                    _ => return Err(ParseError::InvalidEscape { offset: escape_at }),
                };
                out.push(plain);
            }
            _ => out.push(byte),
        }
    }
}

/// Writes `text` as a quoted c-string for a command line: `"` and `\` escaped. The
/// caller has rejected control characters, so the result is one line.
pub(crate) fn quote(text: &str, out: &mut String) {
    out.push('"');
    for c in text.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unescaped(text: &[u8]) -> Result<Vec<u8>, ParseError> {
        read(text, 0).map(|(bytes, _)| bytes)
    }

    #[test]
    fn escapes_as_gdb_writes_them() {
        assert_eq!(unescaped(br#""a\"b\\c\n""#).unwrap(), b"a\"b\\c\n");
        // GDB 18's warning prefix: U+26A0 U+FE0F as octal bytes.
        assert_eq!(
            unescaped(br#""\342\232\240\357\270\217 warning""#).unwrap(),
            "\u{26a0}\u{fe0f} warning".as_bytes()
        );
        assert_eq!(unescaped(br#""\0\12x""#).unwrap(), b"\0\nx");
        assert_eq!(read(br#""ab"rest"#, 0).unwrap().1, 4);
    }

    #[test]
    fn broken_strings_are_errors() {
        assert_eq!(unescaped(br#""abc"#), Err(ParseError::UnterminatedString));
        assert_eq!(unescaped(br#""abc\"#), Err(ParseError::UnterminatedString));
        assert_eq!(
            unescaped(br#""\q""#),
            Err(ParseError::InvalidEscape { offset: 1 })
        );
        assert_eq!(
            unescaped(br#""\777""#),
            Err(ParseError::InvalidEscape { offset: 1 })
        );
        assert!(matches!(
            unescaped(b"abc"),
            Err(ParseError::Expected { offset: 0, .. })
        ));
    }

    #[test]
    fn quoting_escapes_quotes_and_backslashes() {
        let mut out = String::new();
        quote(r#"1"; shell \x"#, &mut out);
        assert_eq!(out, r#""1\"; shell \\x""#);
        assert_eq!(unescaped(out.as_bytes()).unwrap(), br#"1"; shell \x"#);
    }
}
