//! One running QEMU: its console pipe, its QMP connection, and the task that waits for
//! the process and says how it ended. All console output is delivered before the exit
//! event, so a subscriber never sees EXITED before the firmware's last words.

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin};
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::process::RunPaths;
use super::qmp_client::QmpClient;
use crate::backend::{BackendError, Machine, MachineEvent, MachineExit};

/// How much of the emulator's stderr is kept to explain a crash.
const STDERR_TAIL: usize = 8 * 1024;
/// How long QEMU gets to create its QMP socket.
const START_TIMEOUT: Duration = Duration::from_secs(15);

pub struct QemuMachine {
    pid: Option<u32>,
    gdb_socket: PathBuf,
    /// Semihosting goes to the GDB stub (`target=gdb`).
    gdb_file_io: bool,
    qmp: QmpClient,
    stdin: tokio::sync::Mutex<ChildStdin>,
    powering_off: Arc<AtomicBool>,
    kill: CancellationToken,
    _kill_on_drop: DropGuard,
}

impl QemuMachine {
    pub async fn start(
        mut child: Child,
        paths: RunPaths,
        halted: bool,
        gdb_file_io: bool,
    ) -> Result<(Self, mpsc::Receiver<MachineEvent>), BackendError> {
        let (events_tx, events_rx) = mpsc::channel(1024);
        let stdin = child.stdin.take().ok_or(BackendError::Gone)?;
        let stdout = child.stdout.take().ok_or(BackendError::Gone)?;
        let stderr = child.stderr.take().ok_or(BackendError::Gone)?;
        let stderr_tail = Arc::new(Mutex::new(Vec::new()));
        let console = tokio::spawn(forward_console(stdout, events_tx.clone()));
        let stderr_task = tokio::spawn(keep_tail(stderr, stderr_tail.clone()));

        let qmp = match connect_qmp(&mut child, &paths, events_tx.clone()).await {
            Ok(qmp) => qmp,
            Err(error) => {
                let _ = child.kill().await;
                let _ = stderr_task.await;
                let detail = last_error_line(&stderr_tail).unwrap_or_default();
                return Err(BackendError::Launch(
                    format!("{error} {detail}").trim().to_owned(),
                ));
            }
        };
        tracing::debug!(qemu_version = %qmp.version, "QMP connected");
        let pid = child.id();
        let powering_off = Arc::new(AtomicBool::new(false));
        let kill = CancellationToken::new();
        tokio::spawn(wait_for_exit(
            child,
            kill.clone(),
            console,
            stderr_task,
            stderr_tail,
            powering_off.clone(),
            events_tx,
        ));
        let machine = Self {
            pid,
            gdb_socket: paths.gdb,
            gdb_file_io,
            qmp,
            stdin: tokio::sync::Mutex::new(stdin),
            powering_off,
            _kill_on_drop: kill.clone().drop_guard(),
            kill,
        };
        // A machine whose semihosting goes to the stub waits for its gateway.
        if !halted && !gdb_file_io {
            // A short program can exit before QEMU answers `cont`; its exit is then
            // reported on the event channel like any other.
            match machine.resume().await {
                Ok(()) | Err(BackendError::Gone) => {}
                Err(error) => return Err(error),
            }
        }
        Ok((machine, events_rx))
    }
}

