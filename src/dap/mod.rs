//! Debug Adapter Protocol for editors: one `gdb -i dap` per DAP connection, bridged to a
//! session by `virserver-dap`'s sans-IO [`Bridge`].
//!
//! Two entry points share the driver in this file:
//! - [`endpoint`]: `Session.dapAddress`, a TCP endpoint per powered session inside the
//!   server. GDB runs on the server for a client the server does not trust, so the
//!   bridge is confined (no host commands) and GDB starts with auto-loading and
//!   debuginfod off.
//! - [`remote`]: `virserver dap --server URL`, the stdio adapter an editor starts. It
//!   runs beside the editor, drives the server through GraphQL (create, upload, power,
//!   UART), and points a local GDB at the session's gateway.
//!
//! The driver owns the I/O: it reads DAP from the client and from GDB's stdout, feeds
//! the bridge, performs the bridge's session operations one at a time, forwards UART
//! chunks, and ends GDB whenever the connection ends (the client leaves, GDB dies, or
//! the bridge closes), so no GDB outlives its client.

pub mod bench;
pub mod client;

pub mod endpoint;
pub mod remote;

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use virserver_dap::{
    Action, Bridge, BridgeConfig, Decoder, Input, Op, OpError, Ready, RunNotice, encode,
};

use crate::gdb::Gdb;
use crate::gdb::confine::confine;

/// Console output for the bridge: text and how many chunks were lost before it.
pub type UartFeed = mpsc::Receiver<(String, u64)>;

/// What the bridge's session operations do, in the server or through its API.
#[async_trait::async_trait]
pub trait SessionOps: Send + Sync {
    /// Creates a session on `board` with `program` (a path the adapter reads), powered
    /// on halted.
    async fn launch(&self, board: &str, program: &str, coverage: bool) -> Result<Ready, OpError>;
    /// An existing, powered session; `program` is a local copy of its ELF if the client
    /// named one.
    async fn attach(&self, session_id: &str, program: Option<&str>) -> Result<Ready, OpError>;
    async fn power_off(&self, session_id: &str) -> Result<(), OpError>;
    /// The session's console from now on (after a short replay of recent output).
    async fn uart(&self, session_id: &str) -> Result<UartFeed, OpError>;
    /// Every stop and resume of the session's CPU from now on, whoever caused it.
    async fn run_events(&self, session_id: &str) -> Result<RunFeed, OpError>;
}

/// Stops and resumes of the CPU for the bridge.
pub type RunFeed = mpsc::Receiver<RunNotice>;

/// How GDB is started for one connection.
#[derive(Debug, Clone)]
pub struct GdbLaunch {
    pub gdb: Gdb,
    /// GDB runs on the server for an untrusted client, confined to debugging this
    /// program through the gateway on this port (`gdb::confine`).
    pub confined: Option<(PathBuf, u16)>,
}

impl GdbLaunch {
    fn spawn(&self) -> anyhow::Result<Child> {
        let mut command = Command::new(&self.gdb.path);
        command.args(["-q", "-nx"]);
        let Some((program, port)) = &self.confined else {
            return spawn(&mut command, &self.gdb);
        };
        // An uploaded ELF may carry .debug_gdb_scripts; nothing reaches the network.
        command.args([
            "-iex",
            "set auto-load off",
            "-iex",
            "set debuginfod enabled off",
        ]);
        let prepared = confine(&mut command, &self.gdb.path, program, *port)?;
        let child = spawn(&mut command, &self.gdb);
        // The ruleset fd is closed once the child has exec'd.
        drop(prepared);
        child
    }
}

fn spawn(command: &mut Command, gdb: &Gdb) -> anyhow::Result<Child> {
    command
        .args(["-i", "dap"])
        .env("TERM", "dumb")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|error| anyhow::anyhow!("cannot start {}: {error}", gdb.path.display()))
}

