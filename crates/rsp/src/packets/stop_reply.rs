//! Stop replies: what the stub sends when the target stops, in answer to `?`
//! and, later, to any resume command (`c`, `s`, `vCont`, `bc`, ...).
//!
//! - `S sig`: stopped with a signal (`S05` is SIGTRAP).
//! - `T sig key:value;...`: the same with details: `thread:`, `core:`,
//!   `watch:`/`rwatch:`/`awatch:` with the data address, `swbreak:`,
//!   `hwbreak:`, and register values keyed by hex register number. QEMU sends
//!   `T05thread:p01.01;` at a breakpoint and `T02thread:p01.01;` after an
//!   interrupt, and no swbreak/hwbreak.
//! - `W code[;process:pid]`: the process exited; `X sig[;process:pid]`: it
//!   was killed by a signal. Either way it is gone.
//! - `O hex`: console output, not a stop: keep waiting for the stop.
//! - `N`: no resumed threads left (non-stop and `no-resumed+` only).
//!
//! A multiplexing proxy must see these to know whether the target runs: QEMU
//! also sends an unsolicited `T05` when QMP `cont` resumed the VM behind the
//! client's back, and `T02` to a client waiting on `c` after QMP `stop`.

use super::ThreadId;
use crate::error::ParseError;
use crate::hex::{
    decode_hex, encode_hex, is_hex, parse_hex_u8, parse_hex_u32, parse_hex_u64, write_hex_u8,
    write_hex_u64,
};
use crate::packets::{parse_console_output, write_console_output};

/// The three kinds of watchpoint that can report a stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WatchKind {
    /// `watch`: a write.
    Write,
    /// `rwatch`: a read.
    Read,
    /// `awatch`: a read or a write.
    Access,
}

impl WatchKind {
    /// The key used in `T` replies.
    pub fn key(self) -> &'static str {
        match self {
            WatchKind::Write => "watch",
            WatchKind::Read => "rwatch",
            WatchKind::Access => "awatch",
        }
    }
}

/// One `key:value` field of a `T` stop reply.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StopInfo {
    /// `thread:id`: the thread that stopped.
    Thread(ThreadId),
    /// `core:n`: the core it stopped on.
    Core(u64),
    /// `watch:addr`, `rwatch:addr` or `awatch:addr`: a watchpoint hit.
    Watch {
        /// Which kind of access triggered it.
        kind: WatchKind,
        /// The data address accessed.
        addr: u64,
    },
    /// `swbreak:`: a software breakpoint hit.
    SoftwareBreak,
    /// `hwbreak:`: a hardware breakpoint hit.
    HardwareBreak,
    /// `n:value`: the value of register `n`, in target byte order.
    Register {
        /// The register number (hex on the wire).
        regno: u32,
        /// Its value.
        value: Vec<u8>,
    },
    /// Any other field (`library:`, `fork:`, `exec:`, `replaylog:`, ...).
    Other {
        /// The key.
        key: String,
        /// The value, verbatim.
        value: String,
    },
}

