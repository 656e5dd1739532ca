//! `virserver bench`: measurements that run in one process, side by side with the bare
//! tool they compare against, so that both see the same machine at the same moment.
//! Runs alternate between the two sides to spread noise evenly.
//!
//! - `boot`: power-on to the first UART byte through the server (GraphQL mutation in,
//!   console broadcast out) against a bare `qemu-system-*` start of the same ELF.
//! - `jobs`: jobs per second through the embedded queue against a bare shell loop of
//!   the same QEMU command.
//! - `semihosting`: a firmware's semihosting console writes answered by the gateway
//!   against bare QEMU answering them on the host.
//! - `rsp`: the gateway's forwarding, stepping and large reads against QEMU's stub
//!   direct and a bare socat relay (the work is in `virserver_gateway::bench`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::AsyncReadExt;

use crate::app::App;
use crate::backend::BackendKind;
use crate::backend::qemu::confine::ConfinementMode;
use crate::config::Config;
use crate::sessions::{EventKind, next_live};

#[derive(Debug, Clone, clap::Args)]
pub struct BootBench {
    /// Board template id.
    #[arg(long, default_value = "mps2-an385")]
    pub board: String,
    /// ELF to boot; it should print at once and exit.
    #[arg(long, default_value = "examples/firmware/bin/hello-mps2-an385.elf")]
    pub elf: PathBuf,
    /// Runs per side.
    #[arg(long, default_value_t = 20)]
    pub runs: usize,
    /// Confinement of the server's QEMU processes (compare `on` with `off`).
    #[arg(long, value_enum, default_value_t = ConfinementMode::On)]
    pub confinement: ConfinementMode,
    /// Board templates besides the built-in ones.
    #[arg(long)]
    pub boards_dir: Option<PathBuf>,
}

pub(crate) fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

pub(crate) fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// A server of its own in a temporary data dir (removed by the caller).
pub(crate) async fn bench_app(
    name: &str,
    boards_dir: Option<&Path>,
    confinement: ConfinementMode,
) -> anyhow::Result<(std::sync::Arc<App>, PathBuf)> {
    let data_dir =
        std::env::temp_dir().join(format!("virserver-bench-{name}-{}", std::process::id()));
    let mut config = Config {
        data_dir: data_dir.clone(),
        boards_dir: boards_dir.map(Path::to_owned),
        confinement,
        ..Config::default()
    };
    config.prepare_data_dir()?;
    Ok((App::start(config).await?, data_dir))
}

/// A server of its own in a temporary data dir, with one session holding the ELF: what
/// `boot` and `semihosting` power on again and again.
struct BenchSession {
    app: std::sync::Arc<App>,
    data_dir: PathBuf,
    qemu: crate::boards::QemuSection,
    /// The session's id.
    session: String,
}

impl BenchSession {
    async fn start(
        name: &str,
        elf: &Path,
        board: &str,
        boards_dir: Option<&Path>,
        confinement: ConfinementMode,
    ) -> anyhow::Result<Self> {
        let bytes = std::fs::read(elf).with_context(|| format!("reading {}", elf.display()))?;
        let (app, data_dir) = bench_app(name, boards_dir, confinement).await?;
        let board = app.catalog.board(board).await?.board;
        let qemu = board
            .backends
            .qemu
            .clone()
            .context("the board has no QEMU section")?;
        let session = app
            .sessions
            .create("bench", BackendKind::Qemu, &board.id, Default::default())
            .await?;
        app.sessions
            .upload_program(&session.id, "bench.elf", &bytes)
            .await?;
        Ok(Self {
            app,
            data_dir,
            qemu,
            session: session.id,
        })
    }
}

