//! The client side of the mux: one [`ClientState`] per GDB connection, its
//! framing (acks, no-ack mode, junk), its queue, and its lifecycle
//! (connect, leave, detach policy).
//!
//! A client has at most one request in progress ([`ClientWait`]); packets it
//! sends meanwhile wait in its queue, so every client gets its replies in
//! order. Only complete, well-framed packets are ever considered: junk,
//! half packets and bad checksums never reach the stub, and a client that
//! vanishes mid-packet leaves nothing behind. A client that floods its queue
//! is disconnected.
//!
//! # Leaving
//!
//! When a client detaches (`D`), kills (`k`, `vKill`) or disconnects, its
//! breakpoints are released and the target stays as it is for the others.
//! Only when the last client leaves and the API holds neither a halt nor a
//! breakpoint does the gateway do what `D` means: `D` upstream (QEMU resumes
//! the VM) and close the upstream connection ([`Mux::maybe_teardown`]).

use std::collections::VecDeque;
use std::time::SystemTime;

use virserver_rsp::{ACK, Decoder, DecoderConfig, Event, NACK, Packet, encode_packet};

use super::running::NonStop;
use super::{Action, ClientId, Link, Mux, Owner, Run, Selection};
use crate::status::ResumedBy;

/// What a client's request in progress waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ClientWait {
    /// Nothing: its next queued packet may be handled.
    Idle,
    /// One forwarded reply, a breakpoint or a read job.
    Reply,
    /// A stop reply (it resumed the target, or joined a run).
    Stop,
    /// The chunks of a write split for the stub.
    Writes {
        remaining: usize,
        error: Option<Vec<u8>>,
    },
    /// `O` packets and then the final reply of a monitor command.
    Monitor,
}

/// One GDB client.
#[derive(Debug)]
pub(crate) struct ClientState {
    pub peer: String,
    pub since: SystemTime,
    pub decoder: Decoder,
    /// `QStartNoAckMode` was agreed: no `+`/`-` either way.
    pub no_ack: bool,
    pub queue: VecDeque<Packet>,
    pub wait: ClientWait,
    pub selection: Selection,
    /// The last frame sent, for a `-` from the client.
    pub last_frame: Vec<u8>,
    /// A reply is being streamed: nothing else may be written to this
    /// client until it ends.
    pub streaming: bool,
    /// Acks (and notifications) held back while streaming.
    pub deferred: Vec<u8>,
    /// Its non-stop mode and stop notifications (`running.rs`).
    pub non_stop: NonStop,
    /// A request of it is being timed (`stats.rs`).
    pub timed: bool,
}

impl ClientState {
    pub fn is_waiting_for_stop(&self) -> bool {
        self.wait == ClientWait::Stop
    }

    pub fn forget_breakpoints_and_threads(&mut self) {
        self.selection = Selection::default();
    }
}

impl Mux {
    pub(crate) fn client_connected(&mut self, client: ClientId, peer: String, since: SystemTime) {
        tracing::info!(client = client.0, %peer, "client attached");
        self.audit(client, "gdb.attach", peer.clone());
        let decoder = Decoder::with_config(DecoderConfig {
            max_packet_size: self.config.client_packet_size + 64,
            verify_checksums: true,
        });
        self.clients.insert(
            client,
            ClientState {
                peer,
                since,
                decoder,
                no_ack: false,
                queue: VecDeque::new(),
                wait: ClientWait::Idle,
                selection: Selection::default(),
                last_frame: Vec::new(),
                streaming: false,
                deferred: Vec::new(),
                non_stop: NonStop::default(),
                timed: false,
            },
        );
        // A stub pauses the VM when a debugger connects, and GDB expects a halted
        // target on attach. A held link makes no new connection, so when the run is
        // nobody's (no other client waits for its stop) the gateway halts it instead.
        let run_is_a_clients = self.clients.values().any(ClientState::is_waiting_for_stop);
        if self.config.hold_link
            && matches!(self.link, Link::Ready)
            && matches!(self.run, Run::Running { .. })
            && !run_is_a_clients
        {
            tracing::info!("halting the target for the new client, as a stub's connect would");
            self.interrupt();
        }
    }

