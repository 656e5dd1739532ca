//! One line of GDB/MI output as a typed record, and the grammar that reads it
//! (GDB manual, "GDB/MI Output Syntax"):
//!
//! ```text
//! result-record  [token] "^" result-class ("," result)*
//! async-record   [token] ("*" | "+" | "=") async-class ("," result)*
//! stream-record  ("~" | "@" | "&") c-string
//! prompt         "(gdb)"
//! result         variable "=" value
//! value          c-string | "{" [result ("," result)*] "}"
//!                | "[" [value ("," value)* | result ("," result)*] "]"
//! ```

use crate::cstring;
use crate::error::ParseError;
use crate::value::{Field, Results, Value};

/// How deep tuples and lists may nest. GDB's own output nests a handful of levels;
/// the bound keeps a hostile line from exhausting the stack.
pub const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultClass {
    Done,
    Running,
    Connected,
    Error,
    Exit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsyncKind {
    /// `*`: the target's run state changed (`*running`, `*stopped`).
    Exec,
    /// `+`: progress of a slow operation.
    Status,
    /// `=`: something GDB wants clients to know (`=thread-created`, ...).
    Notify,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// `~`: what the CLI would print.
    Console,
    /// `@`: output of the target program.
    Target,
    /// `&`: GDB's own log: warnings, echoed errors.
    Log,
}

/// The answer to one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultRecord {
    pub token: Option<u64>,
    pub class: ResultClass,
    pub results: Results,
}

impl ResultRecord {
    /// GDB's message of an `^error` record.
    pub fn error_message(&self) -> Option<&str> {
        match self.class {
            ResultClass::Error => self.results.get_str("msg"),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsyncRecord {
    pub token: Option<u64>,
    pub kind: AsyncKind,
    /// `stopped`, `running`, `thread-group-exited`, ...
    pub class: String,
    pub results: Results,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Result(ResultRecord),
    Async(AsyncRecord),
    /// A stream record's text, unescaped.
    Stream {
        kind: StreamKind,
        text: String,
    },
    /// `(gdb)`: GDB waits for the next command.
    Prompt,
}

impl Record {
    /// Parses one line, without its line ending (a trailing `\r` is ignored).
    pub fn parse(line: &[u8]) -> Result<Record, ParseError> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let first = *line.first().ok_or(ParseError::Empty)?;
        if first == b'(' {
            return match line.strip_prefix(b"(gdb)") {
                Some(rest) if rest.iter().all(|&b| b == b' ') => Ok(Record::Prompt),
                _ => Err(ParseError::NotARecord(first)),
            };
        }
        let digits = line.iter().take_while(|b| b.is_ascii_digit()).count();
        let token = match digits {
            0 => None,
            _ => Some(
                std::str::from_utf8(&line[..digits])
                    .ok()
                    .and_then(|text| text.parse::<u64>().ok())
                    .ok_or(ParseError::TokenOutOfRange)?,
            ),
        };
        let Some(&marker) = line.get(digits) else {
            return Err(ParseError::NotARecord(first));
        };
        let mut parser = Parser {
            line,
            at: digits + 1,
        };
        let stream = |kind| -> Result<Record, ParseError> {
            if token.is_some() {
                return Err(ParseError::NotARecord(first));
            }
            let (bytes, end) = cstring::read(line, 1)?;
            if end != line.len() {
                return Err(ParseError::Expected {
                    expected: "end of line",
                    offset: end,
                });
            }
            Ok(Record::Stream {
                kind,
                text: String::from_utf8_lossy(&bytes).into_owned(),
            })
        };
        match marker {
            b'~' => stream(StreamKind::Console),
            b'@' => stream(StreamKind::Target),
            b'&' => stream(StreamKind::Log),
            b'^' => {
                let class = match parser.word() {
                    b"done" => ResultClass::Done,
                    b"running" => ResultClass::Running,
                    b"connected" => ResultClass::Connected,
                    b"error" => ResultClass::Error,
                    b"exit" => ResultClass::Exit,
                    _ => return Err(ParseError::UnknownResultClass),
                };
                let results = parser.trailing_results()?;
                Ok(Record::Result(ResultRecord {
                    token,
                    class,
                    results,
                }))
            }
            b'*' | b'+' | b'=' => {
                let kind = match marker {
                    b'*' => AsyncKind::Exec,
                    b'+' => AsyncKind::Status,
                    _ => AsyncKind::Notify,
                };
                let class = parser.word();
                if class.is_empty() {
                    return Err(ParseError::Expected {
                        expected: "an async class",
                        offset: parser.at,
                    });
                }
                let class = String::from_utf8_lossy(class).into_owned();
                let results = parser.trailing_results()?;
                Ok(Record::Async(AsyncRecord {
                    token,
                    kind,
                    class,
                    results,
                }))
            }
            _ => Err(ParseError::NotARecord(first)),
        }
    }
}

struct Parser<'a> {
    line: &'a [u8],
    at: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.line.get(self.at).copied()
    }

