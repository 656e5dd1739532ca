//! Range stepping (`vCont;r start,end`) done by the gateway for stubs that
//! lack it, as QEMU's does.
//!
//! GDB's `next` and `step` single-step until the pc leaves the line's
//! address range: against QEMU that is a `vCont;s`, a `g` and a stack read
//! per instruction, each a round trip from the client. When the stub does
//! not list `r` in its `vCont?` reply, the gateway lists it for clients
//! (once target.xml says where the pc is) and runs the loop itself, next to
//! the stub: step, read `g`, step again while the pc stays in the range.
//! The client sees one request and one stop reply.
//!
//! The loop ends, and the last stop reply goes to the waiters as the answer,
//! when the pc leaves the range, reaches a software or hardware breakpoint
//! (any holder's), the stop is not a plain trap (a watchpoint, a signal, an
//! exit), or no client waits any more. An interrupt (a client's 0x03, the
//! API's halt) still goes upstream once, in case a step never ends (a `wfi`);
//! QEMU ignores it between steps. The loop then ends at the next stop, which
//! is reported as `T02` so that GDB stops stepping instead of carrying on
//! with its `next`. While the loop runs the mux counts the target as
//! stepping, so other requests wait for its end at most the hold limit
//! (`running.rs`), and only the final stop is broadcast.

use virserver_rsp::hex::decode_hex;
use virserver_rsp::packets::{Id, ResumeAction, StopInfo, VContAction, VContSupported};
use virserver_rsp::{StopReply, ThreadId};

use super::client::ClientWait;
use super::upstream::{Expect, Purpose};
use super::{Mux, Run};

/// A range step in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RangeStep {
    /// The upstream packet for one step: the client's `vCont` with its `r`
    /// action turned into `s`.
    step: Vec<u8>,
    /// First address of the range.
    start: u64,
    /// First address past it.
    end: u64,
    /// The thread stepped, when the action named one: a stop of another
    /// (a CPU that ran meanwhile) ends the loop.
    thread: Option<ThreadId>,
    /// A client asked to interrupt: end at the next stop.
    interrupted: bool,
}

impl Mux {
    /// True when the gateway runs `r` itself: the stub lacks it and the pc
    /// can be found in `g`.
    fn steps_ranges(&self) -> bool {
        let stub_has_it = self
            .stub
            .vcont
            .as_deref()
            .and_then(|reply| VContSupported::parse(reply).ok())
            .is_some_and(|supported| supported.range_step);
        !stub_has_it
            && self
                .stub
                .description
                .as_ref()
                .is_some_and(|description| description.register("pc").is_some())
    }

    /// The `vCont?` reply clients get: the stub's, plus `t` (the gateway
    /// answers it: an interrupt, `running.rs`; non-stop GDB needs it) and
    /// `r` when the gateway steps ranges.
    pub(crate) fn vcont_reply(&self) -> Option<Vec<u8>> {
        let reply = self.stub.vcont.clone()?;
        let Ok(mut supported) = VContSupported::parse(&reply) else {
            return Some(reply);
        };
        supported.stop = true;
        supported.range_step |= self.steps_ranges();
        let mut out = Vec::new();
        supported.write(&mut out);
        Some(out)
    }

    /// A client's `vCont` with one `r` action: starts the loop and returns
    /// true, or false when the stub must get the packet as it is.
    pub(crate) fn start_range_step(&mut self, actions: &[VContAction]) -> bool {
        let ranges: Vec<(u64, u64, Option<ThreadId>)> = actions
            .iter()
            .filter_map(|action| match action.action {
                ResumeAction::RangeStep { start, end } => Some((start, end, action.thread)),
                _ => None,
            })
            .collect();
        let [(start, end, thread)] = ranges.as_slice() else {
            return false;
        };
        if !self.steps_ranges() {
            return false;
        }
        let stepped: Vec<VContAction> = actions
            .iter()
            .map(|action| match action.action {
                ResumeAction::RangeStep { .. } => VContAction {
                    action: ResumeAction::Step,
                    thread: action.thread,
                },
                _ => *action,
            })
            .collect();
        let step = virserver_rsp::Command::VCont(stepped).to_payload();
        self.range = Some(RangeStep {
            step,
            start: *start,
            end: *end,
            thread: thread.filter(|thread| !matches!(thread.tid, Id::Any | Id::All)),
            interrupted: false,
        });
        self.step_in_range();
        true
    }

