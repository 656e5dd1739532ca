//! QMP, QEMU's JSON control protocol, as a sans-IO codec: bytes in, typed messages out,
//! "need more" as `None`. The socket loop that drives it lives in `qmp_client.rs`.
//!
//! QMP is one JSON object per line. The server greets with `{"QMP": ...}`, answers each
//! command with `return` or `error` carrying the command's `id`, and sends `event`s at
//! any time in between.

use serde_json::{Value, json};

/// A line longer than this is treated as a broken peer, not buffered forever.
const MAX_LINE: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QmpError {
    #[error("QMP message is not valid JSON: {0}")]
    Json(String),
    #[error("QMP message of unknown shape: {0}")]
    Shape(String),
    #[error("QMP line longer than {MAX_LINE} bytes")]
    TooLong,
}

#[derive(Debug, Clone, PartialEq)]
pub enum QmpMessage {
    Greeting {
        version: String,
    },
    Return {
        id: Option<u64>,
        value: Value,
    },
    Error {
        id: Option<u64>,
        class: String,
        desc: String,
    },
    Event {
        name: String,
        data: Value,
    },
}

/// Splits a byte stream into QMP messages.
#[derive(Debug, Default)]
pub struct QmpDecoder {
    buffer: Vec<u8>,
    /// Set after an over-long line: bytes are dropped until the next newline.
    skipping: bool,
}

impl QmpDecoder {
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete message, `None` when more bytes are needed.
    pub fn next_message(&mut self) -> Option<Result<QmpMessage, QmpError>> {
        loop {
            let Some(newline) = self.buffer.iter().position(|b| *b == b'\n') else {
                if self.buffer.len() > MAX_LINE {
                    self.buffer.clear();
                    if !self.skipping {
                        self.skipping = true;
                        return Some(Err(QmpError::TooLong));
                    }
                }
                return None;
            };
            let line: Vec<u8> = self.buffer.drain(..=newline).collect();
            if std::mem::take(&mut self.skipping) {
                continue;
            }
            let text = String::from_utf8_lossy(&line);
            let text = text.trim();
            if text.is_empty() {
                continue;
            }
            return Some(parse_message(text));
        }
    }
}

fn parse_message(text: &str) -> Result<QmpMessage, QmpError> {
    let value: Value = serde_json::from_str(text).map_err(|e| QmpError::Json(e.to_string()))?;
    let id = value.get("id").and_then(Value::as_u64);
    if let Some(greeting) = value.get("QMP") {
        let version = &greeting["version"]["qemu"];
        return Ok(QmpMessage::Greeting {
            version: format!(
                "{}.{}.{}",
                version["major"], version["minor"], version["micro"]
            ),
        });
    }
    if let Some(result) = value.get("return") {
        return Ok(QmpMessage::Return {
            id,
            value: result.clone(),
        });
    }
    if let Some(error) = value.get("error") {
        return Ok(QmpMessage::Error {
            id,
            class: error["class"].as_str().unwrap_or("GenericError").to_owned(),
            desc: error["desc"].as_str().unwrap_or("").to_owned(),
        });
    }
    if let Some(name) = value.get("event").and_then(Value::as_str) {
        return Ok(QmpMessage::Event {
            name: name.to_owned(),
            data: value.get("data").cloned().unwrap_or(Value::Null),
        });
    }
    Err(QmpError::Shape(text.chars().take(200).collect()))
}

/// One command line, newline included.
pub fn encode_command(id: u64, command: &str, arguments: Option<Value>) -> Vec<u8> {
    let mut message = json!({ "execute": command, "id": id });
    if let Some(arguments) = arguments {
        message["arguments"] = arguments;
    }
    let mut line = message.to_string().into_bytes();
    line.push(b'\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(chunks: &[&[u8]], expected: &[Result<QmpMessage, QmpError>]) {
        let mut decoder = QmpDecoder::default();
        let mut seen = Vec::new();
        for chunk in chunks {
            decoder.feed(chunk);
            while let Some(message) = decoder.next_message() {
                seen.push(message);
            }
        }
        assert_eq!(seen, expected);
    }

    const GREETING: &[u8] = br#"{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian"}, "capabilities": ["oob"]}}
"#;

    #[test]
    fn greeting_return_error_event() {
        let greeting = Ok(QmpMessage::Greeting {
            version: "7.2.22".into(),
        });
        check(&[GREETING], std::slice::from_ref(&greeting));
        check(
            &[br#"{"return": {}, "id": 3}"#, b"\n"],
            &[Ok(QmpMessage::Return {
                id: Some(3),
                value: json!({}),
            })],
        );
        check(
            &[br#"{"id": 4, "error": {"class": "CommandNotFound", "desc": "The command nope has not been found"}}"#, b"\r\n"],
            &[Ok(QmpMessage::Error {
                id: Some(4),
                class: "CommandNotFound".into(),
                desc: "The command nope has not been found".into(),
            })],
        );
        check(
            &[
                br#"{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "STOP"}"#,
                b"\n",
            ],
            &[Ok(QmpMessage::Event {
                name: "STOP".into(),
                data: Value::Null,
            })],
        );
    }

    #[test]
    fn split_at_every_byte_gives_the_same_messages() {
        let mut whole = GREETING.to_vec();
        whole.extend_from_slice(b"{\"return\": {}}\n{\"event\": \"RESUME\"}\n");
        for split in 0..whole.len() {
            let mut decoder = QmpDecoder::default();
            decoder.feed(&whole[..split]);
            let mut count = 0;
            while decoder.next_message().is_some() {
                count += 1;
            }
            decoder.feed(&whole[split..]);
            while decoder.next_message().is_some() {
                count += 1;
            }
            assert_eq!(count, 3, "split at {split}");
        }
    }

    #[test]
    fn garbage_is_an_error_value_and_decoding_goes_on() {
        let mut decoder = QmpDecoder::default();
        decoder.feed(b"not json\n{\"x\": 1}\n{\"return\": 5}\n");
        assert!(matches!(
            decoder.next_message(),
            Some(Err(QmpError::Json(_)))
        ));
        assert!(matches!(
            decoder.next_message(),
            Some(Err(QmpError::Shape(_)))
        ));
        assert!(matches!(
            decoder.next_message(),
            Some(Ok(QmpMessage::Return { .. }))
        ));
        assert_eq!(decoder.next_message(), None);
    }

    #[test]
    fn overlong_line_is_dropped_once() {
        let mut decoder = QmpDecoder::default();
        decoder.feed(&vec![b'x'; MAX_LINE + 1]);
        assert_eq!(decoder.next_message(), Some(Err(QmpError::TooLong)));
        decoder.feed(b"yyy\n{\"return\": {}}\n");
        assert!(matches!(
            decoder.next_message(),
            Some(Ok(QmpMessage::Return { .. }))
        ));
    }

    #[test]
    fn encode_has_id_and_arguments() {
        let line = encode_command(
            7,
            "human-monitor-command",
            Some(json!({"command-line": "info"})),
        );
        let value: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(value["id"], 7);
        assert_eq!(value["arguments"]["command-line"], "info");
        assert_eq!(line.last(), Some(&b'\n'));
    }
}
