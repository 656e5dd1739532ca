//! What the mux does with each client packet, by RSP mnemonic.
//!
//! Three groups, checked in this order:
//!
//! 1. Answered by the gateway alone, connected or not: `QStartNoAckMode`,
//!    `vMustReplyEmpty`, `qAttached` (always `1`, so GDB detaches rather
//!    than kills on quit), `H` with "any"/"all", `D`, `k`, `vKill`,
//!    `qXfer:memory-map:read`, `QNonStop`, `vStopped`, `vCtrlC`,
//!    `monitor virserver ...` and the refused
//!    monitor commands (`monitor.rs`), malformed packets (`E16`: a packet
//!    the codec cannot parse is never forwarded), and every packet outside
//!    the allow-list of the [mux doc](super) (empty reply: "not supported").
//! 2. Needing the probed link but not a halted target: `qSupported` (the
//!    stub's features, rewritten), target.xml from cache, `vCont?` once
//!    known, `bs`/`bc` refused unless the stub offers reverse execution, and
//!    resumes (`c`, `s`, `C`, `S`, `vCont`), which join a run in progress
//!    (a non-stop client's are acknowledged with `OK` at once), and
//!    `vCont;t` (an interrupt).
//! 3. Everything else goes to the stub when the target is halted: `?`
//!    (answered from the last stop reply), reads through the cache, writes
//!    (which invalidate it), `load`'s flash commands (`flash.rs`),
//!    breakpoints (reference counted), the allowed monitor commands, and the
//!    allowed packets the codec has no family for (`qOffsets`, `qSymbol`,
//!    ...), forwarded verbatim. While the target runs they wait only for an
//!    imminent stop, briefly, and are otherwise answered at once
//!    (`running.rs`).

use virserver_rsp::packets::{FeatureSupport, XferReply};
use virserver_rsp::{Command, Packet, ThreadId};

use super::client::ClientWait;
use super::flash::is_flash;
use super::running::is_lasting;
use super::upstream::{AfterReply, Expect, Purpose};
use super::{ClientId, Mux, Owner, Run};
use crate::hexdump;
use crate::status::ResumedBy;

/// `E16` (EINVAL), the answer to a packet that cannot be parsed.
const MALFORMED: &[u8] = b"E16";

/// The `qXfer` objects forwarded to the stub (`memory-map` is the
/// gateway's own); the others name host files and processes (`exec-file`,
/// `auxv`, `libraries`, `osdata`, ...).
const FORWARDED_XFER_OBJECTS: &[&str] = &["features", "threads"];

/// The packets with no family in the codec ([`Command::Other`]) that are
/// forwarded, by name (up to the first `:`, `,` or `;`): read-only queries
/// GDB makes of the target.
const FORWARDED_QUERIES: &[&str] = &["qOffsets", "qSymbol", "qThreadExtraInfo", "qCRC"];

/// QEMU's own queries (`qqemu.Supported`, `qqemu.sstepbits`, ...) are
/// forwarded too; their `Q` forms are not.
const QEMU_QUERY_PREFIX: &[u8] = b"qqemu.";

/// True when a [`Command::Other`] payload may reach the stub.
fn forwardable(payload: &[u8]) -> bool {
    let name_end = payload
        .iter()
        .position(|&byte| matches!(byte, b':' | b',' | b';'))
        .unwrap_or(payload.len());
    let name = &payload[..name_end];
    name.starts_with(QEMU_QUERY_PREFIX)
        || FORWARDED_QUERIES
            .iter()
            .any(|query| query.as_bytes() == name)
}

