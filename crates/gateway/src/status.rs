//! What the gateway reports about itself: run events (broadcast to the
//! server for every stop reply seen and every resume the gateway sends, so
//! its DAP bridge can say `stopped` and `continued` whoever caused them) and
//! the status snapshot (attached clients, upstream link, run state).

use std::time::SystemTime;

/// Why the target stopped, as far as the stop reply and the gateway's
/// knowledge of the last resume tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// A breakpoint (`T05` after a continue, or a `swbreak`/`hwbreak` field).
    Breakpoint,
    /// A single step finished (`T05` after a step).
    Step,
    /// A watchpoint fired.
    Watchpoint {
        /// `watch`, `rwatch` or `awatch`.
        kind: &'static str,
        /// The data address accessed.
        addr: u64,
    },
    /// An interrupt (0x03 from a client or the API, or QMP `stop`): `T02`.
    Interrupted,
    /// Another signal.
    Signal(u8),
    /// The target exited (`W`) with this status.
    Exited(u8),
    /// The target was terminated (`X`) by this signal.
    Terminated(u8),
}

/// One stop reply seen on the upstream link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopEvent {
    /// Why.
    pub reason: StopReason,
    /// The signal number of `S`/`T` replies.
    pub signal: Option<u8>,
    /// The stopped thread (`p1.1` style), if the reply named one.
    pub thread: Option<String>,
    /// The program counter, when the gateway read the registers.
    pub pc: Option<u64>,
    /// The stop reply as the stub sent it.
    pub raw: String,
    /// False when the stop answered nobody's resume (QMP `cont` or `stop`
    /// behind the gateway's back).
    pub solicited: bool,
}

/// Who made the target run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResumedBy {
    /// A GDB client, by the gateway's number for it ([`ClientStatus::id`]).
    Client(u64),
    /// The API's debug client.
    Api,
    /// The gateway itself: the last client left a held link (semihosting),
    /// so the VM resumes as `D` would resume it.
    Gateway,
}

/// A resume the gateway sent upstream: a resume packet, or the `D` that
/// lets the VM run on when the session ends (QMP `cont` behind its back is
/// the server's own doing and is not reported).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResumeEvent {
    /// Who asked.
    pub by: ResumedBy,
    /// A single step (or a range step) rather than a continue.
    pub step: bool,
}

/// What [`crate::Gateway::run_events`] broadcasts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEvent {
    /// The target stopped (the same event [`crate::Gateway::stops`] sends).
    Stopped(StopEvent),
    /// The target was resumed.
    Resumed(ResumeEvent),
}

/// Whether the target runs, as the gateway knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    /// No upstream connection: the gateway does not know (and does not ask).
    Unknown,
    /// Connecting or reading the target description.
    Connecting,
    /// Halted: requests are served.
    Halted,
    /// Running: only an interrupt goes upstream.
    Running,
}

/// One attached client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientStatus {
    /// The gateway's number for it.
    pub id: u64,
    /// Its peer address, and `user NAME` when it came through a ticket issued
    /// to NAME.
    pub peer: String,
    /// When it connected.
    pub since: SystemTime,
    /// True when it waits for a stop reply.
    pub waiting_for_stop: bool,
}

/// A snapshot of the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayStatus {
    /// The attached GDB clients (the API is not listed).
    pub clients: Vec<ClientStatus>,
    /// True while the gateway holds a connection to the stub.
    pub upstream_connected: bool,
    /// Halted or running.
    pub run_state: RunState,
    /// True while the API holds the target halted.
    pub api_holds_halt: bool,
    /// Breakpoints and watchpoints inserted in the stub.
    pub breakpoints: usize,
    /// Files the guest holds open through semihosting (the console not counted).
    pub open_files: usize,
    /// Register and memory reads answered from the cache since the gateway started.
    pub cache_hits: u64,
    /// Reads that had to go to the stub (or joined one that had).
    pub cache_misses: u64,
    /// Tickets issued and not yet used or expired: clients about to attach.
    pub open_tickets: usize,
}