    pub(crate) fn client_bytes(&mut self, client: ClientId, bytes: &[u8]) {
        let Some(state) = self.clients.get_mut(&client) else {
            return;
        };
        state.decoder.feed(bytes);
        let mut acks = Vec::new();
        let mut interrupt = false;
        let mut resend = false;
        while let Some(event) = state.decoder.next_event() {
            match event {
                Event::Packet(packet) => {
                    if !state.no_ack {
                        acks.push(ACK);
                    }
                    state.queue.push_back(packet);
                }
                Event::BadChecksum { .. } if !state.no_ack => acks.push(NACK),
                Event::Interrupt => interrupt = true,
                Event::Nack if !state.no_ack => resend = true,
                Event::Garbage(junk) => {
                    tracing::debug!(client = client.0, bytes = junk.len(), "junk ignored")
                }
                Event::Error(error) => tracing::debug!(client = client.0, %error, "bad frame"),
                _ => {}
            }
        }
        if state.streaming {
            state.deferred.append(&mut acks);
        }
        let flooding = state.queue.len() > self.config.max_queued_packets;
        let last_frame = resend
            .then(|| state.last_frame.clone())
            .filter(|_| !state.streaming);
        if !acks.is_empty() {
            self.push(Action::SendClient {
                client,
                bytes: acks,
            });
        }
        if let Some(frame) = last_frame.filter(|frame| !frame.is_empty()) {
            self.push(Action::SendClient {
                client,
                bytes: frame,
            });
        }
        if flooding {
            tracing::warn!(client = client.0, "client floods its queue; disconnecting");
            self.close_client(client);
            return;
        }
        if interrupt {
            self.audit(client, "gdb.halt", "0x03".to_owned());
            self.interrupt();
        }
        self.pump_client(client);
    }

    /// A client asked for 0x03: only a running target gets it, once.
    pub(crate) fn interrupt(&mut self) {
        if !matches!(self.link, Link::Ready | Link::Detaching) {
            return;
        }
        self.interrupt_range();
        if let Some(call) = &mut self.file_io {
            // A 0x03 now would reach a stub that waits for the File-I/O
            // reply: the reply carries the interrupt (`fileio.rs`).
            call.interrupted = true;
            return;
        }
        if let Run::Running {
            interrupt_sent: false,
            step,
        } = self.run
        {
            self.run = Run::Running {
                interrupt_sent: true,
                step,
            };
            self.push(Action::SendUpstream(vec![virserver_rsp::INTERRUPT]));
        }
    }

    /// Handles queued packets while the client is idle and they can go on.
    pub(crate) fn pump_client(&mut self, client: ClientId) {
        loop {
            let Some(state) = self.clients.get_mut(&client) else {
                return;
            };
            if state.wait != ClientWait::Idle {
                return;
            }
            let Some(packet) = state.queue.pop_front() else {
                return;
            };
            if let Some(packet) = self.client_packet(client, packet) {
                // Deferred until the link is ready or the target halts.
                if let Some(state) = self.clients.get_mut(&client) {
                    state.queue.push_front(packet);
                }
                return;
            }
        }
    }

    /// A streamed reply ended: the held-back acks go out, the client is idle.
    pub(crate) fn end_stream(&mut self, client: ClientId) {
        let Some(state) = self.clients.get_mut(&client) else {
            return;
        };
        state.streaming = false;
        state.last_frame.clear();
        state.wait = ClientWait::Idle;
        let deferred = std::mem::take(&mut state.deferred);
        if !deferred.is_empty() {
            self.push(Action::SendClient {
                client,
                bytes: deferred,
            });
        }
        self.pump_client(client);
    }

    /// Sends a reply payload to a client (framed, escaped).
    pub(crate) fn send_client(&mut self, client: ClientId, payload: &[u8]) {
        let mut frame = Vec::with_capacity(payload.len() + 4);
        encode_packet(payload, &mut frame);
        self.send_client_frame(client, frame);
    }

    /// Sends a raw payload (already escaped, as the stub sent it).
    pub(crate) fn send_client_raw(&mut self, client: ClientId, raw: &[u8]) {
        let mut frame = Vec::with_capacity(raw.len() + 4);
        virserver_rsp::encode_packet_raw(raw, &mut frame);
        self.send_client_frame(client, frame);
    }

    fn send_client_frame(&mut self, client: ClientId, frame: Vec<u8>) {
        let Some(state) = self.clients.get_mut(&client) else {
            return;
        };
        if !state.no_ack {
            state.last_frame.clone_from(&frame);
        }
        self.push(Action::SendClient {
            client,
            bytes: frame,
        });
        self.request_answered(client);
    }

    /// Sends the reply to the client's request in progress and goes on with
    /// its queue.
    pub(crate) fn reply_and_continue(&mut self, client: ClientId, raw: &[u8]) {
        self.send_client_raw(client, raw);
        if let Some(state) = self.clients.get_mut(&client) {
            state.wait = ClientWait::Idle;
        }
        self.pump_client(client);
    }

    /// Same as [`Mux::reply_and_continue`] with a payload to escape.
    pub(crate) fn answer_and_continue(&mut self, client: ClientId, payload: &[u8]) {
        self.send_client(client, payload);
        if let Some(state) = self.clients.get_mut(&client) {
            state.wait = ClientWait::Idle;
        }
        self.pump_client(client);
    }

    /// Console output while the target runs goes to the clients waiting.
    pub(crate) fn console_output_to_waiters(&mut self, text: &[u8], raw: &[u8]) {
        tracing::debug!(bytes = text.len(), "console output from the stub");
        let waiters: Vec<ClientId> = self
            .clients
            .iter()
            .filter(|(_, state)| state.is_waiting_for_stop())
            .map(|(id, _)| *id)
            .collect();
        for client in waiters {
            self.send_client_raw(client, raw);
        }
    }