impl Mux {
    /// Handles one client packet. Returns it back when it must wait (link
    /// not ready, or target running).
    pub(crate) fn client_packet(&mut self, client: ClientId, packet: Packet) -> Option<Packet> {
        let command = match Command::from_packet(&packet) {
            Ok(command) => command,
            Err(error) => {
                tracing::debug!(client = client.0, %error, "malformed packet");
                self.send_client(client, MALFORMED);
                return None;
            }
        };
        tracing::trace!(
            client = client.0,
            command = command.mnemonic(),
            "client packet"
        );
        self.request_started(client, &command);
        if let Some((operation, detail)) = super::audit::operation_of(&command) {
            self.audit(client, operation, detail);
        }
        if self.local_command(client, &command) {
            return None;
        }
        if !self.link_ready() {
            return Some(packet);
        }
        if self.linked_command(client, &packet, &command) {
            return None;
        }
        if !self.is_halted() {
            if self.holds_requests() {
                return Some(packet);
            }
            self.running_command(client, &packet, command);
            return None;
        }
        self.halted_command(client, &packet, command);
        None
    }

    /// Group 1. True when handled.
    fn local_command(&mut self, client: ClientId, command: &Command) -> bool {
        match command {
            Command::StartNoAckMode => {
                self.send_client(client, b"OK");
                if let Some(state) = self.clients.get_mut(&client) {
                    state.no_ack = true;
                    state.decoder.set_verify_checksums(false);
                    state.last_frame.clear();
                }
            }
            Command::MustReplyEmpty => self.send_client(client, b""),
            Command::QueryAttached { .. } => self.send_client(client, b"1"),
            Command::SetThread { operation, thread } if is_any_thread(thread) => {
                if let Some(state) = self.clients.get_mut(&client) {
                    match operation {
                        virserver_rsp::packets::ThreadOperation::General => {
                            state.selection.general = None
                        }
                        virserver_rsp::packets::ThreadOperation::Continue => {
                            state.selection.resume = None
                        }
                    }
                }
                self.send_client(client, b"OK");
            }
            Command::Detach { .. } => self.client_detach(client),
            Command::Kill => {
                tracing::info!(client = client.0, "k: ending this client only");
                self.close_client(client);
            }
            Command::VKill { .. } => {
                tracing::info!(client = client.0, "vKill: ending this client only");
                self.send_client(client, b"OK");
                self.close_client(client);
            }
            Command::XferRead(read) if read.object == "memory-map" => {
                match &self.config.memory_map_xml {
                    Some(map) => {
                        let reply =
                            XferReply::from_document(map.as_bytes(), read.offset, read.length);
                        let mut payload = Vec::new();
                        reply.write(&mut payload);
                        self.send_client(client, &payload);
                    }
                    None => self.send_client(client, b""),
                }
            }
            Command::MonitorCommand { command } => return self.local_monitor(client, command),
            Command::Other(payload) if payload == b"QNonStop:1" => self.set_non_stop(client, true),
            Command::Other(payload) if payload == b"QNonStop:0" => self.set_non_stop(client, false),
            Command::Other(payload) if payload == b"vStopped" => self.stopped_ack(client),
            Command::Other(payload) if payload == b"vCtrlC" => {
                self.interrupt();
                self.send_client(client, b"OK");
            }
            Command::Other(payload) if is_flash(payload) => return false,
            Command::XferRead(read) if !FORWARDED_XFER_OBJECTS.contains(&read.object.as_str()) => {
                self.refuse_packet(client, command)
            }
            Command::Other(payload) if !forwardable(payload) => self.refuse_packet(client, command),
            _ => return false,
        }
        true
    }

    /// A packet outside the allow-list: the empty reply ("not supported"),
    /// and nothing upstream.
    fn refuse_packet(&mut self, client: ClientId, command: &Command) {
        tracing::debug!(
            client = client.0,
            packet = %hexdump(&command.to_payload()),
            "not forwarded: outside the allow-list"
        );
        self.send_client(client, b"");
    }

