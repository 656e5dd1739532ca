//! The API's debug client inside the mux: one more client, whose calls
//! ([`ApiCall`]) run one at a time through the same upstream FIFO, cache and
//! breakpoint table as the GDB clients'.
//!
//! Rules the server can rely on:
//!
//! - `halt` opens the upstream link if needed (that alone pauses QEMU's VM),
//!   interrupts a running target, and makes the API *hold* the halt: the
//!   last GDB client leaving does not resume the target while the API holds
//!   a halt or a breakpoint.
//! - `resume` releases the hold. With no GDB client attached and no API
//!   breakpoint it does what `D` means (detach: QEMU resumes the VM, the
//!   link closes); otherwise it sends `c` and returns at once.
//! - Every other call needs a halted target (halted by the API or by a GDB
//!   client) and fails with [`DebugError::NotHalted`] otherwise, without
//!   touching the stub: bytes to a running QEMU stub pause the VM.

use std::collections::VecDeque;

use virserver_rsp::Command;
use virserver_rsp::hex::{decode_hex, encode_hex};
use virserver_rsp::packets::Breakpoint;

use super::breakpoints::BreakpointTable;
use super::cache::ReadKey;
use super::reads::{Finish, Job, PartResult, joined_memory, memory_parts};
use super::upstream::{Expect, Purpose};
use super::{Action, ApiRequestId, Link, Mux, Owner, Run};
use crate::debug_api::{ApiCall, ApiResult, Register, Resumed};
use crate::error::DebugError;
use crate::status::{ResumedBy, StopEvent, StopReason};

/// The API's calls and its hold on the target.
#[derive(Debug, Default)]
pub(crate) struct ApiState {
    queue: VecDeque<(ApiRequestId, ApiCall)>,
    current: Option<(ApiRequestId, ApiOp)>,
    /// The API halted the target and has not resumed it.
    pub holds_halt: bool,
    /// The API resumed the target (`c` upstream): the stop that ends this run is the
    /// API's, so it holds that halt (removing a breakpoint afterwards must not let the
    /// target run away).
    resumed: bool,
}

impl ApiState {
    /// True while the API keeps the session: a halt or a breakpoint.
    pub fn holds(&self, breakpoints: &BreakpointTable) -> bool {
        self.holds_halt || breakpoints.held_by(Owner::Api)
    }

    /// True while a call runs or waits.
    pub fn is_busy(&self) -> bool {
        self.current.is_some() || !self.queue.is_empty()
    }
}

/// Where the call in progress stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ApiOp {
    /// Not started: waits for the link.
    Waiting(ApiCall),
    /// 0x03 sent; done at the stop.
    Halting,
    /// A step runs; `remaining` more after it.
    Stepping { remaining: u32 },
    /// `bs` or `bc` sent; done at the stop.
    Reversing,
    /// A read job runs.
    Reading,
    /// `M` chunks in flight.
    Writing {
        remaining: usize,
        error: Option<Vec<u8>>,
    },
    /// One request answered by `OK` or an error (`P`, `Z`, `z`).
    Status,
}

/// What a finished API read job was for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ApiFinish {
    /// `g` read; registers beyond it come next.
    Registers,
    /// `p` reads of the registers not in `g`.
    RegistersBeyondG { g: Vec<u8> },
    /// A memory read.
    Memory { addr: u64, length: u64 },
}

impl Mux {
    /// A call of the API.
    pub(crate) fn api_call(&mut self, request: ApiRequestId, call: ApiCall) {
        self.api.queue.push_back((request, call));
        self.pump_api();
    }

    /// Starts the next call when none runs, or retries a waiting one.
    pub(crate) fn pump_api(&mut self) {
        loop {
            match &self.api.current {
                Some((_, ApiOp::Waiting(call))) => {
                    let call = call.clone();
                    self.start_api_call(call);
                    return;
                }
                Some(_) => return,
                None => {}
            }
            let Some((request, call)) = self.api.queue.pop_front() else {
                return;
            };
            self.api.current = Some((request, ApiOp::Waiting(call)));
        }
    }

    fn set_api_op(&mut self, op: ApiOp) {
        if let Some((_, current)) = &mut self.api.current {
            *current = op;
        }
    }

