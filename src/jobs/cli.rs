//! `virserver run`: one job, in this process, with no server: a private data dir, the
//! console streamed to the terminal, artifacts written where asked, and an exit status a
//! CI step can test (0 passed, 1 failed, 2 timed out, 3 error).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use super::rules::{Rules, Verdict};
use super::runner::{self, JobSpec, Progress};
use crate::app::App;
use crate::backend::{BackendKind, Collector};
use crate::config::Config;

/// The job, as flags shared by `run` and `submit`.
#[derive(Debug, clap::Args)]
pub struct JobArgs {
    /// The firmware ELF to run.
    pub elf: PathBuf,
    /// Board template id (see boards/).
    #[arg(long)]
    pub board: String,
    #[arg(long, default_value = "qemu", value_parser = parse_backend)]
    pub backend: BackendKind,
    /// Seconds before the run is judged TIMED_OUT.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
    /// A regular expression the console must show; several must appear in order.
    #[arg(long = "expect")]
    pub expect: Vec<String>,
    /// A regular expression the console must never show.
    #[arg(long = "forbid")]
    pub forbid: Vec<String>,
    /// The exit code that passes (default 0 when the program exits; without it and with
    /// --expect, the run passes as soon as every pattern was seen).
    #[arg(long)]
    pub expect_exit: Option<i32>,
    /// Text written to the console UART once the program first prints.
    #[arg(long)]
    pub input: Option<String>,
    /// Write LCOV coverage of the run to this file.
    #[arg(long)]
    pub coverage: Option<PathBuf>,
    /// How coverage is recorded: `in-asm` (QEMU's translation log: which lines ran,
    /// no run-time cost) or `hit-counts` (the TCG plugin: how often each line ran).
    #[arg(long, value_enum, default_value = "in-asm")]
    pub collector: CollectorArg,
    /// Write a JUnit XML report to this file.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Count virtual time in instructions from a fixed clock start: the same ELF and
    /// input give the same console, exit code and coverage in every run (several times
    /// slower).
    #[arg(long)]
    pub deterministic: bool,
    /// A failing run keeps its failure point (a snapshot before a failing exit, at the
    /// output that broke a rule, at the time-out); `run` then prints the command that
    /// opens it for GDB and editors.
    #[arg(long)]
    pub keep_on_failure: bool,
}

#[derive(Debug, clap::Args)]
pub struct RunCommand {
    #[command(flatten)]
    pub job: JobArgs,
    /// A folder of board templates to add to the built-in ones (a board there replaces
    /// the built-in of the same id).
    #[arg(long, env = "VIRSERVER_BOARDS_DIR")]
    pub boards_dir: Option<PathBuf>,
}

/// `virserver debug`: a failure point `run --keep-on-failure` kept, opened.
#[derive(Debug, clap::Args)]
pub struct DebugCommand {
    /// The data dir `run --keep-on-failure` printed.
    pub dir: PathBuf,
    /// Where the server listens (GraphQL) while the session is open.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: std::net::SocketAddr,
    /// A folder of board templates to add to the built-in ones (a board there replaces
    /// the built-in of the same id).
    #[arg(long, env = "VIRSERVER_BOARDS_DIR")]
    pub boards_dir: Option<PathBuf>,
}

/// Serves the kept data dir with its failed run's session PAUSED at the failure point,
/// printing where GDB and DAP clients attach, until Ctrl-C.
pub async fn debug(command: DebugCommand) -> anyhow::Result<u8> {
    if !command.dir.join("virserver.db").is_file() {
        anyhow::bail!(
            "{} holds no kept run (no virserver.db)",
            command.dir.display()
        );
    }
    let config = Config {
        data_dir: command.dir,
        boards_dir: command.boards_dir,
        listen: command.listen,
        ..Config::default()
    };
    crate::server::serve_then(config, |app, address| async move {
        let mut kept = None;
        for session in app.sessions.list().await? {
            let found = app.sessions.snapshots(&session.id).await?.into_iter().find(|s| {
                s.name == super::failure::FAILURE_SNAPSHOT
            });
            kept = kept.or(found);
        }
        let kept = kept.context("this data dir kept no failure point")?;
        let session = app.sessions.restore_snapshot(&kept.id).await?;
        let (_, gdb) = app.sessions.machine_info(&session.id).unwrap_or_default();
        let dap = app.dap.address(&session.id).await.ok().flatten();
        let show = |address: Option<std::net::SocketAddr>| {
            address.map_or("unavailable".to_owned(), |a| a.to_string())
        };
        eprintln!(
            "virserver: session {} is PAUSED at the failure point\n  GDB:     target extended-remote {}\n  DAP:     {}\n  GraphQL: http://{address}/graphql\nCtrl-C ends it.",
            session.id,
            show(gdb),
            show(dap)
        );
        Ok(())
    })
    .await?;
    Ok(0)
}

/// `--collector`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CollectorArg {
    InAsm,
    HitCounts,
}

impl From<CollectorArg> for Collector {
    fn from(value: CollectorArg) -> Self {
        match value {
            CollectorArg::InAsm => Collector::InAsm,
            CollectorArg::HitCounts => Collector::HitCounts,
        }
    }
}

