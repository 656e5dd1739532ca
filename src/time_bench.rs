//! `virserver bench snapshots` and `virserver bench replay`: what time control costs,
//! measured on the session machinery in one process (the numbers in the README's
//! measured section come from here).
//!
//! - `snapshots`: per board, the save and restore of a running ticker (ms and bytes);
//!   forks of one snapshot (one alone, eight at once); a job that starts from a
//!   snapshot taken after the ticker's second tick against a cold boot, both waiting
//!   for its third; a deterministic run of the timer firmware against a free one;
//!   `--hibernated` sessions hibernated on this node (memory and disk they hold), and
//!   the wake-up a GDB client sees: connect and get the stop reply to `?`, from a
//!   hibernated session against an awake one.
//! - `replay`: a ticker recorded for `--seconds` against the same time free-running
//!   (ticks reached); its replay to the end against the recording's wall time; and
//!   reverse-stepi and reverse-continue (to the previous tick() hit) at a quarter,
//!   half and nine tenths of the recording.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use virserver_gateway::BreakpointKind;

use crate::app::App;
use crate::backend::BackendKind;
use crate::backend::qemu::confine::ConfinementMode;
use crate::bench::{bench_app, median, ms};
use crate::debugger::Location;
use crate::jobs::rules::{Rules, Verdict};
use crate::jobs::runner::{self, JobSpec};
use crate::sessions::{EventKind, PowerAction, SessionState, Settings};

