//! What a client gets while the target runs and it is not the one waiting
//! for the stop, and how every client learns of stops it did not cause.
//!
//! QEMU's stub serves nothing while the VM runs (any byte but 0x03 pauses
//! it), and GDB gives up on a packet after its remote timeout (2 s, three
//! tries): a reply held until the stop arrives after GDB has moved on and
//! desynchronises its stream ("Invalid hex digit", "can't detach process").
//! So no client packet waits for a stop for long:
//!
//! - While the target steps or an interrupt is on its way, the stop is
//!   moments away, so packets wait for it, but at most [`HOLD_LIMIT`]: the
//!   mux asks the driver for a wake-up ([`Action::WakeAfter`]) and when it
//!   comes ([`Input::Wake`]) whatever still waits is answered as below, and
//!   so is everything else until the target stops.
//! - Otherwise a packet is answered at once with what stays true while the
//!   target runs: the thread list, `qC`, `qOffsets` and QEMU's queries as
//!   the stub last answered them ([`Snapshot::lasting`]; a system
//!   emulator's threads are its CPUs), `qTStatus` as "no trace running",
//!   `H` recorded for the client. What the running target changes gets
//!   `E01`: memory reads, writes, breakpoints, monitor commands.
//! - `?` and the registers. A non-stop client hears `OK` to `?` (no thread
//!   stopped) and `E01` to `g`/`p`. An all-stop GDB has no way to attach to
//!   a running target: it needs a stop reply to `?`, and when its `g` then
//!   fails it drops the connection ("Could not read registers; remote
//!   failure reply 'E01'", then "The program is not being run."; GDB 13.1
//!   against a scripted stub). Interrupting the target for it is not the
//!   gateway's to decide, so an all-stop client sees the target as it was
//!   at its last stop: `?` gets the last stop reply, `g`/`p` the registers
//!   of that stop (kept aside at the resume, [`Snapshot::registers`]), and
//!   memory reads fail until the target halts. GDB then shows that frame,
//!   lists the threads, and prints "Cannot access memory" for reads.
//!
//! # Stops and resumes a client did not cause
//!
//! - A client that negotiated non-stop (`QNonStop:1`) has its resumes
//!   acknowledged at once with `OK` and gets every stop, its own or not, as
//!   a `%Stop:` notification, with the `vStopped` handshake (one
//!   notification out at a time; `vStopped` gets the next queued stop reply,
//!   then `OK`). `vCont;t` and `vCtrlC` interrupt a running target.
//! - An all-stop client waiting on a resume (its own, or one it joined)
//!   gets the stop reply, as before. An all-stop client that is not waiting
//!   cannot be told (all-stop RSP has no unsolicited packets): it sees the
//!   new state at its next request (data once halted, `E01` for memory
//!   while running).
//! - The server hears both through [`Action::Stopped`] and
//!   [`Action::Resumed`], whoever caused them.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use virserver_rsp::packets::{ThreadOperation, XferReply};
use virserver_rsp::{Command, Packet, StopReply, ThreadId, encode_notification_raw};

use super::flash::is_flash;
use super::{Action, ClientId, Mux, Run};
use crate::status::{ResumeEvent, ResumedBy};

/// The longest a client packet waits for a stop that is moments away (a
/// step, an interrupt sent): well inside GDB's 2 s remote timeout.
pub(crate) const HOLD_LIMIT: Duration = Duration::from_millis(500);

/// The reply to what needs a halted target while it runs.
const RUNNING: &[u8] = b"E01";

/// `qTStatus` while running: no trace experiment, none ever ran.
const NO_TRACE: &[u8] = b"T0;tnotrun:0";

/// What the gateway still knows while the target runs.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    /// The `g` replies of the last stop, by the thread selected for them.
    registers: HashMap<Option<ThreadId>, Vec<u8>>,
    /// Replies that stay true while the target runs, by the request's raw
    /// payload: the thread list (`qfThreadInfo`, `qsThreadInfo`,
    /// `qXfer:threads`, `T`), `qOffsets`, `qSymbol`, `qqemu.*`.
    lasting: HashMap<Vec<u8>, Vec<u8>>,
}

