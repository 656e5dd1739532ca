//! The supervision of one running machine: everything it reports (console bytes,
//! pause, resume, reset, exit) becomes console chunks and recorded state changes; the
//! gateway hears when the emulator changed behind its back, and its stop replies become
//! HALTED events with source positions. Also the one place that writes a state change.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use chrono::Utc;
use tokio::sync::{broadcast, mpsc};
use tokio::time::{Duration, Instant};

use super::{EventKind, Runtime, SessionEvent, SessionState, StopInfo};
use crate::backend::{MachineEvent, MachineExit};
use crate::debugger::Debugger;
use crate::store::{StateChange, Store, StoreError};

/// Writes a state change and its history row, then tells subscribers. Pause/resume
/// events that do not change the state (QMP repeats what a mutation already recorded)
/// are not recorded twice.
pub(super) async fn record_state(
    store: &Store,
    runtime: &Runtime,
    kind: EventKind,
    state: SessionState,
    exit_code: Option<i32>,
    message: Option<String>,
) -> Result<(), StoreError> {
    runtime.touch();
    let mut current = runtime.state.lock().await;
    if matches!(kind, EventKind::Paused | EventKind::Resumed) && *current == state {
        return Ok(());
    }
    store
        .change_state(
            &runtime.id,
            &StateChange {
                kind: kind.as_str().to_owned(),
                state: state.as_str().to_owned(),
                exit_code,
                message: message.clone(),
            },
        )
        .await?;
    *current = state;
    runtime.announce(SessionEvent {
        session_id: runtime.id.clone(),
        kind,
        state,
        exit_code,
        message,
        at: Utc::now(),
        stop: None,
    });
    Ok(())
}

/// How long a machine must keep running before its resume is recorded. A debugger's
/// single step resumes and pauses QEMU within a fraction of a millisecond, and GDB's
/// `next` makes hundreds of them: recording each would write two history rows per
/// instruction and flood `sessionEvents` with RESUMED/PAUSED pairs.
const RESUME_SETTLE: Duration = Duration::from_millis(50);

/// Follows one machine until it ends, recording what it reports; tells the gateway
/// when the emulator was reset behind its back (its caches are then stale), and turns
/// the gateway's stop replies into HALTED events with source positions.
///
/// QMP pause and resume need no word to the gateway: while it holds the stub's link
/// the server resumes through the stub (`Launched::resume`), a QMP `stop` of a run the
/// stub started is reported by the stub (`T02`), and without a link it caches nothing.
///
/// Two halves run in this one task: [`follow`] reads the machine's events and puts the
/// console into the session's log at once, and [`record_in_order`] writes the state
/// changes it hands over, in order. A slow database therefore delays the history, never
/// the console, and never the emulator (whose stdout would fill and stop it).
pub(super) async fn supervise(
    store: Store,
    runtime: Arc<Runtime>,
    events: mpsc::Receiver<MachineEvent>,
    debugger: Option<Arc<Debugger>>,
) {
    let (changes, queued) = mpsc::unbounded_channel();
    tokio::join!(
        follow(&runtime, events, debugger.as_deref(), changes),
        record_in_order(&store, &runtime, debugger.as_deref(), queued)
    );
}

/// What [`follow`] hands to [`record_in_order`].
enum Work {
    Record(Change),
    /// A debugger stop, announced after the changes before it.
    Halted(virserver_gateway::StopEvent),
}

/// A state change [`follow`] saw; `state: None` is the session's state when it is
/// recorded (a reset keeps whatever state the changes before it left).
struct Change {
    kind: EventKind,
    state: Option<SessionState>,
    code: Option<i32>,
    message: Option<String>,
}

impl Change {
    fn to(kind: EventKind, state: SessionState) -> Self {
        Self {
            kind,
            state: Some(state),
            code: None,
            message: None,
        }
    }
}

/// Records what [`follow`] hands over until it ends; a failure can only be logged.
async fn record_in_order(
    store: &Store,
    runtime: &Runtime,
    debugger: Option<&Debugger>,
    mut queued: mpsc::UnboundedReceiver<Work>,
) {
    while let Some(work) = queued.recv().await {
        let change = match work {
            Work::Record(change) => change,
            Work::Halted(stop) => {
                if let Some(debugger) = debugger {
                    announce_stop(runtime, debugger, stop).await;
                }
                continue;
            }
        };
        let state = match change.state {
            Some(state) => state,
            None => *runtime.state.lock().await,
        };
        let recorded = record_state(
            store,
            runtime,
            change.kind,
            state,
            change.code,
            change.message,
        )
        .await;
        if let Err(error) = recorded {
            tracing::error!(session = %runtime.id, %error, "cannot record a state change");
        }
    }
}

