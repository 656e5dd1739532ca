//! Booting a session's machine: the program (or a snapshot image) on its backend, with
//! the coverage trace, the recording or replay, the GDB gateway, the supervisor that
//! follows it, and the first state it is in, recorded before anything it reports. A
//! machine woken from hibernation records nothing: to clients it never went away.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::debugging::semihosting_config;
use super::supervisor::supervise;
use super::{
    EventKind, Launched, MachineInfo, Runtime, SessionError, SessionService, SessionState,
    TRACE_FILE, TRACE_PROGRAM, backend_of, recording,
};
use crate::backend::{BackendError, Collector, LaunchRequest, Machine, TraceRequest};
use crate::debugger::{Debugger, DebuggerError};
use crate::store::SessionRecord;
use virserver_gateway::GatewayError;

/// What a launch boots.
pub(super) enum Boot {
    /// The program, from reset.
    Program,
    /// The saved state of a snapshot image: the machine is PAUSED at its point.
    Restore(PathBuf),
    /// Out of hibernation: the image, served on the GDB endpoint the session kept.
    /// Nothing is recorded (the session was PAUSED all along).
    Wake {
        image: PathBuf,
        listener: Option<std::net::TcpListener>,
    },
}

impl SessionService {
    /// Boots the program or an image (see [`Boot`]).
    pub(super) async fn launch(
        &self,
        record: &SessionRecord,
        runtime: &Arc<Runtime>,
        control: &mut Option<Launched>,
        program_id: &str,
        halted: bool,
        boot: Boot,
    ) -> Result<(), SessionError> {
        let (restore, listener, woken) = match boot {
            Boot::Program => (None, None, false),
            Boot::Restore(image) => (Some(image), None, false),
            Boot::Wake { image, listener } => (Some(image), listener, true),
        };
        if !woken {
            self.quotas.check_power_on(&self.store, record).await?;
        }
        let halted = halted || restore.is_some();
        let program = self.program(program_id).await?;
        let board = self.catalog.board(&record.board_id).await?.board;
        let kind = backend_of(record)?;
        let backend = self.backends.get(kind).ok_or(BackendError::Unavailable {
            backend: kind.as_str(),
            reason: "not built into this server".into(),
        })?;
        let program_path = self.programs.path_of(&program.sha256);
        if !tokio::fs::try_exists(&program_path).await.unwrap_or(false) {
            return Err(SessionError::InvalidState(format!(
                "the file of program '{}' is missing from the data dir",
                program.id
            )));
        }
        // A reset asked for in an earlier run whose event never came must not hide a
        // reset of this one.
        runtime.requested_resets.store(0, Ordering::SeqCst);
        let run_dir = self.run_root.join(&record.id);
        let trace = if record.coverage {
            // The trace is of one run: remember which program it belongs to.
            tokio::fs::create_dir_all(&run_dir)
                .await
                .map_err(BackendError::Io)?;
            tokio::fs::write(run_dir.join(TRACE_PROGRAM), &program.id)
                .await
                .map_err(BackendError::Io)?;
            Some(TraceRequest {
                path: run_dir.join(TRACE_FILE),
                collector: Collector::parse(&record.coverage_collector),
            })
        } else {
            None
        };
        let recording = match restore {
            Some(_) => None,
            None => self.recording_for_launch(record, program_id).await?,
        };
        runtime.replaying.store(
            matches!(recording, Some((crate::backend::Recording::Replay(_), _))),
            Ordering::SeqCst,
        );
        let (machine, events) = backend
            .launch(LaunchRequest {
                board: board.clone(),
                program: program_path.clone(),
                run_dir: run_dir.clone(),
                halted,
                trace,
                restore,
                deterministic: record.deterministic,
                recording: recording.as_ref().map(|(recording, _)| recording.clone()),
            })
            .await?;
        let state = if halted {
            SessionState::Paused
        } else {
            SessionState::Running
        };
        // Recorded before the supervisor starts, so an instant exit is recorded after it.
        if !woken {
            self.record(
                runtime,
                EventKind::PoweredOn,
                state,
                None,
                Some(format!("program {} ({})", program.name, program.id)),
            )
            .await?;
        }
        let semihosting = match machine.gdb_file_io() {
            true => Some(semihosting_config(runtime, &run_dir).await?),
            false => None,
        };
        let (debugger, gdb_listener) = match machine.gdb_socket() {
            Some(stub) => {
                let started = async {
                    let listener = match listener {
                        Some(listener) => listener,
                        None => std::net::TcpListener::bind((self.gdb_listen, 0))
                            .map_err(GatewayError::Io)?,
                    };
                    let kept = listener.try_clone().map_err(GatewayError::Io)?;
                    let debugger = Debugger::start(
                        &stub,
                        listener,
                        self.access,
                        Some(self.audit.gateway_sink(&record.id)),
                        &board,
                        program_path,
                        semihosting,
                    )
                    .await?;
                    Ok::<_, DebuggerError>((Arc::new(debugger), kept))
                };
                match started.await {
                    Ok((debugger, kept)) => (Some(debugger), Some(kept)),
                    Err(error) => {
                        tracing::warn!(session = %record.id, %error, "no GDB endpoint for this session");
                        (None, None)
                    }
                }
            }
            None => (None, None),
        };
        let supervisor = self.tracker.spawn(supervise(
            self.store.clone(),
            runtime.clone(),
            events,
            debugger.clone(),
        ));
        let machine: Arc<dyn Machine> = Arc::from(machine);
        if let Some((recording, id)) = recording {
            self.tracker.spawn(recording::follow(
                recording::Followed {
                    store: self.store.clone(),
                    runtime: runtime.clone(),
                    machine: machine.clone(),
                    debugger: debugger.clone(),
                    supervisor: supervisor.abort_handle(),
                },
                recording,
                id,
            ));
        }
        *runtime
            .machine
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(MachineInfo {
            pid: machine.pid(),
            gdb: debugger.as_ref().map(|d| d.gateway().address()),
            supervisor: supervisor.abort_handle(),
        });
        let launched = control.insert(Launched {
            machine,
            debugger,
            gdb_listener,
            supervisor,
        });
        if launched.machine.gdb_file_io() {
            launched.attach_for_semihosting(halted).await?;
        }
        Ok(())
    }
}
