//! The upstream side of the mux: sending requests to the stub, and matching
//! each reply with the request it answers.
//!
//! The stub answers requests in the order it received them, so a FIFO of
//! [`InFlight`] entries is all the bookkeeping pipelining needs. Two kinds of
//! packets break the one-request-one-reply rule and are recognised here:
//!
//! - `O hex` console output, which precedes the final reply of `qRcmd` and
//!   may precede the stop reply of a resume;
//! - unsolicited stop replies, sent by QEMU when QMP `cont` resumed the VM
//!   behind the gateway's back and a breakpoint hit. One can arrive while a
//!   request waits for its reply; it is told apart because it cannot be the
//!   reply that request expects ([`Expect`]).
//!
//! The gateway never sends `+` or `-` upstream: QEMU does not wait for acks,
//! a `-` makes it retransmit, and a late `+` to a running VM pauses it. The
//! stub's own `+` are ignored.

use virserver_rsp::packets::{Breakpoint, StandardReply, parse_console_output};
use virserver_rsp::{Command, Event, Packet, StopReply, encode_packet, encode_packet_raw};

use super::breakpoints::BreakpointKey;
use super::probe::ProbeStep;
use super::{ClientId, Mux, Owner, Run};
use crate::hexdump;

/// What grammar the reply to a request has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expect {
    /// Hex data or an error (`g`, `p`, `m`).
    Hex,
    /// `OK`, an error or empty (`H`, `Z`, `z`, `M`, `X`, `G`, `P`, `D`).
    Status,
    /// `m...`/`l...` or an error (`qXfer`).
    Xfer,
    /// A stop reply, as the answer to `?`.
    StopReply,
    /// `O` packets until `OK`, an error, empty or hex (`qRcmd`).
    Monitor,
    /// A resume: `O` packets, then a stop reply when the target stops.
    Resume,
    /// A `qSupported` feature list.
    Features,
    /// A `vCont?` answer (`vCont;...` or empty).
    VContList,
    /// Anything (a packet the gateway does not know): the next packet.
    Any,
}

/// Who gets a reply, and what to do with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// Forward the reply to the client verbatim, then apply `after`.
    Reply { client: ClientId, after: AfterReply },
    /// A cacheable read, possibly awaited by several jobs.
    Read { read: u64 },
    /// One chunk of a multi-packet write.
    WriteChunk { owner: Owner },
    /// `Z`: insertion of a reference-counted breakpoint.
    InsertBreakpoint { key: BreakpointKey },
    /// `z` on behalf of `reply_to` (or nobody, when a holder left).
    RemoveBreakpoint { reply_to: Option<Owner> },
    /// An API request answered by `OK` or an error.
    ApiStatus { what: &'static str },
    /// `qRcmd`: `O` packets and the final reply go to `owner`.
    Monitor { owner: Owner },
    /// A resume; its stop reply goes to every waiter.
    Resume,
    /// The `g` after one step of a range step, with that step's stop reply.
    RangeCheck { stop: Vec<u8> },
    /// One step of the probe.
    Probe(ProbeStep),
    /// `D` for the whole session; the client that sent it gets the reply.
    Detach { reply_to: Option<ClientId> },
    /// Nobody waits (`Hg` sync, ...): errors are logged.
    Silent { what: &'static str },
}

/// What to do once a forwarded reply came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AfterReply {
    /// Nothing.
    Nothing,
    /// Remember the stub's `vCont?` answer.
    RememberVCont,
    /// On `OK`, the client's thread selection changes.
    SelectThread {
        /// `Hg` (true) or `Hc`.
        general: bool,
        /// The thread.
        thread: virserver_rsp::ThreadId,
    },
    /// The request changed the target: drop cached state.
    Invalidate,
    /// The reply stays true while the target runs (`running.rs`).
    RememberLasting {
        /// The request's raw payload.
        request: Vec<u8>,
    },
}

/// One request sent upstream and not answered yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InFlight {
    pub expect: Expect,
    pub purpose: Purpose,
}

impl Mux {
    /// Sends a payload upstream (escaping it) and records who gets the reply.
    pub(crate) fn send_upstream(&mut self, payload: &[u8], expect: Expect, purpose: Purpose) {
        let mut frame = Vec::with_capacity(payload.len() + 4);
        encode_packet(payload, &mut frame);
        self.send_upstream_frame(frame, expect, purpose);
    }

    /// Sends a packet upstream exactly as a client framed it.
    pub(crate) fn forward_upstream(&mut self, packet: &Packet, expect: Expect, purpose: Purpose) {
        let mut frame = Vec::with_capacity(packet.raw().len() + 4);
        encode_packet_raw(packet.raw(), &mut frame);
        self.send_upstream_frame(frame, expect, purpose);
    }