    /// Answers the call in progress and starts the next.
    fn finish_api(&mut self, result: Result<ApiResult, DebugError>) {
        let Some((request, _)) = self.api.current.take() else {
            return;
        };
        self.push(Action::ApiReply { request, result });
        self.maybe_teardown(None);
        self.pump_api();
    }

    /// Fails the call in progress (the link went away).
    pub(crate) fn fail_api(&mut self, error: DebugError) {
        if self.api.current.is_some() {
            self.finish_api(Err(error));
        }
    }

    fn start_api_call(&mut self, call: ApiCall) {
        match call {
            ApiCall::IsHalted => {
                let halted = self.is_halted();
                self.finish_api(Ok(ApiResult::Halted(halted)))
            }
            ApiCall::Halt => self.api_halt(),
            ApiCall::Resume => self.api_resume(),
            _ if !self.is_halted() => {
                if matches!(self.link, Link::Connecting | Link::Probing(_)) {
                    return; // waits for the probe: the connection halts the VM
                }
                self.finish_api(Err(DebugError::NotHalted))
            }
            ApiCall::Reverse { .. } if !self.reverse_supported() => {
                self.finish_api(Err(DebugError::NoReverse))
            }
            ApiCall::Reverse { step } => {
                self.set_api_op(ApiOp::Reversing);
                self.start_resume(step);
                let packet: &[u8] = if step { b"bs" } else { b"bc" };
                self.send_upstream(packet, Expect::Resume, Purpose::Resume);
                self.resumed(ResumedBy::Api, step);
            }
            ApiCall::Step { count } => {
                if count == 0 {
                    return self.finish_api(Ok(ApiResult::Done));
                }
                self.api_step(count - 1);
            }
            ApiCall::ReadRegisters => {
                if self.stub.description.is_none() {
                    return self.finish_api(Err(DebugError::NoTargetDescription));
                }
                self.set_api_op(ApiOp::Reading);
                let thread = self.upstream_selection.general;
                self.start_job(
                    Owner::Api,
                    vec![ReadKey::Registers { thread }],
                    Finish::Api(ApiFinish::Registers),
                );
            }
            ApiCall::WriteRegister { name, value } => self.api_write_register(&name, value),
            ApiCall::ReadMemory { addr, length } => {
                if length == 0 {
                    return self.finish_api(Ok(ApiResult::Memory(Vec::new())));
                }
                self.set_api_op(ApiOp::Reading);
                self.start_job(
                    Owner::Api,
                    memory_parts(addr, length),
                    Finish::Api(ApiFinish::Memory { addr, length }),
                );
            }
            ApiCall::WriteMemory { addr, data } => {
                if data.is_empty() {
                    return self.finish_api(Ok(ApiResult::Done));
                }
                self.cache.invalidate();
                let remaining = self.write_memory_chunks(Owner::Api, addr, &data);
                self.set_api_op(ApiOp::Writing {
                    remaining,
                    error: None,
                });
            }
            ApiCall::Breakpoint {
                insert,
                breakpoint_type,
                addr,
                kind,
            } => {
                let kind = if kind == 0 && !breakpoint_type.is_watchpoint() {
                    self.stub
                        .description
                        .as_ref()
                        .map_or(2, |description| description.breakpoint_kind())
                } else {
                    kind
                };
                self.set_api_op(ApiOp::Status);
                let breakpoint = Breakpoint::new(breakpoint_type, addr, kind);
                if insert {
                    self.insert_breakpoint(Owner::Api, breakpoint);
                } else {
                    self.remove_breakpoint(Owner::Api, breakpoint, None);
                }
            }
        }
    }

    fn api_halt(&mut self) {
        if !self.link_ready() {
            return;
        }
        match self.run {
            Run::Halted => {
                self.api.holds_halt = true;
                self.finish_api(Ok(ApiResult::Done));
            }
            Run::Running { .. } => {
                self.set_api_op(ApiOp::Halting);
                self.interrupt();
            }
        }
    }