/// Serves one DAP client until it leaves, GDB ends or the bridge closes.
pub async fn serve<R, W>(
    mut client_in: R,
    mut client_out: W,
    launch: &GdbLaunch,
    ops: Arc<dyn SessionOps>,
    config: BridgeConfig,
) -> anyhow::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut bridge = Bridge::new(config);
    let mut gdb = launch
        .spawn()
        .map_err(|error| anyhow::anyhow!("cannot start {}: {error}", launch.gdb.path.display()))?;
    let mut gdb_in = gdb.stdin.take().expect("piped stdin");
    let mut gdb_out = gdb.stdout.take().expect("piped stdout");
    if let Some(stderr) = gdb.stderr.take() {
        tokio::spawn(log_stderr(stderr));
    }
    let mut client_decoder = Decoder::new();
    let mut gdb_decoder = Decoder::new();
    let mut client_buf = vec![0u8; 64 * 1024];
    let mut gdb_buf = vec![0u8; 64 * 1024];
    let mut op: Option<BoxFuture<'static, Input>> = None;
    let mut uart: Option<UartFeed> = None;
    let mut run: Option<RunFeed> = None;
    let mut gdb_open = true;
    loop {
        while let Some(action) = bridge.next_action() {
            match action {
                Action::ToClient(message) => {
                    client_out.write_all(&encode(&message)).await?;
                }
                Action::ToGdb(message) => {
                    if gdb_open && gdb_in.write_all(&encode(&message)).await.is_err() {
                        gdb_open = false;
                    }
                }
                Action::Op(requested) => {
                    let ops = ops.clone();
                    op = Some(Box::pin(
                        async move { perform(ops.as_ref(), requested).await },
                    ));
                }
                Action::Close => {
                    client_out.flush().await?;
                    end_gdb(&mut gdb).await;
                    return Ok(());
                }
            }
        }
        client_out.flush().await?;
        tokio::select! {
            read = client_in.read(&mut client_buf) => {
                let n = read.unwrap_or(0);
                if n == 0 {
                    // The client vanished: its launched session stays as it is (the
                    // editor may reattach); GDB goes.
                    end_gdb(&mut gdb).await;
                    return Ok(());
                }
                client_decoder.feed(&client_buf[..n]);
                while let Some(message) = client_decoder.next_message() {
                    match message {
                        Ok(message) => bridge.handle(Input::Client(message)),
                        Err(error) if error.is_fatal() => {
                            bridge.handle(Input::ClientGarbage(error.to_string()));
                        }
                        Err(error) => {
                            tracing::debug!(%error, "DAP client sent a bad message");
                        }
                    }
                }
            }
            read = gdb_out.read(&mut gdb_buf), if gdb_open => {
                match read {
                    Ok(n) if n > 0 => {
                        gdb_decoder.feed(&gdb_buf[..n]);
                        while let Some(message) = gdb_decoder.next_message() {
                            match message {
                                Ok(message) => bridge.handle(Input::Gdb(message)),
                                Err(error) => tracing::warn!(%error, "GDB sent bad DAP"),
                            }
                        }
                    }
                    _ => {
                        gdb_open = false;
                        let status = gdb.wait().await.map(|s| s.to_string()).unwrap_or_default();
                        bridge.handle(Input::GdbExited(status));
                    }
                }
            }
            done = async { op.as_mut().expect("guarded").await }, if op.is_some() => {
                op = None;
                if let Input::OpDone(Ok(Some(ready))) = &done {
                    match ops.uart(&ready.session_id).await {
                        Ok(feed) => uart = Some(feed),
                        Err(OpError(reason)) => tracing::warn!(%reason, "no UART for the DAP client"),
                    }
                    match ops.run_events(&ready.session_id).await {
                        Ok(feed) => run = Some(feed),
                        Err(OpError(reason)) => tracing::debug!(%reason, "no run events for the DAP client"),
                    }
                }
                bridge.handle(done);
            }
            notice = async { run.as_mut().expect("guarded").recv().await }, if run.is_some() => {
                match notice {
                    Some(notice) => bridge.handle(Input::Run(notice)),
                    None => run = None,
                }
            }
            chunk = async { uart.as_mut().expect("guarded").recv().await }, if uart.is_some() => {
                match chunk {
                    Some((mut data, mut dropped)) => {
                        // The console arrives a few bytes at a time: what is already
                        // there goes out as one event.
                        let feed = uart.as_mut().expect("guarded");
                        while data.len() < 16 * 1024 {
                            let Ok((more, lost)) = feed.try_recv() else { break };
                            if lost > 0 {
                                bridge.handle(Input::Uart { data: std::mem::take(&mut data), dropped });
                                dropped = lost;
                            }
                            data.push_str(&more);
                        }
                        bridge.handle(Input::Uart { data, dropped });
                    }
                    None => uart = None,
                }
            }
        }
    }
}

