//! `qRcmd,hex` (GDB's `monitor` command) and the `O hex` console output
//! packets that carry its answer.
//!
//! The command text travels hex-encoded. QEMU runs it as an HMP command (any
//! of them: `info registers`, `system_reset`, `savevm`...) and answers with
//! zero or more `O<hex>` packets and then a separate `OK` or `Exx`, so a
//! reader must keep reading until one of those. The same `O` packets can also
//! arrive while the target runs, before its stop reply.

use crate::error::ParseError;
use crate::hex::{decode_hex, encode_hex, is_hex};
use crate::packets::{ErrorReply, StandardReply};

/// Parses what follows `qRcmd`: `,hex`, decoded to text.
pub(super) fn parse_monitor_command(args: &[u8]) -> Result<String, ParseError> {
    let hex = args
        .strip_prefix(b",")
        .ok_or(ParseError::malformed("qRcmd", "expected ','"))?;
    let bytes = decode_hex(hex).map_err(ParseError::hex("qRcmd"))?;
    String::from_utf8(bytes).map_err(|_| ParseError::not_utf8("qRcmd"))
}

/// Appends `qRcmd,` and the hex of `command`.
pub(super) fn write_monitor_command(command: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(b"qRcmd,");
    encode_hex(command.as_bytes(), out);
}

/// Decodes an `O<hex>` console output packet; `None` if `payload` is not one
/// (`OK` is not, nor is a bare `O`).
pub fn parse_console_output(payload: &[u8]) -> Option<Vec<u8>> {
    let hex = payload.strip_prefix(b"O")?;
    if !is_hex(hex) {
        return None;
    }
    decode_hex(hex).ok()
}

/// Appends `O` and the hex of `text`. An empty `text` would make a bare `O`,
/// which GDB does not accept as output: send nothing instead.
pub fn write_console_output(text: &[u8], out: &mut Vec<u8>) {
    out.push(b'O');
    encode_hex(text, out);
}

/// One packet of the answer to `qRcmd`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MonitorReply {
    /// `O<hex>`: output; more packets follow.
    Output(Vec<u8>),
    /// `OK`: the command finished.
    Done,
    /// `<hex>`: the command finished with this output (an older form).
    FinalOutput(Vec<u8>),
    /// `Exx` or `E.text`: the command failed; finished.
    Error(ErrorReply),
    /// The empty reply: the stub has no monitor commands; finished.
    Unsupported,
}

impl MonitorReply {
    /// Classifies one decoded reply packet.
    pub fn parse(payload: &[u8]) -> Result<MonitorReply, ParseError> {
        if let Some(reply) = StandardReply::parse(payload) {
            return Ok(match reply {
                StandardReply::Ok => MonitorReply::Done,
                StandardReply::Empty => MonitorReply::Unsupported,
                StandardReply::Error(error) => MonitorReply::Error(error),
            });
        }
        if let Some(output) = parse_console_output(payload) {
            return Ok(MonitorReply::Output(output));
        }
        decode_hex(payload)
            .map(MonitorReply::FinalOutput)
            .map_err(ParseError::hex("qRcmd reply"))
    }

    /// True for every reply but [`MonitorReply::Output`]: the exchange is over.
    pub fn is_final(&self) -> bool {
        !matches!(self, MonitorReply::Output(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packets::Command;

    fn check(input: &str, expected: Result<MonitorReply, ()>) {
        assert_eq!(
            MonitorReply::parse(input.as_bytes()).map_err(drop),
            expected,
            "input {input:?}"
        );
    }

    #[test]
    fn monitor_commands() {
        // `monitor info registers`
        let payload = b"qRcmd,696e666f20726567697374657273";
        let command = Command::MonitorCommand {
            command: "info registers".into(),
        };
        assert_eq!(Command::parse(payload), Ok(command.clone()));
        assert_eq!(command.to_payload(), payload);
        assert_eq!(
            Command::parse(b"qRcmd,"),
            Ok(Command::MonitorCommand {
                command: String::new()
            })
        );
        assert!(Command::parse(b"qRcmd").is_err());
        assert!(Command::parse(b"qRcmd,6").is_err());
        assert!(Command::parse(b"qRcmd,ff").is_err());
    }

    #[test]
    fn monitor_replies() {
        check(
            "O52303d3030303030303030",
            Ok(MonitorReply::Output(b"R0=00000000".to_vec())),
        );
        check("OK", Ok(MonitorReply::Done));
        check("E01", Ok(MonitorReply::Error(ErrorReply::Code(1))));
        check("", Ok(MonitorReply::Unsupported));
        check("6f6b0a", Ok(MonitorReply::FinalOutput(b"ok\n".to_vec())));
        check("O", Err(()));
        check("Oxyz", Err(()));
        assert!(!MonitorReply::Output(Vec::new()).is_final());
        assert!(MonitorReply::Done.is_final());
    }

    #[test]
    fn console_output() {
        let mut out = Vec::new();
        write_console_output(b"hello\n", &mut out);
        assert_eq!(out, b"O68656c6c6f0a");
        assert_eq!(parse_console_output(&out), Some(b"hello\n".to_vec()));
        assert_eq!(parse_console_output(b"OK"), None);
        assert_eq!(parse_console_output(b"O"), None);
        assert_eq!(parse_console_output(b"O123"), None);
    }
}
