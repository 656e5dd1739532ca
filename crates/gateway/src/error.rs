//! The gateway's errors: one thiserror enum for starting and running the
//! gateway ([`GatewayError`]) and one for the API's debug calls
//! ([`DebugError`]), kept apart because the first is fatal to a session's
//! gateway and the second is an answer to one request.

use std::io;
use std::net::SocketAddr;

/// Starting, running or reaching the gateway failed.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The listener (or a ticket's) could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address asked for.
        address: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// A socket operation failed.
    #[error("gateway I/O: {0}")]
    Io(#[from] io::Error),
    /// The gateway has shut down.
    #[error("the gateway has shut down")]
    Closed,
}

/// A debug call of the API's [`DebugClient`](crate::DebugClient) failed.
///
/// Variants are stable: the server maps each one to an error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DebugError {
    /// The call needs a halted target (the API never touches a running VM's
    /// stub for a read or a write; call `halt` first).
    #[error("the target is not halted")]
    NotHalted,
    /// The stub gave no target description, so registers have no names.
    #[error("the stub provided no target description")]
    NoTargetDescription,
    /// No register has this name in the target description.
    #[error("no register named {0:?}")]
    UnknownRegister(String),
    /// The stub answered with an error or an empty (unsupported) reply.
    #[error("the stub refused {command}: {reply:?}")]
    Refused {
        /// The RSP mnemonic of the request.
        command: &'static str,
        /// The stub's reply, such as `E14` (empty when unsupported).
        reply: String,
    },
    /// A memory read came back shorter than asked.
    #[error("memory at {address:#x} could not be read")]
    Memory {
        /// The first byte that could not be read.
        address: u64,
    },
    /// Reverse execution asked of a stub that has none (only a QEMU replaying
    /// a recording advertises `ReverseStep+`/`ReverseContinue+`).
    #[error("the target cannot execute backwards: it is not replaying a recording")]
    NoReverse,
    /// The stub's reply could not be understood.
    #[error("unexpected reply from the stub: {0}")]
    Protocol(String),
    /// The emulator's stub could not be reached, or the connection dropped.
    #[error("the emulator's GDB stub is unreachable: {0}")]
    Upstream(String),
    /// The target exited (or was killed) during the call.
    #[error("the target exited")]
    Exited,
    /// The gateway has shut down.
    #[error("the gateway has shut down")]
    GatewayClosed,
}