async fn connect_qmp(
    child: &mut Child,
    paths: &RunPaths,
    events: mpsc::Sender<MachineEvent>,
) -> Result<QmpClient, BackendError> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait()? {
            return Err(BackendError::Launch(format!(
                "QEMU exited at start ({status})"
            )));
        }
        if paths.qmp.exists() {
            match QmpClient::connect(&paths.qmp, events.clone()).await {
                Ok(client) => return Ok(client),
                Err(error) if Instant::now() > deadline => return Err(error),
                Err(_) => {}
            }
        }
        if Instant::now() > deadline {
            return Err(BackendError::Launch(
                "QEMU did not open its QMP socket".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn forward_console(mut stdout: impl AsyncRead + Unpin, events: mpsc::Sender<MachineEvent>) {
    let mut buffer = vec![0u8; 8192];
    loop {
        match stdout.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if events
                    .send(MachineEvent::Console(buffer[..n].to_vec()))
                    .await
                    .is_err()
                {
                    break;
                }
            }
        }
    }
}

async fn keep_tail(mut stderr: impl AsyncRead + Unpin, tail: Arc<Mutex<Vec<u8>>>) {
    let mut buffer = vec![0u8; 4096];
    while let Ok(n) = stderr.read(&mut buffer).await {
        if n == 0 {
            break;
        }
        tracing::debug!(stderr = %String::from_utf8_lossy(&buffer[..n]).trim_end(), "QEMU");
        let mut tail = tail.lock().unwrap_or_else(|p| p.into_inner());
        tail.extend_from_slice(&buffer[..n]);
        if tail.len() > STDERR_TAIL {
            let excess = tail.len() - STDERR_TAIL;
            tail.drain(..excess);
        }
    }
}

/// The last line QEMU printed as an error (warnings are not errors).
fn last_error_line(tail: &Mutex<Vec<u8>>) -> Option<String> {
    let tail = tail.lock().unwrap_or_else(|p| p.into_inner());
    String::from_utf8_lossy(&tail)
        .lines()
        .rev()
        .find(|line| {
            (line.starts_with("qemu-system-") || line.starts_with("qemu:"))
                && !line.contains("warning:")
        })
        .map(str::to_owned)
}

async fn wait_for_exit(
    mut child: Child,
    kill: CancellationToken,
    console: tokio::task::JoinHandle<()>,
    stderr_task: tokio::task::JoinHandle<()>,
    stderr_tail: Arc<Mutex<Vec<u8>>>,
    powering_off: Arc<AtomicBool>,
    events: mpsc::Sender<MachineEvent>,
) {
    let status = tokio::select! {
        status = child.wait() => status,
        () = kill.cancelled() => {
            let _ = child.kill().await;
            child.wait().await
        }
    };
    // Deliver every byte of console output before saying how the process ended.
    let _ = console.await;
    let _ = stderr_task.await;
    let exit = match status {
        _ if powering_off.load(Ordering::SeqCst) => MachineExit::PoweredOff,
        Err(error) => MachineExit::Crashed(format!("cannot wait for QEMU: {error}")),
        Ok(status) => match (status.code(), status.signal()) {
            (_, Some(signal)) => MachineExit::Crashed(format!(
                "QEMU was killed by signal {signal}{}",
                last_error_line(&stderr_tail)
                    .map(|line| format!(": {line}"))
                    .unwrap_or_default()
            )),
            (Some(code), None) => match last_error_line(&stderr_tail) {
                Some(line) if code != 0 => MachineExit::Crashed(line),
                _ => MachineExit::Exited(code),
            },
            (None, None) => MachineExit::Crashed("QEMU ended without a status".into()),
        },
    };
    let _ = events.send(MachineEvent::Exited(exit)).await;
}

/// The stdio chardev is multiplexed (UART + semihosting), so its escape byte 0x01
/// (Ctrl-A) must be doubled to reach the guest as data.
fn escape_mux_input(data: &[u8]) -> Vec<u8> {
    let mut escaped = Vec::with_capacity(data.len());
    for &byte in data {
        escaped.push(byte);
        if byte == 0x01 {
            escaped.push(0x01);
        }
    }
    escaped
}

#[async_trait]
impl Machine for QemuMachine {
    fn pid(&self) -> Option<u32> {
        self.pid
    }

    fn gdb_socket(&self) -> Option<PathBuf> {
        Some(self.gdb_socket.clone())
    }

    fn gdb_file_io(&self) -> bool {
        self.gdb_file_io
    }

    async fn pause(&self) -> Result<(), BackendError> {
        self.qmp.execute("stop", None).await.map(drop)
    }

    async fn resume(&self) -> Result<(), BackendError> {
        self.qmp.execute("cont", None).await.map(drop)
    }

    async fn reset(&self) -> Result<(), BackendError> {
        self.qmp.execute("system_reset", None).await.map(drop)
    }

    async fn write_console(&self, data: &[u8]) -> Result<(), BackendError> {
        let mut stdin = self.stdin.lock().await;
        stdin
            .write_all(&escape_mux_input(data))
            .await
            .map_err(|_| BackendError::Gone)?;
        stdin.flush().await.map_err(|_| BackendError::Gone)
    }

    async fn power_off(&self) -> Result<(), BackendError> {
        self.powering_off.store(true, Ordering::SeqCst);
        match tokio::time::timeout(Duration::from_secs(3), self.qmp.execute("quit", None)).await {
            Ok(Ok(_)) | Ok(Err(BackendError::Gone)) => {}
            _ => self.kill.cancel(),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ctrl_a_is_doubled_for_the_mux() {
        assert_eq!(super::escape_mux_input(b"a\x01b"), b"a\x01\x01b");
        assert_eq!(super::escape_mux_input(b"plain"), b"plain");
    }
}
