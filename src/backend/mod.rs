//! Emulator backends behind one trait.
//!
//! A `Backend` is what the server knows about one kind of emulator: whether it is usable
//! on this host (found by probing, never assumed), what it can do, and how to launch a
//! `Machine`. A `Machine` is one running emulator process owned by exactly one session;
//! it reports what happens to it (console bytes, pause, resume, reset, exit) as
//! `MachineEvent`s on a channel, and dies with its owner.
//!
//! Optional capabilities (snapshots, reverse execution, tracing) are accessors that
//! return `None` by default, so `capabilities` is derived from what a backend really
//! implements rather than written by hand.
//!
//! This is the only layer that knows emulator command lines or QMP.

pub mod qemu;
mod unavailable;

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::boards::BoardTemplate;

pub use unavailable::UnavailableBackend;

/// The kinds of backend the API names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackendKind {
    Qemu,
    Renode,
    Skyeye,
    ProbeRs,
}

impl BackendKind {
    pub const ALL: [BackendKind; 4] = [
        BackendKind::Qemu,
        BackendKind::Renode,
        BackendKind::Skyeye,
        BackendKind::ProbeRs,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Qemu => "QEMU",
            BackendKind::Renode => "RENODE",
            BackendKind::Skyeye => "SKYEYE",
            BackendKind::ProbeRs => "PROBE_RS",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

/// Why a backend operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("{backend} is not available on this host: {reason}")]
    Unavailable {
        backend: &'static str,
        reason: String,
    },
    #[error("board '{board}' has no {backend} section")]
    BoardNotSupported {
        board: String,
        backend: &'static str,
    },
    #[error("emulator failed to start: {0}")]
    Launch(String),
    #[error("emulator control failed: {0}")]
    Control(String),
    #[error("the emulator is no longer running")]
    Gone,
    /// The machine's state cannot be saved (a device blocks migration), or the backend
    /// has no snapshots.
    #[error("snapshots are unsupported here: {0}")]
    SnapshotUnsupported(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// One emulator binary found on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmulatorBinary {
    pub name: String,
    pub path: PathBuf,
    pub version: String,
}

/// The outcome of probing a backend at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Availability {
    pub available: bool,
    /// Why it is unavailable, or notes on partial availability.
    pub reason: Option<String>,
    pub binaries: Vec<EmulatorBinary>,
}

/// One way a backend's emulator processes are kept from the host (seccomp, Landlock...),
/// as `capabilities` and `virserver doctor` report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confinement {
    pub name: &'static str,
    pub active: bool,
    /// What is enforced, or why it is not.
    pub detail: Option<String>,
}

/// What a backend supports, derived from its capability accessors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Features {
    pub gdb: bool,
    pub snapshots: bool,
    pub reverse: bool,
    pub trace: bool,
}

/// Everything a backend needs to start one machine.
#[derive(Debug, Clone)]
pub struct LaunchRequest {
    pub board: BoardTemplate,
    pub program: PathBuf,
    /// A private directory for this machine's sockets and logs: the only place a confined
    /// emulator writes.
    pub run_dir: PathBuf,
    /// Keep the CPU at its reset state until resumed.
    pub halted: bool,
    /// The execution trace for coverage, when wanted, inside `run_dir`. Only backends with
    /// the trace capability accept it.
    pub trace: Option<TraceRequest>,
    /// Start in this saved state (a file [`MachineSnapshots::save`] wrote) instead of at
    /// reset; the machine is then paused whatever `halted` says.
    pub restore: Option<PathBuf>,
    /// Virtual time counted in executed instructions, with a fixed clock start: the same
    /// program and input give the same run every time.
    pub deterministic: bool,
    /// Record this run, or replay a recording, in a directory inside `run_dir`.
    pub recording: Option<Recording>,
}

/// Record and replay: everything the emulator needs to repeat a run exactly (its log of
/// inputs and a snapshot image reverse execution restarts from) lives in one directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recording {
    Record(PathBuf),
    /// A copy of a recording's directory: the emulator writes snapshots into it.
    Replay(PathBuf),
}

/// Where and how to record execution for coverage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceRequest {
    pub path: PathBuf,
    pub collector: Collector,
}

/// How execution is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Collector {
    /// QEMU's `-d in_asm` log: every translated block once, no run-time cost, no counts.
    InAsm,
    /// The TCG plugin (crates/qemu-trace-plugin): an execution count per instruction.
    HitCounts,
}

impl Collector {
    pub fn as_str(self) -> &'static str {
        match self {
            Collector::InAsm => "IN_ASM",
            Collector::HitCounts => "HIT_COUNTS",
        }
    }

    /// Unknown strings read as the default collector.
    pub fn parse(text: &str) -> Self {
        if text == "HIT_COUNTS" {
            Collector::HitCounts
        } else {
            Collector::InAsm
        }
    }
}

/// How an emulator process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MachineExit {
    /// The firmware exited with a status (semihosting or an exit device).
    Exited(i32),
    /// The process died without being asked to: killed, aborted, or an emulator error.
    Crashed(String),
    /// It stopped because the server asked it to.
    PoweredOff,
}

/// What a running machine reports, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MachineEvent {
    Console(Vec<u8>),
    Paused,
    Resumed,
    Reset,
    Exited(MachineExit),
}