#[derive(Debug, Clone, clap::Args)]
pub struct SnapshotsBench {
    /// Saves and restores per board.
    #[arg(long, default_value_t = 10)]
    pub runs: usize,
    /// Board templates besides the built-in ones.
    #[arg(long)]
    pub boards_dir: Option<PathBuf>,
    /// Where the example firmware's ELFs are.
    #[arg(long, default_value = "examples/firmware/bin")]
    pub firmware: PathBuf,
    /// Sessions hibernated at once (0 skips the hibernation part).
    #[arg(long, default_value_t = 2000)]
    pub hibernated: usize,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ReplayBench {
    /// How long the ticker is recorded (and run free, for comparison).
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    #[arg(long, default_value = "riscv32-virt")]
    pub board: String,
    /// Board templates besides the built-in ones.
    #[arg(long)]
    pub boards_dir: Option<PathBuf>,
    #[arg(long, default_value = "examples/firmware/bin")]
    pub firmware: PathBuf,
}

/// A session with the ELF uploaded.
async fn session(app: &App, board: &str, elf: &Path, settings: Settings) -> anyhow::Result<String> {
    let bytes = std::fs::read(elf).with_context(|| format!("reading {}", elf.display()))?;
    let session = app
        .sessions
        .create("bench", BackendKind::Qemu, board, settings)
        .await?;
    app.sessions
        .upload_program(&session.id, "bench.elf", &bytes)
        .await?;
    Ok(session.id)
}

/// Waits until the session's console shows `text` (30 s at most).
async fn wait_console(app: &App, session: &str, text: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if app
            .sessions
            .uart_text(session)
            .await?
            .is_some_and(|console| console.contains(text))
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("no {text:?} on the console within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub async fn snapshots(options: SnapshotsBench) -> anyhow::Result<()> {
    if options.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let (app, data_dir) = bench_app(
        "snapshots",
        options.boards_dir.as_deref(),
        ConfinementMode::On,
    )
    .await?;
    let elf = |name: &str| options.firmware.join(name);
    println!(
        "snapshots, {} saves and restores per board (medians)",
        options.runs
    );
    let mut forkable = None;
    for board in ["mps2-an385", "riscv32-virt"] {
        let id = session(
            &app,
            board,
            &elf(&format!("ticker-{board}.elf")),
            Settings::default(),
        )
        .await?;
        app.sessions.power(&id, PowerAction::On, false).await?;
        wait_console(&app, &id, "tick 1\n").await?;
        let (mut saves, mut restores, mut sizes) = (Vec::new(), Vec::new(), Vec::new());
        let mut last = None;
        for run in 0..options.runs {
            let started = Instant::now();
            let snapshot = app
                .sessions
                .create_snapshot(&id, &format!("s{run}"))
                .await?;
            saves.push(started.elapsed());
            sizes.push(snapshot.size_bytes);
            let started = Instant::now();
            app.sessions.restore_snapshot(&snapshot.id).await?;
            restores.push(started.elapsed());
            app.sessions.power(&id, PowerAction::On, false).await?;
            if let Some(previous) = last.replace(snapshot.id.clone()) {
                app.sessions.delete_snapshot(&previous).await?;
            }
        }
        sizes.sort();
        println!(
            "  {board:<13} save {:7.1} ms  restore (running session) {:7.1} ms  size {} KiB",
            ms(median(&mut saves)),
            ms(median(&mut restores)),
            sizes[sizes.len() / 2] / 1024
        );
        if forkable.is_none() {
            forkable = last.clone().map(|snapshot| (id.clone(), snapshot));
        }
        // A ticker left running would share the cores with everything measured next.
        app.sessions.power(&id, PowerAction::Off, false).await?;
    }

    let (_, snapshot) = forkable.context("no snapshot to fork")?;
    for count in [1usize, 8] {
        let started = Instant::now();
        let forks = app.sessions.fork(&snapshot, "fork", count).await?;
        let elapsed = started.elapsed();
        println!(
            "  fork x{count}: {:7.1} ms for all, {:6.1} ms per fork (PAUSED, gateway up)",
            ms(elapsed),
            ms(elapsed) / count as f64
        );
        for fork in forks {
            app.sessions.delete(&fork.id).await?;
        }
    }

    // A job that must see the third tick: booted cold, or from a snapshot after the second.
    let board = "mps2-an385";
    let ticker = elf(&format!("ticker-{board}.elf"));
    let source = session(&app, board, &ticker, Settings::default()).await?;
    app.sessions.power(&source, PowerAction::On, false).await?;
    wait_console(&app, &source, "tick 2\n").await?;
    let after_init = app
        .sessions
        .create_snapshot(&source, "after tick 2")
        .await?;
    app.sessions.power(&source, PowerAction::Off, false).await?;
    let program = std::fs::read(&ticker)?;
    let spec = |from_snapshot: Option<String>| JobSpec {
        name: "bench".into(),
        backend: BackendKind::Qemu,
        board_id: board.into(),
        program_name: "ticker.elf".into(),
        program: program.clone(),
        timeout: Duration::from_secs(60),
        rules: Rules::new(&["tick 3".to_owned()], &[], None).expect("a valid pattern"),
        uart_input: None,
        coverage: None,
        deterministic: false,
        from_snapshot,
        keep_on_failure: false,
        record: false,
        owner: None,
    };
    let (mut cold, mut warm) = (Vec::new(), Vec::new());
    let cancel = CancellationToken::new();
    for _ in 0..5 {
        for (from, samples) in [(None, &mut cold), (Some(after_init.id.clone()), &mut warm)] {
            let outcome = runner::run(&app.sessions, &spec(from), &cancel, &|_| {}).await;
            if outcome.verdict != Verdict::Passed {
                bail!("the bench job did not pass: {:?}", outcome.verdict);
            }
            samples.push(outcome.elapsed);
        }
    }
    let (cold, warm) = (median(&mut cold), median(&mut warm));
    println!(
        "  job to the third tick: cold boot {:7.1} ms, from a snapshot after the second {:7.1} ms ({:.1}x faster)",
        ms(cold),
        ms(warm),
        cold.as_secs_f64() / warm.as_secs_f64()
    );

    // The timer firmware, free and deterministic.
    let timer = elf(&format!("timer-{board}.elf"));
    let mut times = Vec::new();
    for deterministic in [false, true] {
        let id = session(
            &app,
            board,
            &timer,
            Settings {
                deterministic,
                ..Settings::default()
            },
        )
        .await?;
        let mut events = app.sessions.subscribe_events(&id).await?;
        let started = Instant::now();
        app.sessions.power(&id, PowerAction::On, false).await?;
        loop {
            match tokio::time::timeout(Duration::from_secs(60), events.recv()).await? {
                Ok(event) if event.kind == EventKind::Exited => break,
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => bail!("the timer session went away"),
            }
        }
        times.push(started.elapsed());
    }
    println!(
        "  timer firmware power-on to exit: free {:7.1} ms, deterministic {:7.1} ms ({:.2}x)",
        ms(times[0]),
        ms(times[1]),
        times[1].as_secs_f64() / times[0].as_secs_f64()
    );
    if options.hibernated > 0 {
        hibernation(&app, &ticker, options.hibernated, &data_dir).await?;
    }
    app.stop().await;
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(())
}

/// `count` ticker sessions booted PAUSED and hibernated one after the other; then what
/// a GDB client waits for, connect to stop reply, on an awake session and on sleeping
/// ones spread over the lot (each woken once).
async fn hibernation(
    app: &App,
    ticker: &Path,
    count: usize,
    data_dir: &Path,
) -> anyhow::Result<()> {
    let board = "mps2-an385";
    let rss_before = rss_kib();
    let started = Instant::now();
    let mut sessions = Vec::with_capacity(count);
    for made in 0..count {
        let id = session(app, board, ticker, Settings::default()).await?;
        app.sessions.power(&id, PowerAction::On, true).await?;
        if !app.sessions.hibernate(&id).await? {
            bail!("session {id} did not hibernate");
        }
        sessions.push(id);
        if (made + 1) % 250 == 0 {
            eprintln!("  ... {} sessions hibernated", made + 1);
        }
    }
    let elapsed = started.elapsed();
    let images: u64 = sessions
        .iter()
        .filter_map(|id| {
            std::fs::metadata(data_dir.join("run").join(id).join("hibernation.qcow2")).ok()
        })
        .map(|metadata| metadata.len())
        .sum();
    println!(
        "  {count} sessions hibernated in {:.1} s ({:.1} ms each): server RSS {} -> {} MiB, images {} MiB",
        elapsed.as_secs_f64(),
        ms(elapsed) / count as f64,
        rss_before / 1024,
        rss_kib() / 1024,
        images / (1024 * 1024)
    );
    let awake = session(app, board, ticker, Settings::default()).await?;
    app.sessions.power(&awake, PowerAction::On, true).await?;
    let mut direct = Vec::new();
    for _ in 0..20 {
        direct.push(gdb_stop_reply(app, &awake).await?);
    }
    let mut woken = Vec::new();
    let step = (count / 20).max(1);
    for id in sessions.iter().step_by(step).take(20) {
        woken.push(gdb_stop_reply(app, id).await?);
    }
    woken.sort();
    println!(
        "  GDB connect to stop reply: awake {:6.1} ms, hibernated {:6.1} ms (median of {}; slowest {:.1} ms)",
        ms(median(&mut direct)),
        ms(median(&mut woken.clone())),
        woken.len(),
        ms(*woken.last().context("no session woken")?)
    );
    Ok(())
}

/// A GDB client's first exchange: connect, ask `?`, get the stop reply.
async fn gdb_stop_reply(app: &App, session: &str) -> anyhow::Result<Duration> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (_, gdb) = app
        .sessions
        .machine_info(session)
        .context("the session is not powered")?;
    let gdb = gdb.context("the session has no GDB endpoint")?;
    let started = Instant::now();
    let mut client = tokio::net::TcpStream::connect(gdb).await?;
    client.write_all(b"$?#3f").await?;
    let mut decoder = virserver_rsp::frame::Decoder::new();
    let mut buffer = [0u8; 256];
    // The ack, then the stop reply packet.
    'reply: loop {
        let read =
            tokio::time::timeout(Duration::from_secs(30), client.read(&mut buffer)).await??;
        if read == 0 {
            bail!("the GDB endpoint closed before its stop reply");
        }
        decoder.feed(&buffer[..read]);
        for event in decoder.events() {
            if let virserver_rsp::frame::Event::Packet(_) = event {
                break 'reply;
            }
        }
    }
    let elapsed = started.elapsed();
    client.write_all(b"+$D#44").await?;
    Ok(elapsed)
}

