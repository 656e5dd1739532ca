//! The debug domain of the API, served through the session's GDB gateway as one more
//! client of its multiplexer: registers (names from target.xml), memory, breakpoints on
//! addresses, functions or source lines, watchpoints, run control and one-time attach
//! tickets. Addresses are "0x..." strings because GraphQL Int has 32 signed bits.

use std::time::Duration;

use async_graphql::{Context, Enum, ID, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::errors::{ApiResult, coded};
use super::sessions::app;
use crate::debugger::{Debugger, DebuggerError, Location, parse_address};
use virserver_gateway::{BreakpointKind, DebugError, WatchpointKind};

/// The longest single memory read or write through the API.
const MAX_MEMORY: u64 = 1024 * 1024;

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "BreakpointKind")]
pub enum BreakpointKindEnum {
    Software,
    Hardware,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "WatchpointKind")]
pub enum WatchpointKindEnum {
    Read,
    Write,
    Access,
}

#[derive(SimpleObject)]
#[graphql(name = "Register")]
pub struct RegisterObject {
    name: String,
    /// Its number in the target description.
    number: i32,
    bits: i32,
    /// The value as "0x..." (target byte order undone).
    value: String,
}

#[derive(SimpleObject)]
#[graphql(name = "Breakpoint")]
pub struct BreakpointObject {
    /// The code address as "0x...".
    address: String,
    kind: BreakpointKindEnum,
    function: Option<String>,
    file: Option<String>,
    line: Option<i32>,
}

/// Where the CPU is after a step or halt.
#[derive(SimpleObject)]
#[graphql(name = "StopPosition")]
pub struct StopPositionObject {
    pc: Option<String>,
    function: Option<String>,
    file: Option<String>,
    line: Option<i32>,
}

#[derive(SimpleObject)]
#[graphql(name = "AttachTicket")]
pub struct AttachTicketObject {
    /// host:port that accepts one GDB connection.
    address: String,
    /// host:port that accepts one DAP client (an editor), which debugs through a GDB of
    /// the server's; null when the server has no GDB that serves DAP.
    dap_address: Option<String>,
    expires_at: DateTime<Utc>,
}

fn debug_error(error: DebuggerError) -> super::errors::ApiError {
    let code = match &error {
        DebuggerError::Symbol(_) => "NO_SUCH_SYMBOL",
        DebuggerError::NoDebugInfo(_) => "NO_DEBUG_INFO",
        DebuggerError::BadInput(_) => "BAD_INPUT",
        DebuggerError::Target(DebugError::NotHalted) => "NOT_HALTED",
        DebuggerError::Target(DebugError::UnknownRegister(_)) => "NO_SUCH_SYMBOL",
        DebuggerError::Target(DebugError::NoReverse) => "NOT_REPLAYING",
        DebuggerError::Target(_) | DebuggerError::Gateway(_) => "TARGET_ERROR",
        DebuggerError::TicketsWithRawMonitor => "UNSUPPORTED",
    };
    coded(code, error.to_string()).into()
}

/// A step count of 1 to `max`; BAD_INPUT otherwise.
fn step_count(count: i32, max: u32) -> ApiResult<u32> {
    u32::try_from(count)
        .ok()
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| coded("BAD_INPUT", format!("count must be 1 to {max}")).into())
}

fn target(error: DebugError) -> super::errors::ApiError {
    debug_error(DebuggerError::Target(error))
}

async fn debugger(ctx: &Context<'_>, session_id: &ID) -> ApiResult<std::sync::Arc<Debugger>> {
    Ok(app(ctx).sessions.debugger(session_id).await?)
}

/// The session's debugger and the code address a location names.
async fn located(
    ctx: &Context<'_>,
    session_id: &ID,
    location: &str,
) -> ApiResult<(std::sync::Arc<Debugger>, u64)> {
    let debugger = debugger(ctx, session_id).await?;
    let location = Location::parse(location).map_err(debug_error)?;
    let code = debugger.resolve(&location).await.map_err(debug_error)?;
    Ok((debugger, code.address))
}

/// Inserts or removes a watchpoint.
async fn watch(
    ctx: &Context<'_>,
    session_id: &ID,
    (address, length): (&str, i32),
    kind: WatchpointKindEnum,
    insert: bool,
) -> ApiResult<bool> {
    let (address, length) = (self::address(address)?, self::length(length)?);
    let client = debugger(ctx, session_id).await?.client();
    let kind = watchpoint_kind(kind);
    let result = if insert {
        client.insert_watchpoint(kind, address, length).await
    } else {
        client.remove_watchpoint(kind, address, length).await
    };
    result.map_err(target)?;
    Ok(true)
}

