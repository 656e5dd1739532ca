//! `virserver bench dap`: what an editor waits for, through a session's DAP endpoint
//! (bridge, GDB, gateway) against GDB's own DAP attached straight to a bare QEMU's stub,
//! in one run, alternating between the two sides.
//!
//! Each round continues to `tick()` (a breakpoint), then times a `next` over
//! `uart_puts("tick ")` (a call with a loop) and a `stackTrace` + `scopes` + `variables`
//! round trip, the requests behind every stop in an editor.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use virserver_gateway::bench::QemuProcess;

use super::GdbLaunch;
use super::client::DapClient;
use crate::app::App;
use crate::backend::BackendKind;
use crate::config::Config;
use crate::sessions::PowerAction;

#[derive(Debug, Clone, clap::Args)]
pub struct DapBench {
    /// The firmware: it must have a `tick()` whose second line calls a function.
    #[arg(long, default_value = "examples/firmware/bin/ticker-mps2-an385.elf")]
    pub elf: PathBuf,
    /// Board template id (and the QEMU machine of the bare side).
    #[arg(long, default_value = "mps2-an385")]
    pub board: String,
    /// Rounds per side.
    #[arg(long, default_value_t = 20)]
    pub rounds: usize,
    /// Board templates besides the built-in ones.
    #[arg(long)]
    pub boards_dir: Option<PathBuf>,
    /// The GDB (>= 14 with Python); default: the one the server would use.
    #[arg(long = "gdb", env = "VIRSERVER_GDB")]
    pub gdb: Option<PathBuf>,
}

/// The medians of one side, in milliseconds.
struct Side {
    next: Vec<Duration>,
    inspect: Vec<Duration>,
}

pub async fn dap(options: DapBench) -> anyhow::Result<()> {
    let elf = std::fs::canonicalize(&options.elf)
        .with_context(|| format!("reading {}", options.elf.display()))?;
    let gdb = crate::gdb::locate(options.gdb.as_deref())
        .await?
        .require_dap()?
        .clone();
    let launch = GdbLaunch {
        gdb: gdb.clone(),
        confined: None,
    };

    // The bare side: GDB's DAP on QEMU's own stub.
    let qemu_binary = which("qemu-system-arm")?;
    let machine = options.board.as_str();
    let qemu = QemuProcess::start(&qemu_binary, machine, &elf).await?;
    let mut gdb_child = launch.spawn()?;
    let mut direct = DapClient::new(
        gdb_child.stdout.take().context("GDB's stdout")?,
        gdb_child.stdin.take().context("GDB's stdin")?,
    );
    initialize(&mut direct).await?;
    direct
        .call(
            "evaluate",
            json!({"expression": format!("file {}", elf.display()), "context": "repl"}),
        )
        .await?;
    let attach = direct
        .send(
            "attach",
            json!({"target": qemu.gdb_socket.display().to_string()}),
        )
        .await?;
    configure(&mut direct, attach).await?;

    // Through VirServer: a server of its own, the session's DAP endpoint.
    let data_dir = std::env::temp_dir().join(format!("virserver-bench-dap-{}", std::process::id()));
    let mut config = Config {
        data_dir: data_dir.clone(),
        boards_dir: options.boards_dir.clone(),
        gdb_path: Some(gdb.path.clone()),
        ..Config::default()
    };
    config.prepare_data_dir()?;
    let app = App::start(config).await?;
    let result = async {
        let mut client = start_session(&app, &elf, &options.board).await?;
        initialize(&mut client).await?;
        let attach = client.send("attach", json!({})).await?;
        configure(&mut client, attach).await?;

        let mut bare = Side {
            next: Vec::new(),
            inspect: Vec::new(),
        };
        let mut gateway = Side {
            next: Vec::new(),
            inspect: Vec::new(),
        };
        for _ in 0..options.rounds.max(1) {
            round(&mut direct, &mut bare).await?;
            round(&mut client, &mut gateway).await?;
        }
        report(&bare, &gateway, options.rounds, &gdb.version);
        client.call("disconnect", json!({})).await?;
        anyhow::Ok(())
    }
    .await;
    direct
        .call("disconnect", json!({"terminateDebuggee": false}))
        .await
        .ok();
    drop(qemu);
    app.stop().await;
    let _ = std::fs::remove_dir_all(&data_dir);
    result
}

