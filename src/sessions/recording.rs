//! Record and replay: a session with `record` records every run (QEMU's rr, inputs
//! logged, instructions counted), and `replaySession` opens a new session that replays
//! one, with GDB and reverse execution through its gateway.
//!
//! Two tasks follow a recorded or replayed machine while it lives:
//! - Recording: a checkpoint (a snapshot inside the recording) every
//!   [`RECORD_CHECKPOINT_EVERY`] while the CPU runs, since QEMU's reverse execution
//!   re-executes from the nearest one before its target; and the console as it was
//!   shown, with the instruction count at each piece (`console.log`, `console.map`).
//! - Replay: the console view. Re-execution after a reverse step prints the UART again,
//!   so QEMU's own output is not shown: the session's console is the recorded one, shown
//!   up to where the CPU is (by instruction count), each byte once and in order.
//!
//! A replay takes no checkpoints of its own: one taken at a stop could land while a
//! client's command already runs the CPU again (the server cannot hold the CPU for it
//! without a client seeing), and QEMU's reverse execution then went back to the wrong
//! hit and later lost the replay (seen once in the suite); only the recording's are
//! used.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::Utc;
use tokio::io::AsyncWriteExt;
use tokio::sync::broadcast::error::RecvError;

use super::supervisor::next_or_never;
use super::{
    Boot, EventKind, Runtime, SessionError, SessionService, SessionState, Settings, clear_finished,
};
use crate::backend::{BackendError, Machine, Recording};
use crate::debugger::Debugger;
use crate::store::{RecordingRecord, SessionRecord, Store};

/// Where a session's recordings are, in its run dir; a replay's copy of one.
const RECORDINGS_DIR: &str = "recordings";
const REPLAY_DIR: &str = "replay";
/// The console of a recorded run, and `instructions offset` lines mapping it.
const CONSOLE_LOG: &str = "console.log";
const CONSOLE_MAP: &str = "console.map";

/// How often a recording takes a checkpoint while the CPU runs. Each costs 40-120 ms
/// of paused VM here (about 500 KB), and bounds what a reverse step re-executes.
pub const RECORD_CHECKPOINT_EVERY: Duration = Duration::from_millis(500);
/// How often a replay's console view catches up with the CPU while it runs.
const VIEW_EVERY: Duration = Duration::from_millis(100);

impl SessionService {
    fn recording_dir(&self, recording: &RecordingRecord) -> PathBuf {
        self.run_root
            .join(&recording.session_id)
            .join(RECORDINGS_DIR)
            .join(&recording.id)
    }

    pub async fn recording(&self, id: &str) -> Result<RecordingRecord, SessionError> {
        super::by_id("recording", id, || self.store.recording(id)).await
    }

    /// The session's latest recording.
    pub async fn latest_recording(
        &self,
        session_id: &str,
    ) -> Result<Option<RecordingRecord>, SessionError> {
        Ok(self.store.recordings(session_id).await?.into_iter().next())
    }

    /// What a launch of this session records or replays; a new recording's row.
    pub(super) async fn recording_for_launch(
        &self,
        record: &SessionRecord,
        program_id: &str,
    ) -> Result<Option<(Recording, Option<String>)>, SessionError> {
        if record.replay_of.is_some() {
            let dir = self.run_root.join(&record.id).join(REPLAY_DIR);
            return Ok(Some((Recording::Replay(dir), None)));
        }
        if !record.record {
            return Ok(None);
        }
        let recording = RecordingRecord {
            id: uuid::Uuid::new_v4().to_string(),
            session_id: record.id.clone(),
            program_id: program_id.to_owned(),
            deterministic: record.deterministic,
            instructions: None,
            failure_at: None,
            created_at: Utc::now(),
        };
        let dir = self.recording_dir(&recording);
        let id = recording.id.clone();
        self.store.insert_recording(recording).await?;
        Ok(Some((Recording::Record(dir), Some(id))))
    }

