//! The mux: a sans-IO state machine that lets many GDB clients and the API
//! share one connection to the emulator's GDB stub.
//!
//! It is fed [`Input`]s (a client connected, bytes from a client or from the
//! stub, an API call, ...) through [`Mux::handle`] and answers with
//! [`Action`]s (send these bytes upstream, to that client, close it, connect
//! upstream, ...) pulled with [`Mux::next_action`]. It reads no clock and
//! touches no socket, so unit tests drive it with scripted bytes
//! (`tests.rs`) and the tokio loops around it (`driver.rs`, `connection.rs`) stay thin.
//!
//! # Model
//!
//! - One upstream link, opened lazily (the first packet that needs the stub
//!   opens it: connecting pauses QEMU's VM) and probed before anything else:
//!   `qSupported`, target.xml with its includes, `?`, `vCont?`
//!   (`probe.rs`).
//! - Upstream requests are pipelined and the stub answers in order, so the
//!   FIFO of `InFlight` entries says who each reply is for (`upstream.rs`).
//!   The gateway never sends `+` or `-` upstream and ignores the stub's.
//! - Each client has its own decoder, ack mode, thread selection and queue,
//!   and one request at a time in progress, so its replies come in order
//!   (`client.rs`, `commands.rs`).
//! - While the target runs nothing goes upstream but one 0x03. A client's
//!   requests wait for the stop only while it is imminent (a step, an
//!   interrupt sent), and never past a limit the driver's wake-up enforces;
//!   otherwise they are answered at once with what holds while running (the
//!   thread list, the last stop for an all-stop client's `?` and `g`) or
//!   `E01`. The stop reply goes to every client waiting on a resume and, as
//!   a `%Stop` notification, to every non-stop client; resumes and stops are
//!   broadcast to the server ([`Action::Resumed`], [`Action::Stopped`];
//!   `running.rs`).
//! - Reads (`g`, `p`, `m`) go through a cache valid while halted, are split
//!   to the stub's limit, pipelined, coalesced with reads in flight that
//!   cover them, and a split read's reply is streamed to the client as its
//!   pieces arrive; the stop reply triggers a `g` and a stack read ahead of
//!   the clients (`reads.rs`, `cache.rs`, `stop.rs`).
//! - Breakpoints are reference counted across clients and the API
//!   (`breakpoints.rs`); the API is one more client (`api.rs`); the
//!   gateway's own monitor commands live in `monitor.rs`; range stepping
//!   for stubs without it in `range.rs`.
//! - The stub's File-I/O requests (semihosting with `target=gdb`) are
//!   answered by the gateway, never by a client (`fileio.rs`); with
//!   [`MuxConfig::hold_link`] the link then lasts as long as the emulator.
//!
//! # What a client may reach
//!
//! The stub lives in the emulator process, and some of what stubs accept
//! acts on the host: QEMU's monitor (`migrate "exec:CMD"` runs CMD, `quit`,
//! host files), and in stubs that implement them host files (`vFile`),
//! processes (`vRun`, `vAttach`) and their environment. GDB clients are not
//! trusted with the host, so a client packet reaches the stub only when it
//! is on this allow-list (`commands.rs`, `monitor.rs`); anything else is
//! answered by the gateway and never forwarded.
//!
//! | forwarded | what for |
//! | --- | --- |
//! | `?` `g` `G` `p` `P` `m` `M` `X` `Z` `z` `H` `T` | the target's registers, memory, breakpoints, threads |
//! | `c` `s` `C` `S` `vCont` `vCont?` | resumes (`vCont;r` runs in the gateway) |
//! | `bs` `bc` | only when the stub offers reverse execution |
//! | `qSupported`, `qXfer:features:read` | read by the probe, then served from its copy |
//! | `qXfer:threads:read` `qC` `qfThreadInfo` `qsThreadInfo` `qThreadExtraInfo` | the thread list |
//! | `qOffsets` `qSymbol` `qTStatus` `qCRC` | what GDB asks at connect, and `compare-sections` (while the target runs: the last answer, `T0;tnotrun:0` for `qTStatus`, `E01` for `qCRC`) |
//! | `vFlashErase` `vFlashWrite` `vFlashDone` | `load` onto flash, carried out as `M` writes (`flash.rs`) |
//! | `qqemu.*` | QEMU's own queries (`qemu.Supported`, `qemu.sstepbits`, `qemu.sstep`, `qemu.PhyMemMode`) |
//! | `qRcmd` (`monitor`) | only the allowed commands, each sent as the gateway's own fixed HMP text (`monitor.rs`) |
//!
//! | never forwarded | reply | why |
//! | --- | --- | --- |
//! | `qRcmd` outside the monitor allow-list | `O` note, `E01` | HMP reaches the host; forwarded as typed only with [`MuxConfig::raw_monitor`] |
//! | `qRcmd` not hex or not UTF-8, `QRcmd` | `E16`, empty | nothing the gateway could check |
//! | `vFile:*` | empty | file I/O on the stub's host (QEMU's user mode has it) |
//! | `qXfer` of any other object (`exec-file`, `auxv`, `libraries`, `osdata`, `siginfo`, ...) and every `qXfer` write | empty | host files and processes |
//! | `vRun`, `R`, `!`, `vAttach`, `A` | empty | start, restart or attach a process (`!` asks for extended mode; GDB ignores the reply) |
//! | `QSetWorkingDir`, `QEnvironment*`, `QStartupWithShell`, `QDisableRandomization` | empty | how a started process would run on the host |
//! | `F` | empty | File-I/O replies are the gateway's own (`fileio.rs`); one from a client would resume the VM behind it |
//! | `Qqemu.*` | empty | would change how the stub steps and addresses memory for every client, behind the gateway's cache |
//! | `D` `k` `vKill` `qAttached` `QStartNoAckMode` `vMustReplyEmpty` `qXfer:memory-map:read` | the gateway's own answer | `commands.rs` |
//! | `QNonStop` `vStopped` `vCtrlC` `vCont;t` | the gateway's own answer | each client's non-stop mode and notifications; the stub stays all-stop (`running.rs`) |
//! | anything else | empty | "not supported", as QEMU's own stub answers what it lacks |

