//! [`Gateway`]: one per powered session. Binds the client listener, creates
//! the driver, and hands out the API client, stop events, status and
//! tickets. Every task shares one cancellation token and one task tracker:
//! dropping the gateway (or [`Gateway::shutdown`]) ends them all and closes
//! every socket.
//!
//! Each gateway runs its tasks on a current-thread runtime on a thread of
//! its own, whatever runtime calls it. Forwarding is a chain of wake-ups
//! (client socket, stub socket, back), and on a multi-thread runtime each
//! can land on another worker: on this project's 2-core machines a cached
//! `g` took 61.8 us through a gateway on 2 workers and 6.8 us on a thread
//! of its own (one benchmark run each, `bench_rsp`). A session's QEMU is several threads
//! already; one more per powered session is cheap.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::GatewayConfig;
use crate::connection::{bind, run_listener, run_ticket};
use crate::debug_client::DebugClient;
use crate::driver::Driver;
use crate::error::GatewayError;
use crate::mux::Input;
use crate::status::{GatewayStatus, RunEvent, StopEvent};

/// Stop (and run) events kept for slow subscribers.
const STOP_EVENTS: usize = 64;

/// The gateway of one session. See the crate doc.
pub struct Gateway {
    address: SocketAddr,
    driver: Arc<Driver>,
    stops: broadcast::Sender<StopEvent>,
    events: broadcast::Sender<RunEvent>,
    cancel: CancellationToken,
    tracker: TaskTracker,
    /// The gateway's own runtime (see the module doc).
    runtime: Handle,
}

impl fmt::Debug for Gateway {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Gateway")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Binds `config.listen` and starts serving. The stub is not contacted
    /// until a client or the API needs it.
    pub async fn start(config: GatewayConfig) -> Result<Gateway, GatewayError> {
        Self::serve(config, None).await
    }

    /// Serves clients on `listener` (bound by the caller; `config.listen` is
    /// not used). The caller may keep a duplicate of it (`try_clone`): the
    /// socket then stays bound after the gateway ends, and connections made
    /// meanwhile wait in its backlog for the next gateway served on it, which
    /// is how a hibernated session keeps its address.
    pub async fn start_on(
        config: GatewayConfig,
        listener: std::net::TcpListener,
    ) -> Result<Gateway, GatewayError> {
        Self::serve(config, Some(listener)).await
    }

    async fn serve(
        config: GatewayConfig,
        listener: Option<std::net::TcpListener>,
    ) -> Result<Gateway, GatewayError> {
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        let runtime = own_runtime(&cancel, &tracker)?;
        // Until started, any way out (an error, this future dropped) ends the thread.
        let started = cancel.clone().drop_guard();
        let listen = config.listen;
        let listener = runtime
            .spawn(async move {
                match listener {
                    Some(listener) => {
                        listener.set_nonblocking(true)?;
                        Ok(tokio::net::TcpListener::from_std(listener)?)
                    }
                    None => bind(listen).await,
                }
            })
            .await
            .map_err(|_| GatewayError::Closed)??;
        let address = listener.local_addr()?;
        let tickets_only = config.tickets_only;
        let (stops, _) = broadcast::channel(STOP_EVENTS);
        let (events, _) = broadcast::channel(STOP_EVENTS);
        let driver = Driver::new(
            config,
            stops.clone(),
            events.clone(),
            cancel.clone(),
            tracker.clone(),
            runtime.clone(),
        );
        driver.spawn(run_listener(
            driver.clone(),
            listener,
            tickets_only,
            cancel.clone(),
        ));
        started.disarm();
        tracing::info!(%address, "gateway listening");
        Ok(Gateway {
            address,
            driver,
            stops,
            events,
            cancel,
            tracker,
            runtime,
        })
    }

    /// Where GDB clients connect.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The API's own client of the mux.
    pub fn client(&self) -> DebugClient {
        DebugClient::new(self.driver.clone())
    }

    /// Every stop reply seen from now on.
    pub fn stops(&self) -> broadcast::Receiver<StopEvent> {
        self.stops.subscribe()
    }

    /// Every stop and every resume the gateway sends from now on, whoever
    /// caused it (a client, the API, the gateway): what a DAP bridge turns
    /// into `stopped` and `continued`. Stops come here and on [`Gateway::stops`].
    pub fn run_events(&self) -> broadcast::Receiver<RunEvent> {
        self.events.subscribe()
    }

    /// Call after QMP `cont`, `stop`, `system_reset` or `loadvm`: cached
    /// registers and memory are stale.
    pub fn invalidate(&self) {
        self.driver.feed(Input::Invalidate);
    }

    /// Call after loading a snapshot into the halted target: caches are
    /// dropped and every client is told it stopped at the loaded state.
    pub fn state_replaced(&self) {
        self.driver.feed(Input::StateReplaced);
    }

    /// Opens a one-time listener on the gateway's address with a new port:
    /// it accepts a single connection within `ttl`, then closes. The client
    /// is listed (status, `monitor virserver status`) with `user`, whom the
    /// ticket was issued to.
    pub async fn create_ticket(
        &self,
        ttl: Duration,
        user: Option<String>,
    ) -> Result<SocketAddr, GatewayError> {
        if self.cancel.is_cancelled() {
            return Err(GatewayError::Closed);
        }
        let listener = self
            .runtime
            .spawn(bind(SocketAddr::new(self.address.ip(), 0)))
            .await
            .map_err(|_| GatewayError::Closed)??;
        let address = listener.local_addr()?;
        // Open from now, so that nobody sees the session idle before its client comes.
        let held = crate::driver::TicketHeld::new(self.driver.clone());
        self.driver.spawn(run_ticket(
            held,
            self.driver.clone(),
            listener,
            ttl,
            user,
            self.cancel.clone(),
        ));
        Ok(address)
    }

    /// Attached clients, upstream link, run state.
    pub fn status(&self) -> GatewayStatus {
        self.driver.status()
    }

    /// Stops every task and waits for them; every socket is closed after.
    /// The VM is left as it is (no `D`).
    pub async fn shutdown(self) {
        self.close().await;
    }

    /// [`Gateway::shutdown`] for a gateway that others still hold: on
    /// return every task has ended and the listener is closed, so a
    /// duplicate of it kept by the caller is the only one accepting.
    pub async fn close(&self) {
        self.cancel.cancel();
        self.driver.close_all();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.cancel.cancel();
        self.driver.close_all();
        self.tracker.close();
    }
}

/// A current-thread runtime on a thread of its own; the thread ends once
/// `cancel` fires and every task of `tracker` has ended.
fn own_runtime(cancel: &CancellationToken, tracker: &TaskTracker) -> Result<Handle, GatewayError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let handle = runtime.handle().clone();
    let (cancel, tracker) = (cancel.clone(), tracker.clone());
    std::thread::Builder::new()
        .name("virserver-gateway".into())
        .spawn(move || {
            runtime.block_on(async move {
                cancel.cancelled().await;
                tracker.close();
                tracker.wait().await;
            })
        })?;
    Ok(handle)
}