impl Snapshot {
    pub fn clear(&mut self) {
        self.registers.clear();
        self.lasting.clear();
    }

    /// The `g` of the last stop for `thread` (or the only one kept).
    fn registers(&self, thread: Option<ThreadId>) -> Option<&[u8]> {
        self.registers
            .get(&thread)
            .or_else(|| {
                let mut all = self.registers.values();
                all.next().filter(|_| all.next().is_none())
            })
            .map(Vec::as_slice)
    }
}

/// Whether packets wait for a stop that is moments away.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Hold {
    /// Nothing waits (yet) in this run.
    #[default]
    Off,
    /// Packets wait; a wake-up is asked for.
    Armed,
    /// [`HOLD_LIMIT`] passed: nothing waits until the next stop.
    Expired,
}

/// Non-stop state of one client.
#[derive(Debug, Default)]
pub(crate) struct NonStop {
    /// `QNonStop:1` was agreed.
    pub on: bool,
    /// A `%Stop` went out and its `vStopped` handshake has not ended.
    notified: bool,
    /// Stop replies waiting for the handshake.
    queued: VecDeque<Vec<u8>>,
}

/// True for the replies [`Snapshot::lasting`] keeps.
pub(crate) fn is_lasting(command: &Command) -> bool {
    match command {
        Command::ThreadInfoFirst | Command::ThreadInfoNext | Command::ThreadAlive { .. } => true,
        Command::XferRead(read) => read.object == "threads",
        Command::Other(payload) => !payload.starts_with(b"qCRC"),
        _ => false,
    }
}

impl Mux {
    /// True when a packet should wait for the stop (arming the wake-up).
    pub(crate) fn holds_requests(&mut self) -> bool {
        let imminent = matches!(
            self.run,
            Run::Running { step: true, .. }
                | Run::Running {
                    interrupt_sent: true,
                    ..
                }
        );
        match self.hold {
            _ if !imminent => false,
            Hold::Off => {
                self.hold = Hold::Armed;
                self.push(Action::WakeAfter(HOLD_LIMIT));
                true
            }
            Hold::Armed => true,
            Hold::Expired => false,
        }
    }

    /// The driver's wake-up: what still waits is answered now.
    pub(crate) fn wake(&mut self) {
        if self.hold == Hold::Armed {
            self.hold = Hold::Expired;
            tracing::debug!("the stop did not come in time: waiting packets are answered");
            self.pump_all();
        }
    }

    /// The server hears that the target was resumed on `by`'s behalf
    /// (pushed after the resume, so the writes upstream stay one).
    pub(crate) fn resumed(&mut self, by: ResumedBy, step: bool) {
        self.push(Action::Resumed(ResumeEvent { by, step }));
    }

    /// Keeps the cached `g` replies before a resume empties the cache.
    pub(crate) fn keep_stop_registers(&mut self) {
        let registers = self.cache.all_registers();
        if !registers.is_empty() {
            self.snapshot.registers = registers;
        }
    }

    /// Remembers a reply that stays true while the target runs.
    pub(crate) fn remember_lasting(&mut self, request: Vec<u8>, reply: &[u8]) {
        self.snapshot.lasting.insert(request, reply.to_vec());
    }

