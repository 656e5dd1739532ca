//! The API's vocabulary: what the server's own debug client asks the mux
//! ([`ApiCall`]) and what it gets back ([`ApiResult`], [`Register`]).
//!
//! These are plain data so that the sans-IO mux can take them as input; the
//! async [`DebugClient`](crate::DebugClient) wraps them in methods.

use virserver_rsp::packets::BreakpointType;

use crate::status::StopEvent;

/// One register, named by the target description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Register {
    /// Its name, such as `pc`.
    pub name: String,
    /// Its number in the target description (`p`/`P`).
    pub number: u32,
    /// Its size in bits.
    pub bits: u32,
    /// Its value as a number in hex, `0x` and most significant digit first
    /// (the target byte order already undone).
    pub value_hex: String,
}

/// Software or hardware breakpoint (`Z0` / `Z1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BreakpointKind {
    /// `Z0`: the stub patches or traps the instruction.
    Software,
    /// `Z1`: a hardware comparator (QEMU emulates both the same way).
    Hardware,
}

impl BreakpointKind {
    /// The RSP type.
    pub fn breakpoint_type(self) -> BreakpointType {
        match self {
            BreakpointKind::Software => BreakpointType::Software,
            BreakpointKind::Hardware => BreakpointType::Hardware,
        }
    }
}

/// Which accesses a watchpoint catches (`Z2`, `Z3`, `Z4`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WatchpointKind {
    /// `Z3`: reads.
    Read,
    /// `Z2`: writes.
    Write,
    /// `Z4`: reads and writes.
    Access,
}

impl WatchpointKind {
    /// The RSP type.
    pub fn breakpoint_type(self) -> BreakpointType {
        match self {
            WatchpointKind::Read => BreakpointType::ReadWatch,
            WatchpointKind::Write => BreakpointType::WriteWatch,
            WatchpointKind::Access => BreakpointType::AccessWatch,
        }
    }
}

/// One request of the API, serialized through the mux like a client's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiCall {
    /// Halt the target (connecting upstream if needed) and hold it halted.
    Halt,
    /// Release the API's halt and let the target run.
    Resume,
    /// Single-step `count` instructions; the result is the last stop.
    Step {
        /// How many steps.
        count: u32,
    },
    /// Execute backwards: one instruction (`bs`), or to the previous
    /// breakpoint or watchpoint hit, or the start of the recording (`bc`).
    /// The result is the stop.
    Reverse {
        /// `bs` when true, `bc` otherwise.
        step: bool,
    },
    /// Read every register of the target description.
    ReadRegisters,
    /// Write one register by name.
    WriteRegister {
        /// Its name.
        name: String,
        /// The value.
        value: u64,
    },
    /// Read `length` bytes at `addr`.
    ReadMemory {
        /// First address.
        addr: u64,
        /// Number of bytes.
        length: u64,
    },
    /// Write bytes at `addr`.
    WriteMemory {
        /// First address.
        addr: u64,
        /// The bytes.
        data: Vec<u8>,
    },
    /// Insert (`insert` true) or remove a breakpoint or watchpoint.
    Breakpoint {
        /// Insert or remove.
        insert: bool,
        /// Which kind.
        breakpoint_type: BreakpointType,
        /// Its address.
        addr: u64,
        /// Instruction size (breakpoints, 0 = the architecture's) or watched
        /// length (watchpoints).
        kind: u64,
    },
    /// Is the target halted?
    IsHalted,
}

/// A successful answer to an [`ApiCall`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiResult {
    /// Done.
    Done,
    /// The answer to `IsHalted`.
    Halted(bool),
    /// The stop that ended a step.
    Stopped(StopEvent),
    /// The registers.
    Registers(Vec<Register>),
    /// The memory read.
    Memory(Vec<u8>),
    /// What a `Resume` did.
    Resumed(Resumed),
}

/// What [`ApiCall::Resume`] did: whether the target now runs, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resumed {
    /// `c` went to the stub: the stub reports the next stop.
    ThroughStub,
    /// No GDB client was attached: the gateway sent `D`, which resumes the
    /// VM and closes the link.
    Detached,
    /// The target was already running (not a step: the API waits for a
    /// step to end, then resumes).
    AlreadyRunning,
    /// The gateway has no link to the stub, so it did nothing: whoever
    /// paused the VM (QMP `stop`) must resume it the same way. With no link
    /// open, the stub has no stop to report.
    NotConnected,
}