fn address(text: &str) -> ApiResult<u64> {
    parse_address(text).map_err(debug_error)
}

fn length(value: i32) -> ApiResult<u64> {
    u64::try_from(value)
        .ok()
        .filter(|n| (1..=MAX_MEMORY).contains(n))
        .ok_or_else(|| coded("BAD_INPUT", format!("length must be 1 to {MAX_MEMORY}")).into())
}

async fn position(debugger: &Debugger) -> ApiResult<StopPositionObject> {
    let registers = debugger.client().registers().await.map_err(target)?;
    let pc = registers
        .iter()
        .find(|r| r.name == "pc")
        .and_then(|r| parse_address(&r.value_hex).ok());
    let source = match pc {
        Some(pc) => debugger.describe(pc).await,
        None => Default::default(),
    };
    Ok(StopPositionObject {
        pc: pc.map(|pc| format!("0x{pc:x}")),
        function: source.function,
        file: source.file,
        line: source.line.map(|l| l as i32),
    })
}

#[derive(Default)]
pub struct DebugQuery;

#[Object]
impl DebugQuery {
    /// The registers of a halted session, named as the target description names them.
    async fn registers(&self, ctx: &Context<'_>, session_id: ID) -> ApiResult<Vec<RegisterObject>> {
        let registers = debugger(ctx, &session_id)
            .await?
            .client()
            .registers()
            .await
            .map_err(target)?;
        Ok(registers
            .into_iter()
            .map(|r| RegisterObject {
                name: r.name,
                number: r.number as i32,
                bits: r.bits as i32,
                value: r.value_hex,
            })
            .collect())
    }

    /// Memory of a halted session, as hex.
    async fn read_memory(
        &self,
        ctx: &Context<'_>,
        session_id: ID,
        address: String,
        length: i32,
    ) -> ApiResult<String> {
        let (address, length) = (self::address(&address)?, self::length(length)?);
        let bytes = debugger(ctx, &session_id)
            .await?
            .client()
            .read_memory(address, length)
            .await
            .map_err(target)?;
        Ok(hex::encode(bytes))
    }
}

#[derive(Default)]
pub struct DebugMutation;

#[Object]
impl DebugMutation {
    /// Stops the CPU (and keeps it stopped for the API until continueSession).
    async fn halt_session(
        &self,
        ctx: &Context<'_>,
        session_id: ID,
    ) -> ApiResult<StopPositionObject> {
        let debugger = debugger(ctx, &session_id).await?;
        debugger.client().halt().await.map_err(target)?;
        position(&debugger).await
    }

    /// Resumes the CPU (and releases the API's halt).
    async fn continue_session(&self, ctx: &Context<'_>, session_id: ID) -> ApiResult<bool> {
        app(ctx).sessions.resume_cpu(&session_id).await?;
        Ok(true)
    }

    /// Executes backwards `count` instructions of a halted CPU replaying a recording;
    /// returns where it stopped. NOT_REPLAYING on any other session.
    async fn reverse_step(
        &self,
        ctx: &Context<'_>,
        session_id: ID,
        #[graphql(default = 1)] count: i32,
    ) -> ApiResult<StopPositionObject> {
        let count = step_count(count, 10_000)?;
        let debugger = debugger(ctx, &session_id).await?;
        for _ in 0..count {
            debugger.client().reverse(true).await.map_err(target)?;
        }
        position(&debugger).await
    }

    /// Executes backwards to the previous breakpoint or watchpoint hit, or to the start
    /// of the recording; returns where it stopped. NOT_REPLAYING elsewhere.
    async fn reverse_continue(
        &self,
        ctx: &Context<'_>,
        session_id: ID,
    ) -> ApiResult<StopPositionObject> {
        let debugger = debugger(ctx, &session_id).await?;
        debugger.client().reverse(false).await.map_err(target)?;
        position(&debugger).await
    }

    /// Executes `count` instructions of a halted CPU; returns where it stopped.
    async fn step_session(
        &self,
        ctx: &Context<'_>,
        session_id: ID,
        #[graphql(default = 1)] count: i32,
    ) -> ApiResult<StopPositionObject> {
        let count = step_count(count, 100_000)?;
        let debugger = debugger(ctx, &session_id).await?;
        debugger.client().step(count).await.map_err(target)?;
        position(&debugger).await
    }

    async fn write_register(
        &self,
        ctx: &Context<'_>,
        session_id: ID,
        name: String,
        value: String,
    ) -> ApiResult<bool> {
        let value = address(&value)?;
        debugger(ctx, &session_id)
            .await?
            .client()
            .write_register(&name, value)
            .await
            .map_err(target)?;
        Ok(true)
    }

