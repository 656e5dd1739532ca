//! DAP framing: each message is `Content-Length: N\r\n` (other header lines allowed and
//! ignored), an empty line, then N bytes of JSON. Bytes are fed as they arrive; a message
//! is handed out once complete.
//!
//! Garbage is typed, never a panic: a header without a length or with a length above
//! [`MAX_MESSAGE`] cannot be resynchronised (the stream has no other delimiter), so it
//! is fatal for the connection; a well-framed body that is not a JSON object is skipped
//! and reported, and the stream goes on.

use serde_json::Value;

/// The largest message accepted, header excluded. A `writeMemory` of VS Code's memory
/// view or a big `setBreakpoints` stays far below it.
pub const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// The longest header block accepted before its empty line.
const MAX_HEADER: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DapError {
    #[error("DAP header without Content-Length: {0:?}")]
    MissingLength(String),
    #[error("DAP header with a bad Content-Length: {0:?}")]
    BadLength(String),
    #[error("DAP message of {0} bytes exceeds the limit of {MAX_MESSAGE}")]
    TooLarge(usize),
    #[error("DAP header longer than {MAX_HEADER} bytes without an empty line")]
    HeaderTooLong,
    #[error("DAP message is not a JSON object: {0}")]
    BadJson(String),
}

impl DapError {
    /// True when the stream cannot go on after this error.
    pub fn is_fatal(&self) -> bool {
        !matches!(self, DapError::BadJson(_))
    }
}

/// Cuts a byte stream into DAP messages.
#[derive(Debug, Default)]
pub struct Decoder {
    buffer: Vec<u8>,
    /// The body length of the message whose header has been read.
    body: Option<usize>,
    failed: bool,
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        if !self.failed {
            self.buffer.extend_from_slice(bytes);
        }
    }

    /// The next complete message, `None` when more bytes are needed. After a fatal
    /// error every later call answers `None`.
    pub fn next_message(&mut self) -> Option<Result<Value, DapError>> {
        if self.failed {
            return None;
        }
        let length = match self.body {
            Some(length) => length,
            None => match self.header() {
                None => return None,
                Some(Ok(length)) => {
                    self.body = Some(length);
                    length
                }
                Some(Err(error)) => {
                    self.failed = true;
                    self.buffer.clear();
                    return Some(Err(error));
                }
            },
        };
        if self.buffer.len() < length {
            return None;
        }
        self.body = None;
        let body: Vec<u8> = self.buffer.drain(..length).collect();
        Some(match serde_json::from_slice::<Value>(&body) {
            Ok(value) if value.is_object() => Ok(value),
            Ok(other) => Err(DapError::BadJson(format!("a JSON {}", kind(&other)))),
            Err(error) => Err(DapError::BadJson(error.to_string())),
        })
    }

    /// Reads a header block off the buffer: `None` when incomplete.
    fn header(&mut self) -> Option<Result<usize, DapError>> {
        let Some(end) = find(&self.buffer, b"\r\n\r\n") else {
            return (self.buffer.len() > MAX_HEADER).then_some(Err(DapError::HeaderTooLong));
        };
        let block: Vec<u8> = self.buffer.drain(..end + 4).collect();
        let text = String::from_utf8_lossy(&block[..end]).into_owned();
        let mut length = None;
        for line in text.split("\r\n") {
            let Some((name, value)) = line.split_once(':') else {
                return Some(Err(DapError::MissingLength(text)));
            };
            if name.trim().eq_ignore_ascii_case("content-length") {
                match value.trim().parse::<usize>() {
                    Ok(n) if n > MAX_MESSAGE => return Some(Err(DapError::TooLarge(n))),
                    Ok(n) => length = Some(n),
                    Err(_) => return Some(Err(DapError::BadLength(line.to_owned()))),
                }
            }
        }
        Some(length.ok_or(DapError::MissingLength(text)))
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// One message, framed.
pub fn encode(message: &Value) -> Vec<u8> {
    let body = message.to_string();
    let mut out = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn messages_are_cut_from_pieces_of_any_size() {
        let one = json!({"seq": 1, "type": "request", "command": "initialize"});
        let two = json!({"seq": 2, "type": "request", "command": "threads", "x": "é\r\n\r\n"});
        let mut bytes = encode(&one);
        bytes.extend(encode(&two));
        for size in 1..bytes.len() {
            let mut decoder = Decoder::new();
            let mut out = Vec::new();
            for chunk in bytes.chunks(size) {
                decoder.feed(chunk);
                while let Some(message) = decoder.next_message() {
                    out.push(message.unwrap());
                }
            }
            assert_eq!(out, vec![one.clone(), two.clone()], "chunk size {size}");
        }
    }

    #[test]
    fn other_header_lines_are_ignored() {
        let mut decoder = Decoder::new();
        decoder.feed(b"Content-Type: application/vscode-jsonrpc\r\ncontent-length: 2\r\n\r\n{}");
        assert_eq!(decoder.next_message(), Some(Ok(json!({}))));
    }

    #[test]
    fn a_bad_body_is_skipped_and_the_stream_goes_on() {
        let mut decoder = Decoder::new();
        decoder.feed(b"Content-Length: 3\r\n\r\n[1]Content-Length: 4\r\n\r\nnope");
        decoder.feed(&encode(&json!({"seq": 3})));
        assert!(matches!(
            decoder.next_message(),
            Some(Err(DapError::BadJson(_)))
        ));
        let error = decoder.next_message().unwrap().unwrap_err();
        assert!(!error.is_fatal(), "{error}");
        assert_eq!(decoder.next_message(), Some(Ok(json!({"seq": 3}))));
    }

    #[test]
    fn headers_that_cannot_be_resynchronised_are_fatal() {
        for garbage in [
            &b"hello\r\n\r\n"[..],
            b"Content-Length: x\r\n\r\n",
            b"Content-Length: 99999999999\r\n\r\n",
            b"X-Other: 1\r\n\r\n",
        ] {
            let mut decoder = Decoder::new();
            decoder.feed(garbage);
            let error = decoder.next_message().unwrap().unwrap_err();
            assert!(error.is_fatal(), "{garbage:?}: {error}");
            decoder.feed(&encode(&json!({})));
            assert_eq!(decoder.next_message(), None);
        }
        let mut decoder = Decoder::new();
        decoder.feed(&[b'a'; MAX_HEADER + 1]);
        assert_eq!(decoder.next_message(), Some(Err(DapError::HeaderTooLong)));
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let pieces: [&[u8]; 6] = [
            b"Content-Length: ",
            b"\r\n",
            b"12",
            b"{\"a\":1}",
            b":",
            b"\xff",
        ];
        for _ in 0..2000 {
            let mut decoder = Decoder::new();
            for _ in 0..(next() % 12) {
                let piece = pieces[(next() % pieces.len() as u64) as usize];
                decoder.feed(piece);
                while decoder.next_message().is_some() {}
            }
        }
    }
}
