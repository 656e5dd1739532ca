//! The sockets around the mux: [`SocketWriter`] (non-blocking writes with a
//! bounded backlog), the tasks that read clients and the stub, the
//! listener, and one-time ticket listeners.
//!
//! Every reading task feeds what it reads straight into the driver
//! ([`crate::driver::Driver::feed`]), which runs the mux and writes the
//! resulting bytes with `try_write` while it holds the mux's lock: a request
//! travels client socket -> mux -> stub socket in the task that read it,
//! with no hop through a channel. Whatever a socket does not take at once
//! goes to its [`SocketWriter`]'s backlog, drained by a small task when the
//! socket is writable again; a client whose backlog passes its limit is
//! disconnected, so a slow client never blocks the stub or anyone else.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, tcp, unix};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::driver::Driver;
use crate::mux::{ClientId, Input};

/// Bytes read from a socket at once.
const READ_SIZE: usize = 64 * 1024;

/// The write half of a socket, as [`SocketWriter`] needs it.
pub(crate) trait WriteHalf: Send + Sync + 'static {
    fn try_write(&self, bytes: &[u8]) -> io::Result<usize>;
    fn writable(&self) -> impl Future<Output = io::Result<()>> + Send;
}

impl WriteHalf for tcp::OwnedWriteHalf {
    fn try_write(&self, bytes: &[u8]) -> io::Result<usize> {
        tcp::OwnedWriteHalf::try_write(self, bytes)
    }
    fn writable(&self) -> impl Future<Output = io::Result<()>> + Send {
        tcp::OwnedWriteHalf::writable(self)
    }
}

impl WriteHalf for unix::OwnedWriteHalf {
    fn try_write(&self, bytes: &[u8]) -> io::Result<usize> {
        unix::OwnedWriteHalf::try_write(self, bytes)
    }
    fn writable(&self) -> impl Future<Output = io::Result<()>> + Send {
        unix::OwnedWriteHalf::writable(self)
    }
}

#[derive(Debug, Default)]
struct Backlog {
    queue: VecDeque<Vec<u8>>,
    /// Stop once the backlog is written.
    closing: bool,
    /// The socket failed.
    broken: bool,
}

/// Writes to one socket without ever waiting: `try_write` now, the rest
/// later from a backlog task.
pub(crate) struct SocketWriter<W: WriteHalf> {
    socket: Arc<W>,
    backlog: Arc<Mutex<Backlog>>,
    wake: Arc<Notify>,
    /// Writes the backlog may hold before [`SocketWriter::send`] fails.
    limit: usize,
}

fn lock(backlog: &Mutex<Backlog>) -> MutexGuard<'_, Backlog> {
    backlog
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl<W: WriteHalf> SocketWriter<W> {
    /// Wraps a write half and starts its backlog task.
    pub(crate) fn new(
        socket: W,
        limit: usize,
        cancel: &CancellationToken,
        tracker: &TaskTracker,
        runtime: &tokio::runtime::Handle,
    ) -> SocketWriter<W> {
        let writer = SocketWriter {
            socket: Arc::new(socket),
            backlog: Arc::new(Mutex::new(Backlog::default())),
            wake: Arc::new(Notify::new()),
            limit: limit.max(1),
        };
        let socket = writer.socket.clone();
        let backlog = writer.backlog.clone();
        let wake = writer.wake.clone();
        let cancel = cancel.clone();
        tracker.spawn_on(
            async move {
                tokio::select! {
                    () = cancel.cancelled() => {}
                    () = drain(socket, backlog, wake) => {}
                }
            },
            runtime,
        );
        writer
    }

    /// Writes `bytes` now or queues them (in order). False when the socket
    /// is broken or the backlog is over its limit: the peer is too slow.
    pub(crate) fn send(&self, bytes: &[u8]) -> bool {
        let mut backlog = lock(&self.backlog);
        if backlog.broken {
            return false;
        }
        let mut rest = bytes;
        if backlog.queue.is_empty() {
            match self.socket.try_write(rest) {
                Ok(written) if written == rest.len() => return true,
                Ok(written) => rest = &rest[written..],
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => {
                    backlog.broken = true;
                    return false;
                }
            }
        }
        if backlog.queue.len() >= self.limit {
            return false;
        }
        backlog.queue.push_back(rest.to_vec());
        drop(backlog);
        self.wake.notify_one();
        true
    }

    /// Closes the socket once the backlog is written.
    pub(crate) fn close(&self) {
        lock(&self.backlog).closing = true;
        self.wake.notify_one();
    }
}