pub async fn boot(options: BootBench) -> anyhow::Result<()> {
    if options.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let BenchSession {
        app,
        data_dir,
        qemu,
        session,
    } = BenchSession::start(
        "boot",
        &options.elf,
        &options.board,
        options.boards_dir.as_deref(),
        options.confinement,
    )
    .await?;
    let schema = crate::api::schema::build(app.clone());
    let power_on = format!(
        "mutation {{ powerSession(id: \"{}\", action: ON) {{ state }} }}",
        session
    );

    let mut bare = Vec::new();
    let mut gateway = Vec::new();
    for run in 0..options.runs {
        bare.push(
            bare_first_byte(&qemu.binary, &qemu.machine, &qemu.extra_args, &options.elf).await?,
        );

        let (_, mut uart) = app.sessions.subscribe_uart(&session).await?;
        let mut events = app.sessions.subscribe_events(&session).await?;
        let started = Instant::now();
        let response = schema.execute(power_on.as_str()).await;
        if !response.errors.is_empty() {
            bail!("powerSession failed: {:?}", response.errors);
        }
        tokio::time::timeout(Duration::from_secs(30), next_live(&mut uart))
            .await
            .context("no UART output within 30 s")?
            .context("UART closed")?;
        gateway.push(started.elapsed());
        loop {
            let event = tokio::time::timeout(Duration::from_secs(30), events.recv())
                .await
                .context("the program did not exit within 30 s")??;
            if matches!(event.kind, EventKind::Exited | EventKind::Crashed) {
                break;
            }
        }
        eprint!("\rrun {}/{}", run + 1, options.runs);
    }
    eprintln!();
    app.stop().await;
    let _ = std::fs::remove_dir_all(&data_dir);

    let bare_median = median(&mut bare);
    let gateway_median = median(&mut gateway);
    println!(
        "power-on to first UART byte, {} runs each, board {}",
        options.runs, options.board
    );
    println!(
        "  bare {:<22} median {:8.2} ms",
        qemu.binary,
        ms(bare_median)
    );
    println!(
        "  virserver (GraphQL)         median {:8.2} ms",
        ms(gateway_median)
    );
    println!(
        "  ratio {:.2}x, difference {:+.2} ms",
        gateway_median.as_secs_f64() / bare_median.as_secs_f64(),
        ms(gateway_median) - ms(bare_median)
    );
    Ok(())
}

/// Starts QEMU the way a person would by hand and times its first byte on stdout.
async fn bare_first_byte(
    binary: &str,
    machine: &str,
    extra_args: &[String],
    elf: &Path,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut child = tokio::process::Command::new(binary)
        .args(["-M", machine, "-nographic", "-monitor", "none"])
        .args(["-semihosting-config", "enable=on,target=native"])
        .arg("-kernel")
        .arg(elf)
        .args(extra_args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {binary}"))?;
    let mut stdout = child.stdout.take().context("no stdout")?;
    let mut byte = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(30), stdout.read(&mut byte))
        .await
        .context("bare QEMU printed nothing within 30 s")??;
    let elapsed = started.elapsed();
    if n == 0 {
        bail!("bare QEMU exited without output");
    }
    tokio::io::copy(&mut stdout, &mut tokio::io::sink()).await?;
    child.wait().await?;
    Ok(elapsed)
}

#[derive(Debug, Clone, clap::Args)]
pub struct JobsBench {
    #[arg(long, default_value = "mps2-an385")]
    pub board: String,
    /// A short firmware that exits by itself.
    #[arg(long, default_value = "examples/firmware/bin/hello-mps2-an385.elf")]
    pub elf: PathBuf,
    /// Jobs per measurement.
    #[arg(long, default_value_t = 40)]
    pub jobs: usize,
    /// Confinement of the server's QEMU processes (compare `on` with `off`).
    #[arg(long, value_enum, default_value_t = ConfinementMode::On)]
    pub confinement: ConfinementMode,
    /// Board templates besides the built-in ones.
    #[arg(long)]
    pub boards_dir: Option<PathBuf>,
}