/// A session on `board` with `elf`, powered on halted, and a client on its endpoint.
async fn start_session(
    app: &std::sync::Arc<App>,
    elf: &Path,
    board: &str,
) -> anyhow::Result<DapClient> {
    let bytes = std::fs::read(elf)?;
    let session = app
        .sessions
        .create("bench-dap", BackendKind::Qemu, board, Default::default())
        .await?;
    app.sessions
        .upload_program(&session.id, "bench.elf", &bytes)
        .await?;
    app.sessions
        .power(&session.id, PowerAction::On, true)
        .await?;
    let address = app
        .dap
        .address(&session.id)
        .await?
        .context("the powered session has no DAP endpoint")?;
    DapClient::tcp(&address.to_string()).await
}

async fn initialize(client: &mut DapClient) -> anyhow::Result<()> {
    client
        .call(
            "initialize",
            json!({"adapterID": "bench", "linesStartAt1": true, "columnsStartAt1": true}),
        )
        .await
        .map(drop)
}

/// Breakpoint on tick(), configurationDone, the attach's answer and its stop.
async fn configure(client: &mut DapClient, attach: u64) -> anyhow::Result<()> {
    client.event("initialized").await?;
    let set = client
        .call(
            "setFunctionBreakpoints",
            json!({"breakpoints": [{"name": "tick"}]}),
        )
        .await?;
    if set["breakpoints"][0]["verified"] != true {
        bail!("the breakpoint on tick() did not bind: {set}");
    }
    client.call("configurationDone", json!({})).await?;
    let attached = client.response(attach).await?;
    if attached["success"] != true {
        bail!("attach failed: {attached}");
    }
    client.event("stopped").await?;
    Ok(())
}

/// Continue to tick(), step to its `uart_puts` line, then time a `next` over it and an
/// inspection of the stop.
async fn round(client: &mut DapClient, side: &mut Side) -> anyhow::Result<()> {
    client.call("continue", json!({"threadId": 1})).await?;
    stopped(client, "breakpoint").await?;
    client.call("next", json!({"threadId": 1})).await?;
    stopped(client, "step").await?;
    let started = Instant::now();
    client.call("next", json!({"threadId": 1})).await?;
    stopped(client, "step").await?;
    side.next.push(started.elapsed());

    let started = Instant::now();
    let trace = client
        .call("stackTrace", json!({"threadId": 1, "levels": 20}))
        .await?;
    let frame = &trace["stackFrames"][0]["id"];
    let scopes = client.call("scopes", json!({"frameId": frame})).await?;
    for scope in scopes["scopes"].as_array().into_iter().flatten() {
        client
            .call(
                "variables",
                json!({"variablesReference": scope["variablesReference"]}),
            )
            .await?;
    }
    side.inspect.push(started.elapsed());
    Ok(())
}

async fn stopped(client: &mut DapClient, reason: &str) -> anyhow::Result<Value> {
    let event = client.event("stopped").await?;
    if event["body"]["reason"] != reason {
        bail!("expected a stop for {reason}, got {event}");
    }
    Ok(event)
}

fn median(samples: &[Duration]) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2].as_secs_f64() * 1000.0
}

fn report(bare: &Side, gateway: &Side, rounds: usize, version: &str) {
    println!("DAP with GDB {version}, {rounds} rounds per side, medians:");
    println!(
        "{:<34} {:>10} {:>12} {:>7}",
        "", "direct ms", "virserver ms", "ratio"
    );
    for (name, direct, ours) in [
        ("next over uart_puts()", &bare.next, &gateway.next),
        (
            "stackTrace+scopes+variables",
            &bare.inspect,
            &gateway.inspect,
        ),
    ] {
        let (direct, ours) = (median(direct), median(ours));
        println!(
            "{name:<34} {direct:>10.2} {ours:>12.2} {:>6.2}x",
            ours / direct
        );
    }
}

fn which(name: &str) -> anyhow::Result<PathBuf> {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|path| path.is_file())
        })
        .with_context(|| format!("{name} is not on PATH"))
}