impl StopInfo {
    fn parse(field: &[u8]) -> Result<StopInfo, ParseError> {
        let text = std::str::from_utf8(field).map_err(|_| ParseError::not_utf8("T"))?;
        let (key, value) = text
            .split_once(':')
            .ok_or(ParseError::malformed("T", "field without ':'"))?;
        let hex = ParseError::hex("T");
        let watch = |kind| {
            Ok(StopInfo::Watch {
                kind,
                addr: parse_hex_u64(value.as_bytes()).map_err(&hex)?,
            })
        };
        match key {
            "thread" => Ok(StopInfo::Thread(ThreadId::parse(value.as_bytes())?)),
            "core" => Ok(StopInfo::Core(
                parse_hex_u64(value.as_bytes()).map_err(&hex)?,
            )),
            "watch" => watch(WatchKind::Write),
            "rwatch" => watch(WatchKind::Read),
            "awatch" => watch(WatchKind::Access),
            "swbreak" => Ok(StopInfo::SoftwareBreak),
            "hwbreak" => Ok(StopInfo::HardwareBreak),
            _ if is_hex(key.as_bytes()) => Ok(StopInfo::Register {
                regno: parse_hex_u32(key.as_bytes()).map_err(&hex)?,
                value: decode_hex(value.as_bytes()).map_err(&hex)?,
            }),
            _ => Ok(StopInfo::Other {
                key: key.to_owned(),
                value: value.to_owned(),
            }),
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        match self {
            StopInfo::Thread(thread) => {
                out.extend_from_slice(b"thread:");
                thread.write(out);
            }
            StopInfo::Core(core) => {
                out.extend_from_slice(b"core:");
                write_hex_u64(*core, out);
            }
            StopInfo::Watch { kind, addr } => {
                out.extend_from_slice(kind.key().as_bytes());
                out.push(b':');
                write_hex_u64(*addr, out);
            }
            StopInfo::SoftwareBreak => out.extend_from_slice(b"swbreak:"),
            StopInfo::HardwareBreak => out.extend_from_slice(b"hwbreak:"),
            StopInfo::Register { regno, value } => {
                write_hex_u64(u64::from(*regno), out);
                out.push(b':');
                encode_hex(value, out);
            }
            StopInfo::Other { key, value } => {
                out.extend_from_slice(key.as_bytes());
                out.push(b':');
                out.extend_from_slice(value.as_bytes());
            }
        }
        out.push(b';');
    }
}

/// A stop reply, or console output received while waiting for one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StopReply {
    /// `S sig`
    Signal(u8),
    /// `T sig key:value;...`
    SignalWithInfo {
        /// The signal (5, SIGTRAP, for breakpoints and steps; 2 after an interrupt).
        signal: u8,
        /// The fields, in wire order.
        info: Vec<StopInfo>,
    },
    /// `W code[;process:pid]`: exited with `status`.
    Exited {
        /// The exit status.
        status: u8,
        /// The process, with the multiprocess extension.
        pid: Option<u64>,
    },
    /// `X sig[;process:pid]`: terminated by `signal`.
    Terminated {
        /// The signal.
        signal: u8,
        /// The process, with the multiprocess extension.
        pid: Option<u64>,
    },
    /// `O hex`: console output; the stop reply is still to come.
    ConsoleOutput(Vec<u8>),
    /// `N`: no resumed threads.
    NoResumed,
}

impl StopReply {
    /// Parses a decoded stop reply. `OK`, errors and the empty reply are not
    /// stop replies and give an error.
    pub fn parse(payload: &[u8]) -> Result<StopReply, ParseError> {
        let hex = ParseError::hex("stop reply");
        let Some((&letter, rest)) = payload.split_first() else {
            return Err(ParseError::malformed("stop reply", "empty"));
        };
        match letter {
            b'S' => Ok(StopReply::Signal(parse_hex_u8(rest).map_err(&hex)?)),
            b'T' => {
                let (signal, fields) = rest
                    .split_at_checked(2)
                    .ok_or(ParseError::malformed("T", "no signal"))?;
                let info = fields
                    .split(|&byte| byte == b';')
                    .filter(|field| !field.is_empty())
                    .map(StopInfo::parse)
                    .collect::<Result<_, _>>()?;
                Ok(StopReply::SignalWithInfo {
                    signal: parse_hex_u8(signal).map_err(&hex)?,
                    info,
                })
            }
            b'W' | b'X' => {
                let (code, pid) = match rest.iter().position(|&byte| byte == b';') {
                    Some(semicolon) => {
                        let process = rest[semicolon + 1..]
                            .strip_prefix(b"process:")
                            .ok_or(ParseError::malformed("W/X", "expected ';process:pid'"))?;
                        (
                            &rest[..semicolon],
                            Some(parse_hex_u64(process).map_err(&hex)?),
                        )
                    }
                    None => (rest, None),
                };
                let code = parse_hex_u8(code).map_err(&hex)?;
                Ok(if letter == b'W' {
                    StopReply::Exited { status: code, pid }
                } else {
                    StopReply::Terminated { signal: code, pid }
                })
            }
            b'O' => parse_console_output(payload)
                .map(StopReply::ConsoleOutput)
                .ok_or(ParseError::malformed("O", "not 'O' and hex")),
            b'N' if rest.is_empty() => Ok(StopReply::NoResumed),
            _ => Err(ParseError::malformed(
                "stop reply",
                "not S, T, W, X, O or N",
            )),
        }
    }