/// Jobs per second through the embedded queue (one worker, then one per core) against
/// a bare shell loop running the same QEMU command as many times.
pub async fn jobs(options: JobsBench) -> anyhow::Result<()> {
    use crate::jobs::service::{NewJob, ProgramSource};

    if options.jobs == 0 {
        bail!("--jobs must be at least 1");
    }
    let elf = std::fs::read(&options.elf)
        .with_context(|| format!("reading {}", options.elf.display()))?;
    let board = crate::boards::load(options.boards_dir.as_deref())
        .boards
        .into_iter()
        .find(|b| b.id == options.board)
        .context("no such board (built in or in --boards-dir)")?;
    let qemu = board
        .backends
        .qemu
        .clone()
        .context("the board has no QEMU section")?;

    let script = format!(
        "for i in $(seq {}); do {} -M {} -nographic -monitor none -semihosting-config enable=on,target=native -kernel '{}' {} >/dev/null 2>&1; done",
        options.jobs,
        qemu.binary,
        qemu.machine,
        options.elf.display(),
        qemu.extra_args.join(" ")
    );
    let started = Instant::now();
    let status = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(&script)
        .status()
        .await?;
    if !status.success() {
        bail!("the bare loop failed: {status}");
    }
    let bare = options.jobs as f64 / started.elapsed().as_secs_f64();

    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut results = Vec::new();
    for workers in [1, cores] {
        let data_dir = std::env::temp_dir().join(format!(
            "virserver-bench-jobs-{}-{workers}",
            std::process::id()
        ));
        let mut config = Config {
            data_dir: data_dir.clone(),
            boards_dir: options.boards_dir.clone(),
            confinement: options.confinement,
            max_concurrent_jobs: workers,
            max_queued_jobs: options.jobs as u64 + 1,
            ..Config::default()
        };
        config.prepare_data_dir()?;
        let app = App::start(config).await?;
        let started = Instant::now();
        let mut ids = Vec::new();
        for i in 0..options.jobs {
            let job = app
                .jobs
                .create(NewJob {
                    name: format!("bench-{i}"),
                    backend: BackendKind::Qemu,
                    board_id: board.id.clone(),
                    program: ProgramSource::Upload {
                        name: "bench.elf".into(),
                        bytes: elf.clone(),
                    },
                    timeout_seconds: 60,
                    expect_exit_code: Some(0),
                    expect_uart: Vec::new(),
                    forbid_uart: Vec::new(),
                    uart_input: None,
                    coverage: None,
                    deterministic: false,
                    from_snapshot: None,
                    keep_on_failure: false,
                    record: false,
                    owner: None,
                })
                .await?;
            ids.push(job.id);
        }
        let mut passed = 0;
        for id in &ids {
            loop {
                let job = app.jobs.get(id).await?;
                if crate::jobs::service::JobService::is_terminal(&job.state) {
                    passed += usize::from(job.state == "PASSED");
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        let rate = options.jobs as f64 / started.elapsed().as_secs_f64();
        app.stop().await;
        let _ = std::fs::remove_dir_all(&data_dir);
        if passed != options.jobs {
            bail!("only {passed} of {} jobs passed", options.jobs);
        }
        results.push((workers, rate));
    }
    println!(
        "{} jobs of {} on {}",
        options.jobs,
        options.elf.display(),
        options.board
    );
    println!("  bare shell loop (sequential QEMU runs)   {bare:7.1} jobs/s");
    for (workers, rate) in results {
        println!(
            "  embedded queue, {workers} worker(s)              {rate:7.1} jobs/s  ({:.2}x of the bare loop)",
            rate / bare
        );
    }
    Ok(())
}

#[derive(Debug, Clone, clap::Args)]
pub struct RspBench {
    /// A firmware the benchmark halts at reset (it is never resumed).
    #[arg(long, default_value = "examples/firmware/bin/ticker-mps2-an385.elf")]
    pub elf: PathBuf,
    /// Round trips per median.
    #[arg(long, default_value_t = 2000)]
    pub round_trips: usize,
    /// Whole runs; with more than one, each line's median over the runs and its range
    /// (ratios are each run's own, so a ratio never mixes runs).
    #[arg(long, default_value_t = 1)]
    pub runs: usize,
}

/// Round trips through the gateway against QEMU's stub direct and a bare socat relay,
/// a GDB-like stepping loop, `next` with range stepping, and a 64 KiB read
/// (crates/gateway/src/bench).
pub async fn rsp(options: RspBench) -> anyhow::Result<()> {
    let mut config = virserver_gateway::bench::BenchConfig::mps2_an385(&options.elf);
    config.round_trips = options.round_trips;
    // The sinks of a served gateway: the audit log in a scratch SQLite database (its
    // writer task on this runtime), and the round-trip histogram.
    let scratch = tempfile::tempdir()?;
    let store = crate::store::Store::connect(&format!(
        "sqlite://{}?mode=rwc",
        scratch.path().join("bench.db").display()
    ))
    .await?;
    let audit = crate::audit::Audit::new(store, "bench".into());
    config.served = Some(virserver_gateway::bench::Served {
        audit: audit.gateway_sink("bench"),
        round_trips: crate::metrics::gateway_round_trips(),
    });
    let runs = options.runs.max(1);
    // The measuring client plays GDB, whose reads block: a current-thread runtime of
    // its own, not the server's workers (a wake-up on another worker costs more than
    // a cached reply).
    let reports = tokio::task::spawn_blocking(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let mut reports = Vec::new();
        for run in 1..=runs {
            let report = runtime.block_on(virserver_gateway::bench::bench_rsp(&config))?;
            if runs > 1 {
                eprintln!("run {run} of {runs}:\n{report}");
            }
            reports.push(report);
        }
        anyhow::Ok(reports)
    })
    .await??;
    match reports.as_slice() {
        [report] => print!("{report}"),
        _ => print!("{}", summary(&reports)),
    }
    Ok(())
}

/// Each line's median over the runs, with the range of its values and of its ratio.
fn summary(reports: &[virserver_gateway::bench::BenchReport]) -> String {
    let median = |mut values: Vec<f64>| {
        values.sort_by(f64::total_cmp);
        let middle = values[values.len() / 2];
        (middle, values[0], values[values.len() - 1])
    };
    let mut out = format!("medians over {} runs (range):\n", reports.len());
    for line in &reports[0].lines {
        let same: Vec<_> = reports
            .iter()
            .filter_map(|report| report.lines.iter().find(|other| other.name == line.name))
            .collect();
        let (value, low, high) = median(same.iter().map(|l| l.value.as_secs_f64() * 1e6).collect());
        out.push_str(&format!(
            "{:<46} {value:>12.1} us ({low:.1}-{high:.1})",
            line.name
        ));
        let ratios: Vec<f64> = same
            .iter()
            .filter_map(|l| l.ratio.as_ref())
            .map(|r| r.0)
            .collect();
        if let (Some((_, versus)), false) = (&line.ratio, ratios.is_empty()) {
            let (ratio, low, high) = median(ratios);
            out.push_str(&format!("   {ratio:.2}x {versus} ({low:.2}-{high:.2})"));
        }
        out.push('\n');
    }
    out
}

#[derive(Debug, Clone, clap::Args)]
pub struct SemihostingBench {
    /// A firmware that makes `--writes` semihosting console writes, then exits 0.
    #[arg(long, default_value = "examples/firmware/bin/semihost-mps2-an385.elf")]
    pub elf: PathBuf,
    /// How many console writes the firmware makes.
    #[arg(long, default_value_t = 1000)]
    pub writes: u32,
    /// Runs per side.
    #[arg(long, default_value_t = 10)]
    pub runs: usize,
    /// Confinement of the server's QEMU processes (compare `on` with `off`).
    #[arg(long, value_enum, default_value_t = ConfinementMode::On)]
    pub confinement: ConfinementMode,
    /// Board templates besides the built-in ones.
    #[arg(long)]
    pub boards_dir: Option<PathBuf>,
}

/// The cost of answering semihosting in the gateway: power-on to exit of a firmware
/// that makes many console writes, through the server (each write a File-I/O round
/// trip to the gateway while the VM waits) against bare QEMU answering them itself
/// (`target=native`, what the server must not do with untrusted firmware).
pub async fn semihosting(options: SemihostingBench) -> anyhow::Result<()> {
    if options.runs == 0 || options.writes == 0 {
        bail!("--runs and --writes must be at least 1");
    }
    let BenchSession {
        app,
        data_dir,
        qemu,
        session,
    } = BenchSession::start(
        "semihosting",
        &options.elf,
        "mps2-an385",
        options.boards_dir.as_deref(),
        options.confinement,
    )
    .await?;

    let mut bare = Vec::new();
    let mut gateway = Vec::new();
    for run in 0..options.runs {
        let started = Instant::now();
        let status = tokio::process::Command::new(&qemu.binary)
            .args(["-M", &qemu.machine, "-nographic", "-monitor", "none"])
            .args(["-semihosting-config", "enable=on,target=native"])
            .arg("-kernel")
            .arg(&options.elf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .status()
            .await
            .with_context(|| format!("starting {}", qemu.binary))?;
        if !status.success() {
            bail!("bare QEMU failed: {status}");
        }
        bare.push(started.elapsed());

        let mut events = app.sessions.subscribe_events(&session).await?;
        let started = Instant::now();
        app.sessions
            .power(&session, crate::sessions::PowerAction::On, false)
            .await?;
        loop {
            let event = tokio::time::timeout(Duration::from_secs(60), events.recv())
                .await
                .context("the program did not exit within 60 s")??;
            match event.kind {
                EventKind::Exited if event.exit_code == Some(0) => break,
                EventKind::Exited | EventKind::Crashed => {
                    bail!("the program ended badly: {:?}", event.message)
                }
                _ => {}
            }
        }
        gateway.push(started.elapsed());
        let console = app.sessions.uart_text(&session).await?.unwrap_or_default();
        if !console.contains("semihosting console line") {
            bail!("the semihosted lines did not reach the console");
        }
        eprint!("\rrun {}/{}", run + 1, options.runs);
    }
    eprintln!();
    app.stop().await;
    let _ = std::fs::remove_dir_all(&data_dir);

    let bare_median = median(&mut bare);
    let gateway_median = median(&mut gateway);
    let per_write = (gateway_median.saturating_sub(bare_median)).as_secs_f64() * 1e6
        / f64::from(options.writes);
    println!(
        "power-on to exit of {} ({} semihosting console writes), {} runs each",
        options.elf.display(),
        options.writes,
        options.runs
    );
    println!(
        "  bare {} (target=native)      median {:8.2} ms",
        qemu.binary,
        ms(bare_median)
    );
    println!(
        "  virserver (target=gdb, gateway)        median {:8.2} ms",
        ms(gateway_median)
    );
    println!(
        "  ratio {:.2}x; about {per_write:.1} us more per console write",
        gateway_median.as_secs_f64() / bare_median.as_secs_f64()
    );
    Ok(())
}
