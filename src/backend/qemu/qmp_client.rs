//! The thin tokio loop around the QMP codec: one unix-socket connection per machine,
//! commands matched to replies by id, events forwarded as `MachineEvent`s.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::{Mutex, mpsc, oneshot};

use super::qmp::{QmpDecoder, QmpMessage, encode_command};
use crate::backend::{BackendError, MachineEvent};

type Pending = Arc<std::sync::Mutex<HashMap<u64, oneshot::Sender<Result<Value, BackendError>>>>>;

pub struct QmpClient {
    writer: Mutex<OwnedWriteHalf>,
    pending: Pending,
    next_id: AtomicU64,
    /// While set, STOP and RESUME are not forwarded (see [`QmpClient::quiet`]).
    quiet: Arc<AtomicBool>,
    pub version: String,
}

/// Ends a quiet stretch when dropped.
pub struct Quiet(Arc<AtomicBool>);

impl Drop for Quiet {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// How long a single QMP command may take before the emulator is considered stuck.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

impl QmpClient {
    /// Connects, reads the greeting, negotiates capabilities, and starts the reader
    /// task, which forwards STOP / RESUME / RESET as machine events.
    pub async fn connect(
        path: &Path,
        events: mpsc::Sender<MachineEvent>,
    ) -> Result<Self, BackendError> {
        let stream = UnixStream::connect(path).await?;
        let (mut reader, writer) = stream.into_split();
        let mut decoder = QmpDecoder::default();
        let version = read_greeting(&mut reader, &mut decoder).await?;
        let pending: Pending = Arc::default();
        let quiet = Arc::new(AtomicBool::new(false));
        tokio::spawn(read_loop(
            reader,
            decoder,
            pending.clone(),
            quiet.clone(),
            events,
        ));
        let client = Self {
            writer: Mutex::new(writer),
            pending,
            next_id: AtomicU64::new(1),
            quiet,
            version,
        };
        client.execute("qmp_capabilities", None).await?;
        Ok(client)
    }

    /// Until the guard is dropped, the VM's STOP and RESUME events are not machine
    /// events: a snapshot stops and restarts the VM, and that is no pause of the
    /// session. Events are read in order with replies, so every event QEMU sent before
    /// the reply that ends the stretch is suppressed, and none after it.
    pub fn quiet(&self) -> Quiet {
        self.quiet.store(true, Ordering::SeqCst);
        Quiet(self.quiet.clone())
    }

    pub async fn execute(
        &self,
        command: &str,
        arguments: Option<Value>,
    ) -> Result<Value, BackendError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (reply_tx, reply_rx) = oneshot::channel();
        lock(&self.pending).insert(id, reply_tx);
        let line = encode_command(id, command, arguments);
        if self.writer.lock().await.write_all(&line).await.is_err() {
            lock(&self.pending).remove(&id);
            return Err(BackendError::Gone);
        }
        match tokio::time::timeout(COMMAND_TIMEOUT, reply_rx).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => Err(BackendError::Gone),
            Err(_) => {
                lock(&self.pending).remove(&id);
                Err(BackendError::Control(format!("QMP '{command}' timed out")))
            }
        }
    }
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn read_greeting(
    reader: &mut tokio::net::unix::OwnedReadHalf,
    decoder: &mut QmpDecoder,
) -> Result<String, BackendError> {
    let mut buffer = [0u8; 4096];
    loop {
        if let Some(message) = decoder.next_message() {
            return match message {
                Ok(QmpMessage::Greeting { version }) => Ok(version),
                Ok(other) => Err(BackendError::Control(format!(
                    "expected a QMP greeting, got {other:?}"
                ))),
                Err(error) => Err(BackendError::Control(error.to_string())),
            };
        }
        let n = tokio::time::timeout(COMMAND_TIMEOUT, reader.read(&mut buffer))
            .await
            .map_err(|_| BackendError::Control("no QMP greeting".into()))??;
        if n == 0 {
            return Err(BackendError::Gone);
        }
        decoder.feed(&buffer[..n]);
    }
}

async fn read_loop(
    mut reader: tokio::net::unix::OwnedReadHalf,
    mut decoder: QmpDecoder,
    pending: Pending,
    quiet: Arc<AtomicBool>,
    events: mpsc::Sender<MachineEvent>,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        while let Some(message) = decoder.next_message() {
            match message {
                Ok(QmpMessage::Return {
                    id: Some(id),
                    value,
                }) => {
                    if let Some(reply) = lock(&pending).remove(&id) {
                        let _ = reply.send(Ok(value));
                    }
                }
                Ok(QmpMessage::Error {
                    id: Some(id),
                    class,
                    desc,
                }) => {
                    if let Some(reply) = lock(&pending).remove(&id) {
                        let _ = reply.send(Err(BackendError::Control(format!("{class}: {desc}"))));
                    }
                }
                Ok(QmpMessage::Event { name, .. }) => {
                    let quiet = quiet.load(Ordering::SeqCst);
                    let event = match name.as_str() {
                        "STOP" | "RESUME" if quiet => None,
                        "STOP" => Some(MachineEvent::Paused),
                        "RESUME" => Some(MachineEvent::Resumed),
                        "RESET" => Some(MachineEvent::Reset),
                        _ => None,
                    };
                    if let Some(event) = event {
                        let _ = events.send(event).await;
                    }
                }
                Ok(other) => tracing::debug!(?other, "unmatched QMP message"),
                Err(error) => tracing::warn!(%error, "bad QMP message"),
            }
        }
        match reader.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => decoder.feed(&buffer[..n]),
        }
    }
    // The emulator is gone: fail whatever still waits.
    lock(&pending).clear();
}