/// This process's resident memory, in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// How many ticks the ticker printed.
async fn ticks(app: &App, session: &str) -> anyhow::Result<usize> {
    let text = app.sessions.uart_text(session).await?.unwrap_or_default();
    Ok(text
        .lines()
        .filter(|line| line.starts_with("tick "))
        .count())
}

pub async fn replay(options: ReplayBench) -> anyhow::Result<()> {
    let (app, data_dir) =
        bench_app("replay", options.boards_dir.as_deref(), ConfinementMode::On).await?;
    let ticker = options
        .firmware
        .join(format!("ticker-{}.elf", options.board));
    let seconds = Duration::from_secs(options.seconds.max(1));
    let mut reached = Vec::new();
    for record in [false, true] {
        let id = session(
            &app,
            &options.board,
            &ticker,
            Settings {
                record,
                ..Settings::default()
            },
        )
        .await?;
        app.sessions.power(&id, PowerAction::On, false).await?;
        tokio::time::sleep(seconds).await;
        reached.push(ticks(&app, &id).await?);
        app.sessions.power(&id, PowerAction::Off, false).await?;
        if record {
            let recording = app
                .sessions
                .latest_recording(&id)
                .await?
                .context("the session recorded nothing")?;
            println!(
                "record/replay on {}, {} s of ticker",
                options.board,
                seconds.as_secs()
            );
            println!(
                "  ticks in {} s: free {}, recording {} (recording runs at {:.2}x)",
                seconds.as_secs(),
                reached[0],
                reached[1],
                reached[1] as f64 / reached[0].max(1) as f64
            );
            replay_figures(&app, &recording, seconds).await?;
        }
    }
    app.stop().await;
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(())
}