mod api;
mod audit;
mod breakpoints;
mod cache;
mod client;
mod commands;
mod fileio;
mod flash;
mod monitor;
mod probe;
mod range;
mod reads;
mod running;
mod stats;
mod stop;
#[cfg(test)]
mod tests;
mod upstream;
mod writes;

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, SystemTime};

use virserver_rsp::packets::Features;
use virserver_rsp::{Decoder, ThreadId};

use crate::debug_api::{ApiCall, ApiResult};
use crate::error::DebugError;
use crate::status::{ClientStatus, GatewayStatus, ResumeEvent, RunState, StopEvent};
use crate::target_description::TargetDescription;

use api::ApiState;
pub use audit::ClientOperation;
use breakpoints::BreakpointTable;
use cache::Cache;
use client::ClientState;
use fileio::FileIo;
use probe::Probe;
use range::RangeStep;
use reads::Reads;
use running::{Hold, Snapshot};
use upstream::InFlight;

pub use fileio::{HostCall, HostReply, MAX_GUEST_READ};

/// The gateway's number for one GDB client connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(pub u64);

/// The gateway's number for one API call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ApiRequestId(pub u64);

/// Something that happened, fed to [`Mux::handle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A client connected.
    ClientConnected {
        /// Its number (unique for the gateway's lifetime).
        client: ClientId,
        /// Its peer address, for status.
        peer: String,
        /// When, for status.
        since: SystemTime,
    },
    /// Bytes from a client.
    ClientBytes {
        /// Which client.
        client: ClientId,
        /// What it sent.
        bytes: Vec<u8>,
    },
    /// A client's connection closed (or it was closed).
    ClientGone {
        /// Which client.
        client: ClientId,
    },
    /// The upstream connection asked for by [`Action::ConnectUpstream`] is up.
    UpstreamConnected,
    /// Connecting upstream failed, or the connection dropped.
    UpstreamFailed {
        /// Why, for logs and API errors.
        reason: String,
    },
    /// Bytes from the stub.
    UpstreamBytes(Vec<u8>),
    /// A call of the API's debug client.
    Api {
        /// Its number, echoed in [`Action::ApiReply`].
        request: ApiRequestId,
        /// What it asks.
        call: ApiCall,
    },
    /// The server changed the VM behind the stub's back (QMP cont, stop,
    /// system_reset, loadvm): every cached register and memory byte is stale.
    Invalidate,
    /// The server replaced the halted target's whole state (a snapshot was
    /// loaded): nothing cached holds, and every client hears that the
    /// target stopped where it now is (`stop.rs`).
    StateReplaced,
    /// The answer to [`Action::HostCall`].
    HostCallDone(HostReply),
    /// The time asked for by the last [`Action::WakeAfter`] has passed.
    Wake,
}

