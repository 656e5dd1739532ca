//! The sessions domain of the API: sessions, programs, power, console, and the
//! `uartOutput` / `sessionEvents` subscriptions. Resolvers only translate; the work is in
//! `crate::sessions`.

use std::io::Read;
use std::sync::Arc;

use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject, Subscription, Upload};
use chrono::{DateTime, Utc};
use futures_util::{Stream, StreamExt};

use super::boards::BoardTemplateObject;
use super::errors::{ApiResult, coded, to_graphql};
use crate::app::App;
use crate::backend::{BackendKind, Collector};
use crate::programs::display_name;
use crate::sessions::{EventKind, PowerAction, SessionEvent, SessionState, Settings, follow};
use crate::store::{ProgramRecord, SessionRecord};

pub fn app<'a>(ctx: &Context<'a>) -> &'a Arc<App> {
    ctx.data_unchecked::<Arc<App>>()
}

/// The display name (`programs::display_name` of the file name the client sent) and
/// bytes of an upload, read off the async workers; at most `limit + 1` bytes are read,
/// so the caller's size check sees an oversized file.
pub async fn read_upload(
    ctx: &Context<'_>,
    upload: Upload,
    limit: u64,
) -> ApiResult<(String, Vec<u8>)> {
    let value = upload
        .value(ctx)
        .map_err(|error| coded("BAD_INPUT", format!("cannot read the upload: {error}")))?;
    let name = display_name(&value.filename);
    let mut content = value.content;
    let data = tokio::task::spawn_blocking(move || {
        let mut data = Vec::new();
        (&mut content)
            .take(limit + 1)
            .read_to_end(&mut data)
            .map(|_| data)
    })
    .await
    .map_err(|error| coded("INTERNAL", error.to_string()))?
    .map_err(|error| coded("BAD_INPUT", format!("cannot read the upload: {error}")))?;
    Ok((name, data))
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "Backend")]
pub enum BackendEnum {
    Qemu,
    Renode,
    Skyeye,
    ProbeRs,
}

impl From<BackendEnum> for BackendKind {
    fn from(value: BackendEnum) -> Self {
        match value {
            BackendEnum::Qemu => BackendKind::Qemu,
            BackendEnum::Renode => BackendKind::Renode,
            BackendEnum::Skyeye => BackendKind::Skyeye,
            BackendEnum::ProbeRs => BackendKind::ProbeRs,
        }
    }
}

impl BackendEnum {
    /// A backend name as stored in the database.
    pub fn from_stored(text: &str) -> Self {
        BackendKind::parse(text).unwrap_or(BackendKind::Qemu).into()
    }
}

impl From<BackendKind> for BackendEnum {
    fn from(value: BackendKind) -> Self {
        match value {
            BackendKind::Qemu => BackendEnum::Qemu,
            BackendKind::Renode => BackendEnum::Renode,
            BackendKind::Skyeye => BackendEnum::Skyeye,
            BackendKind::ProbeRs => BackendEnum::ProbeRs,
        }
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "SessionState")]
pub enum SessionStateEnum {
    Created,
    Running,
    Paused,
    Stopped,
    Exited,
    Crashed,
}

impl From<SessionState> for SessionStateEnum {
    fn from(value: SessionState) -> Self {
        match value {
            SessionState::Created => Self::Created,
            SessionState::Running => Self::Running,
            SessionState::Paused => Self::Paused,
            SessionState::Stopped => Self::Stopped,
            SessionState::Exited => Self::Exited,
            SessionState::Crashed => Self::Crashed,
        }
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "SessionEventKind")]
pub enum SessionEventKindEnum {
    Created,
    PoweredOn,
    PoweredOff,
    Paused,
    Resumed,
    Reset,
    ProgramLoaded,
    Exited,
    Crashed,
    Deleted,
    /// The CPU stopped under the debugger; `reason`, `pc`, `function`, `file`, `line`
    /// say where.
    Halted,
    /// A snapshot was restored: the session is PAUSED at its point.
    Restored,
}