/// The backlog task: writes queued bytes when the socket is writable, and
/// drops its handle on the socket when closing (the write side shuts down
/// when every handle is gone).
async fn drain<W: WriteHalf>(socket: Arc<W>, backlog: Arc<Mutex<Backlog>>, wake: Arc<Notify>) {
    loop {
        let (pending, closing) = {
            let backlog = lock(&backlog);
            (!backlog.queue.is_empty(), backlog.closing)
        };
        if !pending {
            if closing {
                return;
            }
            wake.notified().await;
            continue;
        }
        if socket.writable().await.is_err() {
            lock(&backlog).broken = true;
            return;
        }
        let mut backlog = lock(&backlog);
        while let Some(front) = backlog.queue.front_mut() {
            match socket.try_write(front) {
                Ok(written) if written == front.len() => {
                    backlog.queue.pop_front();
                }
                Ok(written) => {
                    front.drain(..written);
                    break;
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    backlog.broken = true;
                    backlog.queue.clear();
                    return;
                }
            }
        }
    }
}

/// Reads a client until it closes or is closed; feeds the mux.
pub(crate) async fn read_client(
    driver: Arc<Driver>,
    client: ClientId,
    mut reader: tcp::OwnedReadHalf,
    stop: CancellationToken,
) {
    let mut buffer = vec![0u8; READ_SIZE];
    loop {
        let read = tokio::select! {
            () = stop.cancelled() => return,
            read = reader.read(&mut buffer) => read,
        };
        match read {
            Ok(0) | Err(_) => return driver.client_gone(client),
            Ok(count) => driver.feed(Input::ClientBytes {
                client,
                bytes: buffer[..count].to_vec(),
            }),
        }
    }
}

/// Reads the stub until it closes or the link is dropped; feeds the mux.
pub(crate) async fn read_upstream(
    driver: Arc<Driver>,
    generation: u64,
    mut reader: unix::OwnedReadHalf,
    stop: CancellationToken,
) {
    let mut buffer = vec![0u8; READ_SIZE];
    loop {
        let read = tokio::select! {
            () = stop.cancelled() => return,
            read = reader.read(&mut buffer) => read,
        };
        match read {
            Ok(0) => return driver.upstream_lost(generation, "the stub closed the connection"),
            Err(error) => return driver.upstream_lost(generation, &error.to_string()),
            Ok(count) => driver.upstream_bytes(generation, buffer[..count].to_vec()),
        }
    }
}

/// Accepts clients until cancelled; with `tickets_only`, closes each at once.
pub(crate) async fn run_listener(
    driver: Arc<Driver>,
    listener: TcpListener,
    tickets_only: bool,
    cancel: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            () = cancel.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) if tickets_only => {
                tracing::info!(%peer, "connection refused: this endpoint takes attach tickets only");
                drop(stream);
            }
            Ok((stream, peer)) => driver.accept(stream, peer, None),
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// A ticket: accepts exactly one client within `ttl`, then closes; the client is
/// shown as `user`'s.
pub(crate) async fn run_ticket(
    // Counted as open until this task ends.
    _held: crate::driver::TicketHeld,
    driver: Arc<Driver>,
    listener: TcpListener,
    ttl: Duration,
    user: Option<String>,
    cancel: CancellationToken,
) {
    let address = listener.local_addr().ok();
    let accepted = tokio::select! {
        () = cancel.cancelled() => return,
        () = tokio::time::sleep(ttl) => {
            tracing::info!(?address, "ticket expired unused");
            return;
        }
        accepted = listener.accept() => accepted,
    };
    drop(listener);
    match accepted {
        Ok((stream, peer)) => {
            tracing::info!(?address, %peer, ?user, "ticket used");
            driver.accept(stream, peer, user.as_deref());
        }
        Err(error) => tracing::warn!(%error, "ticket accept failed"),
    }
}

/// Binds a listener, naming the address in the error.
pub(crate) async fn bind(address: SocketAddr) -> Result<TcpListener, crate::GatewayError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| crate::GatewayError::Bind { address, source })
}
