//! Runs one job on the session machinery: a session of its own, the program uploaded
//! and validated like any other, power on, the console fed to the rules, and the verdict
//! as soon as it is certain (exit, forbidden output, all expected output seen, time-out,
//! or cancellation). The same code serves queued jobs and `virserver run`.

use std::time::{Duration, Instant};

use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use super::failure::{self, ExitWatch};
use super::junit::{self, JunitInput};
use super::rules::{RuleCheck, Rules, Verdict};
use crate::backend::{BackendKind, Collector};
use crate::coverage::PathFilter;
use crate::sessions::{EventKind, PowerAction, SessionError, SessionService, Settings, next_live};

/// Console text kept for the log artifact; older output is cut (and the cut marked).
const MAX_CONSOLE: usize = 1024 * 1024;

/// What to run and how to judge it.
pub struct JobSpec {
    pub name: String,
    pub backend: BackendKind,
    pub board_id: String,
    pub program_name: String,
    pub program: Vec<u8>,
    pub timeout: Duration,
    pub rules: Rules,
    /// Written to the console once the program first prints.
    pub uart_input: Option<String>,
    /// Record coverage with this collector.
    pub coverage: Option<Collector>,
    /// Virtual time counted in instructions: the run repeats exactly.
    pub deterministic: bool,
    /// Start in this snapshot (a fork of it) instead of booting the program.
    pub from_snapshot: Option<String>,
    /// A failing run keeps its failure point as a snapshot (`failure.rs`).
    pub keep_on_failure: bool,
    /// Record the run for replay (`debugJob` then replays to the failure).
    pub record: bool,
    /// The user the job (and so its session) belongs to (`auth`).
    pub owner: Option<String>,
}

/// What happened while a job ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    SessionCreated(String),
    PoweredOn,
    Console(String),
}

pub struct JobOutcome {
    pub verdict: Verdict,
    pub exit_code: Option<i32>,
    pub session_id: Option<String>,
    pub console: String,
    pub junit: String,
    pub lcov: Option<String>,
    /// The snapshot of the failure point, when one was kept.
    pub failure_snapshot: Option<String>,
    pub elapsed: Duration,
}

impl JobOutcome {
    /// A job that ended before it ran: an ERROR with `reason`, nothing recorded.
    pub fn error(reason: String) -> JobOutcome {
        JobOutcome {
            verdict: Verdict::Error(reason),
            exit_code: None,
            session_id: None,
            console: String::new(),
            junit: String::new(),
            lcov: None,
            failure_snapshot: None,
            elapsed: Duration::ZERO,
        }
    }
}

