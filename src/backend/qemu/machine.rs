//! One running QEMU: its console pipe, its QMP connection, and the task that waits for
//! the process and says how it ended. All console output is delivered before the exit
//! event, so a subscriber never sees EXITED before the firmware's last words.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin};
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};

use serde_json::{Value, json};

use super::process::RunPaths;
use super::qmp_client::QmpClient;
use super::snapshot::{self, FileOf};
use crate::backend::{
    BackendError, Machine, MachineEvent, MachineExit, MachineRecording, MachineSnapshots,
};

/// How much of the emulator's stderr is kept to explain a crash.
const STDERR_TAIL: usize = 8 * 1024;
/// How long QEMU gets to create its QMP socket.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a snapshot job may run (saves take 10-40 ms here).
const JOB_TIMEOUT: Duration = Duration::from_secs(60);
/// The copy of a snapshot image a load opens (QEMU writes to it), in the run dir.
const RESTORE_IMAGE: &str = "restore.qcow2";

pub struct QemuMachine {
    pid: Option<u32>,
    gdb_socket: PathBuf,
    /// Semihosting goes to the GDB stub (`target=gdb`).
    gdb_file_io: bool,
    /// The console chardev is multiplexed (its escape byte is doubled on input).
    console_mux: bool,
    /// Launched to record or replay.
    recording: bool,
    qmp: QmpClient,
    run_dir: PathBuf,
    /// One snapshot save or load at a time; numbers their QMP jobs and nodes.
    snapshot_lock: tokio::sync::Mutex<()>,
    next_job: AtomicU64,
    stdin: tokio::sync::Mutex<ChildStdin>,
    powering_off: Arc<AtomicBool>,
    kill: CancellationToken,
    _kill_on_drop: DropGuard,
}

