//! `Session.dapAddress`: a DAP endpoint per powered session, inside the server.
//!
//! The endpoint opens on first ask (the `dapAddress` field) on the GDB listen address,
//! on a free port, and closes once the session is no longer powered. Each connection
//! gets its own confined GDB (see the module doc of [`super`]) attached through the
//! session's gateway, so several editors debug one CPU next to GDB clients and the API.
//!
//! When keys are required (`tickets_only`) the endpoint refuses every connection before
//! reading a byte; an editor comes through a one-time address from `createAttachTicket`
//! ([`DapEndpoints::ticket`]), which checked the caller's key.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use virserver_dap::{BridgeConfig, OpError, Ready, RunNotice};
use virserver_gateway::RunEvent;

use super::{GdbLaunch, RunFeed, SessionOps, UartFeed};
use crate::gdb::{GdbError, GdbLocator};
use crate::sessions::{PowerAction, SessionService, follow};

/// How often an endpoint checks that its session is still powered.
const POWER_CHECK: Duration = Duration::from_secs(1);

pub struct DapEndpoints {
    sessions: Arc<SessionService>,
    gdb: Arc<GdbLocator>,
    listen: IpAddr,
    /// Plain connections are refused: editors come through tickets.
    tickets_only: bool,
    shutdown: CancellationToken,
    /// Session id -> (the gateway the endpoint serves, its address).
    open: Mutex<HashMap<String, (SocketAddr, SocketAddr)>>,
}