impl From<EventKind> for SessionEventKindEnum {
    fn from(value: EventKind) -> Self {
        match value {
            EventKind::Created => Self::Created,
            EventKind::PoweredOn => Self::PoweredOn,
            EventKind::PoweredOff => Self::PoweredOff,
            EventKind::Paused => Self::Paused,
            EventKind::Resumed => Self::Resumed,
            EventKind::Reset => Self::Reset,
            EventKind::ProgramLoaded => Self::ProgramLoaded,
            EventKind::Exited => Self::Exited,
            EventKind::Crashed => Self::Crashed,
            EventKind::Deleted => Self::Deleted,
            EventKind::Halted => Self::Halted,
            EventKind::Restored => Self::Restored,
        }
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "PowerAction")]
pub enum PowerActionEnum {
    On,
    Off,
    Reset,
}

/// One emulated board with its backend, state and programs.
pub struct Session(pub SessionRecord);

#[Object]
impl Session {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    async fn state(&self) -> SessionStateEnum {
        SessionState::parse(&self.0.state).into()
    }

    /// The firmware's exit code, when the state is EXITED.
    async fn exit_code(&self) -> Option<i32> {
        self.0.exit_code
    }

    /// Why the session is in its state (crash reason, exit message), when known.
    async fn state_reason(&self) -> Option<&str> {
        self.0.state_reason.as_deref()
    }

    /// Whether every power-on records an execution trace for coverage.
    async fn coverage(&self) -> bool {
        self.0.coverage
    }

    /// How coverage is collected, when it is.
    async fn coverage_collector(&self) -> Option<CoverageCollectorEnum> {
        self.0
            .coverage
            .then(|| Collector::parse(&self.0.coverage_collector).into())
    }

    async fn backend(&self) -> BackendEnum {
        BackendEnum::from_stored(&self.0.backend)
    }

    async fn board(&self, ctx: &Context<'_>) -> ApiResult<BoardTemplateObject> {
        let board = app(ctx).catalog.board(&self.0.board_id).await?;
        Ok(board.into())
    }

    /// Every program uploaded to this session, oldest first.
    async fn programs(&self, ctx: &Context<'_>) -> ApiResult<Vec<Program>> {
        let programs = app(ctx).sessions.programs(&self.0.id).await?;
        Ok(programs.into_iter().map(Program).collect())
    }

    /// The program the session boots.
    async fn current_program(&self, ctx: &Context<'_>) -> ApiResult<Option<Program>> {
        match &self.0.current_program_id {
            Some(id) => Ok(Some(Program(app(ctx).sessions.program(id).await?))),
            None => Ok(None),
        }
    }

    /// Virtual time counted in instructions: runs repeat exactly.
    async fn deterministic(&self) -> bool {
        self.0.deterministic
    }

    /// Every power-on records its run.
    async fn record(&self) -> bool {
        self.0.record
    }

    /// The latest recording of this session's runs.
    async fn recording(
        &self,
        ctx: &Context<'_>,
    ) -> ApiResult<Option<super::recordings::Recording>> {
        let recording = app(ctx).sessions.latest_recording(&self.0.id).await?;
        Ok(recording.map(super::recordings::Recording))
    }

    /// The recording this session replays.
    async fn replay_of(
        &self,
        ctx: &Context<'_>,
    ) -> ApiResult<Option<super::recordings::Recording>> {
        match &self.0.replay_of {
            Some(id) => Ok(Some(super::recordings::Recording(
                app(ctx).sessions.recording(id).await?,
            ))),
            None => Ok(None),
        }
    }

    /// The CPU's instruction count (decimal), where known: while a session records or
    /// replays.
    async fn instructions(&self, ctx: &Context<'_>) -> Option<String> {
        let count = app(ctx).sessions.instructions(&self.0.id).await?;
        Some(count.to_string())
    }

    /// Saved states of this session's machine, oldest first.
    async fn snapshots(&self, ctx: &Context<'_>) -> ApiResult<Vec<super::snapshots::Snapshot>> {
        let snapshots = app(ctx).sessions.snapshots(&self.0.id).await?;
        Ok(snapshots
            .into_iter()
            .map(super::snapshots::Snapshot)
            .collect())
    }

