//! Writing MI commands so that what a user typed stays one argument of one command.
//!
//! Every argument from outside is written as a quoted c-string with `"` and `\`
//! escaped, and control characters (a newline would end the command and start the
//! next one) are refused rather than escaped, so no input can reach GDB as a second
//! command. Words written without quotes (option names, `--thread 1`, `host:port`,
//! which some commands do not unquote) are held to a safe character set.

use crate::cstring;
use crate::error::CommandError;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Word(String),
    Quoted(String),
}

/// One MI command: `-operation`, then words and quoted arguments in order.
///
/// ```
/// use virserver_mi::Command;
///
/// let line = Command::new("data-evaluate-expression")
///     .word("--thread").word("1")
///     .arg("x == \"a\"")
///     .encode(7)
///     .unwrap();
/// assert_eq!(line, "7-data-evaluate-expression --thread 1 \"x == \\\"a\\\"\"\n");
/// assert!(Command::new("data-evaluate-expression").arg("1\n-gdb-exit").encode(8).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    operation: String,
    parts: Vec<Part>,
}

impl Command {
    /// `operation` without its leading `-`, like `stack-list-frames`.
    pub fn new(operation: &str) -> Self {
        Self {
            operation: operation.to_owned(),
            parts: Vec::new(),
        }
    }

    /// An unquoted word: letters, digits and `_ . : - / * @ [ ] +` only.
    pub fn word(mut self, word: impl Into<String>) -> Self {
        self.parts.push(Part::Word(word.into()));
        self
    }

    /// A quoted argument: any text without control characters.
    pub fn arg(mut self, text: impl Into<String>) -> Self {
        self.parts.push(Part::Quoted(text.into()));
        self
    }

    /// The command line with `token`, newline included, or why it cannot be written.
    pub fn encode(&self, token: u64) -> Result<String, CommandError> {
        if self.operation.is_empty()
            || !self
                .operation
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(CommandError::BadOperation);
        }
        let mut line = format!("{token}-{}", self.operation);
        for (argument, part) in self.parts.iter().enumerate() {
            line.push(' ');
            match part {
                Part::Word(word) => {
                    if word.is_empty() || !word.bytes().all(is_word_byte) {
                        return Err(CommandError::BadWord { argument });
                    }
                    line.push_str(word);
                }
                Part::Quoted(text) => {
                    if let Some((offset, byte)) =
                        text.bytes().enumerate().find(|(_, b)| b.is_ascii_control())
                    {
                        return Err(CommandError::ControlCharacter {
                            argument,
                            offset,
                            byte,
                        });
                    }
                    cstring::quote(text, &mut line);
                }
            }
        }
        line.push('\n');
        Ok(line)
    }
}

fn is_word_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"_.:-/*@[]+".contains(&byte)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_arguments() {
        let line = Command::new("target-select")
            .word("extended-remote")
            .word("127.0.0.1:40123")
            .encode(3)
            .unwrap();
        assert_eq!(line, "3-target-select extended-remote 127.0.0.1:40123\n");
        let line = Command::new("var-create")
            .arg("-")
            .arg("*")
            .arg(r"a\b")
            .encode(12)
            .unwrap();
        assert_eq!(line, "12-var-create \"-\" \"*\" \"a\\\\b\"\n");
    }

    #[test]
    fn nothing_can_start_a_second_command() {
        for (text, byte) in [
            ("1\n-gdb-exit", b'\n'),
            ("1\r-gdb-exit", b'\r'),
            ("x\0", 0),
            ("\x7f", 0x7f),
            ("\x1b[2J", 0x1b),
        ] {
            let error = Command::new("data-evaluate-expression")
                .arg(text)
                .encode(1)
                .unwrap_err();
            assert!(
                matches!(error, CommandError::ControlCharacter { byte: b, argument: 0, .. } if b == byte),
                "{text:?}: {error:?}"
            );
        }
        // Quotes and backslashes are escaped: still one argument.
        let line = Command::new("data-evaluate-expression")
            .arg("1\"; shell echo pwned")
            .encode(1)
            .unwrap();
        assert_eq!(
            line,
            "1-data-evaluate-expression \"1\\\"; shell echo pwned\"\n"
        );
        assert_eq!(line.matches('\n').count(), 1);
        // Non-ASCII text passes unchanged inside the quotes.
        assert!(
            Command::new("x")
                .arg("é")
                .encode(1)
                .unwrap()
                .contains("\"é\"")
        );
    }

    #[test]
    fn bad_words_and_operations_are_refused() {
        assert_eq!(
            Command::new("gdb-set").word("x y").encode(1),
            Err(CommandError::BadWord { argument: 0 })
        );
        assert_eq!(
            Command::new("gdb-set").arg("ok").word("").encode(1),
            Err(CommandError::BadWord { argument: 1 })
        );
        assert_eq!(
            Command::new("gdb-set").word("a\"b").encode(1),
            Err(CommandError::BadWord { argument: 0 })
        );
        assert_eq!(
            Command::new("gdb-exit\n-x").encode(1),
            Err(CommandError::BadOperation)
        );
        assert_eq!(Command::new("").encode(1), Err(CommandError::BadOperation));
    }
}