/// One running emulator. Dropping it kills the process.
#[async_trait]
pub trait Machine: Send + Sync {
    fn pid(&self) -> Option<u32>;
    /// The emulator's own GDB stub (a unix socket), if it has one.
    fn gdb_socket(&self) -> Option<PathBuf>;
    /// The guest's semihosting calls come to the GDB stub's client as File-I/O
    /// requests: a gateway must attach before the guest runs, answer them, and stay
    /// attached. Such a machine starts halted whatever the launch asked for; the
    /// caller resumes it once attached.
    fn gdb_file_io(&self) -> bool {
        false
    }
    async fn pause(&self) -> Result<(), BackendError>;
    async fn resume(&self) -> Result<(), BackendError>;
    async fn reset(&self) -> Result<(), BackendError>;
    async fn write_console(&self, data: &[u8]) -> Result<(), BackendError>;
    /// Stops the emulator; the event channel then reports `Exited(PoweredOff)`.
    async fn power_off(&self) -> Result<(), BackendError>;
    /// Saving and loading the whole machine state, when the backend can.
    fn snapshots(&self) -> Option<&dyn MachineSnapshots> {
        None
    }
    /// A machine launched with [`LaunchRequest::recording`].
    fn recording(&self) -> Option<&dyn MachineRecording> {
        None
    }
}

/// A machine that records its run or replays one.
#[async_trait]
pub trait MachineRecording: Send + Sync {
    /// How many instructions the CPU has executed.
    async fn instructions(&self) -> Result<u64, BackendError>;
    /// A snapshot inside the recording, named `name`: reverse execution re-executes
    /// from the nearest one before its target, so more of them bound its cost. The run
    /// state is the same afterwards, with no pause or resume reported.
    async fn checkpoint(&self, name: &str) -> Result<(), BackendError>;
    /// Replay only: once resumed, the CPU pauses exactly at instruction `count` (the
    /// GDB stub reports it as an interrupt).
    async fn break_at(&self, count: u64) -> Result<(), BackendError>;
}

/// The whole state of one running machine (CPU, memory, devices) to a file and back.
#[async_trait]
pub trait MachineSnapshots: Send + Sync {
    /// Saves the state into a new file at `path`, inside the machine's run dir, and
    /// returns its size. The run state is the same afterwards, and the machine reports
    /// no pause or resume for it. A device that cannot be saved is
    /// [`BackendError::SnapshotUnsupported`], naming it.
    async fn save(&self, path: &std::path::Path) -> Result<u64, BackendError>;
    /// Loads a state `save` wrote (any machine's of the same board). The machine must
    /// be paused, and stays paused.
    async fn load(&self, path: &std::path::Path) -> Result<(), BackendError>;
}

/// One kind of emulator.
#[async_trait]
pub trait Backend: Send + Sync {
    fn kind(&self) -> BackendKind;
    fn availability(&self) -> &Availability;
    /// Whether the backend can run this board (it has a section for it, and the binary).
    fn supports_board(&self, board: &BoardTemplate) -> Result<(), BackendError>;
    async fn launch(
        &self,
        request: LaunchRequest,
    ) -> Result<(Box<dyn Machine>, mpsc::Receiver<MachineEvent>), BackendError>;

    // Optional capabilities: None until a backend implements them.
    fn snapshots(&self) -> Option<&dyn SnapshotCapability> {
        None
    }
    fn reverse_execution(&self) -> Option<&dyn ReverseCapability> {
        None
    }
    fn trace(&self) -> Option<&dyn TraceCapability> {
        None
    }
    fn has_gdb_stub(&self) -> bool {
        false
    }
    /// How its emulator processes are confined; empty for a backend that runs none.
    fn confinements(&self) -> Vec<Confinement> {
        Vec::new()
    }

    fn features(&self) -> Features {
        Features {
            gdb: self.has_gdb_stub(),
            snapshots: self.snapshots().is_some(),
            reverse: self.reverse_execution().is_some(),
            trace: self.trace().is_some(),
        }
    }
}

/// Marker traits: their presence is what `capabilities` reports. A backend with
/// snapshots gives its machines [`Machine::snapshots`].
pub trait SnapshotCapability: Send + Sync {}
pub trait ReverseCapability: Send + Sync {}

/// Execution traces for coverage (`LaunchRequest::trace`).
pub trait TraceCapability: Send + Sync {
    /// What collects hit counts (a plugin's path, for `doctor`), or why they cannot be.
    fn hit_counts(&self) -> Result<String, String>;
}

/// Every backend this build knows, probed once.
#[derive(Clone)]
pub struct Backends {
    all: Vec<Arc<dyn Backend>>,
}

impl Backends {
    /// Probes the host. QEMU is probed for real; Renode and SkyEye are looked up on PATH
    /// and reported as untested adapters; probe-rs needs a build with its feature.
    /// `trace_plugin` is the hit-count plugin to use, when configured; `confinement` how
    /// much of `qemu::confine` applies.
    pub async fn probe(
        trace_plugin: Option<PathBuf>,
        confinement: qemu::confine::ConfinementMode,
    ) -> Self {
        let all: Vec<Arc<dyn Backend>> = vec![
            Arc::new(qemu::QemuBackend::probe(trace_plugin, confinement).await),
            Arc::new(UnavailableBackend::renode()),
            Arc::new(UnavailableBackend::skyeye()),
            Arc::new(UnavailableBackend::probe_rs()),
        ];
        Self { all }
    }

    pub fn get(&self, kind: BackendKind) -> Option<&Arc<dyn Backend>> {
        self.all.iter().find(|backend| backend.kind() == kind)
    }

    pub fn all(&self) -> &[Arc<dyn Backend>] {
        &self.all
    }
}