    /// A packet that reached the stub side while the target runs and will
    /// not wait: answered now (see the module doc).
    pub(crate) fn running_command(&mut self, client: ClientId, packet: &Packet, command: Command) {
        let (non_stop, selection) = self
            .clients
            .get(&client)
            .map(|state| (state.non_stop.on, state.selection))
            .unwrap_or_default();
        let thread = selection.general.or(self.upstream_selection.general);
        let stop_thread = self
            .last_stop
            .as_deref()
            .and_then(|stop| StopReply::parse(stop).ok())
            .and_then(|stop| stop.thread());
        if let Some(reply) = self.snapshot.lasting.get(packet.raw()).cloned() {
            self.send_client_raw(client, &reply);
            return;
        }
        let reply: Vec<u8> = match command {
            Command::QueryStopReason if non_stop => b"OK".to_vec(),
            Command::QueryStopReason => self.last_stop.clone().unwrap_or_else(|| b"S05".to_vec()),
            Command::ReadRegisters if !non_stop => match self.snapshot.registers(thread) {
                Some(g) => g.to_vec(),
                None => RUNNING.to_vec(),
            },
            Command::ReadRegister { regno } if !non_stop => self
                .stub
                .description
                .as_ref()
                .and_then(|description| description.g_range(regno))
                .and_then(|(offset, length)| {
                    let g = self.snapshot.registers(thread)?;
                    g.get(offset * 2..(offset + length) * 2).map(<[u8]>::to_vec)
                })
                .unwrap_or_else(|| RUNNING.to_vec()),
            Command::SetThread { operation, thread } => {
                if let Some(state) = self.clients.get_mut(&client) {
                    match operation {
                        ThreadOperation::General => state.selection.general = Some(thread),
                        ThreadOperation::Continue => state.selection.resume = Some(thread),
                    }
                }
                b"OK".to_vec()
            }
            Command::TraceStatus => NO_TRACE.to_vec(),
            Command::QueryCurrentThread => match stop_thread {
                Some(thread) => format!("QC{thread}").into_bytes(),
                None => b"".to_vec(),
            },
            Command::ThreadInfoFirst => match stop_thread {
                Some(thread) => format!("m{thread}").into_bytes(),
                None => b"l".to_vec(),
            },
            Command::ThreadInfoNext => b"l".to_vec(),
            Command::ThreadAlive { .. } => b"OK".to_vec(),
            Command::XferRead(read) if read.object == "threads" => {
                let threads = match stop_thread {
                    Some(thread) => format!("<threads><thread id=\"{thread}\"/></threads>"),
                    None => "<threads></threads>".to_owned(),
                };
                let mut payload = Vec::new();
                XferReply::from_document(threads.as_bytes(), read.offset, read.length)
                    .write(&mut payload);
                self.send_client(client, &payload);
                return;
            }
            Command::MonitorCommand { .. } => {
                self.refuse_monitor(
                    client,
                    "virserver: the target is running; interrupt it first\n",
                );
                return;
            }
            Command::Other(payload) if !payload.starts_with(b"qCRC") && !is_flash(&payload) => {
                Vec::new()
            }
            other => {
                tracing::debug!(
                    client = client.0,
                    command = other.mnemonic(),
                    "needs a halted target; the target runs"
                );
                RUNNING.to_vec()
            }
        };
        self.send_client(client, &reply);
    }

    /// `QNonStop:0` or `QNonStop:1`.
    pub(crate) fn set_non_stop(&mut self, client: ClientId, on: bool) {
        if let Some(state) = self.clients.get_mut(&client) {
            state.non_stop.on = on;
            tracing::debug!(client = client.0, on, "non-stop mode");
        }
        self.send_client(client, b"OK");
    }

    /// `vStopped`: the next queued stop reply, or `OK` when none is left.
    pub(crate) fn stopped_ack(&mut self, client: ClientId) {
        let Some(state) = self.clients.get_mut(&client) else {
            return;
        };
        match state.non_stop.queued.pop_front() {
            Some(stop) => self.send_client_raw(client, &stop),
            None => {
                state.non_stop.notified = false;
                self.send_client(client, b"OK");
            }
        }
    }

    /// Every non-stop client hears of a stop (`raw` as the stub sent it).
    pub(crate) fn notify_stop(&mut self, raw: &[u8]) {
        let mut notices = Vec::new();
        for (id, state) in self.clients.iter_mut().filter(|(_, s)| s.non_stop.on) {
            if state.non_stop.notified {
                state.non_stop.queued.push_back(raw.to_vec());
                continue;
            }
            state.non_stop.notified = true;
            let mut payload = b"Stop:".to_vec();
            payload.extend_from_slice(raw);
            let mut frame = Vec::new();
            encode_notification_raw(&payload, &mut frame);
            if state.streaming {
                // Never inside a reply being streamed: right after it.
                state.deferred.extend_from_slice(&frame);
            } else {
                notices.push((*id, frame));
            }
        }
        for (client, bytes) in notices {
            self.push(Action::SendClient { client, bytes });
        }
    }
}
