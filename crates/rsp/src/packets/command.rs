//! [`Command`]: every client packet the proxy understands, parsed from and
//! written back to a payload.
//!
//! The dispatch on the first byte (or, for `q`, `Q` and `v` packets, on the
//! name up to the first `:`, `,` or `;`) lives here; the grammar of each
//! family lives in its own file. Payloads given to [`Command::parse`] are
//! decoded (no escapes, no run lengths): [`Command::from_packet`] does that.

use super::{
    _D, _H, _c, _g, _m, _qRcmd, _vCont, Breakpoint, Features, ResumeAction, ThreadId,
    ThreadOperation, VContAction, XferRead,
};
use crate::error::ParseError;
use crate::frame::{Packet, encode_packet};
use crate::hex::{encode_hex, write_hex_u64};

/// A packet sent by a client, parsed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Command {
    /// `?`: why did the target stop? Answered with a stop reply.
    QueryStopReason,
    /// `g`: read all registers.
    ReadRegisters,
    /// `G XX...`: write all registers.
    WriteRegisters {
        /// Register contents in `g` layout.
        data: Vec<u8>,
    },
    /// `p n`: read register `n`.
    ReadRegister {
        /// Register number.
        regno: u32,
    },
    /// `P n=XX...`: write register `n`.
    WriteRegister {
        /// Register number.
        regno: u32,
        /// Value in target byte order.
        value: Vec<u8>,
    },
    /// `m addr,length`: read memory.
    ReadMemory {
        /// First address.
        addr: u64,
        /// Number of bytes.
        length: u64,
    },
    /// `M addr,length:XX...`: write memory given as hex.
    WriteMemory {
        /// First address.
        addr: u64,
        /// The bytes (the length field is their count).
        data: Vec<u8>,
    },
    /// `X addr,length:binary`: write memory given as binary.
    WriteMemoryBinary {
        /// First address.
        addr: u64,
        /// The bytes (the length field is their count).
        data: Vec<u8>,
    },
    /// `c [addr]`: continue.
    Continue {
        /// Resume address, if not the current PC.
        addr: Option<u64>,
    },
    /// `s [addr]`: single-step.
    Step {
        /// Resume address, if not the current PC.
        addr: Option<u64>,
    },
    /// `C sig[;addr]`: continue with a signal.
    ContinueWithSignal {
        /// Signal to deliver.
        signal: u8,
        /// Resume address, if not the current PC.
        addr: Option<u64>,
    },
    /// `S sig[;addr]`: step with a signal.
    StepWithSignal {
        /// Signal to deliver.
        signal: u8,
        /// Resume address, if not the current PC.
        addr: Option<u64>,
    },
    /// `bc`: reverse continue.
    ReverseContinue,
    /// `bs`: reverse step.
    ReverseStep,
    /// `vCont?`: which `vCont` actions are supported?
    VContQuery,
    /// `vCont;action[:thread-id]...`: resume threads.
    VCont(Vec<VContAction>),
    /// `H op thread-id`: select the thread for later operations.
    SetThread {
        /// Which selection.
        operation: ThreadOperation,
        /// The thread.
        thread: ThreadId,
    },
    /// `T thread-id`: is the thread alive?
    ThreadAlive {
        /// The thread.
        thread: ThreadId,
    },
    /// `Z type,addr,kind`: insert a breakpoint or watchpoint.
    InsertBreakpoint(Breakpoint),
    /// `z type,addr,kind`: remove a breakpoint or watchpoint.
    RemoveBreakpoint(Breakpoint),
    /// `D` or `D;pid`: detach (QEMU resumes the VM).
    Detach {
        /// The process, with the multiprocess extension.
        pid: Option<u64>,
    },
    /// `k`: kill (QEMU exits).
    Kill,
    /// `vKill;pid`: kill a process (QEMU exits).
    VKill {
        /// The process.
        pid: u64,
    },
    /// `qSupported[:features]`: feature negotiation.
    QSupported(Features),
    /// `QStartNoAckMode`: stop sending `+`/`-` after the `OK`.
    StartNoAckMode,
    /// `qXfer:object:read:annex:offset,length`.
    XferRead(XferRead),
    /// `qRcmd,hex`: a monitor command, decoded to text.
    MonitorCommand {
        /// The command text, such as `info registers`.
        command: String,
    },
    /// `qAttached[:pid]`: was the process attached to or created?
    QueryAttached {
        /// The process, with the multiprocess extension.
        pid: Option<u64>,
    },
    /// `qC`: the current thread.
    QueryCurrentThread,
    /// `qfThreadInfo`: first piece of the thread list.
    ThreadInfoFirst,
    /// `qsThreadInfo`: next piece of the thread list.
    ThreadInfoNext,
    /// `vMustReplyEmpty`: GDB checks that unknown `v` packets get an empty reply.
    MustReplyEmpty,
    /// `qTStatus`: is a trace experiment running?
    TraceStatus,
    /// Any other packet: the decoded payload, to forward verbatim.
    Other(Vec<u8>),
}

