//! [`DebugClient`]: the server's own client of the mux, for the GraphQL
//! debug API. Each call is one [`ApiCall`] serialized through the mux like a
//! GDB client's request; see the rules in the mux's `api.rs` (summed up in
//! the crate doc).

use std::sync::Arc;

use crate::debug_api::{ApiCall, ApiResult, BreakpointKind, Register, Resumed, WatchpointKind};
use crate::driver::Driver;
use crate::error::DebugError;
use crate::status::StopEvent;

/// A handle on the gateway's API client; cheap to clone.
#[derive(Clone)]
pub struct DebugClient {
    driver: Arc<Driver>,
}

impl std::fmt::Debug for DebugClient {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("DebugClient")
    }
}

impl DebugClient {
    pub(crate) fn new(driver: Arc<Driver>) -> DebugClient {
        DebugClient { driver }
    }

    /// Sends one call and waits for its answer.
    pub async fn call(&self, call: ApiCall) -> Result<ApiResult, DebugError> {
        let answer = self.driver.call(call);
        answer.await.map_err(|_| DebugError::GatewayClosed)?
    }

    async fn done(&self, call: ApiCall) -> Result<(), DebugError> {
        self.call(call).await.map(drop)
    }

    /// Halts the target and holds it halted until [`DebugClient::resume`].
    pub async fn halt(&self) -> Result<(), DebugError> {
        self.done(ApiCall::Halt).await
    }

    /// Releases the hold and lets the target run (detaching when no GDB
    /// client is attached); says how (see [`Resumed`]).
    ///
    /// While the link is up, every resume must go this way rather than QMP
    /// `cont`: QEMU 8.1 and later report a stop only after a resume they
    /// were sent, so a VM resumed behind the stub stops unannounced.
    pub async fn resume(&self) -> Result<Resumed, DebugError> {
        match self.call(ApiCall::Resume).await? {
            ApiResult::Resumed(resumed) => Ok(resumed),
            other => Err(DebugError::Protocol(format!("resume answered {other:?}"))),
        }
    }

    /// Steps `count` instructions (fewer if something else stops the
    /// target); the last stop, or `None` for a count of 0.
    pub async fn step(&self, count: u32) -> Result<Option<StopEvent>, DebugError> {
        match self.call(ApiCall::Step { count }).await? {
            ApiResult::Stopped(event) => Ok(Some(event)),
            _ => Ok(None),
        }
    }

    /// Executes backwards (see [`ApiCall::Reverse`]); the stop it ends at.
    pub async fn reverse(&self, step: bool) -> Result<StopEvent, DebugError> {
        match self.call(ApiCall::Reverse { step }).await? {
            ApiResult::Stopped(event) => Ok(event),
            other => Err(unexpected(other)),
        }
    }

    /// Every register of the target description, with its value.
    pub async fn registers(&self) -> Result<Vec<Register>, DebugError> {
        match self.call(ApiCall::ReadRegisters).await? {
            ApiResult::Registers(registers) => Ok(registers),
            other => Err(unexpected(other)),
        }
    }

    /// Writes one register, by its target-description name.
    pub async fn write_register(&self, name: &str, value: u64) -> Result<(), DebugError> {
        self.done(ApiCall::WriteRegister {
            name: name.to_owned(),
            value,
        })
        .await
    }

    /// Reads `length` bytes at `addr` (any length: split and pipelined).
    pub async fn read_memory(&self, addr: u64, length: u64) -> Result<Vec<u8>, DebugError> {
        match self.call(ApiCall::ReadMemory { addr, length }).await? {
            ApiResult::Memory(data) => Ok(data),
            other => Err(unexpected(other)),
        }
    }

    /// Writes bytes at `addr`.
    pub async fn write_memory(&self, addr: u64, data: &[u8]) -> Result<(), DebugError> {
        self.done(ApiCall::WriteMemory {
            addr,
            data: data.to_vec(),
        })
        .await
    }

    /// Inserts a breakpoint (held until removed, across client comings and goings).
    pub async fn insert_breakpoint(
        &self,
        kind: BreakpointKind,
        addr: u64,
    ) -> Result<(), DebugError> {
        self.breakpoint(true, kind.breakpoint_type(), addr, 0).await
    }

    /// Removes a breakpoint the API inserted.
    pub async fn remove_breakpoint(
        &self,
        kind: BreakpointKind,
        addr: u64,
    ) -> Result<(), DebugError> {
        self.breakpoint(false, kind.breakpoint_type(), addr, 0)
            .await
    }

    /// Inserts a watchpoint on `length` bytes at `addr`.
    pub async fn insert_watchpoint(
        &self,
        kind: WatchpointKind,
        addr: u64,
        length: u64,
    ) -> Result<(), DebugError> {
        self.breakpoint(true, kind.breakpoint_type(), addr, length)
            .await
    }

    /// Removes a watchpoint the API inserted.
    pub async fn remove_watchpoint(
        &self,
        kind: WatchpointKind,
        addr: u64,
        length: u64,
    ) -> Result<(), DebugError> {
        self.breakpoint(false, kind.breakpoint_type(), addr, length)
            .await
    }

    async fn breakpoint(
        &self,
        insert: bool,
        breakpoint_type: virserver_rsp::packets::BreakpointType,
        addr: u64,
        kind: u64,
    ) -> Result<(), DebugError> {
        self.done(ApiCall::Breakpoint {
            insert,
            breakpoint_type,
            addr,
            kind,
        })
        .await
    }

    /// True when the gateway is connected and the target halted (the
    /// gateway never asks the stub of a VM it is not attached to).
    pub async fn is_halted(&self) -> Result<bool, DebugError> {
        match self.call(ApiCall::IsHalted).await? {
            ApiResult::Halted(halted) => Ok(halted),
            other => Err(unexpected(other)),
        }
    }
}

fn unexpected(result: ApiResult) -> DebugError {
    DebugError::Protocol(format!("unexpected answer {result:?}"))
}
