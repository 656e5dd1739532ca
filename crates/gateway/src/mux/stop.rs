//! Stops: what happens when a stop reply arrives, solicited (the answer to a
//! resume) or not (QMP `cont` or `stop` behind the gateway's back).
//!
//! The stop reply goes at once to every client waiting on a resume. Then the
//! gateway works ahead: it reads `g` before any client asks (GDB always does
//! after a stop) together with the stack around the previous stop's stack
//! pointer (stepping GDB reads the stack next, and a step rarely moves sp
//! far). Once `g` arrives the gateway knows the pc, completes the
//! [`StopEvent`] it broadcasts, and makes sure [`STACK_READ_AHEAD`] bytes at
//! the new stack pointer are cached or on their way. Everything lands in the
//! cache, so the clients' own requests are answered without a round trip to
//! the stub.

use virserver_rsp::packets::{StopInfo, WatchKind};
use virserver_rsp::{Packet, StopReply};

use super::cache::ReadKey;
use super::reads::{Finish, Job, PartResult, STACK_READ_AHEAD};
use super::{Action, Mux, Run, Selection};
use crate::status::{StopEvent, StopReason};

impl Mux {
    /// A stop reply arrived (`payload` decoded).
    pub(crate) fn stopped(&mut self, payload: &[u8], solicited: bool) {
        let Ok(reply) = StopReply::parse(payload) else {
            return;
        };
        if self.range_stopped(payload, &reply) {
            return;
        }
        let step = matches!(self.run, Run::Running { step: true, .. });
        self.run = Run::Halted;
        self.last_stop = Some(payload.to_vec());
        let thread = reply.thread();
        self.upstream_selection = Selection {
            general: thread,
            resume: thread,
        };
        self.cache.invalidate();
        self.hold = super::running::Hold::Off;
        let raw = Packet::from_payload(payload).into_raw();
        self.deliver_to_stop_waiters(&raw);
        self.notify_stop(&raw);
        let event = stop_event(&reply, payload, step, solicited);
        tracing::debug!(stop = %event.raw, solicited, "target stopped");
        if reply.is_exit() {
            self.stop_event_ready(event);
            self.pump_all();
            return;
        }
        self.flush_pending_removals();
        if self.teardown_after_stop {
            self.teardown_after_stop = false;
            if self.maybe_teardown(None) {
                self.stop_event_ready(event);
                return;
            }
        }
        if self.config.cache && self.stub.description.is_some() {
            let owner = self.gateway_owner();
            let generation = self.cache.generation();
            self.start_job(
                owner,
                vec![ReadKey::Registers { thread }],
                Finish::StopReadAhead {
                    event: Some(event),
                    generation,
                },
            );
            // Guess the stack before `g` says where it is: a step rarely
            // moves sp far, and this read then travels with the `g`.
            if let Some(sp) = self.last_sp {
                let owner = self.gateway_owner();
                let addr = sp.saturating_sub(STACK_READ_AHEAD);
                self.start_job(
                    owner,
                    vec![ReadKey::Memory {
                        addr,
                        length: 3 * STACK_READ_AHEAD,
                    }],
                    Finish::CacheOnly,
                );
            }
        } else {
            self.stop_event_ready(event);
        }
        self.pump_all();
    }

    /// The server loaded a snapshot into the halted target: as after an
    /// interrupt, the registers are read again, non-stop clients get a
    /// `%Stop` and the stop is broadcast (a DAP client then shows the new
    /// position). An all-stop client waits on nothing, so it hears nothing;
    /// it reads the new state through the emptied cache.
    pub(crate) fn state_replaced(&mut self) {
        self.cache.invalidate();
        if !self.is_halted() {
            return;
        }
        let thread = self
            .last_stop
            .as_deref()
            .and_then(|stop| StopReply::parse(stop).ok())
            .and_then(|stop| stop.thread());
        let payload = match thread {
            Some(thread) => format!("T02thread:{thread};"),
            None => "S02".to_owned(),
        };
        self.stopped(payload.as_bytes(), false);
    }

    /// The read-ahead `g` after a stop came back (or the probe's).
    pub(crate) fn stop_read_ahead_done(
        &mut self,
        event: Option<StopEvent>,
        generation: u64,
        job: Job,
    ) {
        let g = match job.parts.into_iter().next().and_then(|part| part.1) {
            Some(PartResult::Data(hex)) => virserver_rsp::hex::decode_hex(&hex).ok(),
            _ => None,
        };
        let description = self.stub.description.as_ref();
        let value = |name: &str| {
            let g = g.as_deref()?;
            description?.value_in_g(name, g)
        };
        let pc = value("pc");
        let sp = value("sp");
        if sp.is_some() {
            self.last_sp = sp;
        }
        if let Some(mut event) = event {
            event.pc = pc;
            self.stop_event_ready(event);
        }
        if let Some(sp) = sp
            && generation == self.cache.generation()
            && self.is_halted()
        {
            // Usually answered by the guess above, in flight or cached.
            let owner = self.gateway_owner();
            self.start_job(
                owner,
                vec![ReadKey::Memory {
                    addr: sp,
                    length: STACK_READ_AHEAD,
                }],
                Finish::CacheOnly,
            );
        }
    }

    /// Broadcasts the stop event and lets the API's waiting call go on.
    fn stop_event_ready(&mut self, event: StopEvent) {
        self.push(Action::Stopped(event.clone()));
        self.api_stopped(event);
    }
}

/// Builds the event for a stop reply; `step` tells a step from a breakpoint
/// (QEMU says `T05` for both).
fn stop_event(reply: &StopReply, payload: &[u8], step: bool, solicited: bool) -> StopEvent {
    let watch = reply.info().iter().find_map(|field| match field {
        StopInfo::Watch { kind, addr } => Some((*kind, *addr)),
        _ => None,
    });
    let breakpoint = reply
        .info()
        .iter()
        .any(|field| matches!(field, StopInfo::SoftwareBreak | StopInfo::HardwareBreak));
    let reason = match (reply, watch) {
        (StopReply::Exited { status, .. }, _) => StopReason::Exited(*status),
        (StopReply::Terminated { signal, .. }, _) => StopReason::Terminated(*signal),
        (_, Some((kind, addr))) => StopReason::Watchpoint {
            kind: match kind {
                WatchKind::Write => "watch",
                WatchKind::Read => "rwatch",
                WatchKind::Access => "awatch",
            },
            addr,
        },
        _ if breakpoint => StopReason::Breakpoint,
        _ => match reply.signal() {
            Some(2) => StopReason::Interrupted,
            Some(5) if step => StopReason::Step,
            Some(5) => StopReason::Breakpoint,
            Some(signal) => StopReason::Signal(signal),
            None => StopReason::Signal(0),
        },
    };
    StopEvent {
        reason,
        signal: reply.signal(),
        thread: reply.thread().map(|thread| thread.to_string()),
        pc: None,
        raw: String::from_utf8_lossy(payload).into_owned(),
        solicited,
    }
}