    /// A new session replaying the recording, PAUSED at its start, with the recorded
    /// board, program and settings and a gateway whose stub executes backwards.
    pub async fn replay(&self, recording_id: &str) -> Result<SessionRecord, SessionError> {
        let recording = self.recording(recording_id).await?;
        let (source, _) = self.existing(&recording.session_id).await?;
        let still_recording = self.machine_info(&source.id).is_some()
            && self
                .latest_recording(&source.id)
                .await?
                .is_some_and(|latest| latest.id == recording.id);
        if still_recording {
            return Err(SessionError::InvalidState(format!(
                "recording '{recording_id}' is still being made: power session '{}' off first",
                source.id
            )));
        }
        let program = self.program(&recording.program_id).await?;
        let backend = super::backend_of(&source)?;
        let session = self
            .create(
                &format!("replay of {}", source.name),
                backend,
                &source.board_id,
                Settings {
                    record: false,
                    deterministic: recording.deterministic,
                    ..Settings::of(&source)
                },
            )
            .await?;
        let made = async {
            let dir = self.run_root.join(&session.id).join(REPLAY_DIR);
            copy_dir(&self.recording_dir(&recording), &dir).await?;
            let program = self.copy_program(&program, &session.id).await?;
            self.store
                .set_replay(&session.id, &program.id, &recording.id)
                .await?;
            let record = self.get(&session.id).await?;
            let runtime = self.runtime(&record.id, &record.state);
            let mut control = runtime.control.lock().await;
            self.launch(
                &record,
                &runtime,
                &mut control,
                &program.id,
                true,
                Boot::Program,
            )
            .await?;
            drop(control);
            self.get(&session.id).await
        }
        .await;
        if made.is_err() {
            let _ = self.delete(&session.id).await;
        }
        made
    }

    /// The CPU's instruction count, for a session that records or replays.
    pub async fn instructions(&self, session_id: &str) -> Option<u64> {
        let runtime = self.lock_runtimes().get(session_id).cloned()?;
        let machine = {
            let mut control = runtime.control.try_lock().ok()?;
            clear_finished(&mut control);
            control.as_ref()?.machine.clone()
        };
        machine.recording()?.instructions().await.ok()
    }

    /// Notes where a recorded job failed (its session's machine still runs), for
    /// `debugJob` to replay to.
    pub async fn mark_failure_point(&self, session_id: &str) {
        let Some(count) = self.instructions(session_id).await else {
            return;
        };
        if let Ok(Some(recording)) = self.latest_recording(session_id).await
            && let Err(error) = self
                .store
                .update_recording(&recording.id, None, Some(count as i64))
                .await
        {
            tracing::warn!(%error, "cannot note the failure point");
        }
    }

