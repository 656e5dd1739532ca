//! Programs of a session: uploads validated against the board and stored by hash,
//! start (boot or reboot with a program), pause and stop, and what coverage needs to
//! find the trace of the latest run and the program it ran.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::Utc;

use super::{
    Boot, EventKind, Runtime, SessionError, SessionService, SessionState, TRACE_FILE,
    TRACE_PROGRAM, clear_finished,
};
use crate::programs::{ProgramError, validate_elf};
use crate::store::{ProgramRecord, SessionRecord};

impl SessionService {
    pub async fn upload_program(
        &self,
        session_id: &str,
        name: &str,
        data: &[u8],
    ) -> Result<ProgramRecord, SessionError> {
        if data.len() as u64 > self.max_upload_bytes {
            return Err(SessionError::TooLarge {
                what: "the program",
                size: data.len() as u64,
                limit: self.max_upload_bytes,
            });
        }
        let (record, runtime) = self.existing(session_id).await?;
        let board = self.catalog.board(&record.board_id).await?.board;
        let summary = validate_elf(data, &board)?;
        self.programs.put(&summary.sha256, data).await?;
        let program = ProgramRecord {
            id: uuid::Uuid::new_v4().to_string(),
            session_id: session_id.to_owned(),
            name: crate::programs::display_name(name),
            sha256: summary.sha256,
            entry_point: summary.entry_point as i64,
            arch: summary.arch.as_str().to_owned(),
            size: summary.size as i64,
            created_at: Utc::now(),
        };
        self.store.insert_program(program.clone()).await?;
        self.store
            .set_current_program(session_id, &program.id)
            .await?;
        let state = *runtime.state.lock().await;
        self.record(
            &runtime,
            EventKind::ProgramLoaded,
            state,
            None,
            Some(format!(
                "{} ({} bytes, sha256 {})",
                program.name, program.size, program.sha256
            )),
        )
        .await?;
        Ok(program)
    }

    /// The program's record for another session (a fork, a replay); its file is shared,
    /// stored by its SHA-256.
    pub(super) async fn copy_program(
        &self,
        program: &ProgramRecord,
        session_id: &str,
    ) -> Result<ProgramRecord, SessionError> {
        let copy = ProgramRecord {
            id: uuid::Uuid::new_v4().to_string(),
            session_id: session_id.to_owned(),
            created_at: Utc::now(),
            ..program.clone()
        };
        self.store.insert_program(copy.clone()).await?;
        Ok(copy)
    }

    async fn session_program(
        &self,
        session_id: &str,
        program_id: &str,
    ) -> Result<(SessionRecord, Arc<Runtime>, ProgramRecord), SessionError> {
        let (record, runtime) = self.existing(session_id).await?;
        let program = self.program(program_id).await?;
        if program.session_id != session_id {
            return Err(SessionError::NotFound {
                what: "program of this session",
                id: program_id.to_owned(),
            });
        }
        Ok((record, runtime, program))
    }

    /// Boots the session with the program (rebooting it if it was running).
    pub async fn start_program(
        &self,
        session_id: &str,
        program_id: &str,
    ) -> Result<SessionRecord, SessionError> {
        let (record, runtime, program) = self.session_program(session_id, program_id).await?;
        let mut control = runtime.control.lock().await;
        self.power_off(&runtime, &mut control).await?;
        self.store
            .set_current_program(session_id, &program.id)
            .await?;
        self.launch(
            &record,
            &runtime,
            &mut control,
            &program.id,
            false,
            Boot::Program,
        )
        .await?;
        drop(control);
        self.get(session_id).await
    }

    /// Halts the CPU of a session running this program.
    pub async fn pause_program(
        &self,
        session_id: &str,
        program_id: &str,
    ) -> Result<SessionRecord, SessionError> {
        let (record, runtime, program) = self.session_program(session_id, program_id).await?;
        let mut control = runtime.control.lock().await;
        clear_finished(&mut control);
        self.wake_locked(&runtime, &mut control).await?;
        let launched = control
            .as_ref()
            .filter(|_| record.current_program_id.as_deref() == Some(program.id.as_str()))
            .ok_or_else(|| {
                SessionError::InvalidState(format!(
                    "program '{program_id}' is not running in session '{session_id}'"
                ))
            })?;
        launched.machine.pause().await?;
        self.record(
            &runtime,
            EventKind::Paused,
            SessionState::Paused,
            None,
            None,
        )
        .await?;
        drop(control);
        self.get(session_id).await
    }

    /// Powers the session off.
    pub async fn stop_program(
        &self,
        session_id: &str,
        program_id: &str,
    ) -> Result<SessionRecord, SessionError> {
        let (_, runtime, _) = self.session_program(session_id, program_id).await?;
        let mut control = runtime.control.lock().await;
        self.power_off(&runtime, &mut control).await?;
        drop(control);
        self.get(session_id).await
    }

    /// Where a program's stored file is, for a local reader such as GDB.
    pub fn program_path(&self, program: &ProgramRecord) -> PathBuf {
        self.programs.path_of(&program.sha256)
    }

    /// The stored file of a program.
    pub async fn program_bytes(&self, program: &ProgramRecord) -> Result<Vec<u8>, SessionError> {
        tokio::fs::read(self.programs.path_of(&program.sha256))
            .await
            .map_err(|error| SessionError::Program(ProgramError::Io(error)))
    }

    /// The ELF and execution trace of the session's latest run, for coverage.
    pub async fn coverage_inputs(
        &self,
        session_id: &str,
    ) -> Result<(PathBuf, PathBuf), SessionError> {
        let record = self.get(session_id).await?;
        if !record.coverage {
            return Err(SessionError::InvalidState(format!(
                "session '{session_id}' was created without coverage: true"
            )));
        }
        let run_dir = self.run_root.join(session_id);
        let program_id = tokio::fs::read_to_string(run_dir.join(TRACE_PROGRAM))
            .await
            .map_err(|_| SessionError::NotFound {
                what: "coverage run of session",
                id: session_id.to_owned(),
            })?;
        let program = self.program(program_id.trim()).await?;
        Ok((
            self.programs.path_of(&program.sha256),
            run_dir.join(TRACE_FILE),
        ))
    }
}