impl Command {
    /// Parses a framed packet's payload (escapes and run lengths undone first).
    pub fn from_packet(packet: &Packet) -> Result<Command, ParseError> {
        Command::parse(&packet.decoded()?)
    }

    /// Parses a decoded payload.
    pub fn parse(payload: &[u8]) -> Result<Command, ParseError> {
        let Some((&letter, args)) = payload.split_first() else {
            return Ok(Command::Other(Vec::new()));
        };
        let no_args = |command: Command| {
            if args.is_empty() {
                Ok(command)
            } else {
                Err(ParseError::malformed(
                    command.mnemonic(),
                    "takes no argument",
                ))
            }
        };
        match letter {
            b'?' => no_args(Command::QueryStopReason),
            b'g' => no_args(Command::ReadRegisters),
            b'k' => no_args(Command::Kill),
            b'G' => _g::parse_write_registers(args),
            b'p' => _g::parse_read_register(args),
            b'P' => _g::parse_write_register(args),
            b'm' => _m::parse_read_memory(args),
            b'M' => _m::parse_write_memory(args),
            b'X' => _m::parse_write_memory_binary(args),
            b'c' => _c::parse_continue(args),
            b's' => _c::parse_step(args),
            b'C' => _c::parse_continue_with_signal(args),
            b'S' => _c::parse_step_with_signal(args),
            b'H' => _H::parse_set_thread(args),
            b'T' => _H::parse_thread_alive(args),
            b'Z' => Breakpoint::parse(args).map(Command::InsertBreakpoint),
            b'z' => Breakpoint::parse(args).map(Command::RemoveBreakpoint),
            b'D' => _D::parse_detach(args),
            b'b' if args == b"c" => Ok(Command::ReverseContinue),
            b'b' if args == b"s" => Ok(Command::ReverseStep),
            b'q' | b'Q' | b'v' => parse_named(payload),
            _ => Ok(Command::Other(payload.to_vec())),
        }
    }