    /// A stop reply (or a refused resume) goes to every client waiting.
    pub(crate) fn deliver_to_stop_waiters(&mut self, raw: &[u8]) {
        let waiters: Vec<ClientId> = self
            .clients
            .iter()
            .filter(|(_, state)| state.is_waiting_for_stop())
            .map(|(id, _)| *id)
            .collect();
        for client in waiters {
            self.send_client_raw(client, raw);
            if let Some(state) = self.clients.get_mut(&client) {
                state.wait = ClientWait::Idle;
            }
        }
    }

    /// Closes a client from the gateway's side.
    pub(crate) fn close_client(&mut self, client: ClientId) {
        if self.clients.contains_key(&client) {
            self.push(Action::CloseClient { client });
            self.client_gone(client);
        }
    }

    /// A client left (closed its socket, or was closed).
    pub(crate) fn client_gone(&mut self, client: ClientId) {
        if self.clients.remove(&client).is_none() {
            return;
        }
        tracing::info!(client = client.0, "client left");
        self.audit(client, "gdb.detach", String::new());
        self.reads.forget_owner(Owner::Client(client));
        self.release_breakpoints(Owner::Client(client));
        self.maybe_teardown(None);
    }

    /// Releases every breakpoint `owner` holds, removing upstream those
    /// nobody else holds.
    pub(crate) fn release_breakpoints(&mut self, owner: Owner) {
        for key in self.breakpoints.release_all(owner) {
            self.remove_breakpoint_upstream(key.to_breakpoint(), None);
        }
    }

    /// When nobody is left (no client, no API hold), does what `D` means:
    /// `D` upstream and close the connection. `reply_to` is the client whose
    /// `D` this is, answered with the stub's reply.
    pub(crate) fn maybe_teardown(&mut self, reply_to: Option<ClientId>) -> bool {
        let others = self.clients.keys().any(|id| Some(*id) != reply_to);
        if others || self.api.holds(&self.breakpoints) || self.api.is_busy() {
            return false;
        }
        match self.link {
            Link::Ready => {}
            // The probe in progress calls back here when it ends.
            Link::Connecting | Link::Probing(_) => return false,
            Link::Down | Link::Detaching => return false,
        }
        match self.run {
            Run::Halted if self.config.hold_link => {
                // File-I/O needs the link: resume as `D` would, stay attached.
                self.flush_pending_removals();
                tracing::info!("last client gone: the VM resumes; the link stays");
                self.start_resume(false);
                self.send_upstream(
                    b"c",
                    super::upstream::Expect::Resume,
                    super::upstream::Purpose::Resume,
                );
                self.resumed(ResumedBy::Gateway, false);
                false
            }
            Run::Halted => {
                self.flush_pending_removals();
                tracing::info!("last client gone: detaching, the VM resumes");
                self.link = Link::Detaching;
                let detach = self.detach_payload();
                self.send_upstream(
                    &detach,
                    super::upstream::Expect::Status,
                    super::upstream::Purpose::Detach { reply_to },
                );
                let by = reply_to.map_or(ResumedBy::Gateway, |client| ResumedBy::Client(client.0));
                self.resumed(by, false);
                true
            }
            Run::Running { step: true, .. } => {
                // A step (or a range step, which ends once nobody waits) halts
                // within moments, and a link closed then would leave the VM
                // paused: detach at that stop.
                self.teardown_after_stop = true;
                false
            }
            Run::Running { .. } if self.pending_removals.is_empty() && self.config.hold_link => {
                false
            }
            Run::Running { .. } if self.pending_removals.is_empty() => {
                // Running and nothing to clean: closing without a byte leaves
                // it running (a byte would pause it).
                tracing::info!("last client gone while running: closing the upstream link");
                self.push(Action::DisconnectUpstream);
                self.reset_link_state();
                false
            }
            Run::Running { .. } => {
                // Breakpoints to remove first: stop, clean, detach.
                self.teardown_after_stop = true;
                self.interrupt();
                false
            }
        }
    }

    /// `D`, or `D;pid` when the stub speaks the multiprocess extension
    /// (QEMU then refuses a bare `D` with `E22`).
    pub(crate) fn detach_payload(&self) -> Vec<u8> {
        if !self.stub.features.is_supported("multiprocess") {
            return b"D".to_vec();
        }
        let pid = self
            .upstream_selection
            .general
            .and_then(|thread| thread.pid)
            .and_then(|pid| match pid {
                virserver_rsp::packets::Id::Value(pid) => Some(pid.get()),
                _ => None,
            })
            .unwrap_or(1);
        format!("D;{pid:x}").into_bytes()
    }

    /// Sends the `z` packets that waited for the target to stop.
    pub(crate) fn flush_pending_removals(&mut self) {
        for breakpoint in std::mem::take(&mut self.pending_removals) {
            self.remove_breakpoint_upstream(breakpoint, None);
        }
    }
}