async fn follow(
    runtime: &Runtime,
    mut events: mpsc::Receiver<MachineEvent>,
    debugger: Option<&Debugger>,
    changes: mpsc::UnboundedSender<Work>,
) {
    let record = |change: Change| {
        let _ = changes.send(Work::Record(change));
    };
    let mut stops = debugger.as_ref().map(|d| d.gateway().stops());
    // A resume not recorded yet, and when it will be (see RESUME_SETTLE).
    let mut pending_resume: Option<Instant> = None;
    loop {
        let settled = async {
            match pending_resume {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let event = tokio::select! {
            event = events.recv() => event,
            stop = next_or_never(&mut stops) => {
                let _ = changes.send(Work::Halted(stop));
                continue;
            }
            () = settled => Some(MachineEvent::Resumed),
        };
        let Some(event) = event else { return };
        if runtime.hibernating.load(Ordering::SeqCst) && !matches!(event, MachineEvent::Console(_))
        {
            // Hibernation ends this machine: the session stays PAUSED, saved on disk,
            // and nothing its stub or its end reports is a state change.
            match event {
                MachineEvent::Exited(_) => return,
                _ => continue,
            }
        }
        if let (Some(debugger), MachineEvent::Reset) = (debugger, &event) {
            debugger.gateway().invalidate();
        }
        if matches!(event, MachineEvent::Reset | MachineEvent::Exited(_))
            && pending_resume.take().is_some()
        {
            // What the machine did after the resume comes after the resume.
            record(Change::to(EventKind::Resumed, SessionState::Running));
        }
        let change = match event {
            MachineEvent::Console(bytes) => {
                if runtime.replaying.load(Ordering::SeqCst) {
                    runtime.console_activity.notify_one();
                } else {
                    runtime.uart.push(&bytes);
                }
                continue;
            }
            MachineEvent::Paused => {
                // Paused again before the resume settled: nothing ran worth a record.
                pending_resume = None;
                Change::to(EventKind::Paused, SessionState::Paused)
            }
            MachineEvent::Resumed if pending_resume.take().is_none() => {
                pending_resume = Some(Instant::now() + RESUME_SETTLE);
                continue;
            }
            MachineEvent::Resumed => Change::to(EventKind::Resumed, SessionState::Running),
            MachineEvent::Reset => {
                let requested = runtime
                    .requested_resets
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
                if requested {
                    continue;
                }
                Change {
                    kind: EventKind::Reset,
                    state: None,
                    code: None,
                    message: None,
                }
            }
            MachineEvent::Exited(exit) => {
                let (kind, state, code, message) = match exit {
                    MachineExit::Exited(code) => (
                        EventKind::Exited,
                        SessionState::Exited,
                        Some(code),
                        Some(format!("the program exited with code {code}")),
                    ),
                    MachineExit::Crashed(reason) => (
                        EventKind::Crashed,
                        SessionState::Crashed,
                        None,
                        Some(reason),
                    ),
                    MachineExit::PoweredOff => {
                        (EventKind::PoweredOff, SessionState::Stopped, None, None)
                    }
                };
                record(Change {
                    kind,
                    state: Some(state),
                    code,
                    message,
                });
                tracing::info!(session = %runtime.id, state = state.as_str(), exit_code = ?code, "machine ended");
                return;
            }
        };
        record(change);
    }
}

/// The next message of a gateway's broadcast, skipping what a slow reader missed, or
/// never when there is no gateway (or it closed).
pub(super) async fn next_or_never<T: Clone>(receiver: &mut Option<broadcast::Receiver<T>>) -> T {
    let Some(events) = receiver else {
        return std::future::pending().await;
    };
    loop {
        match events.recv().await {
            Ok(message) => return message,
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => {
                *receiver = None;
                return std::future::pending().await;
            }
        }
    }
}

/// Broadcasts a debugger stop (not recorded in the history: stepping makes many). The
/// stub's word that the program exited (`W`, `X`) is no halt: the machine's own exit is
/// recorded as EXITED (a gateway holding the link for semihosting hears every exit).
async fn announce_stop(runtime: &Runtime, debugger: &Debugger, stop: virserver_gateway::StopEvent) {
    use virserver_gateway::StopReason;
    let reason = match &stop.reason {
        StopReason::Exited(_) | StopReason::Terminated(_) => return,
        StopReason::Breakpoint => "breakpoint".to_owned(),
        StopReason::Step => "step".to_owned(),
        StopReason::Watchpoint { kind, addr } => format!("{kind} 0x{addr:x}"),
        StopReason::Interrupted => "interrupt".to_owned(),
        StopReason::Signal(signal) => format!("signal {signal}"),
    };
    let position = match stop.pc {
        Some(pc) => debugger.describe(pc).await,
        None => Default::default(),
    };
    let state = *runtime.state.lock().await;
    runtime.announce(SessionEvent {
        session_id: runtime.id.clone(),
        kind: EventKind::Halted,
        state,
        exit_code: None,
        message: None,
        at: Utc::now(),
        stop: Some(StopInfo {
            reason,
            pc: stop.pc,
            function: position.function,
            file: position.file,
            line: position.line,
        }),
    });
}
