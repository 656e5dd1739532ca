//! The services of one server process, built once at start-up and shared by the API,
//! and the order in which they start and stop.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use virserver_queue::{EventsConfig, JobQueue, MemoryQueue, QueueConfig, RedisEvents, RedisQueue};

use crate::audit::Audit;
use crate::auth::Keys;
use crate::backend::Backends;
use crate::boards;
use crate::catalog::Catalog;
use crate::config::Config;
use crate::dap::endpoint::DapEndpoints;
use crate::gdb::GdbLocator;
use crate::jobs::service::{JobService, JobServiceConfig};
use crate::sessions::{ServiceConfig, SessionService};
use crate::store::Store;

pub struct App {
    pub config: Config,
    pub store: Store,
    /// API keys and whether requests need one.
    pub keys: Keys,
    /// Where every mutation is recorded.
    pub audit: Audit,
    pub catalog: Arc<Catalog>,
    pub backends: Backends,
    pub sessions: Arc<SessionService>,
    pub jobs: Arc<JobService>,
    /// The GDB behind the DAP endpoints and the symbolic debug API.
    pub gdb: Arc<GdbLocator>,
    /// The sessions' DAP endpoints (`Session.dapAddress`).
    pub dap: Arc<DapEndpoints>,
    /// Cancelled on shutdown; every long-lived loop (subscriptions, listeners) watches it.
    pub shutdown: CancellationToken,
}

impl App {
    /// Opens the database, loads boards, probes backends, reconciles sessions.
    pub async fn start(config: Config) -> anyhow::Result<Arc<Self>> {
        let store = Store::connect(&config.database_url()).await?;
        let loaded = boards::load(config.boards_dir.as_deref());
        for error in &loaded.errors {
            tracing::error!(%error, "board template not loaded");
        }
        tracing::info!(
            boards = loaded.boards.len(),
            dir = %config.boards_dir.as_deref().map_or("(built-in only)".into(), |d| d.display().to_string()),
            "board templates loaded"
        );
        let catalog = Arc::new(Catalog::new(loaded, store.clone()));
        let backends = Backends::probe(config.trace_plugin.clone(), config.confinement).await;
        for backend in backends.all() {
            let availability = backend.availability();
            tracing::info!(
                backend = backend.kind().as_str(),
                available = availability.available,
                reason = availability.reason.as_deref().unwrap_or(""),
                "backend probed"
            );
        }
        // With Redis, one connection for the events that cross nodes (sessions and jobs).
        let bus = match &config.redis_url {
            Some(url) => Some(Arc::new(
                RedisEvents::connect(url, EventsConfig::default()).await?,
            )),
            None => None,
        };
        let audit = Audit::new(store.clone(), config.node_name.clone());
        let sessions = Arc::new(SessionService::new(
            store.clone(),
            catalog.clone(),
            backends.clone(),
            ServiceConfig {
                data_dir: config.data_dir.clone(),
                uart_replay_bytes: config.uart_replay_bytes,
                max_upload_bytes: config.max_upload_bytes,
                snapshot_quota_bytes: config.snapshot_quota_bytes,
                node: config.node_name.clone(),
                gdb_listen: config.gdb_listen,
                audit: audit.clone(),
                quotas: crate::sessions::Quotas {
                    sessions_per_user: config.max_sessions_per_user,
                    powered_per_user: config.max_powered_sessions,
                },
                access: crate::debugger::ClientAccess {
                    raw_monitor: config.allow_raw_monitor,
                    tickets_only: config.auth_mode() == crate::auth::AuthMode::Required,
                },
                bus: bus.clone(),
            },
        ));
        let reconciled = sessions.reconcile().await?;
        if reconciled > 0 {
            tracing::warn!(
                reconciled,
                "sessions whose emulator was lost marked CRASHED"
            );
        }
        if let Some(after) = config.hibernate_after {
            sessions.hibernate_idle(after);
        }
        let gdb = Arc::new(GdbLocator::new(config.gdb_path.clone()));
        let shutdown = CancellationToken::new();
        sessions
            .clone()
            .listen_to_other_nodes(shutdown.clone())
            .await?;
        let dap = DapEndpoints::new(
            sessions.clone(),
            gdb.clone(),
            config.gdb_listen,
            config.auth_mode() == crate::auth::AuthMode::Required,
            shutdown.clone(),
        );
        let jobs = start_jobs(&config, &store, &sessions, &catalog, &backends, bus).await?;
        Ok(Arc::new(Self {
            keys: Keys::new(store.clone(), config.auth_mode()),
            audit,
            config,
            store,
            catalog,
            backends,
            sessions,
            jobs,
            gdb,
            dap,
            shutdown,
        }))
    }

    /// Stops every emulator and records it; then the database is closed.
    pub async fn stop(&self) {
        self.shutdown.cancel();
        self.jobs.stop().await;
        self.sessions.shutdown().await;
        self.store.clone().close().await;
    }
}

/// The job queue: Redis Streams when a Redis URL is configured (jobs and events shared
/// by every node), otherwise the in-process queue, whose persistence is the database
/// (unfinished jobs are queued again at start).
async fn start_jobs(
    config: &Config,
    store: &Store,
    sessions: &Arc<SessionService>,
    catalog: &Arc<Catalog>,
    backends: &Backends,
    bus: Option<Arc<RedisEvents>>,
) -> anyhow::Result<Arc<JobService>> {
    let reclaim_after = Duration::from_secs(config.job_reclaim_seconds.max(1));
    let queue_config = QueueConfig {
        reclaim_after,
        max_length: Some(config.max_queued_jobs),
        ..QueueConfig::default()
    };
    let queue: Arc<dyn JobQueue> = match &config.redis_url {
        Some(url) => Arc::new(RedisQueue::connect(url, queue_config.clone()).await?),
        None => Arc::new(MemoryQueue::new(&queue_config)),
    };
    let embedded = bus.is_none();
    let jobs = JobService::new(
        store.clone(),
        sessions.clone(),
        catalog.clone(),
        backends.clone(),
        queue,
        bus,
        JobServiceConfig {
            node: config.node_name.clone(),
            max_concurrent: config.max_concurrent_jobs,
            max_queued: config.max_queued_jobs,
            max_queued_per_user: config.max_queued_jobs_per_user,
            heartbeat: queue_config.heartbeat_interval(),
            max_upload_bytes: config.max_upload_bytes,
            max_deliveries: config.job_max_deliveries.max(1),
        },
    );
    jobs.start(embedded).await?;
    tracing::info!(
        node = %config.node_name,
        queue = if embedded { "embedded" } else { "redis" },
        workers = config.max_concurrent_jobs,
        "job service started"
    );
    Ok(jobs)
}
