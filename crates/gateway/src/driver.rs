//! The driver: the [`Mux`] behind a lock, and the code that carries out its
//! actions.
//!
//! There is no driver task. Whichever task has something for the mux (a
//! client's or the stub's reader, the listener, an API call) takes the lock,
//! feeds the input and carries out the actions before letting go: writes
//! are non-blocking ([`SocketWriter`]), connecting is a spawned task, API
//! answers go to oneshot channels. A forwarded request therefore costs what
//! a bare relay costs: one wake-up to read it and one to read the reply.
//! The lock is never held across an `await`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use tokio::net::{TcpStream, UnixStream, tcp, unix};
use tokio::runtime::Handle;
use tokio::sync::{broadcast, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::GatewayConfig;
use crate::connection::{SocketWriter, read_client, read_upstream};
use crate::debug_api::{ApiCall, ApiResult};
use crate::error::DebugError;
use crate::mux::{Action, ApiRequestId, ClientId, Input, Mux, MuxConfig};
use crate::semihosting::Semihosting;
use crate::status::{GatewayStatus, RunEvent, StopEvent};

type ApiReply = oneshot::Sender<Result<ApiResult, DebugError>>;

/// One client's sockets.
struct ClientLink {
    writer: SocketWriter<tcp::OwnedWriteHalf>,
    stop_reading: CancellationToken,
}

/// The stub's socket.
struct UpstreamLink {
    writer: SocketWriter<unix::OwnedWriteHalf>,
    stop_reading: CancellationToken,
}

struct State {
    mux: Mux,
    clients: HashMap<ClientId, ClientLink>,
    upstream: Option<UpstreamLink>,
    /// Bumped whenever the upstream link is dropped or replaced, so events
    /// of an old link are recognised and ignored.
    upstream_generation: u64,
    api_replies: HashMap<ApiRequestId, ApiReply>,
    next_client: u64,
    next_request: u64,
    /// Answers the guest's File-I/O calls.
    semihosting: Semihosting,
    /// Whom each ticket client's ticket was issued to, for the audit sink; kept
    /// until its `gdb.detach` is reported.
    users: HashMap<ClientId, String>,
    /// When each client's timed request came in (`mux/stats.rs`).
    requests: HashMap<ClientId, std::time::Instant>,
}

/// The mux and its sockets. See the [module doc](self).
pub(crate) struct Driver {
    state: Mutex<State>,
    config: GatewayConfig,
    stops: broadcast::Sender<StopEvent>,
    events: broadcast::Sender<RunEvent>,
    cancel: CancellationToken,
    tracker: TaskTracker,
    /// The gateway's own runtime: every task runs there, whoever feeds the
    /// mux (an API call comes from the server's runtime).
    runtime: Handle,
    /// Tickets issued and not yet used or expired ([`TicketHeld`]).
    open_tickets: std::sync::atomic::AtomicUsize,
}

/// Counts a ticket as open for as long as its listener task holds it.
pub(crate) struct TicketHeld(Arc<Driver>);

impl TicketHeld {
    pub(crate) fn new(driver: Arc<Driver>) -> Self {
        driver
            .open_tickets
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Self(driver)
    }
}

impl Drop for TicketHeld {
    fn drop(&mut self) {
        self.0
            .open_tickets
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Driver {
    pub(crate) fn new(
        config: GatewayConfig,
        stops: broadcast::Sender<StopEvent>,
        events: broadcast::Sender<RunEvent>,
        cancel: CancellationToken,
        tracker: TaskTracker,
        runtime: Handle,
    ) -> Arc<Driver> {
        let mux = Mux::new(MuxConfig {
            memory_map_xml: config.memory_map_xml.clone(),
            cache: config.cache,
            raw_monitor: config.raw_monitor,
            hold_link: config.semihosting.is_some(),
            ..MuxConfig::default()
        });
        let semihosting = Semihosting::new(config.semihosting.clone());
        Arc::new(Driver {
            state: Mutex::new(State {
                mux,
                clients: HashMap::new(),
                upstream: None,
                upstream_generation: 0,
                api_replies: HashMap::new(),
                next_client: 0,
                next_request: 0,
                semihosting,
                users: HashMap::new(),
                requests: HashMap::new(),
            }),
            config,
            stops,
            events,
            cancel,
            tracker,
            runtime,
            open_tickets: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// Spawns a task on the gateway's runtime.
    pub(crate) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.tracker.spawn_on(task, &self.runtime);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Feeds one input and carries out the actions.
    pub(crate) fn feed(self: &Arc<Self>, input: Input) {
        let mut state = self.lock();
        state.mux.handle(input);
        self.execute(&mut state);
    }

    /// A new client connection (from the listener or a ticket).
    /// `user`: whom the ticket it came through was issued to, shown with its address.
    pub(crate) fn accept(
        self: &Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        user: Option<&str>,
    ) {
        if self.cancel.is_cancelled() {
            return;
        }
        let _ = stream.set_nodelay(true);
        let (reader, writer) = stream.into_split();
        let mut state = self.lock();
        state.next_client += 1;
        let client = ClientId(state.next_client);
        let writer = SocketWriter::new(
            writer,
            self.config.client_queue,
            &self.cancel,
            &self.tracker,
            &self.runtime,
        );
        let stop_reading = self.cancel.child_token();
        self.spawn(read_client(
            self.clone(),
            client,
            reader,
            stop_reading.clone(),
        ));
        state.clients.insert(
            client,
            ClientLink {
                writer,
                stop_reading,
            },
        );
        if let Some(user) = user {
            state.users.insert(client, user.to_owned());
        }
        state.mux.handle(Input::ClientConnected {
            client,
            peer: match user {
                Some(user) => format!("{peer} user {user}"),
                None => peer.to_string(),
            },
            since: SystemTime::now(),
        });
        self.execute(&mut state);
    }

    /// A client's socket closed.
    pub(crate) fn client_gone(self: &Arc<Self>, client: ClientId) {
        let mut state = self.lock();
        state.requests.remove(&client);
        if let Some(link) = state.clients.remove(&client) {
            link.writer.close();
            state.mux.handle(Input::ClientGone { client });
            self.execute(&mut state);
        }
    }

    /// Bytes from the stub, if they come from the current link.
    pub(crate) fn upstream_bytes(self: &Arc<Self>, generation: u64, bytes: Vec<u8>) {
        let mut state = self.lock();
        if generation == state.upstream_generation {
            state.mux.handle(Input::UpstreamBytes(bytes));
            self.execute(&mut state);
        }
    }

    /// The stub's socket closed or failed.
    pub(crate) fn upstream_lost(self: &Arc<Self>, generation: u64, reason: &str) {
        let mut state = self.lock();
        if generation == state.upstream_generation {
            drop_upstream(&mut state);
            state.mux.handle(Input::UpstreamFailed {
                reason: reason.to_owned(),
            });
            self.execute(&mut state);
        }
    }

    /// An API call; the answer comes on the returned channel.
    pub(crate) fn call(
        self: &Arc<Self>,
        call: ApiCall,
    ) -> oneshot::Receiver<Result<ApiResult, DebugError>> {
        let (reply, answer) = oneshot::channel();
        // Checked under the lock: close_all, which fails the calls it finds, takes it.
        let mut state = self.lock();
        if self.cancel.is_cancelled() {
            let _ = reply.send(Err(DebugError::GatewayClosed));
            return answer;
        }
        state.next_request += 1;
        let request = ApiRequestId(state.next_request);
        state.api_replies.insert(request, reply);
        state.mux.handle(Input::Api { request, call });
        self.execute(&mut state);
        answer
    }

    pub(crate) fn status(&self) -> GatewayStatus {
        let state = self.lock();
        GatewayStatus {
            open_files: state.semihosting.open_files(),
            open_tickets: self.open_tickets.load(std::sync::atomic::Ordering::SeqCst),
            ..state.mux.status()
        }
    }

    /// Closes every socket now (the gateway is going away).
    pub(crate) fn close_all(&self) {
        let mut state = self.lock();
        for (_, link) in state.clients.drain() {
            link.stop_reading.cancel();
            link.writer.close();
        }
        drop_upstream(&mut state);
        for (_, reply) in state.api_replies.drain() {
            let _ = reply.send(Err(DebugError::GatewayClosed));
        }
    }

    fn execute(self: &Arc<Self>, state: &mut State) {
        while let Some(action) = state.mux.next_action() {
            match action {
                Action::ConnectUpstream => self.connect_upstream(state),
                Action::SendUpstream(bytes) => {
                    let sent = state
                        .upstream
                        .as_ref()
                        .is_some_and(|link| link.writer.send(&bytes));
                    if !sent && state.upstream.is_some() {
                        tracing::warn!("writing to the stub failed");
                        drop_upstream(state);
                        state.mux.handle(Input::UpstreamFailed {
                            reason: "write failed".into(),
                        });
                    }
                }
                Action::DisconnectUpstream => drop_upstream(state),
                Action::SendClient { client, bytes } => {
                    let sent = state
                        .clients
                        .get(&client)
                        .is_some_and(|link| link.writer.send(&bytes));
                    if !sent && let Some(link) = state.clients.remove(&client) {
                        tracing::warn!(
                            client = client.0,
                            "client cannot keep up; disconnecting it"
                        );
                        link.stop_reading.cancel();
                        link.writer.close();
                        state.mux.handle(Input::ClientGone { client });
                    }
                }
                Action::CloseClient { client } => {
                    state.requests.remove(&client);
                    if let Some(link) = state.clients.remove(&client) {
                        link.stop_reading.cancel();
                        link.writer.close();
                    }
                }
                Action::ApiReply { request, result } => {
                    if let Some(reply) = state.api_replies.remove(&request) {
                        let _ = reply.send(result);
                    }
                }
                Action::Stopped(event) => {
                    let _ = self.events.send(RunEvent::Stopped(event.clone()));
                    let _ = self.stops.send(event);
                }
                Action::Resumed(event) => {
                    let _ = self.events.send(RunEvent::Resumed(event));
                }
                Action::WakeAfter(after) => {
                    let driver = self.clone();
                    let cancel = self.cancel.clone();
                    self.spawn(async move {
                        tokio::select! {
                            () = cancel.cancelled() => {}
                            () = tokio::time::sleep(after) => driver.feed(Input::Wake),
                        }
                    });
                }
                Action::Audit(operation) => {
                    let user = if operation.operation == "gdb.detach" {
                        state.users.remove(&operation.client)
                    } else {
                        state.users.get(&operation.client).cloned()
                    };
                    if let Some(sink) = &self.config.audit {
                        (sink.0)(crate::GatewayOperation {
                            client: operation.client.0,
                            user,
                            operation: operation.operation,
                            detail: operation.detail,
                        });
                    }
                }
                Action::RequestStarted { client } => {
                    state.requests.insert(client, std::time::Instant::now());
                }
                Action::RequestAnswered { client } => {
                    if let Some(started) = state.requests.remove(&client)
                        && let Some(sink) = &self.config.round_trips
                    {
                        (sink.0)(started.elapsed());
                    }
                }
                Action::HostCall(call) => {
                    let reply = state.semihosting.call(call);
                    state.mux.handle(Input::HostCallDone(reply));
                }
            }
        }
    }

    /// Connects in a task of its own; the result comes back through
    /// [`Driver::upstream_connected`].
    fn connect_upstream(self: &Arc<Self>, state: &mut State) {
        drop_upstream(state);
        let generation = state.upstream_generation;
        let driver = self.clone();
        let path = self.config.upstream.clone();
        let timeout = self.config.connect_timeout;
        let cancel = self.cancel.clone();
        self.spawn(async move {
            let connect = tokio::time::timeout(timeout, UnixStream::connect(&path));
            let result = tokio::select! {
                () = cancel.cancelled() => return,
                result = connect => match result {
                    Ok(Ok(stream)) => Ok(stream),
                    Ok(Err(error)) => Err(format!("{}: {error}", path.display())),
                    Err(_) => Err(format!("{}: connect timed out", path.display())),
                },
            };
            driver.upstream_connected(generation, result);
        });
    }

    fn upstream_connected(self: &Arc<Self>, generation: u64, result: Result<UnixStream, String>) {
        let mut state = self.lock();
        if generation != state.upstream_generation {
            return;
        }
        match result {
            Ok(stream) => {
                let (reader, writer) = stream.into_split();
                let writer = SocketWriter::new(
                    writer,
                    usize::MAX,
                    &self.cancel,
                    &self.tracker,
                    &self.runtime,
                );
                let stop_reading = self.cancel.child_token();
                self.spawn(read_upstream(
                    self.clone(),
                    generation,
                    reader,
                    stop_reading.clone(),
                ));
                state.upstream = Some(UpstreamLink {
                    writer,
                    stop_reading,
                });
                state.mux.handle(Input::UpstreamConnected);
            }
            Err(reason) => {
                tracing::warn!(%reason, "cannot reach the stub");
                state.mux.handle(Input::UpstreamFailed { reason });
            }
        }
        self.execute(&mut state);
    }
}

/// Closes the upstream link (after what was written to it) and makes its
/// pending events stale.
fn drop_upstream(state: &mut State) {
    if let Some(link) = state.upstream.take() {
        link.stop_reading.cancel();
        link.writer.close();
    }
    state.upstream_generation += 1;
}