/// Something the I/O layer must do, pulled with [`Mux::next_action`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Open the upstream connection; answer with
    /// [`Input::UpstreamConnected`] or [`Input::UpstreamFailed`].
    ConnectUpstream,
    /// Write these bytes to the stub.
    SendUpstream(Vec<u8>),
    /// Close the upstream connection (after writing what came before).
    DisconnectUpstream,
    /// Write these bytes to a client.
    SendClient {
        /// Which client.
        client: ClientId,
        /// What to write.
        bytes: Vec<u8>,
    },
    /// Close a client's connection after writing what came before.
    CloseClient {
        /// Which client.
        client: ClientId,
    },
    /// The answer to an API call.
    ApiReply {
        /// The call's number.
        request: ApiRequestId,
        /// Its result.
        result: Result<ApiResult, DebugError>,
    },
    /// A stop reply was seen: broadcast it.
    Stopped(StopEvent),
    /// The gateway resumed the target: broadcast it.
    Resumed(ResumeEvent),
    /// Feed [`Input::Wake`] once this long has passed (the mux reads no
    /// clock; `running.rs`).
    WakeAfter(Duration),
    /// Carry out the guest's File-I/O call (semihosting) under the host's
    /// policy and answer with [`Input::HostCallDone`] (`fileio.rs`).
    HostCall(HostCall),
    /// A client did something an audit log records (`audit.rs`).
    Audit(ClientOperation),
    /// A client's request whose answer does not wait for the target to run
    /// came in: note the time (`stats.rs`).
    RequestStarted {
        /// Whose.
        client: ClientId,
    },
    /// The answer to that request went out: the time since is its round trip.
    RequestAnswered {
        /// Whose.
        client: ClientId,
    },
}

/// How the mux behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MuxConfig {
    /// Served for `qXfer:memory-map:read`; none means the object is not offered.
    pub memory_map_xml: Option<String>,
    /// Cache registers and memory while halted, and read ahead at each stop.
    pub cache: bool,
    /// The `PacketSize` advertised to clients, in bytes.
    pub client_packet_size: usize,
    /// How many complete packets a client may queue before it is
    /// disconnected as flooding.
    pub max_queued_packets: usize,
    /// Keep the stub's link for the emulator's life: where `D` would end it
    /// (the last client left, the API resumed with nobody attached) the
    /// gateway resumes the target with `c` instead and stays attached.
    /// Needed when the stub sends File-I/O requests (semihosting answered
    /// by the gateway): QEMU drops them silently while nobody is attached.
    pub hold_link: bool,
    /// Forward `monitor` commands outside the gateway's allow-list to
    /// QEMU's monitor (HMP) as typed. HMP reaches the host (`migrate
    /// "exec:CMD"` runs CMD there), so only for clients trusted with it
    /// (`monitor.rs`).
    pub raw_monitor: bool,
}

impl Default for MuxConfig {
    fn default() -> Self {
        MuxConfig {
            memory_map_xml: None,
            cache: true,
            client_packet_size: 0x20000,
            max_queued_packets: 64,
            hold_link: false,
            raw_monitor: false,
        }
    }
}

/// Who a multi-packet job or a waiting state belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Owner {
    /// A GDB client.
    Client(ClientId),
    /// The API's debug client.
    Api,
    /// The gateway itself (read-ahead), numbered.
    Gateway(u64),
}

/// The state of the upstream link.
#[derive(Debug)]
pub(crate) enum Link {
    /// No connection; the next packet that needs one opens it.
    Down,
    /// [`Action::ConnectUpstream`] was emitted.
    Connecting,
    /// Connected; reading features and target.xml before serving requests.
    Probing(Probe),
    /// Serving requests.
    Ready,
    /// `D` was sent; the connection closes when it is answered.
    Detaching,
}

/// Whether the target runs (meaningful while connected).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Run {
    /// Stopped: requests may go upstream.
    Halted,
    /// Running: only one 0x03 may go upstream.
    Running {
        /// 0x03 already sent for this run.
        interrupt_sent: bool,
        /// The resume was a single step.
        step: bool,
    },
}