    /// The RSP mnemonic, for logs and metrics (`"other"` for [`Command::Other`]).
    pub fn mnemonic(&self) -> &'static str {
        match self {
            Command::QueryStopReason => "?",
            Command::ReadRegisters => "g",
            Command::WriteRegisters { .. } => "G",
            Command::ReadRegister { .. } => "p",
            Command::WriteRegister { .. } => "P",
            Command::ReadMemory { .. } => "m",
            Command::WriteMemory { .. } => "M",
            Command::WriteMemoryBinary { .. } => "X",
            Command::Continue { .. } => "c",
            Command::Step { .. } => "s",
            Command::ContinueWithSignal { .. } => "C",
            Command::StepWithSignal { .. } => "S",
            Command::ReverseContinue => "bc",
            Command::ReverseStep => "bs",
            Command::VContQuery => "vCont?",
            Command::VCont(_) => "vCont",
            Command::SetThread { .. } => "H",
            Command::ThreadAlive { .. } => "T",
            Command::InsertBreakpoint(_) => "Z",
            Command::RemoveBreakpoint(_) => "z",
            Command::Detach { .. } => "D",
            Command::Kill => "k",
            Command::VKill { .. } => "vKill",
            Command::QSupported(_) => "qSupported",
            Command::StartNoAckMode => "QStartNoAckMode",
            Command::XferRead(_) => "qXfer",
            Command::MonitorCommand { .. } => "qRcmd",
            Command::QueryAttached { .. } => "qAttached",
            Command::QueryCurrentThread => "qC",
            Command::ThreadInfoFirst => "qfThreadInfo",
            Command::ThreadInfoNext => "qsThreadInfo",
            Command::MustReplyEmpty => "vMustReplyEmpty",
            Command::TraceStatus => "qTStatus",
            Command::Other(_) => "other",
        }
    }

    /// True for commands that let the target run: their reply is a stop
    /// reply that comes when the target stops again. A `vCont` made only of
    /// `t` (stop) actions does not resume anything.
    pub fn is_resume(&self) -> bool {
        match self {
            Command::Continue { .. }
            | Command::Step { .. }
            | Command::ContinueWithSignal { .. }
            | Command::StepWithSignal { .. }
            | Command::ReverseContinue
            | Command::ReverseStep => true,
            Command::VCont(actions) => actions
                .iter()
                .any(|action| action.action != ResumeAction::Stop),
            _ => false,
        }
    }

    /// Appends the decoded payload (binary `X` data unescaped).
    pub fn write_payload(&self, out: &mut Vec<u8>) {
        match self {
            // Argument-less commands: the payload is the mnemonic.
            Command::QueryStopReason
            | Command::ReadRegisters
            | Command::ReverseContinue
            | Command::ReverseStep
            | Command::VContQuery
            | Command::Kill
            | Command::StartNoAckMode
            | Command::QueryCurrentThread
            | Command::ThreadInfoFirst
            | Command::ThreadInfoNext
            | Command::MustReplyEmpty
            | Command::TraceStatus => out.extend_from_slice(self.mnemonic().as_bytes()),
            Command::Other(payload) => out.extend_from_slice(payload),
            Command::WriteRegisters { data } => {
                out.push(b'G');
                encode_hex(data, out);
            }
            Command::ReadRegister { regno } => {
                out.push(b'p');
                write_hex_u64(u64::from(*regno), out);
            }
            Command::WriteRegister { regno, value } => {
                out.push(b'P');
                write_hex_u64(u64::from(*regno), out);
                out.push(b'=');
                encode_hex(value, out);
            }
            Command::ReadMemory { addr, length } => {
                out.push(b'm');
                _m::write_range(*addr, *length, out);
            }
            Command::WriteMemory { addr, data } => {
                out.push(b'M');
                _m::write_range(*addr, data.len() as u64, out);
                out.push(b':');
                encode_hex(data, out);
            }
            Command::WriteMemoryBinary { addr, data } => {
                out.push(b'X');
                _m::write_range(*addr, data.len() as u64, out);
                out.push(b':');
                out.extend_from_slice(data);
            }
            Command::Continue { addr } => _c::write_resume(b'c', *addr, out),
            Command::Step { addr } => _c::write_resume(b's', *addr, out),
            Command::ContinueWithSignal { signal, addr } => {
                _c::write_resume_with_signal(b'C', *signal, *addr, out)
            }
            Command::StepWithSignal { signal, addr } => {
                _c::write_resume_with_signal(b'S', *signal, *addr, out)
            }
            Command::VCont(actions) => _vCont::write_vcont(actions, out),
            Command::SetThread { operation, thread } => {
                _H::write_set_thread(*operation, thread, out)
            }
            Command::ThreadAlive { thread } => {
                out.push(b'T');
                thread.write(out);
            }
            Command::InsertBreakpoint(breakpoint) => {
                out.push(b'Z');
                breakpoint.write(out);
            }
            Command::RemoveBreakpoint(breakpoint) => {
                out.push(b'z');
                breakpoint.write(out);
            }
            Command::Detach { pid } => _D::write_with_pid(b"D", b';', *pid, out),
            Command::VKill { pid } => _D::write_with_pid(b"vKill", b';', Some(*pid), out),
            Command::QueryAttached { pid } => _D::write_with_pid(b"qAttached", b':', *pid, out),
            Command::QSupported(features) => {
                out.extend_from_slice(b"qSupported");
                if !features.0.is_empty() {
                    out.push(b':');
                    features.write(out);
                }
            }
            Command::XferRead(read) => read.write(out),
            Command::MonitorCommand { command } => _qRcmd::write_monitor_command(command, out),
        }
    }

    /// The decoded payload as a new vector.
    pub fn to_payload(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_payload(&mut out);
        out
    }

    /// Appends the whole frame `$payload#cs`, escaped, ready to send.
    pub fn encode(&self, out: &mut Vec<u8>) {
        encode_packet(&self.to_payload(), out);
    }
}

