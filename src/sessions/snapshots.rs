//! Snapshots and forks: a session's whole machine saved (`createSnapshot`), loaded back
//! into it (`restoreSnapshot`, also into a powered-off session, which then boots
//! straight into the saved state), and copied into new sessions (`forkSession`).
//!
//! Each snapshot is one file of the backend's (`MachineSnapshots`) in the session's run
//! dir, `snapshots/<id>`, next to its database row: it survives power cycles and
//! restarts, counts against the session's quota, and goes with the session. A fork
//! gets a copy of the file as its own first snapshot, then boots into it, so forks
//! share nothing and launch in parallel (no lock is common to two sessions).

use std::path::PathBuf;

use chrono::Utc;

use super::{
    Boot, EventKind, Launched, Runtime, SessionError, SessionService, SessionState, Settings,
    clear_finished,
};
use crate::backend::{BackendError, MachineSnapshots};
use crate::store::{ProgramRecord, SessionRecord, SnapshotRecord};

/// Where a session's snapshot images are, in its run dir.
const SNAPSHOT_DIR: &str = "snapshots";

/// The most forks one `forkSession` makes.
const MAX_FORKS: usize = 32;

impl SessionService {
    fn snapshot_path(&self, snapshot: &SnapshotRecord) -> PathBuf {
        self.run_root
            .join(&snapshot.session_id)
            .join(SNAPSHOT_DIR)
            .join(&snapshot.id)
    }

    pub async fn snapshots(&self, session_id: &str) -> Result<Vec<SnapshotRecord>, SessionError> {
        Ok(self.store.snapshots(session_id).await?)
    }

    pub async fn snapshot(&self, id: &str) -> Result<SnapshotRecord, SessionError> {
        super::by_id("snapshot", id, || self.store.snapshot(id)).await
    }

    /// Saves the powered session's machine; it runs (or stays paused) as before.
    pub async fn create_snapshot(
        &self,
        session_id: &str,
        name: &str,
    ) -> Result<SnapshotRecord, SessionError> {
        let name = name.trim();
        if name.is_empty() || name.len() > 200 {
            return Err(SessionError::BadInput(
                "a snapshot name must be 1 to 200 characters".into(),
            ));
        }
        let (record, runtime) = self.existing(session_id).await?;
        let mut control = runtime.control.lock().await;
        clear_finished(&mut control);
        self.wake_locked(&runtime, &mut control).await?;
        let launched = control.as_ref().ok_or_else(|| {
            SessionError::InvalidState(format!(
                "session '{session_id}' is not powered on: a snapshot saves a running or paused machine"
            ))
        })?;
        let snapshots = machine_snapshots(launched, &record)?;
        refuse_recorded(&record)?;
        let existing = self.store.snapshots(session_id).await?;
        if existing.iter().any(|snapshot| snapshot.name == name) {
            return Err(SessionError::Store(crate::store::StoreError::Conflict {
                what: format!("a snapshot named '{name}' in session '{session_id}'"),
            }));
        }
        let used: u64 = existing.iter().map(|s| s.size_bytes as u64).sum();
        if used >= self.snapshot_quota_bytes {
            return Err(quota_error(used, self.snapshot_quota_bytes));
        }
        let program_id = record
            .current_program_id
            .clone()
            .ok_or_else(|| SessionError::NoProgram(session_id.to_owned()))?;
        let mut snapshot = SnapshotRecord {
            id: uuid::Uuid::new_v4().to_string(),
            session_id: session_id.to_owned(),
            name: name.to_owned(),
            program_id,
            size_bytes: 0,
            created_at: Utc::now(),
        };
        let path = self.snapshot_path(&snapshot);
        create_parent(&path).await?;
        let started = std::time::Instant::now();
        let size = snapshots.save(&path).await?;
        drop(control);
        snapshot.size_bytes = size as i64;
        if used + size > self.snapshot_quota_bytes {
            let _ = tokio::fs::remove_file(&path).await;
            return Err(quota_error(used + size, self.snapshot_quota_bytes));
        }
        if let Err(error) = self.store.insert_snapshot(snapshot.clone()).await {
            let _ = tokio::fs::remove_file(&path).await;
            return Err(error.into());
        }
        tracing::info!(
            session = %session_id,
            snapshot = %snapshot.id,
            size,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "snapshot saved"
        );
        Ok(snapshot)
    }

    pub async fn delete_snapshot(&self, id: &str) -> Result<SnapshotRecord, SessionError> {
        let snapshot = self.snapshot(id).await?;
        // Only the node that runs the session holds its files.
        self.existing(&snapshot.session_id).await?;
        self.store.delete_snapshot(id).await?;
        let _ = tokio::fs::remove_file(self.snapshot_path(&snapshot)).await;
        Ok(snapshot)
    }