/// The thread selections (`Hg`, `Hc`) of a client or of the stub.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Selection {
    /// `Hg`: registers and memory; `None` for "any".
    pub general: Option<ThreadId>,
    /// `Hc`: legacy `c`/`s`; `None` for "any".
    pub resume: Option<ThreadId>,
}

/// What the gateway learnt about the stub while probing.
#[derive(Debug, Clone, Default)]
pub(crate) struct StubInfo {
    /// Its `qSupported` features.
    pub features: Features,
    /// Its packet size in bytes (0x1000 if it did not say).
    pub packet_size: usize,
    /// target.xml and every document it includes, by annex.
    pub documents: BTreeMap<String, Vec<u8>>,
    /// The parsed description, if target.xml was readable.
    pub description: Option<TargetDescription>,
    /// Its `vCont?` reply (raw payload), once known.
    pub vcont: Option<Vec<u8>>,
}

/// The multiplexer. See the [module doc](self).
#[derive(Debug)]
pub struct Mux {
    config: MuxConfig,
    clients: BTreeMap<ClientId, ClientState>,
    link: Link,
    upstream_decoder: Decoder,
    in_flight: VecDeque<InFlight>,
    stub: StubInfo,
    run: Run,
    /// The raw payload of the last stop reply, answered to `?`.
    last_stop: Option<Vec<u8>>,
    /// The stub's current thread selections, as far as the gateway knows.
    upstream_selection: Selection,
    cache: Cache,
    reads: Reads,
    breakpoints: BreakpointTable,
    api: ApiState,
    /// Breakpoints to remove upstream at the next stop (their last holder
    /// left while the target ran, and bytes would pause it).
    pending_removals: Vec<virserver_rsp::packets::Breakpoint>,
    /// Detach once the target has stopped (the last client left while it
    /// ran with breakpoints inserted).
    teardown_after_stop: bool,
    next_gateway_job: u64,
    /// The stack pointer at the last stop, for the next stop's read-ahead.
    last_sp: Option<u64>,
    /// A `vCont;r` the gateway runs itself (`range.rs`).
    range: Option<RangeStep>,
    /// The File-I/O request being answered (`fileio.rs`).
    file_io: Option<FileIo>,
    /// Whether packets wait for an imminent stop (`running.rs`).
    hold: Hold,
    /// What stays known while the target runs (`running.rs`).
    snapshot: Snapshot,
    actions: VecDeque<Action>,
    /// Actions that write nothing ([`Action::Audit`], the request timings of
    /// `stats.rs`), handed out after the others: kept apart so that they never
    /// split two writes to one peer that `push` would merge.
    reports: VecDeque<Action>,
    /// Cache hits and misses (`stats.rs`).
    stats: stats::Stats,
}

impl Mux {
    /// A mux with no client and no upstream connection.
    pub fn new(config: MuxConfig) -> Mux {
        Mux {
            config,
            clients: BTreeMap::new(),
            link: Link::Down,
            upstream_decoder: Decoder::new(),
            in_flight: VecDeque::new(),
            stub: StubInfo::default(),
            run: Run::Halted,
            last_stop: None,
            upstream_selection: Selection::default(),
            cache: Cache::default(),
            reads: Reads::default(),
            breakpoints: BreakpointTable::default(),
            api: ApiState::default(),
            pending_removals: Vec::new(),
            teardown_after_stop: false,
            next_gateway_job: 0,
            last_sp: None,
            range: None,
            file_io: None,
            hold: Hold::Off,
            snapshot: Snapshot::default(),
            actions: VecDeque::new(),
            reports: VecDeque::new(),
            stats: stats::Stats::default(),
        }
    }

    /// Feeds one input; then drain [`Mux::next_action`].
    pub fn handle(&mut self, input: Input) {
        match input {
            Input::ClientConnected {
                client,
                peer,
                since,
            } => self.client_connected(client, peer, since),
            Input::ClientBytes { client, bytes } => self.client_bytes(client, &bytes),
            Input::ClientGone { client } => self.client_gone(client),
            Input::UpstreamConnected => self.upstream_connected(),
            Input::UpstreamFailed { reason } => self.upstream_failed(&reason),
            Input::UpstreamBytes(bytes) => self.upstream_bytes(&bytes),
            Input::Api { request, call } => self.api_call(request, call),
            Input::Invalidate => self.cache.invalidate(),
            Input::StateReplaced => self.state_replaced(),
            Input::HostCallDone(reply) => self.host_call_done(reply),
            Input::Wake => self.wake(),
        }
    }

