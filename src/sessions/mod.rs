//! The session service: the lifecycle of every session, from creation through power,
//! programs and console, to deletion. It owns each session's emulator (through the
//! backend trait), supervises it (exit codes, crashes, pauses reported by the emulator),
//! records every state change with its history, and fans console output and events out
//! to subscribers.
//!
//! Power operations on one session are serialized by its `control` lock; the supervisor
//! task of a machine never takes that lock, so waiting for a machine to stop while
//! holding it cannot deadlock.
//!
//! Files: this one (the service, lifecycle and power), `launch.rs` (booting a session's
//! machine with its gateway and supervisor), `debugging.rs` (the debugger of a
//! session, resuming through the gateway), `programs.rs` (uploads, start, pause, stop,
//! coverage inputs), `supervisor.rs` (one running machine, and the one
//! place that writes a state change), `uart.rs` (console ring and broadcast),
//! `state.rs` (states and events), `bus.rs` (events across nodes), `snapshots.rs`
//! (snapshots, restores and forks), `recording.rs` (record and replay),
//! `hibernation.rs` (idle machines saved to disk and woken on use).

mod bus;
mod debugging;
mod gauges;
pub use gauges::PoweredMachine;
mod hibernation;
mod launch;
mod programs;
mod quota;
mod recording;
mod snapshots;
mod state;
mod supervisor;
mod uart;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use chrono::Utc;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

pub use state::{EventKind, SessionEvent, SessionState, StopInfo};
pub use uart::{UartChunk, UartLog, follow, next_live};

use bus::{BUS_CHANNEL, BusMessage, SessionBus};
use launch::Boot;
pub use quota::Quotas;
use supervisor::record_state;

use crate::backend::{BackendError, BackendKind, Backends, Collector, Machine};
use crate::catalog::{Catalog, CatalogError};
use crate::debugger::Debugger;
use crate::programs::{ProgramError, ProgramStore};
use crate::store::{ProgramRecord, SessionRecord, Store, StoreError};
use virserver_queue::RedisEvents;

/// The execution trace of a session's latest run (an in_asm log or the plugin's
/// counts), and the id of the program it ran.
const TRACE_FILE: &str = "trace";
const TRACE_PROGRAM: &str = "trace.program";