    /// Group 2. True when handled.
    fn linked_command(&mut self, client: ClientId, packet: &Packet, command: &Command) -> bool {
        match command {
            Command::QSupported(_) => {
                let payload = self.supported_reply();
                self.send_client(client, &payload);
            }
            Command::XferRead(read) if read.object == "features" => {
                let Some(document) = self.stub.documents.get(&read.annex) else {
                    return false;
                };
                let reply = XferReply::from_document(document, read.offset, read.length);
                let mut payload = Vec::new();
                reply.write(&mut payload);
                self.send_client(client, &payload);
            }
            Command::VContQuery if self.stub.vcont.is_some() => {
                let payload = self.vcont_reply().unwrap_or_default();
                self.send_client(client, &payload);
            }
            Command::ReverseStep | Command::ReverseContinue if !self.reverse_supported() => {
                tracing::info!(
                    client = client.0,
                    "bs/bc refused: the stub has no reverse execution"
                );
                self.send_client(client, b"");
            }
            _ if command.is_resume() => self.client_resume(client, packet, command),
            // `vCont;t`: non-stop's interrupt; a halted target is stopped already.
            Command::VCont(_) => {
                self.interrupt();
                self.send_client(client, b"OK");
            }
            Command::MonitorCommand { command } => return self.linked_monitor(client, command),
            _ => return false,
        }
        true
    }

    /// Group 3: the target is halted and the link ready.
    fn halted_command(&mut self, client: ClientId, packet: &Packet, command: Command) {
        let selection = self
            .clients
            .get(&client)
            .map(|state| state.selection)
            .unwrap_or_default();
        match command {
            Command::QueryStopReason => match self.last_stop.clone() {
                Some(stop) => self.send_client(client, &stop),
                None => self.forward(client, packet, Expect::StopReply, AfterReply::Nothing),
            },
            Command::ReadRegisters => self.client_read_registers(client),
            Command::ReadRegister { regno } => self.client_read_register(client, regno),
            Command::ReadMemory { addr, length } => self.client_read_memory(client, addr, length),
            Command::WriteRegisters { .. } | Command::WriteRegister { .. } => {
                self.sync_thread(true, selection.general);
                self.cache.invalidate();
                self.forward(client, packet, Expect::Status, AfterReply::Invalidate);
            }
            Command::WriteMemory { addr, data } | Command::WriteMemoryBinary { addr, data } => {
                self.sync_thread(true, selection.general);
                self.cache.invalidate();
                if packet.raw().len() + 8 <= self.stub.packet_size {
                    self.forward(client, packet, Expect::Status, AfterReply::Invalidate);
                } else {
                    let remaining = self.write_memory_chunks(Owner::Client(client), addr, &data);
                    self.set_wait(
                        client,
                        ClientWait::Writes {
                            remaining,
                            error: None,
                        },
                    );
                }
            }
            Command::InsertBreakpoint(breakpoint) => {
                self.insert_breakpoint(Owner::Client(client), breakpoint)
            }
            Command::RemoveBreakpoint(breakpoint) => {
                self.remove_breakpoint(Owner::Client(client), breakpoint, Some(packet))
            }
            Command::MonitorCommand { command } => self.halted_monitor(client, &command),
            Command::XferRead(_) => {
                let after = remember_if_lasting(packet, &command);
                self.forward(client, packet, Expect::Xfer, after)
            }
            Command::Other(payload) if is_flash(&payload) => self.client_flash(client, &payload),
            Command::VContQuery => {
                self.forward(client, packet, Expect::VContList, AfterReply::RememberVCont)
            }
            Command::SetThread { operation, thread } => {
                let general = operation == virserver_rsp::packets::ThreadOperation::General;
                if general {
                    self.upstream_selection.general = Some(thread);
                } else {
                    self.upstream_selection.resume = Some(thread);
                }
                self.forward(
                    client,
                    packet,
                    Expect::Status,
                    AfterReply::SelectThread { general, thread },
                );
            }
            _ => {
                self.sync_thread(true, selection.general);
                let after = remember_if_lasting(packet, &command);
                self.forward(client, packet, Expect::Any, after)
            }
        }
    }

    /// Forwards a packet verbatim; the reply goes back to the client.
    fn forward(&mut self, client: ClientId, packet: &Packet, expect: Expect, after: AfterReply) {
        self.set_wait(client, ClientWait::Reply);
        self.forward_upstream(packet, expect, Purpose::Reply { client, after });
    }

    pub(crate) fn set_wait(&mut self, client: ClientId, wait: ClientWait) {
        if let Some(state) = self.clients.get_mut(&client) {
            state.wait = wait;
        }
    }