    fn expect(&mut self, byte: u8, expected: &'static str) -> Result<(), ParseError> {
        if self.peek() == Some(byte) {
            self.at += 1;
            Ok(())
        } else {
            Err(ParseError::Expected {
                expected,
                offset: self.at,
            })
        }
    }

    /// A class name: letters, digits, `-` and `_`.
    fn word(&mut self) -> &'a [u8] {
        let start = self.at;
        while self
            .peek()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            self.at += 1;
        }
        &self.line[start..self.at]
    }

    /// `("," result)*` up to the end of the line.
    fn trailing_results(&mut self) -> Result<Results, ParseError> {
        let mut fields = Vec::new();
        while self.peek().is_some() {
            self.expect(b',', "',' or end of line")?;
            fields.push(self.result(0)?);
        }
        Ok(Results(fields))
    }

    fn result(&mut self, depth: usize) -> Result<Field, ParseError> {
        let start = self.at;
        while self
            .peek()
            .is_some_and(|b| !matches!(b, b'=' | b',' | b'{' | b'}' | b'[' | b']' | b'"'))
        {
            self.at += 1;
        }
        if self.at == start {
            return Err(ParseError::Expected {
                expected: "a variable name",
                offset: start,
            });
        }
        let name = String::from_utf8_lossy(&self.line[start..self.at]).into_owned();
        self.expect(b'=', "'='")?;
        let value = self.value(depth)?;
        Ok(Field { name, value })
    }

    fn value(&mut self, depth: usize) -> Result<Value, ParseError> {
        if depth >= MAX_DEPTH {
            return Err(ParseError::TooDeep(MAX_DEPTH));
        }
        match self.peek() {
            Some(b'"') => {
                let (bytes, end) = cstring::read(self.line, self.at)?;
                self.at = end;
                Ok(Value::Const(String::from_utf8_lossy(&bytes).into_owned()))
            }
            Some(b'{') => {
                self.at += 1;
                let mut fields = Vec::new();
                if self.peek() != Some(b'}') {
                    loop {
                        fields.push(self.result(depth + 1)?);
                        if self.peek() != Some(b',') {
                            break;
                        }
                        self.at += 1;
                    }
                }
                self.expect(b'}', "',' or '}'")?;
                Ok(Value::Tuple(Results(fields)))
            }
            Some(b'[') => {
                self.at += 1;
                let value = match self.peek() {
                    Some(b']') => Value::List(Vec::new()),
                    Some(b'"' | b'{' | b'[') => {
                        let mut values = Vec::new();
                        loop {
                            values.push(self.value(depth + 1)?);
                            if self.peek() != Some(b',') {
                                break;
                            }
                            self.at += 1;
                        }
                        Value::List(values)
                    }
                    _ => {
                        let mut fields = Vec::new();
                        loop {
                            fields.push(self.result(depth + 1)?);
                            if self.peek() != Some(b',') {
                                break;
                            }
                            self.at += 1;
                        }
                        Value::ResultList(Results(fields))
                    }
                };
                self.expect(b']', "',' or ']'")?;
                Ok(value)
            }
            _ => Err(ParseError::Expected {
                expected: "a value",
                offset: self.at,
            }),
        }
    }
}