    /// Appends the reply.
    pub fn write(&self, out: &mut Vec<u8>) {
        let write_pid = |pid: &Option<u64>, out: &mut Vec<u8>| {
            if let Some(pid) = pid {
                out.extend_from_slice(b";process:");
                write_hex_u64(*pid, out);
            }
        };
        match self {
            StopReply::Signal(signal) => {
                out.push(b'S');
                write_hex_u8(*signal, out);
            }
            StopReply::SignalWithInfo { signal, info } => {
                out.push(b'T');
                write_hex_u8(*signal, out);
                for field in info {
                    field.write(out);
                }
            }
            StopReply::Exited { status, pid } => {
                out.push(b'W');
                write_hex_u8(*status, out);
                write_pid(pid, out);
            }
            StopReply::Terminated { signal, pid } => {
                out.push(b'X');
                write_hex_u8(*signal, out);
                write_pid(pid, out);
            }
            StopReply::ConsoleOutput(text) => write_console_output(text, out),
            StopReply::NoResumed => out.push(b'N'),
        }
    }

    /// True for everything but console output: the target has stopped (or is gone).
    pub fn is_stop(&self) -> bool {
        !matches!(self, StopReply::ConsoleOutput(_))
    }

    /// True for `W` and `X`: the process no longer exists.
    pub fn is_exit(&self) -> bool {
        matches!(
            self,
            StopReply::Exited { .. } | StopReply::Terminated { .. }
        )
    }

    /// The stop signal of `S` and `T` replies.
    pub fn signal(&self) -> Option<u8> {
        match self {
            StopReply::Signal(signal) | StopReply::SignalWithInfo { signal, .. } => Some(*signal),
            _ => None,
        }
    }

    /// The `thread:` field of a `T` reply.
    pub fn thread(&self) -> Option<ThreadId> {
        self.info().iter().find_map(|field| match field {
            StopInfo::Thread(thread) => Some(*thread),
            _ => None,
        })
    }