    fn api_resume(&mut self) {
        self.api.holds_halt = false;
        let resumed = match self.link {
            Link::Connecting | Link::Probing(_) => return,
            Link::Down => Resumed::NotConnected,
            Link::Detaching => Resumed::Detached,
            // A client's step halts in moments: resume after it.
            Link::Ready if matches!(self.run, Run::Running { step: true, .. }) => return,
            Link::Ready if self.run != Run::Halted => Resumed::AlreadyRunning,
            Link::Ready
                if self.clients.is_empty()
                    && !self.breakpoints.held_by(Owner::Api)
                    && self.config.hold_link =>
            {
                // What `D` would do, keeping the link: the run is nobody's, so the
                // API holds no stop that ends it.
                tracing::info!(
                    "API resume with no client attached: the VM resumes; the link stays"
                );
                self.start_resume(false);
                self.send_upstream(b"c", Expect::Resume, Purpose::Resume);
                self.resumed(ResumedBy::Api, false);
                Resumed::ThroughStub
            }
            Link::Ready if self.clients.is_empty() && !self.breakpoints.held_by(Owner::Api) => {
                tracing::info!("API resume with no client attached: detaching, the VM resumes");
                self.link = Link::Detaching;
                let detach = self.detach_payload();
                self.send_upstream(&detach, Expect::Status, Purpose::Detach { reply_to: None });
                self.resumed(ResumedBy::Api, false);
                Resumed::Detached
            }
            Link::Ready => {
                self.api.resumed = true;
                self.start_resume(false);
                self.send_upstream(b"c", Expect::Resume, Purpose::Resume);
                self.resumed(ResumedBy::Api, false);
                Resumed::ThroughStub
            }
        };
        self.finish_api(Ok(ApiResult::Resumed(resumed)));
    }

    fn api_step(&mut self, remaining: u32) {
        self.set_api_op(ApiOp::Stepping { remaining });
        self.start_resume(true);
        self.send_upstream(b"s", Expect::Resume, Purpose::Resume);
        self.resumed(ResumedBy::Api, true);
    }

    fn api_write_register(&mut self, name: &str, value: u64) {
        let Some(description) = &self.stub.description else {
            return self.finish_api(Err(DebugError::NoTargetDescription));
        };
        let Some(register) = description.register(name) else {
            return self.finish_api(Err(DebugError::UnknownRegister(name.to_owned())));
        };
        let bytes = description.from_u64(value, register.bytes());
        let payload = Command::WriteRegister {
            regno: register.number,
            value: bytes,
        }
        .to_payload();
        self.cache.invalidate();
        self.set_api_op(ApiOp::Status);
        self.send_upstream(&payload, Expect::Status, Purpose::ApiStatus { what: "P" });
    }

    /// A stop event is complete: a halt or a step may be done.
    pub(crate) fn api_stopped(&mut self, event: StopEvent) {
        if std::mem::take(&mut self.api.resumed) && self.is_halted() {
            self.api.holds_halt = true;
        }
        match self.api.current {
            Some((_, ApiOp::Halting)) => {
                self.api.holds_halt = true;
                self.finish_api(Ok(ApiResult::Done));
            }
            Some((_, ApiOp::Reversing)) => self.finish_api(Ok(ApiResult::Stopped(event))),
            Some((_, ApiOp::Stepping { remaining })) => {
                let stepped = event.reason == StopReason::Step;
                if remaining == 0 || !stepped || !self.is_halted() {
                    self.finish_api(Ok(ApiResult::Stopped(event)));
                } else {
                    self.api_step(remaining - 1);
                }
            }
            _ => {}
        }
    }

    /// The stub refused a resume the API may have sent.
    pub(crate) fn api_resume_refused(&mut self, raw: &[u8]) {
        if let Some((_, op @ (ApiOp::Stepping { .. } | ApiOp::Reversing))) = &self.api.current {
            let command = match op {
                ApiOp::Reversing => "bs/bc",
                _ => "s",
            };
            self.finish_api(Err(DebugError::Refused {
                command,
                reply: String::from_utf8_lossy(raw).into_owned(),
            }));
        }
    }

    /// `OK` or an error for the call in progress.
    pub(crate) fn api_status_reply(&mut self, what: &'static str, payload: &[u8]) {
        if !matches!(self.api.current, Some((_, ApiOp::Status))) {
            return;
        }
        let result = if payload == b"OK" {
            Ok(ApiResult::Done)
        } else {
            Err(DebugError::Refused {
                command: what,
                reply: String::from_utf8_lossy(payload).into_owned(),
            })
        };
        self.finish_api(result);
    }

