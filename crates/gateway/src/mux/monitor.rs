//! `monitor` commands (`qRcmd`), answered from an allow-list.
//!
//! Behind QEMU's stub is its human monitor (HMP), and HMP reaches the host:
//! `migrate "exec:CMD"` runs CMD as QEMU's user, `quit` ends the emulator,
//! `dump-guest-memory`, `pmemsave`, `drive_add`, `chardev-add` and `savevm`
//! write or open host files. GDB clients are not trusted with the host, so
//! their text never reaches HMP: the gateway answers its own commands,
//! sends an HMP command of its own choosing (a fixed string) for each
//! allowed query, and refuses the rest without contacting the stub.
//!
//! | command | what the gateway does |
//! | --- | --- |
//! | `virserver status` | lists attached clients, link and run state (no stub traffic) |
//! | `virserver`, `virserver help`, a bare `monitor` | lists these commands |
//! | `halt`, `stop` | interrupts a running target (`OK` once stopped); `OK` if halted. `stop` is what cortex-debug sends: HMP `stop` would pause the VM behind the stub |
//! | `reset halt` | halts if needed, then HMP `system_reset`: the CPU stays halted at reset |
//! | `reset`, `system_reset` | HMP `system_reset` (waits for a halt like any stub request) |
//! | `info status`, `info version`, `info registers`, `info mtree` | that HMP command, as the gateway spells it: each only prints (QEMU 7.2 and 10.x); `O` output is relayed until `OK`/`Exx` |
//! | `cont`, `c` | refused (`E01` with a note): HMP would resume the VM behind the stub, and QEMU 8.1+ then reports no stop; GDB's `continue` resumes it |
//! | anything else | refused: an `O` note naming the command, then `E01`; forwarded as typed only with [`MuxConfig::raw_monitor`](super::MuxConfig::raw_monitor) |
//!
//! Commands are matched word by word after splitting on whitespace, so
//! `info  status` is `info status`, while `info status` followed by a second
//! line (HMP would run both) matches nothing and is refused whole. The raw
//! passthrough is for a developer's own machine: the server turns it on
//! only with `--allow-raw-monitor`, which it refuses unless the GDB
//! endpoints are loopback.
//!
//! Every command that reaches the stub empties the cache: `system_reset`
//! changes everything, and raw HMP can change anything.

use std::time::UNIX_EPOCH;

use virserver_rsp::Command;
use virserver_rsp::packets::write_console_output;

use super::client::ClientWait;
use super::upstream::{Expect, Purpose};
use super::{ClientId, Mux, Owner, Run};

/// The monitor commands the gateway answers or translates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GatewayCommand {
    Status,
    Help,
    Unknown,
    Halt,
    ResetHalt,
    Reset,
    Cont,
    /// An allowed query: the HMP command the gateway sends (from
    /// [`QUERIES`], never the client's text).
    Query(&'static str),
}

/// The read-only HMP queries a client may make, as typed and as sent. Each
/// only prints: the VM's run state, QEMU's version, the CPU's registers,
/// the memory regions.
const QUERIES: &[&str] = &[
    "info status",
    "info version",
    "info registers",
    "info mtree",
];

fn parse(text: &str) -> Option<GatewayCommand> {
    let words: Vec<&str> = text.split_whitespace().collect();
    Some(match words.as_slice() {
        ["virserver", "status"] => GatewayCommand::Status,
        [] | ["virserver"] | ["virserver", "help"] => GatewayCommand::Help,
        ["virserver", ..] => GatewayCommand::Unknown,
        ["halt" | "stop"] => GatewayCommand::Halt,
        ["reset", "halt"] => GatewayCommand::ResetHalt,
        ["reset" | "system_reset"] => GatewayCommand::Reset,
        ["cont" | "c"] => GatewayCommand::Cont,
        _ => {
            let typed = words.join(" ");
            let query = QUERIES.iter().find(|&&query| query == typed)?;
            GatewayCommand::Query(query)
        }
    })
}

const HELP: &str = concat!(
    "virserver gateway commands:\n",
    "  monitor virserver status   attached clients, link and run state\n",
    "  monitor halt               stop the target (also: monitor stop)\n",
    "  monitor reset halt         system_reset, CPU kept halted\n",
    "  monitor reset              system_reset (also: monitor system_reset)\n",
    "  monitor info status        QEMU: whether the VM runs\n",
    "  monitor info version       QEMU: its version\n",
    "  monitor info registers     QEMU: the CPU's registers\n",
    "  monitor info mtree         QEMU: the memory regions\n",
    "monitor cont is refused: use GDB's continue\n",
);