    /// `c`, `s`, `C`, `S`, `vCont;...`, `bc`, `bs`: resume, or join the run.
    fn client_resume(&mut self, client: ClientId, packet: &Packet, command: &Command) {
        let non_stop = self
            .clients
            .get(&client)
            .is_some_and(|state| state.non_stop.on);
        if non_stop {
            // Acknowledged now; the stop comes as a notification (`running.rs`).
            self.send_client(client, b"OK");
        } else {
            self.set_wait(client, ClientWait::Stop);
        }
        if matches!(self.run, Run::Running { .. }) {
            tracing::debug!(
                client = client.0,
                "resume while running: waiting for the stop"
            );
            return;
        }
        if matches!(
            command,
            Command::Continue { .. }
                | Command::Step { .. }
                | Command::ContinueWithSignal { .. }
                | Command::StepWithSignal { .. }
        ) {
            let resume = self
                .clients
                .get(&client)
                .and_then(|state| state.selection.resume);
            self.sync_thread(false, resume);
        }
        let step = is_step(command);
        let ranged = matches!(command, Command::VCont(actions) if self.start_range_step(actions));
        if !ranged {
            self.start_resume(step);
            self.forward_upstream(packet, Expect::Resume, Purpose::Resume);
        }
        self.resumed(ResumedBy::Client(client.0), step);
    }

    /// The target is about to run: caches go stale.
    pub(crate) fn start_resume(&mut self, step: bool) {
        self.keep_stop_registers();
        self.cache.invalidate();
        self.run = Run::Running {
            interrupt_sent: false,
            step,
        };
    }

    /// `D` from a client: see the detach policy in the crate doc.
    fn client_detach(&mut self, client: ClientId) {
        self.release_breakpoints(Owner::Client(client));
        if self.maybe_teardown(Some(client)) {
            self.set_wait(client, ClientWait::Reply);
        } else {
            tracing::info!(
                client = client.0,
                "D: this client detaches, the target stays as it is"
            );
            self.send_client(client, b"OK");
        }
    }

    /// The stub's `qSupported` reply as clients see it.
    fn supported_reply(&self) -> Vec<u8> {
        let mut features = self.stub.features.clone();
        features.set(
            "PacketSize",
            FeatureSupport::Value(format!("{:x}", self.config.client_packet_size)),
        );
        features.set("QStartNoAckMode", FeatureSupport::Supported);
        features.set("QNonStop", FeatureSupport::Supported);
        if self.config.memory_map_xml.is_some() {
            features.set("qXfer:memory-map:read", FeatureSupport::Supported);
        }
        let mut payload = Vec::new();
        features.write(&mut payload);
        payload
    }

    pub(crate) fn reverse_supported(&self) -> bool {
        self.stub.features.is_supported("ReverseStep")
            || self.stub.features.is_supported("ReverseContinue")
    }
}

/// Keep the reply for while the target runs, when it stays true then.
fn remember_if_lasting(packet: &Packet, command: &Command) -> AfterReply {
    if is_lasting(command) {
        AfterReply::RememberLasting {
            request: packet.raw().to_vec(),
        }
    } else {
        AfterReply::Nothing
    }
}

/// `0`, `-1`, `p0.0`, `p-1.-1`...: no particular thread.
fn is_any_thread(thread: &ThreadId) -> bool {
    use virserver_rsp::packets::Id;
    let any = |id: &Id| matches!(id, Id::Any | Id::All);
    any(&thread.tid) && thread.pid.as_ref().is_none_or(any)
}

/// True for the resumes that step one instruction.
fn is_step(command: &Command) -> bool {
    use virserver_rsp::packets::ResumeAction;
    match command {
        Command::Step { .. } | Command::StepWithSignal { .. } | Command::ReverseStep => true,
        Command::VCont(actions) => actions.iter().any(|action| {
            matches!(
                action.action,
                ResumeAction::Step
                    | ResumeAction::StepWithSignal(_)
                    | ResumeAction::RangeStep { .. }
            )
        }),
        _ => false,
    }
}