async fn replay_figures(
    app: &App,
    recording: &crate::store::RecordingRecord,
    recorded: Duration,
) -> anyhow::Result<()> {
    let total = recording
        .instructions
        .context("the recording noted no length")? as u64;
    // To the end, no breakpoints: QEMU ends the replay by itself.
    let replay = app.sessions.replay(&recording.id).await?;
    let mut events = app.sessions.subscribe_events(&replay.id).await?;
    let started = Instant::now();
    app.sessions.resume_cpu(&replay.id).await?;
    let ended = loop {
        match tokio::time::timeout(recorded * 4, events.recv()).await {
            Err(_) => break None,
            Ok(Ok(event))
                if event.state != SessionState::Running && event.state != SessionState::Paused =>
            {
                break Some(started.elapsed());
            }
            Ok(Ok(_)) | Ok(Err(RecvError::Lagged(_))) => {}
            Ok(Err(RecvError::Closed)) => break Some(started.elapsed()),
        }
    };
    match ended {
        Some(elapsed) => println!(
            "  replay to the end: {:.2} s for {:.2} s recorded ({:.2}x the recording's speed), {} instructions",
            elapsed.as_secs_f64(),
            recorded.as_secs_f64(),
            recorded.as_secs_f64() / elapsed.as_secs_f64(),
            total
        ),
        None => println!("  replay to the end: did not end within {:?}", recorded * 4),
    }
    app.sessions.delete(&replay.id).await?;

    for share in [0.25f64, 0.5, 0.9] {
        let at = (total as f64 * share) as u64;
        let replay = app.sessions.replay(&recording.id).await?;
        let debugger = app.sessions.debugger(&replay.id).await?;
        app.sessions.break_replay_at(&replay.id, at).await?;
        let mut events = app.sessions.subscribe_events(&replay.id).await?;
        let started = Instant::now();
        app.sessions.resume_cpu(&replay.id).await?;
        loop {
            match tokio::time::timeout(Duration::from_secs(120), events.recv()).await? {
                Ok(event) if event.state == SessionState::Paused => break,
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => bail!("the replay ended before {at}"),
            }
        }
        let forward = started.elapsed();
        let client = debugger.client();
        client.halt().await?;
        let started = Instant::now();
        client.reverse(true).await?;
        let step = started.elapsed();
        let tick = debugger
            .resolve(&Location::Function("tick".into()))
            .await?
            .address;
        client
            .insert_breakpoint(BreakpointKind::Software, tick)
            .await?;
        let started = Instant::now();
        client.reverse(false).await?;
        let back = started.elapsed();
        println!(
            "  at {:>3.0}% ({at} instructions; forward there {:.2} s): reverse-stepi {:7.1} ms, reverse-continue to the previous tick() {:7.1} ms",
            share * 100.0,
            forward.as_secs_f64(),
            ms(step),
            ms(back)
        );
        app.sessions.delete(&replay.id).await?;
    }
    Ok(())
}