pub fn parse_backend(text: &str) -> Result<BackendKind, String> {
    BackendKind::parse(&text.to_ascii_uppercase().replace('-', "_"))
        .ok_or_else(|| format!("unknown backend '{text}' (qemu, renode, skyeye, probe-rs)"))
}

/// Exit statuses of `run` and `submit`.
pub fn exit_status(verdict: &Verdict) -> u8 {
    match verdict {
        Verdict::Passed => 0,
        Verdict::Failed(_) => 1,
        Verdict::TimedOut(_) => 2,
        Verdict::Error(_) | Verdict::Cancelled => 3,
    }
}

pub async fn run(command: RunCommand) -> anyhow::Result<u8> {
    let boards_dir = command.boards_dir;
    let command = command.job;
    let program = std::fs::read(&command.elf)
        .with_context(|| format!("cannot read {}", command.elf.display()))?;
    let rules = Rules::new(&command.expect, &command.forbid, command.expect_exit)?;
    let data_dir =
        std::env::temp_dir().join(format!("virserver-run-{}", uuid::Uuid::new_v4().simple()));
    let mut config = Config {
        data_dir: data_dir.clone(),
        boards_dir: boards_dir.clone(),
        ..Config::default()
    };
    config.prepare_data_dir()?;
    let app = App::start(config).await?;
    let spec = JobSpec {
        name: command
            .elf
            .file_name()
            .map_or("firmware".into(), |n| n.to_string_lossy().into_owned()),
        backend: command.backend,
        board_id: command.board.clone(),
        program_name: command.elf.display().to_string(),
        program,
        timeout: Duration::from_secs(command.timeout),
        rules,
        uart_input: command.input.clone(),
        coverage: command.coverage.is_some().then(|| command.collector.into()),
        deterministic: command.deterministic,
        from_snapshot: None,
        keep_on_failure: command.keep_on_failure,
        record: false,
        owner: None,
    };
    let cancel = CancellationToken::new();
    let on_ctrl_c = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_ctrl_c.cancel();
        }
    });
    let tty = std::io::stderr().is_terminal();
    if tty {
        eprintln!(
            "virserver: running {} on {} (timeout {} s)",
            spec.name, spec.board_id, command.timeout
        );
    }
    let console = ConsoleEcho::default();
    let show = |progress: Progress| {
        if let Progress::Console(text) = progress {
            console.write(&text);
        }
    };
    let outcome = runner::run(&app.sessions, &spec, &cancel, &show).await;
    console.end_line();
    app.stop().await;
    match &outcome.failure_snapshot {
        Some(_) => {
            let boards = boards_dir.map_or(String::new(), |dir| {
                let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
                format!(" --boards-dir {}", dir.display())
            });
            eprintln!(
                "virserver: the failure point is kept; open it for GDB and editors with:\n  virserver debug {}{boards}",
                data_dir.display(),
            );
        }
        None => {
            let _ = std::fs::remove_dir_all(&data_dir);
        }
    }

    write_artifacts(&command, Some(&outcome.junit), outcome.lcov.as_deref())?;
    let reason = outcome
        .verdict
        .reason()
        .map(|r| format!(": {r}"))
        .unwrap_or_default();
    eprintln!(
        "virserver: {}{reason} ({:.2} s)",
        outcome.verdict.state(),
        outcome.elapsed.as_secs_f64()
    );
    Ok(exit_status(&outcome.verdict))
}

/// The firmware's console echoed to standard output, as it comes. The verdict goes to
/// standard error afterwards; on a terminal both show on one screen, so a console that
/// did not end its last line gets a newline first (`counting: 1 2 3` then the verdict on
/// a line of its own, never `counting: 1 2 3virserver: PASSED`).
#[derive(Default)]
pub struct ConsoleEcho {
    /// Something was written and its last byte was not a newline.
    open_line: std::sync::atomic::AtomicBool,
}

impl ConsoleEcho {
    pub fn write(&self, text: &str) {
        let Some(last) = text.as_bytes().last() else {
            return;
        };
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(text.as_bytes());
        let _ = stdout.flush();
        self.open_line
            .store(*last != b'\n', std::sync::atomic::Ordering::Relaxed);
    }

    /// Ends the console's last line if it is open.
    pub fn end_line(&self) {
        if self
            .open_line
            .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(b"\n");
            let _ = stdout.flush();
        }
    }
}

/// Writes the reports the command asked for.
pub fn write_artifacts(
    job: &JobArgs,
    junit: Option<&str>,
    lcov: Option<&str>,
) -> anyhow::Result<()> {
    let write = |path: &PathBuf, text: &str| {
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
    };
    match (&job.junit, junit) {
        (Some(path), Some(text)) => write(path, text)?,
        (Some(_), None) => eprintln!("virserver: no JUnit report was made"),
        _ => {}
    }
    match (&job.coverage, lcov) {
        (Some(path), Some(text)) => write(path, text)?,
        (Some(_), None) => eprintln!("virserver: no coverage was collected"),
        _ => {}
    }
    Ok(())
}