    /// A replay of the recording of a failed job, PAUSED where it failed.
    pub async fn replay_to_failure(
        &self,
        recording: &RecordingRecord,
    ) -> Result<SessionRecord, SessionError> {
        let at = recording
            .failure_at
            .or(recording.instructions)
            .ok_or_else(|| {
                SessionError::InvalidState("the recording noted no failure point".into())
            })?;
        let session = self.replay(&recording.id).await?;
        self.break_replay_at(&session.id, at as u64).await?;
        let mut events = self.subscribe_events(&session.id).await?;
        self.resume_cpu(&session.id).await?;
        let paused = async {
            loop {
                match events.recv().await {
                    Ok(event) if event.state != SessionState::Running => return Ok(()),
                    Ok(_) | Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => {
                        return Err(SessionError::InvalidState(
                            "the replay ended before its failure point".into(),
                        ));
                    }
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(120), paused)
            .await
            .map_err(|_| {
                SessionError::InvalidState("the replay did not reach its failure point".into())
            })??;
        self.get(&session.id).await
    }

    /// Replay only: once resumed, the CPU pauses exactly at instruction `count`.
    pub async fn break_replay_at(&self, id: &str, count: u64) -> Result<(), SessionError> {
        let (_, runtime) = self.existing(id).await?;
        let machine = {
            let mut control = runtime.control.lock().await;
            super::powered(&mut control, id)?.machine.clone()
        };
        let replayer = machine
            .recording()
            .filter(|_| runtime.replaying.load(Ordering::SeqCst));
        let replayer = replayer.ok_or_else(|| {
            SessionError::InvalidState(format!("session '{id}' does not replay a recording"))
        })?;
        Ok(replayer.break_at(count).await?)
    }
}

/// A machine that records or replays, and what follows it.
pub(super) struct Followed {
    pub store: Store,
    pub runtime: Arc<Runtime>,
    pub machine: Arc<dyn Machine>,
    pub debugger: Option<Arc<Debugger>>,
    /// Its supervisor: the machine has ended when it has.
    pub supervisor: tokio::task::AbortHandle,
}

/// Follows a machine that records or replays, until it ends (see the module doc).
pub(super) async fn follow(followed: Followed, recording: Recording, recording_id: Option<String>) {
    match recording {
        Recording::Record(dir) => record(followed, dir, recording_id).await,
        Recording::Replay(dir) => replay(followed, dir).await,
    }
}

async fn record(followed: Followed, dir: PathBuf, recording_id: Option<String>) {
    let Followed {
        store,
        runtime,
        machine,
        supervisor,
        ..
    } = followed;
    let Some(recorder) = machine.recording() else {
        return;
    };
    let (Ok(mut log), Ok(mut map)) = (
        open_append(&dir.join(CONSOLE_LOG)).await,
        open_append(&dir.join(CONSOLE_MAP)).await,
    ) else {
        tracing::warn!(dir = %dir.display(), "cannot write the recording's console");
        return;
    };
    let (_, mut console) = runtime.uart.subscribe();
    let mut every = tokio::time::interval(RECORD_CHECKPOINT_EVERY);
    every.tick().await;
    let (mut offset, mut checkpoints, mut last) = (0u64, 0u32, None);
    loop {
        tokio::select! {
            chunk = console.recv() => match chunk {
                Ok(chunk) => {
                    let Ok(count) = recorder.instructions().await else { break };
                    offset += chunk.data.len() as u64;
                    let _ = log.write_all(chunk.data.as_bytes()).await;
                    let _ = map.write_all(format!("{count} {offset}\n").as_bytes()).await;
                    last = Some(count);
                }
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "the recording's console lost chunks");
                }
                Err(RecvError::Closed) => break,
            },
            _ = every.tick() => {
                if supervisor.is_finished() {
                    break;
                }
                if *runtime.state.lock().await != SessionState::Running {
                    continue;
                }
                match recorder.checkpoint(&format!("rr{checkpoints}")).await {
                    Ok(()) => checkpoints += 1,
                    Err(BackendError::Gone) => break,
                    Err(error) => tracing::warn!(%error, "a recording checkpoint failed"),
                }
                match recorder.instructions().await {
                    Ok(count) => last = Some(count),
                    Err(_) => break,
                }
            }
        }
    }
    let _ = (log.flush().await, map.flush().await);
    if let (Some(id), Some(count)) = (recording_id, last)
        && let Err(error) = store.update_recording(&id, Some(count as i64), None).await
    {
        tracing::warn!(%error, "cannot note a recording's length");
    }
    tracing::info!(session = %runtime.id, checkpoints, instructions = ?last, "recording ended");
}