/// Parses the `q`, `Q` and `v` packets, whose name runs up to the first `:`,
/// `,` or `;`.
fn parse_named(payload: &[u8]) -> Result<Command, ParseError> {
    let name_end = payload
        .iter()
        .position(|&byte| matches!(byte, b':' | b',' | b';'))
        .unwrap_or(payload.len());
    let (name, args) = payload.split_at(name_end);
    let no_args = |command: Command| {
        if args.is_empty() {
            Ok(command)
        } else {
            Err(ParseError::malformed(
                command.mnemonic(),
                "takes no argument",
            ))
        }
    };
    match name {
        b"qSupported" => match args {
            [] => Ok(Command::QSupported(Features::default())),
            [b':', list @ ..] => Features::parse(list).map(Command::QSupported),
            _ => Err(ParseError::malformed("qSupported", "expected ':'")),
        },
        b"qXfer" => {
            let rest = args
                .strip_prefix(b":")
                .ok_or(ParseError::malformed("qXfer", "expected ':'"))?;
            Ok(XferRead::parse(rest)?
                .map_or_else(|| Command::Other(payload.to_vec()), Command::XferRead))
        }
        b"qRcmd" => {
            _qRcmd::parse_monitor_command(args).map(|command| Command::MonitorCommand { command })
        }
        b"qAttached" => _D::parse_attached(args),
        b"vCont" => _vCont::parse_vcont(args),
        b"vCont?" => no_args(Command::VContQuery),
        b"vKill" => _D::parse_vkill(args),
        b"QStartNoAckMode" => no_args(Command::StartNoAckMode),
        b"qC" => no_args(Command::QueryCurrentThread),
        b"qfThreadInfo" => no_args(Command::ThreadInfoFirst),
        b"qsThreadInfo" => no_args(Command::ThreadInfoNext),
        b"vMustReplyEmpty" => no_args(Command::MustReplyEmpty),
        b"qTStatus" => no_args(Command::TraceStatus),
        _ => Ok(Command::Other(payload.to_vec())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packets::BreakpointType;

    fn check(input: &[u8], expected: Result<Command, ()>) {
        let parsed = Command::parse(input).map_err(drop);
        assert_eq!(
            parsed,
            expected,
            "input {:?}",
            input.escape_ascii().to_string()
        );
        if let Ok(command) = parsed {
            assert_eq!(command.to_payload(), input);
        }
    }

    #[test]
    fn commands_without_arguments() {
        check(b"?", Ok(Command::QueryStopReason));
        check(b"g", Ok(Command::ReadRegisters));
        check(b"k", Ok(Command::Kill));
        check(b"vCont?", Ok(Command::VContQuery));
        check(b"QStartNoAckMode", Ok(Command::StartNoAckMode));
        check(b"qC", Ok(Command::QueryCurrentThread));
        check(b"qfThreadInfo", Ok(Command::ThreadInfoFirst));
        check(b"qsThreadInfo", Ok(Command::ThreadInfoNext));
        check(b"vMustReplyEmpty", Ok(Command::MustReplyEmpty));
        check(b"qTStatus", Ok(Command::TraceStatus));
        check(b"?1", Err(()));
        check(b"g0", Err(()));
        check(b"qC:1", Err(()));
        check(b"QStartNoAckMode;", Err(()));
    }

    #[test]
    fn unknown_packets_are_other() {
        for payload in [
            &b""[..],
            b"qOffsets",
            b"qSymbol::",
            b"qTfV",
            b"vFile:open:6a7573742070726f62696e67,0,1c0",
            b"vRun;",
            b"QNonStop:1",
            b"x20000000,4",
            b"!",
            b"R00",
            b"qCRC:0,4",
            b"qXfer:auxv:write::0:ab",
            b"\xff\x00",
        ] {
            check(payload, Ok(Command::Other(payload.to_vec())));
            assert_eq!(
                Command::parse(payload).map(|command| command.mnemonic()),
                Ok("other")
            );
        }
    }

    #[test]
    fn from_packets_and_encoding() {
        let packet = Packet::from_raw(b"X0,2:}\x03}]".to_vec());
        assert_eq!(
            Command::from_packet(&packet),
            Ok(Command::WriteMemoryBinary {
                addr: 0,
                data: b"#}".to_vec()
            })
        );
        let mut frame = Vec::new();
        Command::ReadMemory {
            addr: 0x2000_0000,
            length: 4,
        }
        .encode(&mut frame);
        assert_eq!(frame, b"$m20000000,4#4f");
        frame.clear();
        Command::InsertBreakpoint(Breakpoint::new(BreakpointType::Software, 0x1a4, 2))
            .encode(&mut frame);
        assert_eq!(frame, b"$Z0,1a4,2#da");
        assert!(Command::from_packet(&Packet::from_raw(b"m0,4}".to_vec())).is_err());
    }

    #[test]
    fn resume_classification() {
        assert!(Command::Continue { addr: None }.is_resume());
        assert!(!Command::ReadRegisters.is_resume());
        assert!(
            !Command::VCont(vec![VContAction {
                action: ResumeAction::Stop,
                thread: None
            }])
            .is_resume()
        );
        assert!(!Command::QueryStopReason.is_resume());
    }
}