async fn perform(ops: &dyn SessionOps, op: Op) -> Input {
    Input::OpDone(match op {
        Op::Launch {
            board,
            program,
            coverage,
        } => ops.launch(&board, &program, coverage).await.map(Some),
        Op::Attach {
            session_id,
            program,
        } => ops.attach(&session_id, program.as_deref()).await.map(Some),
        Op::PowerOff { session_id } => ops.power_off(&session_id).await.map(|()| None),
    })
}

/// GDB goes with its connection: a polite end, then a kill.
async fn end_gdb(gdb: &mut Child) {
    drop(gdb.stdin.take());
    if tokio::time::timeout(std::time::Duration::from_millis(500), gdb.wait())
        .await
        .is_err()
    {
        let _ = gdb.kill().await;
    }
}

async fn log_stderr(stderr: tokio::process::ChildStderr) {
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::debug!(target: "virserver::dap::gdb", "{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// Sends DAP requests to a GDB straight (no bridge) and returns each response.
    async fn ask(gdb: &mut Child, requests: &[Value]) -> Vec<Value> {
        let stdin = gdb.stdin.as_mut().unwrap();
        for request in requests {
            stdin.write_all(&encode(request)).await.unwrap();
        }
        stdin.flush().await.unwrap();
        let stdout = gdb.stdout.as_mut().unwrap();
        let mut decoder = Decoder::new();
        let mut responses = Vec::new();
        let mut buffer = [0u8; 8192];
        while responses.len() < requests.len() {
            let n =
                tokio::time::timeout(std::time::Duration::from_secs(60), stdout.read(&mut buffer))
                    .await
                    .expect("GDB answers")
                    .unwrap();
            assert!(n > 0, "GDB ended early");
            decoder.feed(&buffer[..n]);
            while let Some(message) = decoder.next_message() {
                let message = message.unwrap();
                if message["type"] == "response" {
                    responses.push(message);
                }
            }
        }
        responses
    }

    fn repl(seq: u64, line: &str) -> Value {
        json!({"seq": seq, "type": "request", "command": "evaluate",
               "arguments": {"expression": line, "context": "repl"}})
    }

    /// The layer under the bridge's allow-list: a confined GDB told to run host
    /// commands directly cannot.
    #[tokio::test]
    async fn a_confined_gdb_cannot_execute_or_write_on_the_host() {
        if crate::backend::qemu::confine::landlock_abi().is_err() {
            panic!("this host has no Landlock; `virserver doctor` says why");
        }
        let gdb = crate::gdb::locate(None)
            .await
            .unwrap()
            .require_dap()
            .unwrap()
            .clone();
        let dir = tempfile::tempdir().unwrap();
        let program = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples/firmware/bin/ticker-mps2-an385.elf");
        let launch = GdbLaunch {
            confined: Some((program.clone(), 1)),
            gdb,
        };
        let mut child = launch.spawn().unwrap();
        let shell = dir.path().join("by-shell");
        let python = dir.path().join("by-python");
        let responses = ask(
            &mut child,
            &[
                json!({"seq": 1, "type": "request", "command": "initialize", "arguments": {"adapterID": "t"}}),
                repl(2, &format!("shell touch {}", shell.display())),
                repl(3, &format!("python open('{}', 'w').write('x')", python.display())),
                repl(4, &format!("file {}", program.display())),
                repl(5, "print sizeof(tick_count)"),
            ],
        )
        .await;
        assert_eq!(responses[0]["success"], true, "{responses:?}");
        assert!(!shell.exists(), "shell ran: {responses:?}");
        assert!(!python.exists(), "python wrote: {responses:?}");
        assert_eq!(responses[2]["success"], false, "{responses:?}");
        // The program it debugs is readable; GDB still works.
        assert_eq!(responses[3]["success"], true, "{responses:?}");
        assert!(
            responses[4]["body"]["result"]
                .as_str()
                .unwrap_or("")
                .contains('4'),
            "{responses:?}"
        );
        end_gdb(&mut child).await;
    }
}
