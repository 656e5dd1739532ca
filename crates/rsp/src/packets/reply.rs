//! The standard replies that any command can get: `OK`, `Exx`, `E.text`, and
//! the empty reply that means "not supported".
//!
//! A proxy looks at these first: after them comes the reply grammar of the
//! particular command (registers, memory, a stop reply, ...). They are never
//! ambiguous with other replies: an error is exactly `E` and two hex digits or
//! `E.` and text, and no hex data reply has an odd length.

use crate::hex::{is_hex, parse_hex_u8, write_hex_u8};

/// Error codes the gateway uses in replies it makes itself.
///
/// GDB shows the number and nothing else; QEMU uses the errno values listed.
pub mod error_code {
    /// Operation not permitted (refused by the gateway's policy).
    pub const EPERM: u8 = 0x01;
    /// Bad address: QEMU's answer to an unmapped `m`.
    pub const EFAULT: u8 = 0x0e;
    /// Invalid argument: QEMU's answer to a malformed or too long request.
    pub const EINVAL: u8 = 0x16;
}

/// An error reply.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ErrorReply {
    /// `Exx`: a number, usually an errno.
    Code(u8),
    /// `E.text`: a message (GDB 9+ when `error-message+` was agreed on).
    Text(String),
}

impl ErrorReply {
    /// Parses `Exx` or `E.text`; `None` for anything else.
    pub fn parse(payload: &[u8]) -> Option<ErrorReply> {
        let rest = payload.strip_prefix(b"E")?;
        if let Some(text) = rest.strip_prefix(b".") {
            return Some(ErrorReply::Text(String::from_utf8_lossy(text).into_owned()));
        }
        if rest.len() == 2 && is_hex(rest) {
            return parse_hex_u8(rest).ok().map(ErrorReply::Code);
        }
        None
    }

    /// Appends `Exx` or `E.text`.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.push(b'E');
        match self {
            ErrorReply::Code(code) => write_hex_u8(*code, out),
            ErrorReply::Text(text) => {
                out.push(b'.');
                out.extend_from_slice(text.as_bytes());
            }
        }
    }
}

/// One of the replies that can answer any command.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StandardReply {
    /// `OK`
    Ok,
    /// The empty reply: the command is not supported.
    Empty,
    /// `Exx` or `E.text`.
    Error(ErrorReply),
}

impl StandardReply {
    /// Recognises `OK`, the empty reply and errors; `None` for anything else,
    /// which then belongs to the grammar of the command that was sent.
    pub fn parse(payload: &[u8]) -> Option<StandardReply> {
        match payload {
            b"OK" => Some(StandardReply::Ok),
            b"" => Some(StandardReply::Empty),
            _ => ErrorReply::parse(payload).map(StandardReply::Error),
        }
    }

    /// Appends the payload.
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            StandardReply::Ok => out.extend_from_slice(b"OK"),
            StandardReply::Empty => {}
            StandardReply::Error(error) => error.write(out),
        }
    }
}

/// Appends `OK`.
pub fn write_ok(out: &mut Vec<u8>) {
    out.extend_from_slice(b"OK");
}

/// Appends `Exx`.
pub fn write_error(code: u8, out: &mut Vec<u8>) {
    ErrorReply::Code(code).write(out);
}

/// Appends `E.text`.
pub fn write_error_text(text: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(b"E.");
    out.extend_from_slice(text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Option<StandardReply>) {
        let parsed = StandardReply::parse(input.as_bytes());
        assert_eq!(parsed, expected, "input {input:?}");
        if let Some(reply) = parsed {
            let mut out = Vec::new();
            reply.write(&mut out);
            assert_eq!(out, input.as_bytes());
        }
    }

    fn error(code: u8) -> Option<StandardReply> {
        Some(StandardReply::Error(ErrorReply::Code(code)))
    }

    #[test]
    fn standard_replies() {
        check("OK", Some(StandardReply::Ok));
        check("", Some(StandardReply::Empty));
        check("E22", error(0x22));
        check("E0e", error(0x0e));
        check("E16", error(0x16));
        check(
            "E.no such register",
            Some(StandardReply::Error(ErrorReply::Text(
                "no such register".into(),
            ))),
        );
        check(
            "E.",
            Some(StandardReply::Error(ErrorReply::Text(String::new()))),
        );
        // Data replies, not standard ones.
        check("E1", None);
        check("E123", None);
        check("Exy", None);
        check("OKAY", None);
        check("00000020", None);
        check("T05thread:p01.01;", None);
    }

    #[test]
    fn writing_errors() {
        let mut out = Vec::new();
        write_error(error_code::EINVAL, &mut out);
        out.push(b' ');
        write_error_text("refused by the gateway", &mut out);
        out.push(b' ');
        write_ok(&mut out);
        assert_eq!(out, b"E16 E.refused by the gateway OK");
    }
}