/// How long UART input may wait for the guest to take it.
const UART_INPUT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Largest single write to a session's UART.
pub const MAX_UART_INPUT: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("no {what} '{id}'")]
    NotFound { what: &'static str, id: String },
    #[error("{0}")]
    InvalidState(String),
    #[error("session '{0}' has no program: upload one first")]
    NoProgram(String),
    #[error("{0}")]
    BadInput(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("{what} is {size} bytes; the limit is {limit}")]
    TooLarge {
        what: &'static str,
        size: u64,
        limit: u64,
    },
    /// A quota (`quota.rs`) would be passed.
    #[error("{0}")]
    LimitExceeded(String),
    #[error(transparent)]
    Program(#[from] ProgramError),
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error(transparent)]
    Catalog(CatalogError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<CatalogError> for SessionError {
    fn from(error: CatalogError) -> Self {
        match error {
            CatalogError::NotFound(id) => SessionError::NotFound {
                what: "board template",
                id,
            },
            other => SessionError::Catalog(other),
        }
    }
}

/// How a new session runs.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Trace every run for coverage, with this collector.
    pub coverage: Option<Collector>,
    /// Virtual time counted in instructions.
    pub deterministic: bool,
    /// Record every run for replay.
    pub record: bool,
    /// The user it belongs to (`auth`); `None` when auth is off.
    pub owner: Option<String>,
}

impl Settings {
    /// The settings a session was created with (forks and replays share its owner).
    pub fn of(record: &SessionRecord) -> Self {
        Self {
            coverage: record
                .coverage
                .then(|| Collector::parse(&record.coverage_collector)),
            deterministic: record.deterministic,
            record: record.record,
            owner: record.owner.clone(),
        }
    }
}

pub enum PowerAction {
    On,
    Off,
    Reset,
}

/// A running emulator and the task supervising it.
struct Launched {
    machine: Arc<dyn Machine>,
    /// The GDB gateway, when the emulator has a stub.
    debugger: Option<Arc<Debugger>>,
    /// A duplicate of the gateway's listening socket: kept, the endpoint's address
    /// outlives this machine (hibernation).
    gdb_listener: Option<std::net::TcpListener>,
    supervisor: JoinHandle<()>,
}

/// The live part of a session: console, event fan-out, and its emulator if powered.
struct Runtime {
    id: String,
    uart: UartLog,
    events: broadcast::Sender<SessionEvent>,
    /// Serializes power operations; see the module doc.
    control: tokio::sync::Mutex<Option<Launched>>,
    /// Serializes state writes so that history and broadcast stay in one order.
    state: tokio::sync::Mutex<SessionState>,
    /// Resets the API asked for and already recorded; the emulator's own report of
    /// each is then not recorded a second time.
    requested_resets: AtomicU32,
    bus: Option<Arc<SessionBus>>,
    /// What queries show of the last launched machine, readable while a power
    /// operation holds `control` (a launch can take seconds).
    machine: std::sync::Mutex<Option<MachineInfo>>,
    /// The machine replays a recording: its console is the recording's, shown by
    /// `recording.rs` as the CPU gets there; the emulator's own output only wakes it.
    replaying: std::sync::atomic::AtomicBool,
    console_activity: tokio::sync::Notify,
    /// The machine sleeps on disk (`hibernation.rs`); set and taken under `control`.
    hibernation: std::sync::Mutex<Option<hibernation::Hibernation>>,
    /// The machine about to end is hibernated: its end is no state change.
    hibernating: std::sync::atomic::AtomicBool,
    /// When the session was last used (a state change, a CPU operation, a client).
    last_active: std::sync::Mutex<std::time::Instant>,
}

/// A launched machine's process id and GDB endpoint, and whether it still runs.
struct MachineInfo {
    pid: Option<u32>,
    gdb: Option<SocketAddr>,
    supervisor: tokio::task::AbortHandle,
}

impl Runtime {
    /// Counts the session as used now.
    fn touch(&self) {
        *self.last_active.lock().unwrap_or_else(|p| p.into_inner()) = std::time::Instant::now();
    }

    fn idle_for(&self) -> std::time::Duration {
        self.last_active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed()
    }

    fn lock_hibernation(&self) -> std::sync::MutexGuard<'_, Option<hibernation::Hibernation>> {
        self.hibernation.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tells local subscribers, and queues it for other nodes; never waits.
    fn announce(&self, event: SessionEvent) {
        let _ = self.events.send(event.clone());
        if let Some(bus) = &self.bus {
            bus.publish(&event);
        }
    }
}

pub struct SessionService {
    store: Store,
    catalog: Arc<Catalog>,
    backends: Backends,
    programs: ProgramStore,
    run_root: PathBuf,
    uart_replay_bytes: usize,
    max_upload_bytes: u64,
    snapshot_quota_bytes: u64,
    node: String,
    gdb_listen: std::net::IpAddr,
    access: crate::debugger::ClientAccess,
    quotas: Quotas,
    /// Where the gateways report GDB clients' operations.
    audit: crate::audit::Audit,
    bus: Option<Arc<SessionBus>>,
    /// Event channels of other nodes' sessions, fed from the bus.
    remote_events: Mutex<HashMap<String, broadcast::Sender<SessionEvent>>>,
    runtimes: Mutex<HashMap<String, Arc<Runtime>>>,
    tracker: TaskTracker,
    /// Cancelled by [`SessionService::shutdown`]: ends the hibernation loop and wakers.
    stopping: tokio_util::sync::CancellationToken,
}

pub struct ServiceConfig {
    pub data_dir: PathBuf,
    /// This server's node name: sessions are run (and reconciled) by their own node.
    pub node: String,
    /// Where the sessions' GDB endpoints listen.
    pub gdb_listen: std::net::IpAddr,
    /// GDB clients' `monitor` commands outside the gateway's allow-list reach QEMU's
    /// monitor (checked by `config::check_raw_monitor`); tickets only under auth.
    pub access: crate::debugger::ClientAccess,
    /// Per-user limits on sessions and powered sessions.
    pub quotas: Quotas,
    pub audit: crate::audit::Audit,
    pub uart_replay_bytes: usize,
    pub max_upload_bytes: u64,
    /// How many bytes of snapshot images one session may keep.
    pub snapshot_quota_bytes: u64,
    /// With Redis: session events cross to subscribers on other nodes.
    pub bus: Option<Arc<RedisEvents>>,
}

impl SessionService {
    pub fn new(
        store: Store,
        catalog: Arc<Catalog>,
        backends: Backends,
        config: ServiceConfig,
    ) -> Self {
        let tracker = TaskTracker::new();
        Self {
            bus: config
                .bus
                .map(|events| Arc::new(SessionBus::start(events, config.node.clone(), &tracker))),
            store,
            catalog,
            backends,
            programs: ProgramStore::new(&config.data_dir),
            run_root: config.data_dir.join("run"),
            uart_replay_bytes: config.uart_replay_bytes,
            max_upload_bytes: config.max_upload_bytes,
            snapshot_quota_bytes: config.snapshot_quota_bytes,
            node: config.node,
            gdb_listen: config.gdb_listen,
            access: config.access,
            quotas: config.quotas,
            audit: config.audit,
            remote_events: Mutex::new(HashMap::new()),
            runtimes: Mutex::new(HashMap::new()),
            tracker,
            stopping: tokio_util::sync::CancellationToken::new(),
        }
    }

    pub fn max_upload_bytes(&self) -> u64 {
        self.max_upload_bytes
    }

    /// This node's sessions that were powered when the server last stopped have lost
    /// their emulator (it died with the server): mark them CRASHED with the reason.
    /// Hibernated ones lost nothing: they sleep on, on a new GDB port. Other nodes'
    /// sessions (a shared database) are theirs to reconcile.
    pub async fn reconcile(self: &Arc<Self>) -> Result<usize, SessionError> {
        let mut reconciled = 0;
        for record in self.store.sessions().await? {
            if record.node == self.node && SessionState::parse(&record.state).is_powered() {
                let runtime = self.runtime(&record.id, &record.state);
                if record.hibernated && self.sleep_on(&record, &runtime).await? {
                    continue;
                }
                self.record(
                    &runtime,
                    EventKind::Crashed,
                    SessionState::Crashed,
                    None,
                    Some(
                        "emulator process lost: the server stopped without powering it off".into(),
                    ),
                )
                .await?;
                reconciled += 1;
            }
        }
        Ok(reconciled)
    }

    fn lock_runtimes(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Runtime>>> {
        self.runtimes.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn runtime(&self, id: &str, state: &str) -> Arc<Runtime> {
        self.lock_runtimes()
            .entry(id.to_owned())
            .or_insert_with(|| {
                Arc::new(Runtime {
                    id: id.to_owned(),
                    uart: UartLog::new(self.uart_replay_bytes),
                    events: broadcast::channel(256).0,
                    control: tokio::sync::Mutex::new(None),
                    state: tokio::sync::Mutex::new(SessionState::parse(state)),
                    requested_resets: AtomicU32::new(0),
                    bus: self.bus.clone(),
                    machine: std::sync::Mutex::new(None),
                    replaying: std::sync::atomic::AtomicBool::new(false),
                    console_activity: tokio::sync::Notify::new(),
                    hibernation: std::sync::Mutex::new(None),
                    hibernating: std::sync::atomic::AtomicBool::new(false),
                    last_active: std::sync::Mutex::new(std::time::Instant::now()),
                })
            })
            .clone()
    }

    /// A session of this node with its live part. Sessions of other nodes (a shared
    /// database) can be read, but only their own node runs or streams them.
    async fn existing(&self, id: &str) -> Result<(SessionRecord, Arc<Runtime>), SessionError> {
        let record = self.get(id).await?;
        if record.node != self.node {
            return Err(SessionError::InvalidState(format!(
                "session '{id}' runs on node '{}': use that node's API",
                record.node
            )));
        }
        let runtime = self.runtime(&record.id, &record.state);
        Ok((record, runtime))
    }

    // ---- queries ----------------------------------------------------------------------

    pub async fn get(&self, id: &str) -> Result<SessionRecord, SessionError> {
        by_id("session", id, || self.store.session(id)).await
    }

    pub async fn list(&self) -> Result<Vec<SessionRecord>, SessionError> {
        Ok(self.store.sessions().await?)
    }

    pub async fn programs(&self, session_id: &str) -> Result<Vec<ProgramRecord>, SessionError> {
        Ok(self.store.programs(session_id).await?)
    }

    pub async fn program(&self, id: &str) -> Result<ProgramRecord, SessionError> {
        by_id("program", id, || self.store.program(id)).await
    }

    pub async fn history(&self, session_id: &str) -> Result<Vec<SessionEvent>, SessionError> {
        Ok(self
            .store
            .session_events(session_id)
            .await?
            .into_iter()
            .map(|e| SessionEvent {
                session_id: e.session_id,
                kind: EventKind::parse(&e.kind).unwrap_or(EventKind::Crashed),
                state: SessionState::parse(&e.state),
                exit_code: e.exit_code,
                message: e.message,
                at: e.at,
                stop: None,
            })
            .collect())
    }

    /// The emulator's process id and the GDB endpoint's address, when powered. Does
    /// not wait for a power operation in progress.
    pub fn machine_info(&self, id: &str) -> Option<(Option<u32>, Option<SocketAddr>)> {
        let runtime = self.lock_runtimes().get(id).cloned()?;
        if let Some(hibernation) = runtime.lock_hibernation().as_ref() {
            return Some((None, hibernation.gdb()));
        }
        let machine = runtime
            .machine
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let info = machine.as_ref().filter(|m| !m.supervisor.is_finished())?;
        Some((info.pid, info.gdb))
    }

    /// Recent console output (bounded), for clients that poll rather than subscribe;
    /// `None` for a session another node runs (its console is there).
    pub async fn uart_text(&self, id: &str) -> Result<Option<String>, SessionError> {
        if self.get(id).await?.node != self.node {
            return Ok(None);
        }
        let (_, runtime) = self.existing(id).await?;
        Ok(Some(runtime.uart.recent_text()))
    }

    pub async fn subscribe_uart(
        &self,
        id: &str,
    ) -> Result<(Vec<UartChunk>, broadcast::Receiver<UartChunk>), SessionError> {
        let (_, runtime) = self.existing(id).await?;
        Ok(runtime.uart.subscribe())
    }

    /// Events of a session of this node, or, with Redis, of any node.
    pub async fn subscribe_events(
        &self,
        id: &str,
    ) -> Result<broadcast::Receiver<SessionEvent>, SessionError> {
        let record = self.get(id).await?;
        if record.node != self.node && self.bus.is_some() {
            let mut remote = self.remote_events.lock().unwrap_or_else(|p| p.into_inner());
            let sender = remote
                .entry(record.id)
                .or_insert_with(|| broadcast::channel(256).0);
            return Ok(sender.subscribe());
        }
        let (_, runtime) = self.existing(id).await?;
        Ok(runtime.events.subscribe())
    }

    /// Feeds other nodes' session events to this node's subscribers, until shutdown.
    pub async fn listen_to_other_nodes(
        self: Arc<Self>,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Result<(), virserver_queue::QueueError> {
        use futures_util::StreamExt;
        let Some(bus) = self.bus.clone() else {
            return Ok(());
        };
        let mut messages = bus.events.subscribe(BUS_CHANNEL).await?;
        let service = self.clone();
        self.tracker.spawn(async move {
            loop {
                let message = tokio::select! {
                    () = shutdown.cancelled() => break,
                    message = messages.next() => message,
                };
                let Some(message) = message else { break };
                let Ok(message) = serde_json::from_str::<BusMessage>(&message) else {
                    tracing::warn!("bad message on the session bus");
                    continue;
                };
                if message.node == service.node {
                    continue;
                }
                let remote = service
                    .remote_events
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                if let Some(sender) = remote.get(&message.event.session_id) {
                    let _ = sender.send(message.event);
                }
            }
        });
        Ok(())
    }

    // ---- lifecycle ----------------------------------------------------------------------

    pub async fn create(
        &self,
        name: &str,
        backend: BackendKind,
        board_id: &str,
        settings: Settings,
    ) -> Result<SessionRecord, SessionError> {
        let Settings {
            coverage,
            deterministic,
            record,
            owner,
        } = settings;
        let name = name.trim();
        if name.is_empty() || name.len() > 200 {
            return Err(SessionError::BadInput(
                "name must be 1 to 200 characters".into(),
            ));
        }
        self.quotas
            .check_create(&self.store, owner.as_deref())
            .await?;
        let board = self.catalog.board(board_id).await?.board;
        let backend_impl = self
            .backends
            .get(backend)
            .ok_or(BackendError::Unavailable {
                backend: backend.as_str(),
                reason: "not built into this server".into(),
            })?;
        backend_impl.supports_board(&board)?;
        let mut notice = None;
        let collector = match (coverage, backend_impl.trace()) {
            (None, _) => Collector::InAsm,
            (Some(_), None) => {
                return Err(SessionError::Unsupported(format!(
                    "{} cannot trace execution, so it cannot collect coverage",
                    backend.as_str()
                )));
            }
            (Some(Collector::HitCounts), Some(trace)) => match trace.hit_counts() {
                Ok(_) => Collector::HitCounts,
                Err(reason) => {
                    notice = Some(format!(
                        "hit counts are unavailable ({reason}): coverage uses the IN_ASM collector"
                    ));
                    Collector::InAsm
                }
            },
            (Some(collector), Some(_)) => collector,
        };
        let now = Utc::now();
        let record = SessionRecord {
            id: uuid::Uuid::new_v4().to_string(),
            name: name.to_owned(),
            backend: backend.as_str().to_owned(),
            board_id: board.id,
            state: SessionState::Created.as_str().to_owned(),
            exit_code: None,
            state_reason: None,
            current_program_id: None,
            coverage: coverage.is_some(),
            coverage_collector: collector.as_str().to_owned(),
            deterministic,
            record,
            replay_of: None,
            hibernated: false,
            owner,
            node: self.node.clone(),
            created_at: now,
            updated_at: now,
        };
        self.store.insert_session(record.clone()).await?;
        let runtime = self.runtime(&record.id, &record.state);
        if let Some(notice) = &notice {
            tracing::warn!(session = %record.id, "{notice}");
        }
        self.record(
            &runtime,
            EventKind::Created,
            SessionState::Created,
            None,
            notice,
        )
        .await?;
        tracing::info!(session = %record.id, board = %record.board_id, "session created");
        Ok(record)
    }

    pub async fn delete(&self, id: &str) -> Result<SessionRecord, SessionError> {
        let (record, runtime) = self.existing(id).await?;
        {
            // Held until the records are gone: a power-on waiting for the lock then
            // finds no session instead of launching an emulator nobody owns.
            let mut control = runtime.control.lock().await;
            self.power_off(&runtime, &mut control).await?;
            self.store.delete_session(id).await?;
            self.lock_runtimes().remove(id);
        }
        // Its snapshot images and recordings go with it.
        let _ = tokio::fs::remove_dir_all(self.run_root.join(id)).await;
        runtime.announce(SessionEvent {
            session_id: id.to_owned(),
            kind: EventKind::Deleted,
            state: SessionState::Stopped,
            exit_code: None,
            message: None,
            at: Utc::now(),
            stop: None,
        });
        tracing::info!(session = %id, "session deleted");
        Ok(record)
    }

    pub async fn power(
        &self,
        id: &str,
        action: PowerAction,
        halted: bool,
    ) -> Result<SessionRecord, SessionError> {
        let (record, runtime) = self.existing(id).await?;
        let mut control = runtime.control.lock().await;
        clear_finished(&mut control);
        if !matches!(action, PowerAction::Off) {
            self.wake_locked(&runtime, &mut control).await?;
        }
        match action {
            PowerAction::On => match control.as_ref() {
                None => {
                    let program_id = record
                        .current_program_id
                        .clone()
                        .ok_or_else(|| SessionError::NoProgram(id.to_owned()))?;
                    self.launch(
                        &record,
                        &runtime,
                        &mut control,
                        &program_id,
                        halted,
                        Boot::Program,
                    )
                    .await?;
                }
                Some(launched) if !halted => {
                    if *runtime.state.lock().await == SessionState::Paused {
                        self.resume_recorded(&runtime, launched).await?;
                    }
                }
                Some(_) => {}
            },
            PowerAction::Off => self.power_off(&runtime, &mut control).await?,
            PowerAction::Reset => {
                let launched = powered(&mut control, id)?;
                // Recorded first, with the state it ends in: the pause and resume that
                // QEMU then reports are no change, so the history holds one RESET.
                let state = if halted {
                    SessionState::Paused
                } else {
                    SessionState::Running
                };
                self.record(&runtime, EventKind::Reset, state, None, None)
                    .await?;
                if halted {
                    launched.machine.pause().await?;
                }
                runtime.requested_resets.fetch_add(1, Ordering::SeqCst);
                if let Err(error) = launched.machine.reset().await {
                    runtime.requested_resets.fetch_sub(1, Ordering::SeqCst);
                    return Err(error.into());
                }
                if !halted {
                    launched.resume().await?;
                }
            }
        }
        drop(control);
        self.get(id).await
    }

    pub async fn send_uart_input(&self, session_id: &str, data: &[u8]) -> Result<(), SessionError> {
        if data.len() > MAX_UART_INPUT {
            return Err(SessionError::TooLarge {
                what: "UART input",
                size: data.len() as u64,
                limit: MAX_UART_INPUT as u64,
            });
        }
        let (_, runtime) = self.existing(session_id).await?;
        if runtime.replaying.load(Ordering::SeqCst) {
            return Err(SessionError::InvalidState(
                "a replay's console input is the recording's".into(),
            ));
        }
        let machine = {
            let mut control = runtime.control.lock().await;
            self.wake_locked(&runtime, &mut control).await?;
            powered(&mut control, session_id)?.machine.clone()
        };
        // Not under the control lock: a guest that does not read its UART fills the pipe,
        // and power operations must still get through.
        tokio::time::timeout(UART_INPUT_TIMEOUT, machine.write_console(data))
            .await
            .map_err(|_| {
                BackendError::Control(
                    "the program is not reading its UART (input timed out)".into(),
                )
            })??;
        crate::metrics::metrics().count_uart("in", data.len());
        Ok(())
    }

    /// Drops the live part (console replay, event channels) of a session that is not
    /// powered: its records stay. Jobs call this for the sessions they are done with,
    /// so a node that runs many jobs does not keep them all in memory.
    pub async fn release(&self, id: &str) {
        let Some(runtime) = self.lock_runtimes().get(id).cloned() else {
            return;
        };
        let mut control = runtime.control.lock().await;
        clear_finished(&mut control);
        if control.is_none() && runtime.lock_hibernation().is_none() {
            self.lock_runtimes().remove(id);
        }
    }

    /// Powers off every session (SIGTERM): nothing is left running, and every session's
    /// state says so.
    /// Hibernated sessions sleep on: their image stays, and the next start wakes them.
    pub async fn shutdown(&self) {
        self.stopping.cancel();
        let runtimes: Vec<Arc<Runtime>> = self.lock_runtimes().values().cloned().collect();
        // All at once: each power-off waits for its emulator to end.
        futures_util::future::join_all(runtimes.iter().map(|runtime| async move {
            let mut control = runtime.control.lock().await;
            power_off_locked(&mut control).await;
            // Its waker ends; the database still says hibernated.
            runtime.lock_hibernation().take();
        }))
        .await;
        if let Some(bus) = &self.bus {
            bus.close();
        }
        self.tracker.close();
        self.tracker.wait().await;
    }

    async fn record(
        &self,
        runtime: &Runtime,
        kind: EventKind,
        state: SessionState,
        exit_code: Option<i32>,
        message: Option<String>,
    ) -> Result<(), SessionError> {
        record_state(&self.store, runtime, kind, state, exit_code, message).await?;
        Ok(())
    }
}

/// The record `find` reads; NOT_FOUND, without asking the database, when `id` is not
/// a record id the server made.
async fn by_id<T, F>(
    what: &'static str,
    id: &str,
    find: impl FnOnce() -> F,
) -> Result<T, SessionError>
where
    F: std::future::Future<Output = Result<Option<T>, StoreError>>,
{
    let not_found = || SessionError::NotFound {
        what,
        id: id.to_owned(),
    };
    if !crate::store::is_record_id(id) {
        return Err(not_found());
    }
    find().await?.ok_or_else(not_found)
}

/// The backend a session was created on.
fn backend_of(record: &SessionRecord) -> Result<BackendKind, SessionError> {
    BackendKind::parse(&record.backend)
        .ok_or_else(|| SessionError::InvalidState(format!("unknown backend '{}'", record.backend)))
}

/// The session's machine, once a finished one is cleared; INVALID_STATE when none.
fn powered<'a>(control: &'a mut Option<Launched>, id: &str) -> Result<&'a Launched, SessionError> {
    clear_finished(control);
    control
        .as_ref()
        .ok_or_else(|| SessionError::InvalidState(format!("session '{id}' is not powered on")))
}

fn clear_finished(control: &mut Option<Launched>) {
    if control.as_ref().is_some_and(|l| l.supervisor.is_finished()) {
        *control = None;
    }
}

impl SessionService {
    /// Powers the session off: stops its machine (see [`power_off_locked`]), or ends
    /// its hibernation, recorded as the machine's end.
    async fn power_off(
        &self,
        runtime: &Runtime,
        control: &mut Option<Launched>,
    ) -> Result<(), SessionError> {
        if self.forget_hibernation(runtime).await? {
            return self
                .record(
                    runtime,
                    EventKind::PoweredOff,
                    SessionState::Stopped,
                    None,
                    None,
                )
                .await;
        }
        power_off_locked(control).await;
        Ok(())
    }
}

/// Stops the machine if there is one and waits until its end is recorded.
async fn power_off_locked(control: &mut Option<Launched>) {
    if let Some(launched) = control.take() {
        if !launched.supervisor.is_finished()
            && let Err(error) = launched.machine.power_off().await
        {
            tracing::warn!(%error, "power off failed; the machine is killed on drop");
        }
        let _ = launched.supervisor.await;
    }
}