impl QemuMachine {
    /// Takes over a QEMU started with `-S`: connects QMP, loads `restore` if given,
    /// and lets the CPU run unless it is to stay halted.
    pub async fn start(
        mut child: Child,
        paths: RunPaths,
        start: Start,
    ) -> Result<(Self, mpsc::Receiver<MachineEvent>), BackendError> {
        let Start {
            halted,
            gdb_file_io,
            restore,
            run_dir,
            recording,
        } = start;
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
            console_mux: !recording,
            recording,
            qmp,
            run_dir,
            snapshot_lock: tokio::sync::Mutex::new(()),
            next_job: AtomicU64::new(1),
            stdin: tokio::sync::Mutex::new(stdin),
            powering_off,
            _kill_on_drop: kill.clone().drop_guard(),
            kill,
        };
        if let Some(image) = &restore {
            machine.load(image).await?;
        }
        // A machine whose semihosting goes to the stub waits for its gateway.
        if !halted && !gdb_file_io && restore.is_none() {
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

/// How a machine starts.
pub struct Start {
    pub halted: bool,
    /// Semihosting goes to the GDB stub (`target=gdb`).
    pub gdb_file_io: bool,
    /// A snapshot image to start in.
    pub restore: Option<PathBuf>,
    pub run_dir: PathBuf,
    /// Launched to record or replay (its console is not multiplexed).
    pub recording: bool,
}

impl QemuMachine {
    /// Runs a QMP job to its end and dismisses it.
    async fn job(&self, command: &str, arguments: Value) -> Result<(), BackendError> {
        let id = arguments["job-id"].as_str().unwrap_or_default().to_owned();
        self.qmp.execute(command, Some(arguments)).await?;
        let deadline = Instant::now() + JOB_TIMEOUT;
        let outcome = loop {
            let jobs = self.qmp.execute("query-jobs", None).await?;
            if let Some(outcome) = snapshot::job_outcome(&jobs, &id) {
                break outcome;
            }
            if Instant::now() > deadline {
                break Err(format!("did not end within {} s", JOB_TIMEOUT.as_secs()));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        let _ = self
            .qmp
            .execute("job-dismiss", Some(json!({"id": id})))
            .await;
        outcome.map_err(|error| snapshot::job_error(command, error))
    }

    fn names(&self) -> (String, String, String) {
        let n = self.next_job.fetch_add(1, Ordering::Relaxed);
        (
            format!("virserver-job{n}"),
            format!("virserver-file{n}"),
            format!("virserver-snap{n}"),
        )
    }

    async fn delete_node(&self, node: &str) {
        if let Err(error) = self
            .qmp
            .execute("blockdev-del", Some(json!({"node-name": node})))
            .await
        {
            tracing::warn!(%error, node, "cannot close a snapshot node");
        }
    }
}

impl QemuMachine {
    /// Creates an empty qcow2 image at `path` and leaves its file node open.
    async fn create_image(
        &self,
        path: &Path,
        job: &str,
        file_node: &str,
    ) -> Result<(), BackendError> {
        self.job("blockdev-create", snapshot::create_file(job, path))
            .await?;
        self.qmp
            .execute("blockdev-add", Some(snapshot::add_file(file_node, path)))
            .await?;
        let created = self
            .job("blockdev-create", snapshot::create_qcow2(job, file_node))
            .await;
        if created.is_err() {
            self.delete_node(file_node).await;
        }
        created
    }

    /// An empty qcow2 image at `path`, closed again (`record.rs`).
    pub async fn empty_image(&self, path: &Path) -> Result<(), BackendError> {
        let (job, file_node, _) = self.names();
        self.create_image(path, &job, &file_node).await?;
        self.delete_node(&file_node).await;
        Ok(())
    }
}

#[async_trait]
impl MachineSnapshots for QemuMachine {
    async fn save(&self, path: &Path) -> Result<u64, BackendError> {
        let _one = self.snapshot_lock.lock().await;
        let (job, file_node, node) = self.names();
        if let Err(error) = self.create_image(path, &job, &file_node).await {
            let _ = tokio::fs::remove_file(path).await;
            return Err(error);
        }
        let saved = async {
            self.qmp
                .execute(
                    "blockdev-add",
                    Some(snapshot::add_qcow2(&node, FileOf::Node(&file_node))),
                )
                .await?;
            let quiet = self.qmp.quiet();
            let saved = self
                .job("snapshot-save", snapshot::snapshot_job(&job, &node))
                .await;
            drop(quiet);
            self.delete_node(&node).await;
            saved
        }
        .await;
        self.delete_node(&file_node).await;
        if let Err(error) = saved {
            let _ = tokio::fs::remove_file(path).await;
            return Err(error);
        }
        Ok(tokio::fs::metadata(path).await?.len())
    }

    async fn load(&self, path: &Path) -> Result<(), BackendError> {
        let _one = self.snapshot_lock.lock().await;
        let (job, _, node) = self.names();
        let copy = self.run_dir.join(RESTORE_IMAGE);
        tokio::fs::copy(path, &copy).await?;
        let loaded = async {
            self.qmp
                .execute(
                    "blockdev-add",
                    Some(snapshot::add_qcow2(&node, FileOf::Path(&copy))),
                )
                .await?;
            let quiet = self.qmp.quiet();
            let loaded = self
                .job("snapshot-load", snapshot::snapshot_job(&job, &node))
                .await;
            drop(quiet);
            self.delete_node(&node).await;
            loaded
        }
        .await;
        let _ = tokio::fs::remove_file(&copy).await;
        loaded
    }
}

#[async_trait]
impl MachineRecording for QemuMachine {
    async fn instructions(&self) -> Result<u64, BackendError> {
        let reply = self.qmp.execute("query-replay", None).await?;
        reply["icount"]
            .as_u64()
            .ok_or_else(|| BackendError::Control(format!("query-replay answered {reply}")))
    }

    /// HMP `savevm`: the rr image is a drive (`-drive ...,id=rr`), where QEMU's
    /// reverse execution looks for snapshots; QMP `migrate` would abort a recording.
    async fn checkpoint(&self, name: &str) -> Result<(), BackendError> {
        let _one = self.snapshot_lock.lock().await;
        let quiet = self.qmp.quiet();
        let reply = self
            .qmp
            .execute(
                "human-monitor-command",
                Some(json!({"command-line": format!("savevm {name}")})),
            )
            .await;
        drop(quiet);
        match reply?.as_str() {
            Some(text) if !text.trim().is_empty() => {
                Err(snapshot::job_error("savevm", text.trim().to_owned()))
            }
            _ => Ok(()),
        }
    }

    async fn break_at(&self, count: u64) -> Result<(), BackendError> {
        self.qmp
            .execute("replay-break", Some(json!({"icount": count})))
            .await
            .map(drop)
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
        let data = match self.console_mux {
            true => escape_mux_input(data),
            false => data.to_vec(),
        };
        stdin
            .write_all(&data)
            .await
            .map_err(|_| BackendError::Gone)?;
        stdin.flush().await.map_err(|_| BackendError::Gone)
    }

    fn snapshots(&self) -> Option<&dyn MachineSnapshots> {
        Some(self)
    }

    fn recording(&self) -> Option<&dyn MachineRecording> {
        self.recording.then_some(self as &dyn MachineRecording)
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