    /// Where GDB clients attach while powered: `target extended-remote HOST:PORT`.
    async fn gdb_address(&self, ctx: &Context<'_>) -> Option<String> {
        let (_, gdb) = app(ctx).sessions.machine_info(&self.0.id)?;
        gdb.map(|address| address.to_string())
    }

    /// Where DAP clients (editors) attach while powered: a TCP endpoint whose every
    /// connection gets its own GDB, attached through the session's gateway. Null while
    /// not powered; GDB_UNAVAILABLE without a DAP-capable GDB.
    async fn dap_address(&self, ctx: &Context<'_>) -> ApiResult<Option<String>> {
        let address = app(ctx).dap.address(&self.0.id).await?;
        Ok(address.map(|address| address.to_string()))
    }

    /// True while the machine sleeps on disk (`--hibernate-after`): the session is
    /// PAUSED, has no emulator process, and wakes when anything needs its CPU (a GDB
    /// client attaching, a debug, power, UART or snapshot operation).
    async fn hibernated(&self) -> bool {
        self.0.hibernated
    }

    /// The emulator's process id while powered.
    async fn emulator_pid(&self, ctx: &Context<'_>) -> Option<i64> {
        let (pid, _) = app(ctx).sessions.machine_info(&self.0.id)?;
        pid.map(i64::from)
    }

    /// Recent console output (bounded by the server's replay size); null when another
    /// node runs the session.
    async fn uart_text(&self, ctx: &Context<'_>) -> ApiResult<Option<String>> {
        Ok(app(ctx).sessions.uart_text(&self.0.id).await?)
    }