    fn send_upstream_frame(&mut self, frame: Vec<u8>, expect: Expect, purpose: Purpose) {
        tracing::trace!(packet = %hexdump(&frame), "to stub");
        self.in_flight.push_back(InFlight { expect, purpose });
        self.push(super::Action::SendUpstream(frame));
    }

    /// Sends `Hg`/`Hc` first when the stub's selection is not `wanted`.
    pub(crate) fn sync_thread(&mut self, general: bool, wanted: Option<virserver_rsp::ThreadId>) {
        let Some(thread) = wanted else { return };
        let current = if general {
            &mut self.upstream_selection.general
        } else {
            &mut self.upstream_selection.resume
        };
        if *current == Some(thread) {
            return;
        }
        *current = Some(thread);
        let operation = if general {
            virserver_rsp::packets::ThreadOperation::General
        } else {
            virserver_rsp::packets::ThreadOperation::Continue
        };
        let payload = Command::SetThread { operation, thread }.to_payload();
        self.send_upstream(&payload, Expect::Status, Purpose::Silent { what: "H" });
    }

    /// Sends `z` for a breakpoint nobody holds any more (now, or at the next
    /// stop if the target runs).
    pub(crate) fn remove_breakpoint_upstream(
        &mut self,
        breakpoint: Breakpoint,
        reply_to: Option<Owner>,
    ) {
        if !self.is_connected() {
            return;
        }
        if matches!(self.run, Run::Running { .. }) {
            self.pending_removals.push(breakpoint);
            return;
        }
        let payload = Command::RemoveBreakpoint(breakpoint).to_payload();
        self.send_upstream(
            &payload,
            Expect::Status,
            Purpose::RemoveBreakpoint { reply_to },
        );
    }

    /// Bytes from the stub.
    pub(crate) fn upstream_bytes(&mut self, bytes: &[u8]) {
        if !self.is_connected() {
            return;
        }
        self.upstream_decoder.feed(bytes);
        while let Some(event) = self.upstream_decoder.next_event() {
            match event {
                Event::Packet(packet) => self.upstream_packet(packet),
                Event::Ack => {}
                Event::Nack => tracing::debug!("the stub sent '-'; ignored"),
                Event::Notification(packet) => {
                    tracing::debug!(payload = %hexdump(packet.raw()), "notification ignored")
                }
                Event::BadChecksum { packet, .. } => {
                    // Never answer '-' (QEMU would retransmit out of turn):
                    // take the payload as it came.
                    tracing::warn!("bad checksum from the stub; packet used as is");
                    self.upstream_packet(packet);
                }
                other => tracing::debug!(event = ?other, "unexpected bytes from the stub"),
            }
            if !self.is_connected() {
                return;
            }
        }
    }

    fn upstream_packet(&mut self, packet: Packet) {
        tracing::trace!(packet = %hexdump(packet.raw()), "from stub");
        let payload = match packet.decoded() {
            Ok(payload) => payload.into_owned(),
            Err(error) => {
                tracing::warn!(%error, "undecodable packet from the stub; dropped");
                return;
            }
        };
        if self.file_io_reply(&payload) {
            return;
        }
        let waits_for_stop = self
            .in_flight
            .front()
            .is_none_or(|front| front.expect == Expect::Resume);
        if waits_for_stop && self.take_file_io(&payload) {
            return;
        }
        let Some(front) = self.in_flight.front() else {
            self.unexpected_packet(&payload, packet.raw());
            return;
        };
        let expect = front.expect;
        if expect == Expect::Resume {
            if let Some(text) = parse_console_output(&payload) {
                self.console_output_to_waiters(&text, packet.raw());
                return;
            }
            self.in_flight.pop_front();
            match StopReply::parse(&payload) {
                Ok(_) => self.stopped(&payload, true),
                Err(_) => self.resume_refused(packet.raw()),
            }
            return;
        }
        if is_unsolicited_stop(expect, &payload) {
            self.stopped(&payload, false);
            return;
        }
        if expect == Expect::Monitor && parse_console_output(&payload).is_some() {
            if let Some(InFlight {
                purpose: Purpose::Monitor { owner },
                ..
            }) = self.in_flight.front().cloned()
            {
                self.monitor_output(owner, &payload, packet.raw());
            }
            return;
        }
        let Some(InFlight { purpose, .. }) = self.in_flight.pop_front() else {
            return;
        };
        self.complete(purpose, &payload, packet.raw());
    }

    /// A packet with no request waiting: a stop (QMP `cont` then a
    /// breakpoint, or QMP `stop`), or console output.
    fn unexpected_packet(&mut self, payload: &[u8], raw: &[u8]) {
        match StopReply::parse(payload) {
            Ok(StopReply::ConsoleOutput(text)) => self.console_output_to_waiters(&text, raw),
            Ok(_) => self.stopped(payload, matches!(self.run, Run::Running { .. })),
            Err(_) => tracing::debug!(payload = %hexdump(payload), "unsolicited packet ignored"),
        }
    }