    /// Puts the snapshot's session at the snapshot's point, PAUSED: loaded into the
    /// running machine, or booted straight into it when the session is not powered (or
    /// runs another program than the snapshot's). The gateway's clients are told.
    pub async fn restore_snapshot(&self, id: &str) -> Result<SessionRecord, SessionError> {
        let snapshot = self.snapshot(id).await?;
        let (record, runtime) = self.existing(&snapshot.session_id).await?;
        let path = self.snapshot_path(&snapshot);
        if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
            return Err(SessionError::InvalidState(format!(
                "the image of snapshot '{id}' is missing from the data dir"
            )));
        }
        refuse_recorded(&record)?;
        let message = Some(format!("snapshot '{}' ({})", snapshot.name, snapshot.id));
        let mut control = runtime.control.lock().await;
        clear_finished(&mut control);
        let same_program = record.current_program_id.as_deref() == Some(&snapshot.program_id);
        if same_program {
            // A sleeping machine wakes, so the session keeps its GDB address.
            self.wake_locked(&runtime, &mut control).await?;
        } else {
            self.power_off(&runtime, &mut control).await?;
            self.store
                .set_current_program(&record.id, &snapshot.program_id)
                .await?;
        }
        match control.as_ref() {
            Some(launched) => {
                let snapshots = machine_snapshots(launched, &record)?;
                self.pause_for_load(&runtime, launched).await?;
                snapshots.load(&path).await?;
                if let Some(debugger) = &launched.debugger {
                    debugger.gateway().state_replaced();
                }
            }
            None => {
                let record = self.get(&record.id).await?;
                self.launch(
                    &record,
                    &runtime,
                    &mut control,
                    &snapshot.program_id,
                    true,
                    Boot::Restore(path),
                )
                .await?;
            }
        }
        self.record(
            &runtime,
            EventKind::Restored,
            SessionState::Paused,
            None,
            message,
        )
        .await?;
        drop(control);
        self.get(&record.id).await
    }

    /// A running CPU is halted before a load: through the gateway when it holds the
    /// stub's link (its clients then hear of the stop), else through the machine.
    async fn pause_for_load(
        &self,
        runtime: &Runtime,
        launched: &Launched,
    ) -> Result<(), SessionError> {
        if *runtime.state.lock().await != SessionState::Running {
            return Ok(());
        }
        if let Some(debugger) = &launched.debugger
            && debugger.gateway().status().upstream_connected
        {
            debugger
                .client()
                .halt()
                .await
                .map_err(|error| BackendError::Control(format!("cannot halt: {error}")))?;
        } else {
            launched.machine.pause().await?;
        }
        self.record(runtime, EventKind::Paused, SessionState::Paused, None, None)
            .await
    }

    /// `count` new sessions, each PAUSED at the snapshot with the source's board,
    /// program and settings, each with its own gateway, made in parallel. The source is
    /// not touched. All or nothing: forks made before a failure are deleted.
    pub async fn fork(
        &self,
        snapshot_id: &str,
        name: &str,
        count: usize,
    ) -> Result<Vec<SessionRecord>, SessionError> {
        if !(1..=MAX_FORKS).contains(&count) {
            return Err(SessionError::BadInput(format!(
                "count must be 1 to {MAX_FORKS}"
            )));
        }
        let snapshot = self.snapshot(snapshot_id).await?;
        let (source, _) = self.existing(&snapshot.session_id).await?;
        let program = self.program(&snapshot.program_id).await?;
        let names: Vec<String> = (0..count)
            .map(|index| match count {
                1 => name.to_owned(),
                _ => format!("{} #{}", name.trim(), index + 1),
            })
            .collect();
        // Concurrent on this task: a launch is waiting on QEMU, not computing.
        let forks = names
            .iter()
            .map(|name| self.fork_one(&source, &snapshot, &program, name));
        let mut made = Vec::new();
        let mut failure = None;
        for fork in futures_util::future::join_all(forks).await {
            match fork {
                Ok(record) => made.push(record),
                Err(error) => failure = failure.or(Some(error)),
            }
        }
        if let Some(error) = failure {
            for record in made {
                let _ = self.delete(&record.id).await;
            }
            return Err(error);
        }
        Ok(made)
    }

    async fn fork_one(
        &self,
        source: &SessionRecord,
        snapshot: &SnapshotRecord,
        program: &ProgramRecord,
        name: &str,
    ) -> Result<SessionRecord, SessionError> {
        let backend = super::backend_of(source)?;
        let fork = self
            .create(name, backend, &source.board_id, Settings::of(source))
            .await?;
        let made = async {
            let program = self.copy_program(program, &fork.id).await?;
            self.store
                .set_current_program(&fork.id, &program.id)
                .await?;
            let copy = SnapshotRecord {
                id: uuid::Uuid::new_v4().to_string(),
                session_id: fork.id.clone(),
                program_id: program.id,
                created_at: Utc::now(),
                ..snapshot.clone()
            };
            let path = self.snapshot_path(&copy);
            create_parent(&path).await?;
            tokio::fs::copy(self.snapshot_path(snapshot), &path)
                .await
                .map_err(BackendError::Io)?;
            self.store.insert_snapshot(copy.clone()).await?;
            self.restore_snapshot(&copy.id).await
        }
        .await;
        if made.is_err() {
            let _ = self.delete(&fork.id).await;
        }
        made
    }
}

fn machine_snapshots<'a>(
    launched: &'a Launched,
    record: &SessionRecord,
) -> Result<&'a dyn MachineSnapshots, SessionError> {
    launched.machine.snapshots().ok_or_else(|| {
        BackendError::SnapshotUnsupported(format!("{} has no snapshots", record.backend)).into()
    })
}

/// A recording would not survive a loaded state (and `migrate` aborts it); a replay
/// moves only along its recording.
fn refuse_recorded(record: &SessionRecord) -> Result<(), SessionError> {
    if record.record || record.replay_of.is_some() {
        return Err(SessionError::InvalidState(format!(
            "session '{}' records or replays: its time moves along the recording \
             (reverseStep, reverseContinue), not through snapshots",
            record.id
        )));
    }
    Ok(())
}

fn quota_error(size: u64, limit: u64) -> SessionError {
    SessionError::TooLarge {
        what: "the session's snapshot storage",
        size,
        limit,
    }
}

async fn create_parent(path: &std::path::Path) -> Result<(), SessionError> {
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(BackendError::Io)?;
    }
    Ok(())
}
