//! What a client does that an audit log records ([`Action::Audit`]): attach and
//! detach, halts (0x03), resumes and steps, memory and register writes, breakpoints
//! and watchpoints, and `monitor` commands. Reads are not operations worth a record.
//! The mux only names them; the I/O layer decides where they go.

use virserver_rsp::Command;
use virserver_rsp::packets::ResumeAction;

use super::{Action, ClientId, Mux};

/// One audited client operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOperation {
    pub client: ClientId,
    /// `gdb.attach`, `gdb.detach`, `gdb.halt`, `gdb.resume`, `gdb.step`,
    /// `gdb.memoryWrite`, `gdb.registerWrite`, `gdb.breakpoint`, `gdb.monitor`.
    pub operation: &'static str,
    /// What matters of it: an address and length, a register, a location.
    pub detail: String,
}

/// The operation a command is, if any.
pub(crate) fn operation_of(command: &Command) -> Option<(&'static str, String)> {
    Some(match command {
        Command::Continue { .. } | Command::ContinueWithSignal { .. } => {
            ("gdb.resume", String::new())
        }
        Command::Step { .. } | Command::StepWithSignal { .. } => ("gdb.step", String::new()),
        Command::VCont(actions) => {
            let stepping = actions.iter().any(|a| {
                matches!(
                    a.action,
                    ResumeAction::Step
                        | ResumeAction::StepWithSignal(_)
                        | ResumeAction::RangeStep { .. }
                )
            });
            if actions.iter().all(|a| a.action == ResumeAction::Stop) {
                ("gdb.halt", "vCont;t".to_owned())
            } else if stepping {
                ("gdb.step", String::new())
            } else {
                ("gdb.resume", String::new())
            }
        }
        Command::WriteMemory { addr, data } | Command::WriteMemoryBinary { addr, data } => (
            "gdb.memoryWrite",
            format!("address 0x{addr:x}, {} bytes", data.len()),
        ),
        Command::WriteRegister { regno, .. } => ("gdb.registerWrite", format!("register {regno}")),
        Command::WriteRegisters { .. } => ("gdb.registerWrite", "all registers".to_owned()),
        Command::InsertBreakpoint(point) | Command::RemoveBreakpoint(point) => (
            "gdb.breakpoint",
            format!(
                "{} {:?} at 0x{:x}",
                if matches!(command, Command::InsertBreakpoint(_)) {
                    "insert"
                } else {
                    "remove"
                },
                point.breakpoint_type,
                point.addr
            ),
        ),
        Command::MonitorCommand { command } => ("gdb.monitor", command.clone()),
        _ => return None,
    })
}

impl Mux {
    /// Queues the record of `operation` by `client`.
    pub(crate) fn audit(&mut self, client: ClientId, operation: &'static str, detail: String) {
        self.reports.push_back(Action::Audit(ClientOperation {
            client,
            operation,
            detail,
        }));
    }
}