const OTHERS_REFUSED: &str =
    "any other command is refused: QEMU's monitor (HMP) reaches the host\n";

const OTHERS_RAW: &str =
    "any other command goes to QEMU's monitor (HMP): this server allows raw monitor access\n";

const CONT_REFUSED: &str = "virserver: 'monitor cont' would resume the VM behind the GDB stub, which then may not report the next stop; use GDB's continue\n";

/// The note a refused command gets, naming it as typed (trimmed, control
/// characters escaped, cut when long).
fn refusal(text: &str) -> String {
    const SHOWN: usize = 80;
    let text = text.trim();
    let mut shown = String::new();
    for character in text.chars().take(SHOWN) {
        if character.is_control() {
            shown.extend(character.escape_default());
        } else {
            shown.push(character);
        }
    }
    if text.chars().nth(SHOWN).is_some() {
        shown.push_str("...");
    }
    format!("virserver: 'monitor {shown}' is not allowed (see 'monitor virserver help')\n")
}

impl Mux {
    /// Monitor commands answered without the stub. True when handled.
    pub(crate) fn local_monitor(&mut self, client: ClientId, text: &str) -> bool {
        let output = match parse(text) {
            Some(GatewayCommand::Status) => self.status_text(),
            Some(GatewayCommand::Help) => self.help(),
            Some(GatewayCommand::Unknown) => format!("unknown command {text:?}\n{}", self.help()),
            Some(GatewayCommand::Cont) => {
                self.refuse_monitor(client, CONT_REFUSED);
                return true;
            }
            None if !self.config.raw_monitor => {
                let note = refusal(text);
                tracing::info!(client = client.0, note = note.trim_end(), "monitor refused");
                self.refuse_monitor(client, &note);
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
            Some(GatewayCommand::Query(query)) => {
                self.forward_monitor(Owner::Client(client), query)
            }
            None if self.config.raw_monitor => self.forward_monitor(Owner::Client(client), text),
            // `local_monitor` answered the rest before the link was needed;
            // whatever gets here, the client's text is not forwarded.
            _ => self.refuse_monitor(client, &refusal(text)),
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

    /// A refusal: the note as output, then `E01` (EPERM), which GDB shows
    /// after the note as "Protocol error with Rcmd".
    pub(crate) fn refuse_monitor(&mut self, client: ClientId, note: &str) {
        self.send_output(client, note.as_bytes());
        self.send_client(client, b"E01");
    }

    fn help(&self) -> String {
        let others = if self.config.raw_monitor {
            OTHERS_RAW
        } else {
            OTHERS_REFUSED
        };
        format!("{HELP}{others}")
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
            ("stop", Some(GatewayCommand::Halt)),
            ("system_reset", Some(GatewayCommand::Reset)),
            ("", Some(GatewayCommand::Help)),
            (
                "info registers",
                Some(GatewayCommand::Query("info registers")),
            ),
            (
                "\tinfo  version\n",
                Some(GatewayCommand::Query("info version")),
            ),
            ("info status\nquit", None),
            ("info registers -a", None),
            ("info", None),
            ("info qtree", None),
            ("INFO STATUS", None),
            ("q", None),
            ("quit", None),
            ("migrate \"exec:touch /tmp/x\"", None),
            ("system_reset; quit", None),
        ] {
            assert_eq!(parse(text), expected, "{text:?}");
        }
    }

    #[test]
    fn refusals_name_the_command_safely() {
        assert_eq!(
            refusal(" migrate \"exec:touch /tmp/x\" "),
            "virserver: 'monitor migrate \"exec:touch /tmp/x\"' is not allowed (see 'monitor virserver help')\n"
        );
        assert_eq!(
            refusal("info status\nquit\u{1b}[2J"),
            "virserver: 'monitor info status\\nquit\\u{1b}[2J' is not allowed (see 'monitor virserver help')\n"
        );
        let long = refusal(&"x".repeat(500));
        assert!(
            long.contains(&format!("'monitor {}...'", "x".repeat(80))),
            "{long}"
        );
    }
}
