//! The services of one server process, built once at start-up and shared by the API,
//! and the order in which they start and stop.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::backend::Backends;
use crate::boards;
use crate::catalog::Catalog;
use crate::config::Config;
use crate::sessions::{ServiceConfig, SessionService};
use crate::store::Store;

pub struct App {
    pub config: Config,
    pub store: Store,
    pub catalog: Arc<Catalog>,
    pub backends: Backends,
    pub sessions: Arc<SessionService>,
    /// Cancelled on shutdown; every long-lived loop (subscriptions, listeners) watches it.
    pub shutdown: CancellationToken,
}

impl App {
    /// Opens the database, loads boards, probes backends, reconciles sessions.
    pub async fn start(config: Config) -> anyhow::Result<Arc<Self>> {
        let store = Store::connect(&config.database_url()).await?;
        let loaded = boards::load_dir(&config.boards_dir);
        for error in &loaded.errors {
            tracing::error!(%error, "board template not loaded");
        }
        tracing::info!(
            boards = loaded.boards.len(),
            dir = %config.boards_dir.display(),
            "board templates loaded"
        );
        let catalog = Arc::new(Catalog::new(loaded, store.clone()));
        let backends = Backends::probe().await;
        for backend in backends.all() {
            let availability = backend.availability();
            tracing::info!(
                backend = backend.kind().as_str(),
                available = availability.available,
                reason = availability.reason.as_deref().unwrap_or(""),
                "backend probed"
            );
        }
        let sessions = Arc::new(SessionService::new(
            store.clone(),
            catalog.clone(),
            backends.clone(),
            ServiceConfig {
                data_dir: config.data_dir.clone(),
                uart_replay_bytes: config.uart_replay_bytes,
                max_upload_bytes: config.max_upload_bytes,
            },
        ));
        let reconciled = sessions.reconcile().await?;
        if reconciled > 0 {
            tracing::warn!(
                reconciled,
                "sessions whose emulator was lost marked CRASHED"
            );
        }
        Ok(Arc::new(Self {
            config,
            store,
            catalog,
            backends,
            sessions,
            shutdown: CancellationToken::new(),
        }))
    }

    /// Stops every emulator and records it; then the database is closed.
    pub async fn stop(&self) {
        self.shutdown.cancel();
        self.sessions.shutdown().await;
        self.store.clone().close().await;
    }
}