    pub(crate) fn api_write_chunk(&mut self, payload: &[u8]) {
        let Some((_, ApiOp::Writing { remaining, error })) = &mut self.api.current else {
            return;
        };
        *remaining = remaining.saturating_sub(1);
        if payload != b"OK" && error.is_none() {
            *error = Some(payload.to_vec());
        }
        if *remaining == 0 {
            let result = match error.take() {
                None => Ok(ApiResult::Done),
                Some(reply) => Err(DebugError::Refused {
                    command: "M",
                    reply: String::from_utf8_lossy(&reply).into_owned(),
                }),
            };
            self.finish_api(result);
        }
    }

    /// A read job of the API finished.
    pub(crate) fn api_read_finished(&mut self, finish: ApiFinish, job: Job) {
        match finish {
            ApiFinish::Registers => {
                let g = match job.parts.into_iter().next().and_then(|part| part.1) {
                    Some(PartResult::Data(hex)) => decode_hex(&hex).unwrap_or_default(),
                    other => return self.finish_api(Err(refused("g", other))),
                };
                let thread = self.upstream_selection.general;
                let beyond: Vec<ReadKey> = self
                    .stub
                    .description
                    .iter()
                    .flat_map(|description| description.registers.iter())
                    .filter(|register| !self.in_g(register.number, g.len()))
                    .map(|register| ReadKey::Register {
                        thread,
                        regno: register.number,
                    })
                    .collect();
                if beyond.is_empty() {
                    let registers = self.registers_from(&g, &[]);
                    return self.finish_api(Ok(ApiResult::Registers(registers)));
                }
                self.start_job(
                    Owner::Api,
                    beyond,
                    Finish::Api(ApiFinish::RegistersBeyondG { g }),
                );
            }
            ApiFinish::RegistersBeyondG { g } => {
                let values: Vec<(u32, Vec<u8>)> = job
                    .parts
                    .into_iter()
                    .filter_map(|(key, result)| match (key, result) {
                        (ReadKey::Register { regno, .. }, Some(PartResult::Data(hex))) => {
                            decode_hex(&hex).ok().map(|value| (regno, value))
                        }
                        _ => None,
                    })
                    .collect();
                let registers = self.registers_from(&g, &values);
                self.finish_api(Ok(ApiResult::Registers(registers)));
            }
            ApiFinish::Memory { addr, length } => {
                let result = match joined_memory(job).map(|hex| decode_hex(&hex)) {
                    Ok(Ok(data)) if data.len() as u64 >= length => Ok(ApiResult::Memory(data)),
                    Ok(Ok(data)) => Err(DebugError::Memory {
                        address: addr + data.len() as u64,
                    }),
                    _ => Err(DebugError::Memory { address: addr }),
                };
                self.finish_api(result);
            }
        }
    }

    fn in_g(&self, number: u32, g_len: usize) -> bool {
        self.stub
            .description
            .as_ref()
            .and_then(|description| description.g_range(number))
            .is_some_and(|(offset, length)| offset + length <= g_len)
    }

    /// Names every register with its value from `g` or from a `p` reply;
    /// registers the stub could not read are left out.
    fn registers_from(&self, g: &[u8], beyond: &[(u32, Vec<u8>)]) -> Vec<Register> {
        let Some(description) = &self.stub.description else {
            return Vec::new();
        };
        description
            .registers
            .iter()
            .filter_map(|register| {
                let bytes = match description.g_range(register.number) {
                    Some((offset, length)) if offset + length <= g.len() => {
                        g[offset..offset + length].to_vec()
                    }
                    _ => beyond
                        .iter()
                        .find(|(regno, _)| *regno == register.number)
                        .map(|(_, value)| value.clone())?,
                };
                Some(Register {
                    name: register.name.clone(),
                    number: register.number,
                    bits: register.bits,
                    value_hex: value_hex(&bytes, description.is_big_endian()),
                })
            })
            .collect()
    }
}

/// `0x` and the value's digits, most significant first.
fn value_hex(bytes: &[u8], big_endian: bool) -> String {
    let mut ordered = bytes.to_vec();
    if !big_endian {
        ordered.reverse();
    }
    let mut digits = Vec::with_capacity(ordered.len() * 2);
    encode_hex(&ordered, &mut digits);
    format!("0x{}", String::from_utf8_lossy(&digits))
}

fn refused(command: &'static str, result: Option<PartResult>) -> DebugError {
    match result {
        Some(PartResult::Error(reply)) => DebugError::Refused {
            command,
            reply: String::from_utf8_lossy(&reply).into_owned(),
        },
        _ => DebugError::NotHalted,
    }
}