async fn replay(followed: Followed, dir: PathBuf) {
    let Followed {
        runtime,
        machine,
        debugger,
        supervisor,
        ..
    } = followed;
    let Some(replayer) = machine.recording() else {
        return;
    };
    let view = ConsoleView::load(&dir).await;
    let mut stops = debugger.as_ref().map(|d| d.gateway().run_events());
    let mut events = runtime.events.subscribe();
    let mut every = tokio::time::interval(VIEW_EVERY);
    let mut shown = 0usize;
    loop {
        tokio::select! {
            () = runtime.console_activity.notified() => {}
            _ = every.tick() => {
                if supervisor.is_finished() {
                    break;
                }
                // A halted CPU prints nothing: its stop already caught the view up.
                if *runtime.state.lock().await != SessionState::Running {
                    continue;
                }
            }
            _ = next_or_never(&mut stops) => {}
            event = events.recv() => match event {
                Ok(event) if event.kind == EventKind::Exited => {
                    runtime.uart.push(&view.text[shown..]);
                    break;
                }
                Ok(event) if matches!(event.kind, EventKind::PoweredOff | EventKind::Crashed | EventKind::Deleted) => break,
                Ok(_) | Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => break,
            },
        };
        let Ok(count) = replayer.instructions().await else {
            continue;
        };
        let upto = view.offset_at(count);
        if upto > shown {
            runtime.uart.push_at(&view.text[shown..upto], Some(count));
            shown = upto;
        }
    }
    runtime.replaying.store(false, Ordering::SeqCst);
}

/// The recorded console and where each piece of it was, in instructions.
struct ConsoleView {
    text: Vec<u8>,
    /// (instruction count, console bytes up to there), in order.
    marks: Vec<(u64, usize)>,
}

impl ConsoleView {
    async fn load(dir: &Path) -> Self {
        let text = tokio::fs::read(dir.join(CONSOLE_LOG))
            .await
            .unwrap_or_default();
        let map = tokio::fs::read_to_string(dir.join(CONSOLE_MAP))
            .await
            .unwrap_or_default();
        Self::parse(text, &map)
    }

    fn parse(text: Vec<u8>, map: &str) -> Self {
        let marks = map
            .lines()
            .filter_map(|line| {
                let (count, offset) = line.split_once(' ')?;
                Some((count.parse().ok()?, offset.parse().ok()?))
            })
            .filter(|&(_, offset)| offset <= text.len())
            .collect();
        Self { text, marks }
    }

    /// How much of the console the CPU had printed at instruction `count`.
    fn offset_at(&self, count: u64) -> usize {
        let index = self.marks.partition_point(|&(at, _)| at <= count);
        match index {
            0 => 0,
            i => self.marks[i - 1].1,
        }
    }
}

async fn open_append(path: &Path) -> std::io::Result<tokio::fs::File> {
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await
}

/// Copies a recording's files (a few MB): the replay writes checkpoints into its image.
async fn copy_dir(from: &Path, to: &Path) -> Result<(), SessionError> {
    tokio::fs::create_dir_all(to)
        .await
        .map_err(BackendError::Io)?;
    let mut entries = tokio::fs::read_dir(from).await.map_err(|error| {
        SessionError::InvalidState(format!("the recording's files are missing: {error}"))
    })?;
    while let Some(entry) = entries.next_entry().await.map_err(BackendError::Io)? {
        tokio::fs::copy(entry.path(), to.join(entry.file_name()))
            .await
            .map_err(BackendError::Io)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::ConsoleView;

    #[test]
    fn the_console_view_follows_the_instruction_count() {
        let view = ConsoleView::parse(b"tick 1\ntick 2\n".to_vec(), "100 7\n250 14\ngarbage\n");
        assert_eq!(view.offset_at(0), 0);
        assert_eq!(view.offset_at(99), 0);
        assert_eq!(view.offset_at(100), 7);
        assert_eq!(view.offset_at(249), 7);
        assert_eq!(view.offset_at(u64::MAX), 14);
        // A map that names more than the log holds is not trusted past the log.
        let short = ConsoleView::parse(b"abc".to_vec(), "5 3\n9 10\n");
        assert_eq!(short.offset_at(100), 3);
    }
}
