//! The Debug Console of a confined GDB (a session's DAP endpoint): a line runs only if
//! it inspects or controls the target. GDB's other commands reach the server's host
//! (`shell`, `python`, `source`, most `set`), and the client is not trusted with it.

/// Debug Console commands a confined GDB runs: reading and changing the target, never
/// the host. Matched on the first word, before any `/FMT`.
const CONSOLE_COMMANDS: &[&str] = &[
    "print",
    "p",
    "output",
    "call",
    "x",
    "info",
    "i",
    "bt",
    "backtrace",
    "where",
    "frame",
    "f",
    "up",
    "down",
    "ptype",
    "whatis",
    "list",
    "l",
    "display",
    "undisplay",
    "disassemble",
    "break",
    "b",
    "tbreak",
    "hbreak",
    "thbreak",
    "watch",
    "rwatch",
    "awatch",
    "delete",
    "d",
    "disable",
    "enable",
    "condition",
    "ignore",
    "step",
    "s",
    "next",
    "n",
    "stepi",
    "si",
    "nexti",
    "ni",
    "continue",
    "c",
    "finish",
    "until",
    "u",
    "advance",
    "monitor",
    "help",
    "thread",
    "p/x",
];

/// Whether a confined GDB runs this Debug Console line.
pub(super) fn allowed(line: &str) -> Result<(), String> {
    let line = line.trim();
    if line.contains(['\n', '\r']) {
        return Err("one console command at a time".into());
    }
    let word = line
        .split(|c: char| c.is_whitespace() || c == '/')
        .next()
        .unwrap_or_default();
    if word.is_empty() {
        return Ok(());
    }
    if word == "set" {
        let mut words = line.split_whitespace().skip(1);
        return match words.next() {
            Some("var" | "variable") => Ok(()),
            _ => Err("only `set var NAME = VALUE` is allowed here: other settings reach the server's host".into()),
        };
    }
    if CONSOLE_COMMANDS.contains(&word) {
        Ok(())
    } else {
        Err(format!(
            "`{word}` is not allowed on the server's GDB (commands that inspect and control the target are: print, x, info, bt, frame, break, step, next, continue, ...)"
        ))
    }
}