    /// Every event of this session, oldest first.
    async fn history(&self, ctx: &Context<'_>) -> ApiResult<Vec<SessionEventObject>> {
        let events = app(ctx).sessions.history(&self.0.id).await?;
        Ok(events.into_iter().map(SessionEventObject::from).collect())
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// An ELF uploaded to a session.
pub struct Program(pub ProgramRecord);

#[Object]
impl Program {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    async fn sha256(&self) -> &str {
        &self.0.sha256
    }

    /// Entry point address as "0x..." (GraphQL Int is only 32 bits, signed).
    async fn entry_point(&self) -> String {
        format!("0x{:x}", self.0.entry_point as u64)
    }

    async fn arch(&self) -> &str {
        &self.0.arch
    }

    async fn size(&self) -> i64 {
        self.0.size
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// A piece of console output. `seq` increases by one per chunk; `dropped` says how many
/// chunks this subscriber missed just before this one because it read too slowly.
#[derive(SimpleObject)]
#[graphql(name = "UartChunk")]
pub struct UartChunkObject {
    seq: i64,
    data: String,
    dropped: i64,
    /// The CPU's instruction count (decimal) when this was shown, where known: in a
    /// replay, whose console follows the CPU.
    instructions: Option<String>,
}

#[derive(SimpleObject)]
#[graphql(name = "SessionEvent")]
pub struct SessionEventObject {
    session_id: ID,
    kind: SessionEventKindEnum,
    state: SessionStateEnum,
    exit_code: Option<i32>,
    message: Option<String>,
    at: DateTime<Utc>,
    /// HALTED: breakpoint, step, watchpoint, interrupt, signal N, ...
    reason: Option<String>,
    /// HALTED: the program counter as "0x...".
    pc: Option<String>,
    /// HALTED: the function, file and line of `pc` (from the program's DWARF).
    function: Option<String>,
    file: Option<String>,
    line: Option<i32>,
}

impl From<SessionEvent> for SessionEventObject {
    fn from(event: SessionEvent) -> Self {
        let stop = event.stop.unwrap_or_default();
        Self {
            reason: (!stop.reason.is_empty()).then_some(stop.reason),
            pc: stop.pc.map(|pc| format!("0x{pc:x}")),
            function: stop.function,
            file: stop.file,
            line: stop.line.map(|l| l as i32),
            session_id: ID(event.session_id),
            kind: event.kind.into(),
            state: event.state.into(),
            exit_code: event.exit_code,
            message: event.message,
            at: event.at,
        }
    }
}

#[derive(InputObject)]
pub struct CreateSessionInput {
    name: String,
    backend: BackendEnum,
    board_template: ID,
    /// Collect an execution trace on every power-on, for `coverage(sessionId:)`.
    #[graphql(default = false)]
    coverage: bool,
    /// IN_ASM (no run-time cost, hits 0/1) or HIT_COUNTS (the TCG plugin: real counts).
    /// When hit counts are unavailable the session falls back to IN_ASM and its CREATED
    /// event says why.
    #[graphql(default_with = "CoverageCollectorEnum::InAsm")]
    coverage_collector: CoverageCollectorEnum,
    /// Virtual time counted in instructions (`-icount shift=4,sleep=off`), a fixed
    /// clock start: the same program and input give the same console, exit code and
    /// coverage in every run (several times slower under TCG).
    #[graphql(default = false)]
    deterministic: bool,
    /// Record every run (QEMU record/replay, the console on a chardev whose input is
    /// recorded) for `replaySession`, where GDB can execute backwards.
    #[graphql(default = false)]
    record: bool,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "CoverageCollector")]
pub enum CoverageCollectorEnum {
    InAsm,
    HitCounts,
}

impl From<Collector> for CoverageCollectorEnum {
    fn from(value: Collector) -> Self {
        match value {
            Collector::InAsm => CoverageCollectorEnum::InAsm,
            Collector::HitCounts => CoverageCollectorEnum::HitCounts,
        }
    }
}

impl From<CoverageCollectorEnum> for Collector {
    fn from(value: CoverageCollectorEnum) -> Self {
        match value {
            CoverageCollectorEnum::InAsm => Collector::InAsm,
            CoverageCollectorEnum::HitCounts => Collector::HitCounts,
        }
    }
}

#[derive(Default)]
pub struct SessionQuery;

#[Object]
impl SessionQuery {
    async fn sessions(&self, ctx: &Context<'_>) -> ApiResult<Vec<Session>> {
        let identity = crate::auth::guard::identity(ctx);
        Ok(app(ctx)
            .sessions
            .list()
            .await?
            .into_iter()
            .filter(|session| identity.sees(session.owner.as_deref()))
            .map(Session)
            .collect())
    }

    async fn session(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Session> {
        Ok(Session(app(ctx).sessions.get(&id).await?))
    }
}

#[derive(Default)]
pub struct SessionMutation;

#[Object]
impl SessionMutation {
    async fn create_session(
        &self,
        ctx: &Context<'_>,
        input: CreateSessionInput,
    ) -> ApiResult<Session> {
        let record = app(ctx)
            .sessions
            .create(
                &input.name,
                input.backend.into(),
                &input.board_template,
                Settings {
                    coverage: input.coverage.then_some(input.coverage_collector.into()),
                    deterministic: input.deterministic,
                    record: input.record,
                    owner: crate::auth::guard::identity(ctx).owner(),
                },
            )
            .await?;
        Ok(Session(record))
    }

    /// Powers the session off if needed and deletes it with its history.
    async fn delete_session(&self, ctx: &Context<'_>, id: ID) -> ApiResult<bool> {
        app(ctx).sessions.delete(&id).await?;
        Ok(true)
    }

    /// ON boots the current program (or resumes a paused session); with `halted` the
    /// CPU is held at reset until resumed. OFF stops the emulator. RESET restarts the
    /// program, held at reset with `halted`.
    async fn power_session(
        &self,
        ctx: &Context<'_>,
        id: ID,
        action: PowerActionEnum,
        #[graphql(default = false)] halted: bool,
    ) -> ApiResult<Session> {
        let action = match action {
            PowerActionEnum::On => PowerAction::On,
            PowerActionEnum::Off => PowerAction::Off,
            PowerActionEnum::Reset => PowerAction::Reset,
        };
        Ok(Session(app(ctx).sessions.power(&id, action, halted).await?))
    }

    /// Uploads an ELF (GraphQL multipart request). It is validated against the session's
    /// board and becomes the session's current program.
    async fn upload_program(
        &self,
        ctx: &Context<'_>,
        session_id: ID,
        file: Upload,
    ) -> ApiResult<Program> {
        let app = app(ctx);
        let (name, data) = read_upload(ctx, file, app.sessions.max_upload_bytes()).await?;
        let program = app
            .sessions
            .upload_program(&session_id, &name, &data)
            .await?;
        Ok(Program(program))
    }

    /// Boots (or reboots) the session with this program.
    async fn start_program(
        &self,
        ctx: &Context<'_>,
        session_id: ID,
        program_id: ID,
    ) -> ApiResult<Session> {
        Ok(Session(
            app(ctx)
                .sessions
                .start_program(&session_id, &program_id)
                .await?,
        ))
    }

    /// Halts the CPU; PAUSED. `powerSession(action: ON)` resumes it.
    async fn pause_program(
        &self,
        ctx: &Context<'_>,
        session_id: ID,
        program_id: ID,
    ) -> ApiResult<Session> {
        Ok(Session(
            app(ctx)
                .sessions
                .pause_program(&session_id, &program_id)
                .await?,
        ))
    }

    /// Powers the session off; STOPPED.
    async fn stop_program(
        &self,
        ctx: &Context<'_>,
        session_id: ID,
        program_id: ID,
    ) -> ApiResult<Session> {
        Ok(Session(
            app(ctx)
                .sessions
                .stop_program(&session_id, &program_id)
                .await?,
        ))
    }

    /// Writes text to the console UART of a powered session (at most 64 KiB).
    async fn send_uart_input(
        &self,
        ctx: &Context<'_>,
        session_id: ID,
        data: String,
    ) -> ApiResult<bool> {
        app(ctx)
            .sessions
            .send_uart_input(&session_id, data.as_bytes())
            .await?;
        Ok(true)
    }
}

#[derive(Default)]
pub struct SessionSubscription;

#[Subscription]
impl SessionSubscription {
    /// Console output: first a bounded replay of recent output, then live chunks.
    async fn uart_output(
        &self,
        ctx: &Context<'_>,
        session_id: ID,
    ) -> async_graphql::Result<impl Stream<Item = UartChunkObject> + use<>> {
        crate::auth::guard::check(ctx, "uartOutput", &[&session_id]).await?;
        let app = app(ctx).clone();
        let (replay, live) = app
            .sessions
            .subscribe_uart(&session_id)
            .await
            .map_err(to_graphql)?;
        let shutdown = app.shutdown.clone();
        Ok(follow(replay, live)
            .take_until(shutdown.cancelled_owned())
            .map(|chunk| UartChunkObject {
                seq: chunk.seq as i64,
                data: chunk.data,
                dropped: chunk.dropped as i64,
                instructions: chunk.instructions.map(|count| count.to_string()),
            }))
    }

    /// State changes and other events of one session, from now on; the stream ends when
    /// the session is deleted.
    async fn session_events(
        &self,
        ctx: &Context<'_>,
        session_id: ID,
    ) -> async_graphql::Result<impl Stream<Item = SessionEventObject> + use<>> {
        crate::auth::guard::check(ctx, "sessionEvents", &[&session_id]).await?;
        let app = app(ctx).clone();
        let mut events = app
            .sessions
            .subscribe_events(&session_id)
            .await
            .map_err(to_graphql)?;
        let shutdown = app.shutdown.clone();
        Ok(async_stream::stream! {
            loop {
                let next = tokio::select! {
                    () = shutdown.cancelled() => break,
                    next = events.recv() => next,
                };
                match next {
                    Ok(event) => {
                        let deleted = event.kind == EventKind::Deleted;
                        yield SessionEventObject::from(event);
                        if deleted {
                            break;
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "a sessionEvents subscriber fell behind");
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
        })
    }
}