/// Runs the job to its verdict; errors of the infrastructure (not of the firmware) are
/// `Verdict::Error`, never lost.
pub async fn run(
    sessions: &SessionService,
    spec: &JobSpec,
    cancel: &CancellationToken,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> JobOutcome {
    let started = Instant::now();
    let mut check = RuleCheck::new(spec.rules.clone());
    let mut console = Console::default();
    let mut session_id = None;
    let mut exit_code = None;
    let result = drive(
        sessions,
        spec,
        cancel,
        progress,
        &mut check,
        &mut console,
        &mut session_id,
        &mut exit_code,
    )
    .await;
    let verdict = result.unwrap_or_else(|error| Verdict::Error(error.to_string()));
    let failed = matches!(verdict, Verdict::Failed(_) | Verdict::TimedOut(_));
    if let (Some(id), true, true) = (&session_id, spec.record, failed) {
        sessions.mark_failure_point(id).await;
    }
    let failure_snapshot = match &session_id {
        Some(id) if spec.keep_on_failure && failed && !spec.record => failure::keep(sessions, id)
            .await
            .map(|snapshot| snapshot.id),
        _ => None,
    };
    if let Some(id) = &session_id {
        let _ = sessions.power(id, PowerAction::Off, false).await;
    }
    let lcov = match (&session_id, spec.coverage) {
        (Some(id), Some(_)) => coverage_lcov(sessions, id).await,
        _ => None,
    };
    if let Some(id) = &session_id {
        sessions.release(id).await;
    }
    let elapsed = started.elapsed();
    let text = console.text();
    let junit = junit::render(&JunitInput {
        job_name: &spec.name,
        board: &spec.board_id,
        verdict: &verdict,
        outcomes: &check.outcomes(),
        seconds: elapsed.as_secs_f64(),
        console: &text,
    });
    JobOutcome {
        verdict,
        exit_code,
        session_id,
        console: text,
        junit,
        lcov,
        failure_snapshot,
        elapsed,
    }
}

#[allow(clippy::too_many_arguments)]
async fn drive(
    sessions: &SessionService,
    spec: &JobSpec,
    cancel: &CancellationToken,
    progress: &(dyn Fn(Progress) + Send + Sync),
    check: &mut RuleCheck,
    console: &mut Console,
    session_id: &mut Option<String>,
    exit_code: &mut Option<i32>,
) -> Result<Verdict, SessionError> {
    let name = format!("job {}", spec.name);
    let session = match &spec.from_snapshot {
        // PAUSED at the snapshot: the power-on below resumes it.
        Some(snapshot) => {
            let mut forks = sessions.fork(snapshot, &name, 1).await?;
            forks.pop().ok_or_else(|| {
                SessionError::InvalidState("forking the snapshot made no session".into())
            })?
        }
        None => {
            sessions
                .create(
                    &name,
                    spec.backend,
                    &spec.board_id,
                    Settings {
                        coverage: spec.coverage,
                        deterministic: spec.deterministic,
                        record: spec.record,
                        owner: spec.owner.clone(),
                    },
                )
                .await?
        }
    };
    *session_id = Some(session.id.clone());
    progress(Progress::SessionCreated(session.id.clone()));
    if spec.from_snapshot.is_none() {
        sessions
            .upload_program(&session.id, &spec.program_name, &spec.program)
            .await?;
    }
    let (_, mut uart) = sessions.subscribe_uart(&session.id).await?;
    let mut events = sessions.subscribe_events(&session.id).await?;
    let exits = match spec.keep_on_failure || spec.record {
        // Halted at first, so that the exit breakpoints are in before anything runs.
        true => {
            if spec.from_snapshot.is_none() {
                sessions.power(&session.id, PowerAction::On, true).await?;
            }
            ExitWatch::arm(sessions, &session.id).await
        }
        false => None,
    };
    sessions.power(&session.id, PowerAction::On, false).await?;
    progress(Progress::PoweredOn);
    let deadline = tokio::time::sleep(spec.timeout);
    tokio::pin!(deadline);
    let mut input = spec.uart_input.clone();
    if spec.from_snapshot.is_some() {
        // The program printed before its snapshot: it may be waiting for input now.
        if let Some(text) = input.take() {
            sessions
                .send_uart_input(&session.id, text.as_bytes())
                .await?;
        }
    }
    loop {
        // Console output first when both are ready: output precedes the exit it led to.
        tokio::select! {
            biased;
            chunk = next_live(&mut uart) => {
                let Some(chunk) = chunk else {
                    return Ok(Verdict::Error("the job's session went away".into()));
                };
                if let Some(verdict) = take_chunk(&chunk.data, console, check, progress) {
                    return Ok(verdict);
                }
                if let Some(text) = input.take() {
                    sessions.send_uart_input(&session.id, text.as_bytes()).await?;
                }
            }
            () = cancel.cancelled() => return Ok(Verdict::Cancelled),
            () = &mut deadline => return Ok(check.timed_out(spec.timeout.as_secs())),
            event = events.recv() => match event {
                Ok(event) if event.kind == EventKind::Halted => {
                    let Some(exits) = &exits else { continue };
                    if !exits.is_exit(event.stop.and_then(|stop| stop.pc)) {
                        continue;
                    }
                    // Output is recorded before the stop: judge what is still queued.
                    while let Ok(chunk) = uart.try_recv() {
                        if let Some(verdict) = take_chunk(&chunk.data, console, check, progress) {
                            return Ok(verdict);
                        }
                    }
                    let fails = exits
                        .exit_code()
                        .await
                        .is_some_and(|code| check.verdict_on_exit(code) != Verdict::Passed);
                    match (fails, spec.record) {
                        (true, true) => sessions.mark_failure_point(&session.id).await,
                        (true, false) => {
                            failure::keep(sessions, &session.id).await;
                        }
                        (false, _) => {}
                    }
                    exits.disarm().await;
                    sessions.resume_cpu(&session.id).await?;
                }
                Ok(event) if event.kind == EventKind::Exited => {
                    // Output is recorded before the exit: take what is still queued.
                    *exit_code = event.exit_code;
                    while let Ok(chunk) = uart.try_recv() {
                        if let Some(verdict) = take_chunk(&chunk.data, console, check, progress) {
                            return Ok(verdict);
                        }
                    }
                    return Ok(check.exited(event.exit_code.unwrap_or(-1)));
                }
                Ok(event) if event.kind == EventKind::Crashed => {
                    return Ok(Verdict::Error(format!(
                        "the emulator crashed: {}",
                        event.message.unwrap_or_default()
                    )));
                }
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return Ok(Verdict::Error("the session went away".into())),
            },
        }
    }
}

/// One piece of console output: kept, shown, and judged.
fn take_chunk(
    data: &str,
    console: &mut Console,
    check: &mut RuleCheck,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Option<Verdict> {
    console.push(data);
    progress(Progress::Console(data.to_owned()));
    check.console(data)
}

async fn coverage_lcov(sessions: &SessionService, session_id: &str) -> Option<String> {
    let (elf, trace) = sessions.coverage_inputs(session_id).await.ok()?;
    match crate::coverage::report(&elf, &[trace], &PathFilter::default()).await {
        Ok(report) => Some(report.to_lcov()),
        Err(error) => {
            tracing::warn!(%error, "job coverage failed");
            None
        }
    }
}

/// The console log of a job, bounded.
#[derive(Default)]
struct Console {
    text: String,
    cut: bool,
}

impl Console {
    fn push(&mut self, data: &str) {
        self.text.push_str(data);
        if self.text.len() > MAX_CONSOLE {
            let mut cut = self.text.len() - MAX_CONSOLE / 2;
            while !self.text.is_char_boundary(cut) {
                cut += 1;
            }
            self.text.drain(..cut);
            self.cut = true;
        }
    }

    fn text(&self) -> String {
        if self.cut {
            format!("[earlier output cut]\n{}", self.text)
        } else {
            self.text.clone()
        }
    }
}