    /// The next action to carry out, in order; `None` when all are taken.
    pub fn next_action(&mut self) -> Option<Action> {
        self.actions
            .pop_front()
            .or_else(|| self.reports.pop_front())
    }

    /// A snapshot for [`crate::Gateway::status`] and `monitor virserver status`.
    pub fn status(&self) -> GatewayStatus {
        GatewayStatus {
            clients: self
                .clients
                .iter()
                .map(|(id, client)| ClientStatus {
                    id: id.0,
                    peer: client.peer.clone(),
                    since: client.since,
                    waiting_for_stop: client.is_waiting_for_stop(),
                })
                .collect(),
            upstream_connected: self.is_connected(),
            run_state: self.run_state(),
            api_holds_halt: self.api.holds_halt,
            breakpoints: self.breakpoints.len(),
            open_files: 0,
            cache_hits: self.stats.cache_hits,
            cache_misses: self.stats.cache_misses,
            open_tickets: 0,
        }
    }

    /// Halted or running, as the gateway knows it.
    pub fn run_state(&self) -> RunState {
        match (&self.link, self.run) {
            (Link::Down, _) => RunState::Unknown,
            (Link::Connecting | Link::Probing(_), _) => RunState::Connecting,
            (_, Run::Halted) => RunState::Halted,
            (_, Run::Running { .. }) => RunState::Running,
        }
    }

    fn is_connected(&self) -> bool {
        !matches!(self.link, Link::Down | Link::Connecting)
    }

    fn is_halted(&self) -> bool {
        matches!(self.link, Link::Ready) && self.run == Run::Halted
    }

    /// Queues an action, merging consecutive writes to the same peer.
    fn push(&mut self, action: Action) {
        match (self.actions.back_mut(), action) {
            (Some(Action::SendUpstream(bytes)), Action::SendUpstream(more)) => {
                bytes.extend_from_slice(&more)
            }
            (
                Some(Action::SendClient { client, bytes }),
                Action::SendClient {
                    client: other,
                    bytes: more,
                },
            ) if *client == other => bytes.extend_from_slice(&more),
            (_, action) => self.actions.push_back(action),
        }
    }

    /// True when the link is ready; opens it if it is down.
    fn link_ready(&mut self) -> bool {
        match self.link {
            Link::Ready => true,
            Link::Down => {
                self.link = Link::Connecting;
                self.push(Action::ConnectUpstream);
                false
            }
            _ => false,
        }
    }

    /// Gives every client and the API a chance to go on (after a stop, the
    /// end of the probe, a reply, ...).
    fn pump_all(&mut self) {
        let ids: Vec<ClientId> = self.clients.keys().copied().collect();
        for id in ids {
            self.pump_client(id);
        }
        self.pump_api();
    }

    /// Forgets everything tied to the upstream connection.
    fn reset_link_state(&mut self) {
        self.link = Link::Down;
        self.upstream_decoder.reset();
        self.in_flight.clear();
        self.run = Run::Halted;
        self.last_stop = None;
        self.upstream_selection = Selection::default();
        self.cache.invalidate();
        self.reads.clear();
        self.breakpoints.clear();
        self.pending_removals.clear();
        self.teardown_after_stop = false;
        self.range = None;
        self.file_io = None;
        self.hold = Hold::Off;
        self.snapshot.clear();
        for client in self.clients.values_mut() {
            client.forget_breakpoints_and_threads();
        }
    }

    /// The stub dropped or could not be reached: every client is closed and
    /// the API's call fails.
    fn upstream_failed(&mut self, reason: &str) {
        if matches!(self.link, Link::Down) {
            return;
        }
        if self.clients.is_empty() {
            // With nobody attached this is how a held link ends: the emulator exited.
            tracing::debug!(reason, "upstream link closed");
        } else {
            tracing::warn!(reason, "upstream link lost; closing every client");
        }
        let detaching = matches!(self.link, Link::Detaching);
        self.reset_link_state();
        self.fail_api(DebugError::Upstream(reason.to_owned()));
        if detaching {
            // The stub closed after `D`: that is the end we asked for.
            self.pump_all();
            return;
        }
        let ids: Vec<ClientId> = self.clients.keys().copied().collect();
        for id in ids {
            self.close_client(id);
        }
    }
}