    /// The fields of a `T` reply; empty for the others.
    pub fn info(&self) -> &[StopInfo] {
        match self {
            StopReply::SignalWithInfo { info, .. } => info,
            _ => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Result<StopReply, ()>) {
        let parsed = StopReply::parse(input.as_bytes()).map_err(drop);
        assert_eq!(parsed, expected, "input {input:?}");
        if let Ok(reply) = parsed {
            let mut out = Vec::new();
            reply.write(&mut out);
            assert_eq!(
                StopReply::parse(&out),
                Ok(reply),
                "written {:?}",
                out.escape_ascii().to_string()
            );
        }
    }

    fn t(signal: u8, info: Vec<StopInfo>) -> Result<StopReply, ()> {
        Ok(StopReply::SignalWithInfo { signal, info })
    }

    #[test]
    fn qemu_stop_replies() {
        let thread = StopInfo::Thread(ThreadId::multiprocess(1, 1));
        check("T05thread:p01.01;", t(5, vec![thread.clone()]));
        check("T02thread:p01.01;", t(2, vec![thread.clone()]));
        check(
            "T05thread:p01.02;",
            t(5, vec![StopInfo::Thread(ThreadId::multiprocess(1, 2))]),
        );
        check(
            "T05thread:p01.01;watch:20000004;",
            t(
                5,
                vec![
                    thread.clone(),
                    StopInfo::Watch {
                        kind: WatchKind::Write,
                        addr: 0x2000_0004,
                    },
                ],
            ),
        );
        check("S05", Ok(StopReply::Signal(5)));
        check(
            "W00",
            Ok(StopReply::Exited {
                status: 0,
                pid: None,
            }),
        );
        check(
            "W01;process:1",
            Ok(StopReply::Exited {
                status: 1,
                pid: Some(1),
            }),
        );
        check(
            "X09;process:2a",
            Ok(StopReply::Terminated {
                signal: 9,
                pid: Some(0x2a),
            }),
        );
        let mut written = Vec::new();
        StopReply::parse(b"T05thread:p01.01;")
            .expect("parses")
            .write(&mut written);
        assert_eq!(written, b"T05thread:p1.1;");
    }

    #[test]
    fn stop_reply_fields() {
        check(
            "T05swbreak:;thread:p1.1;core:0;",
            t(
                5,
                vec![
                    StopInfo::SoftwareBreak,
                    StopInfo::Thread(ThreadId::multiprocess(1, 1)),
                    StopInfo::Core(0),
                ],
            ),
        );
        check("T05hwbreak:;", t(5, vec![StopInfo::HardwareBreak]));
        check(
            "T05rwatch:1000;awatch:2000;",
            t(
                5,
                vec![
                    StopInfo::Watch {
                        kind: WatchKind::Read,
                        addr: 0x1000,
                    },
                    StopInfo::Watch {
                        kind: WatchKind::Access,
                        addr: 0x2000,
                    },
                ],
            ),
        );
        check(
            "T050f:a4010000;19:00000001;",
            t(
                5,
                vec![
                    StopInfo::Register {
                        regno: 0xf,
                        value: vec![0xa4, 1, 0, 0],
                    },
                    StopInfo::Register {
                        regno: 0x19,
                        value: vec![0, 0, 0, 1],
                    },
                ],
            ),
        );
        check(
            "T05library:;replaylog:begin;",
            t(
                5,
                vec![
                    StopInfo::Other {
                        key: "library".into(),
                        value: String::new(),
                    },
                    StopInfo::Other {
                        key: "replaylog".into(),
                        value: "begin".into(),
                    },
                ],
            ),
        );
        // The trailing ';' is optional on input.
        check(
            "T05thread:1",
            t(
                5,
                vec![StopInfo::Thread(ThreadId {
                    pid: None,
                    tid: crate::packets::Id::from_u64(1),
                })],
            ),
        );
        check("T05", t(5, vec![]));
    }

    #[test]
    fn not_stop_replies() {
        check("O48690a", Ok(StopReply::ConsoleOutput(b"Hi\n".to_vec())));
        check("N", Ok(StopReply::NoResumed));
        check("OK", Err(()));
        check("", Err(()));
        check("E01", Err(()));
        check("T5", Err(()));
        check("Tzz", Err(()));
        check("T05thread", Err(()));
        check("T05thread:x;", Err(()));
        check("T05watch:;", Err(()));
        check("T050f:abc;", Err(()));
        check("W", Err(()));
        check("W00;pid:1", Err(()));
        check("S", Err(()));
        check("N1", Err(()));
    }

    #[test]
    fn accessors() {
        let reply = StopReply::parse(b"T05thread:p01.01;").expect("parses");
        assert_eq!(reply.signal(), Some(5));
        assert_eq!(reply.thread(), Some(ThreadId::multiprocess(1, 1)));
        assert!(reply.is_stop() && !reply.is_exit());
        assert!(
            StopReply::Exited {
                status: 0,
                pid: None
            }
            .is_exit()
        );
        assert!(!StopReply::ConsoleOutput(Vec::new()).is_stop());
        assert_eq!(StopReply::Signal(2).thread(), None);
    }
}
