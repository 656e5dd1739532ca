//! `monitor` commands (`qRcmd`): passed through to QEMU's HMP, plus the
//! gateway's own and the ones IDE front-ends send that QEMU lacks.
//!
//! | command | what the gateway does |
//! | --- | --- |
//! | `virserver status` | lists attached clients, link and run state (no stub traffic) |
//! | `virserver` / `virserver help` | lists these commands |
//! | `halt` | interrupts a running target (`OK` once stopped); `OK` if halted |
//! | `reset halt` | halts if needed, then HMP `system_reset`: the CPU stays halted at reset |
//! | `reset` | HMP `system_reset` (waits for a halt like any stub request) |
//! | `cont`, `c` | refused (`E01` with a note): HMP would resume the VM behind the stub, and QEMU 8.1+ then reports no stop; GDB's `continue` resumes it |
//! | anything else | forwarded; `O` output is relayed until `OK`/`Exx` |
//!
//! Every command that reaches the stub empties the cache: HMP can change
//! anything (`system_reset`, `loadvm`, memory writes).

use std::time::UNIX_EPOCH;

use virserver_rsp::Command;
use virserver_rsp::packets::write_console_output;

use super::client::ClientWait;
use super::upstream::{Expect, Purpose};
use super::{ClientId, Mux, Owner, Run};

/// The monitor commands the gateway answers or translates.
#[derive(Debug, Clone, PartialEq, Eq)]
enum GatewayCommand {
    Status,
    Help,
    Unknown,
    Halt,
    ResetHalt,
    Reset,
    Cont,
}

fn parse(text: &str) -> Option<GatewayCommand> {
    let words: Vec<&str> = text.split_whitespace().collect();
    Some(match words.as_slice() {
        ["virserver", "status"] => GatewayCommand::Status,
        ["virserver"] | ["virserver", "help"] => GatewayCommand::Help,
        ["virserver", ..] => GatewayCommand::Unknown,
        ["halt"] => GatewayCommand::Halt,
        ["reset", "halt"] => GatewayCommand::ResetHalt,
        ["reset"] => GatewayCommand::Reset,
        ["cont" | "c"] => GatewayCommand::Cont,
        _ => return None,
    })
}

const HELP: &str = "virserver gateway commands:\n  monitor virserver status   attached clients, link and run state\n  monitor halt               stop the target\n  monitor reset halt         system_reset, CPU kept halted\n  monitor reset              system_reset\nany other command goes to QEMU's monitor (HMP)\n";

const CONT_REFUSED: &str = "virserver: 'monitor cont' would resume the VM behind the GDB stub, which then may not report the next stop; use GDB's continue\n";

impl Mux {
    /// Monitor commands answered without the stub. True when handled.
    pub(crate) fn local_monitor(&mut self, client: ClientId, text: &str) -> bool {
        let output = match parse(text) {
            Some(GatewayCommand::Status) => self.status_text(),
            Some(GatewayCommand::Help) => HELP.to_owned(),
            Some(GatewayCommand::Unknown) => format!("unknown command {text:?}\n{HELP}"),
            Some(GatewayCommand::Cont) => {
                self.send_output(client, CONT_REFUSED.as_bytes());
                self.send_client(client, b"E01");
                return true;
            }
            _ => return false,
        };
        self.send_output(client, output.as_bytes());
        self.send_client(client, b"OK");
        true
    }

    /// Monitor commands that act while the target runs. True when handled;
    /// false lets the command wait for the halt.
    pub(crate) fn linked_monitor(&mut self, _client: ClientId, text: &str) -> bool {
        if matches!(self.run, Run::Running { .. })
            && matches!(
                parse(text),
                Some(GatewayCommand::Halt | GatewayCommand::ResetHalt)
            )
        {
            self.interrupt();
        }
        false
    }

    /// A monitor command with the target halted.
    pub(crate) fn halted_monitor(&mut self, client: ClientId, text: &str) {
        match parse(text) {
            Some(GatewayCommand::Halt) => self.send_client(client, b"OK"),
            Some(GatewayCommand::ResetHalt | GatewayCommand::Reset) => {
                self.forward_monitor(Owner::Client(client), "system_reset")
            }
            _ => self.forward_monitor(Owner::Client(client), text),
        }
    }

    /// Sends a monitor command to the stub on behalf of `owner`.
    pub(crate) fn forward_monitor(&mut self, owner: Owner, text: &str) {
        self.cache.invalidate();
        if let Owner::Client(client) = owner {
            self.set_wait(client, ClientWait::Monitor);
        }
        let payload = Command::MonitorCommand {
            command: text.to_owned(),
        }
        .to_payload();
        self.send_upstream(&payload, Expect::Monitor, Purpose::Monitor { owner });
    }

    /// An `O` packet of a monitor command's answer.
    pub(crate) fn monitor_output(&mut self, owner: Owner, _payload: &[u8], raw: &[u8]) {
        if let Owner::Client(client) = owner {
            self.send_client_raw(client, raw);
        }
    }

    /// The final reply of a monitor command.
    pub(crate) fn monitor_done(&mut self, owner: Owner, _payload: &[u8], raw: &[u8]) {
        self.cache.invalidate();
        if let Owner::Client(client) = owner {
            self.reply_and_continue(client, raw);
        }
    }

    fn send_output(&mut self, client: ClientId, text: &[u8]) {
        // Keep each O packet well inside any client's packet size.
        for piece in text.chunks(512) {
            let mut payload = Vec::with_capacity(piece.len() * 2 + 1);
            write_console_output(piece, &mut payload);
            self.send_client(client, &payload);
        }
    }

    fn status_text(&self) -> String {
        let status = self.status();
        let mut text = format!(
            "virserver gateway: {} client(s), upstream {}, target {:?}\n",
            status.clients.len(),
            if status.upstream_connected {
                "connected"
            } else {
                "not connected"
            },
            status.run_state,
        );
        for client in &status.clients {
            let since = client
                .since
                .duration_since(UNIX_EPOCH)
                .map_or(0, |since| since.as_secs());
            text.push_str(&format!(
                "  client {} {} since {} (unix time){}\n",
                client.id,
                client.peer,
                since,
                if client.waiting_for_stop {
                    ", waiting for a stop"
                } else {
                    ""
                },
            ));
        }
        text.push_str(&format!(
            "API holds a halt: {}; breakpoints in the stub: {}\n",
            if status.api_holds_halt { "yes" } else { "no" },
            status.breakpoints,
        ));
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_commands() {
        for (text, expected) in [
            ("virserver status", Some(GatewayCommand::Status)),
            ("  virserver   status ", Some(GatewayCommand::Status)),
            ("virserver", Some(GatewayCommand::Help)),
            ("virserver frobnicate", Some(GatewayCommand::Unknown)),
            ("halt", Some(GatewayCommand::Halt)),
            ("reset halt", Some(GatewayCommand::ResetHalt)),
            ("reset", Some(GatewayCommand::Reset)),
            ("cont", Some(GatewayCommand::Cont)),
            (" c ", Some(GatewayCommand::Cont)),
            ("info registers", None),
            ("system_reset", None),
        ] {
            assert_eq!(parse(text), expected, "{text:?}");
        }
    }
}