    /// The stub did not accept a resume (an error or empty reply): the
    /// target did not move; the waiters get the reply.
    fn resume_refused(&mut self, raw: &[u8]) {
        tracing::debug!(reply = %hexdump(raw), "resume refused by the stub");
        self.run = Run::Halted;
        self.range = None;
        self.hold = super::running::Hold::Off;
        self.deliver_to_stop_waiters(raw);
        self.api_resume_refused(raw);
        self.pump_all();
    }

    /// Routes a reply to whoever asked.
    fn complete(&mut self, purpose: Purpose, payload: &[u8], raw: &[u8]) {
        match purpose {
            Purpose::Reply { client, after } => {
                self.after_reply(client, after, payload, raw);
                self.reply_and_continue(client, raw);
            }
            Purpose::Read { read } => self.read_completed(read, payload),
            Purpose::WriteChunk { owner } => self.write_chunk_completed(owner, payload),
            Purpose::InsertBreakpoint { key } => self.breakpoint_inserted(key, payload, raw),
            Purpose::RemoveBreakpoint { reply_to } => match reply_to {
                Some(Owner::Client(client)) => self.reply_and_continue(client, raw),
                Some(Owner::Api) => self.api_status_reply("z", payload),
                _ => log_refusal("z", payload),
            },
            Purpose::ApiStatus { what } => self.api_status_reply(what, payload),
            Purpose::Monitor { owner } => self.monitor_done(owner, payload, raw),
            Purpose::Resume => {}
            Purpose::RangeCheck { stop } => self.range_checked(stop, payload),
            Purpose::Probe(step) => self.probe_reply(step, payload),
            Purpose::Detach { reply_to } => self.detached(reply_to, raw),
            Purpose::Silent { what } => log_refusal(what, payload),
        }
    }

    fn after_reply(&mut self, client: ClientId, after: AfterReply, payload: &[u8], raw: &[u8]) {
        match after {
            AfterReply::Nothing => {}
            AfterReply::RememberVCont => {
                if payload.starts_with(b"vCont") {
                    self.stub.vcont = Some(payload.to_vec());
                }
            }
            AfterReply::SelectThread { general, thread } => {
                if payload == b"OK" {
                    if let Some(state) = self.clients.get_mut(&client) {
                        if general {
                            state.selection.general = Some(thread);
                        } else {
                            state.selection.resume = Some(thread);
                        }
                    }
                } else if general {
                    self.upstream_selection.general = None;
                } else {
                    self.upstream_selection.resume = None;
                }
            }
            AfterReply::Invalidate => self.cache.invalidate(),
            AfterReply::RememberLasting { request } => {
                if !matches!(StandardReply::parse(payload), Some(StandardReply::Error(_))) {
                    self.remember_lasting(request, raw)
                }
            }
        }
    }

    /// `D` was answered: the connection goes; clients that came meanwhile
    /// will open a new one.
    fn detached(&mut self, reply_to: Option<ClientId>, raw: &[u8]) {
        if raw == b"OK" {
            tracing::info!("detached from the stub; the VM runs on");
        } else {
            tracing::warn!(reply = %hexdump(raw), "the stub refused D; closing the link anyway");
        }
        if let Some(client) = reply_to {
            self.send_client_raw(client, raw);
            if let Some(state) = self.clients.get_mut(&client) {
                state.wait = super::client::ClientWait::Idle;
            }
        }
        self.push(super::Action::DisconnectUpstream);
        self.reset_link_state();
        self.pump_all();
    }
}

/// True when `payload` is a stop reply that cannot be the answer a request
/// of kind `expect` waits for.
fn is_unsolicited_stop(expect: Expect, payload: &[u8]) -> bool {
    let is_stop = matches!(payload.first(), Some(b'T' | b'S' | b'W' | b'X'))
        && StopReply::parse(payload).is_ok_and(|reply| reply.is_stop());
    if !is_stop {
        return false;
    }
    match expect {
        Expect::Hex => !virserver_rsp::hex::is_hex(payload) || payload.len() % 2 == 1,
        Expect::Status => StandardReply::parse(payload).is_none(),
        Expect::Xfer | Expect::Monitor => true,
        Expect::Features => virserver_rsp::packets::Features::parse(payload).is_err(),
        Expect::VContList => !payload.starts_with(b"vCont"),
        Expect::StopReply | Expect::Resume | Expect::Any => false,
    }
}

/// Logs an error reply to a request nobody waits for.
pub(crate) fn log_refusal(what: &str, payload: &[u8]) {
    if payload != b"OK" {
        tracing::debug!(request = what, reply = %hexdump(payload), "the stub refused");
    }
}