    /// Writes hex bytes at an address of a halted CPU.
    async fn write_memory(
        &self,
        ctx: &Context<'_>,
        session_id: ID,
        address: String,
        data: String,
    ) -> ApiResult<bool> {
        let address = self::address(&address)?;
        let bytes = hex::decode(data.trim())
            .map_err(|e| coded("BAD_INPUT", format!("data is not hex: {e}")))?;
        length(i32::try_from(bytes.len()).unwrap_or(i32::MAX))?;
        debugger(ctx, &session_id)
            .await?
            .client()
            .write_memory(address, &bytes)
            .await
            .map_err(target)?;
        Ok(true)
    }

    /// Sets a breakpoint on "0x...", a function name, or "file.c:LINE" (resolved through
    /// the program's DWARF; a line without code moves to the next line with code).
    async fn add_breakpoint(
        &self,
        ctx: &Context<'_>,
        session_id: ID,
        location: String,
        #[graphql(default_with = "BreakpointKindEnum::Software")] kind: BreakpointKindEnum,
    ) -> ApiResult<BreakpointObject> {
        let (debugger, address) = located(ctx, &session_id, &location).await?;
        debugger
            .client()
            .insert_breakpoint(breakpoint_kind(kind), address)
            .await
            .map_err(target)?;
        let source = debugger.describe(address).await;
        Ok(BreakpointObject {
            address: format!("0x{address:x}"),
            kind,
            function: source.function,
            file: source.file,
            line: source.line.map(|l| l as i32),
        })
    }

    async fn remove_breakpoint(
        &self,
        ctx: &Context<'_>,
        session_id: ID,
        location: String,
        #[graphql(default_with = "BreakpointKindEnum::Software")] kind: BreakpointKindEnum,
    ) -> ApiResult<bool> {
        let (debugger, address) = located(ctx, &session_id, &location).await?;
        debugger
            .client()
            .remove_breakpoint(breakpoint_kind(kind), address)
            .await
            .map_err(target)?;
        Ok(true)
    }

    async fn add_watchpoint(
        &self,
        ctx: &Context<'_>,
        session_id: ID,
        address: String,
        #[graphql(default = 4)] length: i32,
        kind: WatchpointKindEnum,
    ) -> ApiResult<bool> {
        watch(ctx, &session_id, (&address, length), kind, true).await
    }

    async fn remove_watchpoint(
        &self,
        ctx: &Context<'_>,
        session_id: ID,
        address: String,
        #[graphql(default = 4)] length: i32,
        kind: WatchpointKindEnum,
    ) -> ApiResult<bool> {
        watch(ctx, &session_id, (&address, length), kind, false).await
    }

    /// A one-time address that accepts a single GDB connection within `ttlSeconds`,
    /// for deployments whose GDB endpoints are not loopback-only.
    async fn create_attach_ticket(
        &self,
        ctx: &Context<'_>,
        session_id: ID,
        #[graphql(default = 60)] ttl_seconds: i32,
    ) -> ApiResult<AttachTicketObject> {
        let ttl = u64::try_from(ttl_seconds)
            .ok()
            .filter(|s| (1..=3600).contains(s))
            .ok_or_else(|| coded("BAD_INPUT", "ttlSeconds must be 1 to 3600"))?;
        let debugger = debugger(ctx, &session_id).await?;
        let address = debugger
            .create_ticket(
                Duration::from_secs(ttl),
                crate::auth::guard::identity(ctx).user(),
            )
            .await
            .map_err(debug_error)?;
        let dap_address = match app(ctx)
            .dap
            .ticket(&session_id, Duration::from_secs(ttl))
            .await
        {
            Ok(address) => address.map(|a| a.to_string()),
            Err(error) => {
                tracing::info!(%error, "no DAP ticket");
                None
            }
        };
        Ok(AttachTicketObject {
            address: address.to_string(),
            dap_address,
            expires_at: Utc::now() + chrono::Duration::seconds(ttl as i64),
        })
    }
}

fn breakpoint_kind(kind: BreakpointKindEnum) -> BreakpointKind {
    match kind {
        BreakpointKindEnum::Software => BreakpointKind::Software,
        BreakpointKindEnum::Hardware => BreakpointKind::Hardware,
    }
}

fn watchpoint_kind(kind: WatchpointKindEnum) -> WatchpointKind {
    match kind {
        WatchpointKindEnum::Read => WatchpointKind::Read,
        WatchpointKindEnum::Write => WatchpointKind::Write,
        WatchpointKindEnum::Access => WatchpointKind::Access,
    }
}