    fn step_in_range(&mut self) {
        let Some(range) = &self.range else { return };
        let step = range.step.clone();
        self.start_resume(true);
        self.send_upstream(&step, Expect::Resume, Purpose::Resume);
    }

    /// An interrupt: a range step ends at the next stop, as `T02`.
    pub(crate) fn interrupt_range(&mut self) {
        if let Some(range) = &mut self.range {
            range.interrupted = true;
        }
    }

    /// Ends the loop with `stop` as its stop reply (`T02` if interrupted).
    fn end_range(&mut self, stop: &[u8]) {
        let interrupted = self.range.take().is_some_and(|range| range.interrupted);
        match stop.strip_prefix(b"T05") {
            Some(rest) if interrupted => {
                let mut interrupt = b"T02".to_vec();
                interrupt.extend_from_slice(rest);
                self.stopped(&interrupt, true);
            }
            _ => self.stopped(stop, true),
        }
    }

    /// A stop reply while a range step runs: true when the loop takes it
    /// (a plain trap: read the pc, then decide); false ends the loop and the
    /// stop goes on as usual.
    pub(crate) fn range_stopped(&mut self, payload: &[u8], reply: &StopReply) -> bool {
        let Some(range) = &self.range else {
            return false;
        };
        let same_thread = match (range.thread, reply.thread()) {
            (Some(stepped), Some(stopped)) => stepped == stopped,
            _ => true,
        };
        let plain = same_thread
            && reply.signal() == Some(5)
            && !reply.is_exit()
            && reply.info().iter().all(|field| {
                !matches!(
                    field,
                    StopInfo::Watch { .. } | StopInfo::SoftwareBreak | StopInfo::HardwareBreak
                )
            });
        if !plain {
            self.range = None;
            if !same_thread {
                // Another CPU stopped: not the step.
                self.not_a_step();
            }
            return false;
        }
        if range.interrupted {
            self.end_range(payload);
            return true;
        }
        self.send_upstream(
            b"g",
            Expect::Hex,
            Purpose::RangeCheck {
                stop: payload.to_vec(),
            },
        );
        true
    }

    /// The `g` read after a step in the range came back.
    pub(crate) fn range_checked(&mut self, stop: Vec<u8>, g: &[u8]) {
        let pc = decode_hex(g).ok().and_then(|g| {
            self.stub
                .description
                .as_ref()
                .and_then(|description| description.value_in_g("pc", &g))
        });
        let waited_for = self
            .clients
            .values()
            .any(|client| client.wait == ClientWait::Stop);
        let at_breakpoint = pc.is_some_and(|pc| self.breakpoints.code_breakpoint_at(pc));
        let go_on = match (&self.range, pc) {
            (Some(range), Some(pc)) => {
                !range.interrupted
                    && waited_for
                    && (range.start..range.end).contains(&pc)
                    && !at_breakpoint
            }
            _ => false,
        };
        if go_on {
            self.step_in_range();
            return;
        }
        if at_breakpoint {
            // Reported as the breakpoint it is, not as a step.
            self.not_a_step();
        }
        self.end_range(&stop);
    }

    /// The stop that ends this run is not the step's own (its event says so).
    fn not_a_step(&mut self) {
        if let Run::Running { interrupt_sent, .. } = self.run {
            self.run = Run::Running {
                interrupt_sent,
                step: false,
            };
        }
    }
}