#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error(transparent)]
    Gdb(#[from] GdbError),
    #[error("cannot open a DAP endpoint: {0}")]
    Io(#[from] std::io::Error),
}

impl DapEndpoints {
    pub fn new(
        sessions: Arc<SessionService>,
        gdb: Arc<GdbLocator>,
        listen: IpAddr,
        tickets_only: bool,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        Arc::new(Self {
            sessions,
            gdb,
            listen,
            tickets_only,
            shutdown,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// The session's endpoint, opened if needed; `None` while it is not powered.
    pub async fn address(
        self: &Arc<Self>,
        session_id: &str,
    ) -> Result<Option<SocketAddr>, EndpointError> {
        let Some((_, Some(gateway))) = self.sessions.machine_info(session_id) else {
            return Ok(None);
        };
        if let Some((served, address)) = self.lock().get(session_id).copied()
            && served == gateway
        {
            return Ok(Some(address));
        }
        let gdb = self.gdb.get().await?.require_dap()?.clone();
        let listener = TcpListener::bind((self.listen, 0)).await?;
        let address = listener.local_addr()?;
        {
            let mut open = self.lock();
            // Another request may have opened one meanwhile: the first stays.
            if let Some((served, existing)) = open.get(session_id).copied()
                && served == gateway
            {
                return Ok(Some(existing));
            }
            open.insert(session_id.to_owned(), (gateway, address));
        }
        let endpoints = self.clone();
        let session_id = session_id.to_owned();
        tokio::spawn(async move {
            endpoints.accept(listener, &session_id, gateway, gdb).await;
            let mut open = endpoints.lock();
            if open
                .get(&session_id)
                .is_some_and(|(served, _)| *served == gateway)
            {
                open.remove(&session_id);
            }
        });
        Ok(Some(address))
    }

    /// A one-time DAP address for the session: it takes one editor within `ttl`, then
    /// closes; `None` while the session is not powered.
    pub async fn ticket(
        self: &Arc<Self>,
        session_id: &str,
        ttl: Duration,
    ) -> Result<Option<SocketAddr>, EndpointError> {
        let Some((_, Some(gateway))) = self.sessions.machine_info(session_id) else {
            return Ok(None);
        };
        let gdb = self.gdb.get().await?.require_dap()?.clone();
        let listener = TcpListener::bind((self.listen, 0)).await?;
        let address = listener.local_addr()?;
        let endpoints = self.clone();
        let session_id = session_id.to_owned();
        tokio::spawn(async move {
            let accepted = tokio::select! {
                () = endpoints.shutdown.cancelled() => return,
                () = tokio::time::sleep(ttl) => {
                    tracing::info!(session = %session_id, %address, "DAP ticket expired unused");
                    return;
                }
                accepted = listener.accept() => accepted,
            };
            drop(listener);
            if let Ok((socket, peer)) = accepted {
                endpoints
                    .serve_client(socket, peer, &session_id, gateway, &gdb)
                    .await;
            }
        });
        Ok(Some(address))
    }

    async fn accept(
        self: &Arc<Self>,
        listener: TcpListener,
        session_id: &str,
        gateway: SocketAddr,
        gdb: crate::gdb::Gdb,
    ) {
        let mut check = tokio::time::interval(POWER_CHECK);
        loop {
            tokio::select! {
                () = self.shutdown.cancelled() => return,
                _ = check.tick() => {
                    let powered = self.sessions.machine_info(session_id);
                    if !matches!(powered, Some((_, Some(current))) if current == gateway) {
                        return;
                    }
                }
                accepted = listener.accept() => {
                    let Ok((socket, peer)) = accepted else { continue };
                    if self.tickets_only {
                        tracing::info!(session = %session_id, %peer, "DAP connection refused: attach tickets only");
                        continue;
                    }
                    self.serve_client(socket, peer, session_id, gateway, &gdb).await;
                }
            }
        }
    }

    /// Starts one editor's bridge: its own confined GDB on its own gateway address.
    async fn serve_client(
        self: &Arc<Self>,
        socket: tokio::net::TcpStream,
        peer: SocketAddr,
        session_id: &str,
        gateway: SocketAddr,
        gdb: &crate::gdb::Gdb,
    ) {
        // A response and the event after it are two small writes: without this, Nagle
        // holds the second for the client's delayed ACK.
        let _ = socket.set_nodelay(true);
        tracing::info!(session = %session_id, %peer, "DAP client connected");
        let refused = |reason: &dyn std::fmt::Display| {
            tracing::info!(session = %session_id, %reason, "DAP client refused");
        };
        let address = match self.sessions.debugger(session_id).await {
            Ok(debugger) => match debugger.server_client_address("a DAP editor").await {
                Ok(address) => address,
                Err(error) => return refused(&error),
            },
            Err(error) => return refused(&error),
        };
        let local = Arc::new(LocalOps {
            sessions: self.sessions.clone(),
            gateway,
            gdb_address: address,
        });
        // GDB may read the program it debugs and reach the gateway, no more.
        let program = match local.attach(session_id, None).await {
            Ok(ready) => std::path::PathBuf::from(ready.program),
            Err(OpError(reason)) => return refused(&reason),
        };
        let reverse = self
            .sessions
            .get(session_id)
            .await
            .is_ok_and(|record| record.replay_of.is_some());
        let launch = GdbLaunch {
            confined: Some((program, address.port())),
            gdb: gdb.clone(),
        };
        let ops: Arc<dyn SessionOps> = local;
        let config = BridgeConfig {
            session: Some(session_id.to_owned()),
            confined: true,
            launch_defaults: None,
            reverse,
        };
        let session = session_id.to_owned();
        tokio::spawn(async move {
            let (read, write) = socket.into_split();
            if let Err(error) = super::serve(read, write, &launch, ops, config).await {
                tracing::info!(%session, %peer, %error, "DAP connection ended");
            }
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (SocketAddr, SocketAddr)>> {
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Session operations inside the server, for a session's own endpoint: attach (and the
/// power-off of a launch, which this endpoint never makes).
struct LocalOps {
    sessions: Arc<SessionService>,
    /// The gateway this bridge serves (its endpoint's address)...
    gateway: SocketAddr,
    /// ...and where its GDB attaches: that endpoint, or a ticket of its own when the
    /// endpoint takes tickets only.
    gdb_address: SocketAddr,
}

fn op_error(error: impl std::fmt::Display) -> OpError {
    OpError(error.to_string())
}

#[async_trait::async_trait]
impl SessionOps for LocalOps {
    async fn launch(
        &self,
        _board: &str,
        _program: &str,
        _coverage: bool,
    ) -> Result<Ready, OpError> {
        Err(OpError(
            "a session's DAP endpoint attaches to that session; launch with `virserver dap`".into(),
        ))
    }

    async fn attach(&self, session_id: &str, _program: Option<&str>) -> Result<Ready, OpError> {
        let Some((_, Some(gateway))) = self.sessions.machine_info(session_id) else {
            return Err(OpError(format!("session {session_id} is not powered")));
        };
        if gateway != self.gateway {
            return Err(OpError(format!("session {session_id} was powered again")));
        }
        let record = self.sessions.get(session_id).await.map_err(op_error)?;
        let program_id = record
            .current_program_id
            .ok_or_else(|| OpError(format!("session {session_id} has no program")))?;
        let program = self.sessions.program(&program_id).await.map_err(op_error)?;
        Ok(Ready {
            session_id: session_id.to_owned(),
            gdb_address: self.gdb_address.to_string(),
            program: self.sessions.program_path(&program).display().to_string(),
        })
    }

    async fn power_off(&self, session_id: &str) -> Result<(), OpError> {
        self.sessions
            .power(session_id, PowerAction::Off, false)
            .await
            .map(drop)
            .map_err(op_error)
    }

    async fn run_events(&self, session_id: &str) -> Result<RunFeed, OpError> {
        let events = self
            .sessions
            .run_events(session_id)
            .await
            .map_err(op_error)?;
        let (sender, receiver) = mpsc::channel(64);
        tokio::spawn(async move {
            let mut events = std::pin::pin!(events);
            while let Some(event) = events.next().await {
                let notice = match event {
                    RunEvent::Stopped(_) => RunNotice::Stopped,
                    RunEvent::Resumed(_) => RunNotice::Resumed,
                };
                if sender.send(notice).await.is_err() {
                    return;
                }
            }
        });
        Ok(receiver)
    }

    async fn uart(&self, session_id: &str) -> Result<UartFeed, OpError> {
        let (replay, live) = self
            .sessions
            .subscribe_uart(session_id)
            .await
            .map_err(op_error)?;
        let (sender, receiver) = mpsc::channel(256);
        tokio::spawn(async move {
            let mut chunks = std::pin::pin!(follow(replay, live));
            while let Some(chunk) = chunks.next().await {
                if sender.send((chunk.data, chunk.dropped)).await.is_err() {
                    return;
                }
            }
        });
        Ok(receiver)
    }
}
