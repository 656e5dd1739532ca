//! A powered session's CPU as the debug API sees it: its debugger, attaching to a
//! session paused through QMP, and resuming, which goes through the GDB gateway while
//! it holds the stub's link (QEMU 8.1 and later announce a stop only after a resume
//! their stub was sent).

use std::path::Path;
use std::sync::{Arc, Weak};

use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;
use virserver_gateway::{ConsoleSink, Resumed, RunEvent, SemihostingConfig};

use super::{EventKind, Launched, Runtime, SessionError, SessionService, SessionState, powered};
use crate::backend::BackendError;
use crate::debugger::Debugger;

/// The sandbox directory of a session's semihosting files, in its run dir.
const SANDBOX_DIR: &str = "files";

/// How the gateway answers a session's semihosting: console writes into the session's
/// console log, files in `files/` of its run dir (kept across power cycles of the
/// session, empty when it is new). The sink holds the runtime weakly: the runtime owns
/// the gateway.
pub(super) async fn semihosting_config(
    runtime: &Arc<Runtime>,
    run_dir: &Path,
) -> Result<SemihostingConfig, SessionError> {
    let sandbox = run_dir.join(SANDBOX_DIR);
    tokio::fs::create_dir_all(&sandbox)
        .await
        .map_err(BackendError::Io)?;
    let runtime: Weak<Runtime> = Arc::downgrade(runtime);
    let console: ConsoleSink = Arc::new(move |bytes: &[u8]| {
        if let Some(runtime) = runtime.upgrade() {
            runtime.uart.push(bytes);
        }
    });
    Ok(SemihostingConfig::new(sandbox, console))
}

impl Launched {
    /// A machine whose semihosting goes to its GDB stub waits at reset: attach the
    /// gateway (it answers the calls and holds the link from now on), then let the
    /// guest run unless a halted start was asked for. Without a gateway the machine
    /// runs anyway: its semihosting calls then do nothing, and never reach the host.
    pub(super) async fn attach_for_semihosting(&self, halted: bool) -> Result<(), SessionError> {
        match &self.debugger {
            Some(debugger) => {
                if let Err(error) = debugger.client().halt().await {
                    tracing::warn!(%error, "cannot attach the gateway for semihosting");
                }
            }
            None => tracing::warn!("no gateway: the guest's semihosting calls will fail"),
        }
        if halted {
            return Ok(());
        }
        self.resume().await
    }

    /// Lets the CPU run: through the GDB gateway while it holds the stub's link,
    /// else through the machine (QMP `cont`). QEMU 8.1 and later report a stop only
    /// after a resume their stub was sent, so a VM resumed behind an attached
    /// gateway would stop at the next breakpoint unannounced.
    pub(super) async fn resume(&self) -> Result<(), SessionError> {
        if let Some(debugger) = &self.debugger {
            match debugger.client().resume().await {
                Ok(Resumed::NotConnected) => {}
                Ok(_) => return Ok(()),
                Err(error) => {
                    tracing::warn!(%error, "resuming through the gateway failed; using QMP")
                }
            }
        }
        Ok(self.machine.resume().await?)
    }
}

impl SessionService {
    /// The debugger of a powered session.
    /// Every stop and resume of a powered session's CPU from now on, whoever caused
    /// it, without attaching anything (unlike [`Self::debugger`]). A reader that falls
    /// behind skips what it missed (only the latest state matters); the stream ends
    /// with the gateway.
    pub async fn run_events(
        &self,
        id: &str,
    ) -> Result<impl Stream<Item = RunEvent> + Send + use<>, SessionError> {
        let (_, debugger) = self.powered_debugger(id).await?;
        let mut events = debugger.gateway().run_events();
        Ok(async_stream::stream! {
            loop {
                match events.recv().await {
                    Ok(event) => yield event,
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => break,
                }
            }
        })
    }

    /// The debugger of a powered session, as it is.
    async fn powered_debugger(
        &self,
        id: &str,
    ) -> Result<(Arc<Runtime>, Arc<Debugger>), SessionError> {
        let (_, runtime) = self.existing(id).await?;
        let mut control = runtime.control.lock().await;
        self.wake_locked(&runtime, &mut control).await?;
        let launched = powered(&mut control, id)?;
        let debugger = launched.debugger.clone().ok_or_else(|| {
            SessionError::Unsupported(format!("session '{id}' has no GDB endpoint"))
        })?;
        drop(control);
        Ok((runtime, debugger))
    }

    pub async fn debugger(&self, id: &str) -> Result<Arc<Debugger>, SessionError> {
        let (runtime, debugger) = self.powered_debugger(id).await?;
        // A session paused through QMP, with no GDB link, is halted for the API too:
        // attach (connecting to a paused VM's stub changes nothing) and hold the halt
        // until the session resumes. A stop GDB caused is the gateway's already.
        if *runtime.state.lock().await == SessionState::Paused
            && !debugger.gateway().status().upstream_connected
            && let Err(error) = debugger.client().halt().await
        {
            tracing::warn!(session = %id, %error, "cannot attach to a paused session's stub");
        }
        Ok(debugger)
    }

    /// Lets a powered session's CPU run (see [`Launched::resume`]).
    pub async fn resume_cpu(&self, id: &str) -> Result<(), SessionError> {
        let (_, runtime) = self.existing(id).await?;
        let mut control = runtime.control.lock().await;
        self.wake_locked(&runtime, &mut control).await?;
        let launched = powered(&mut control, id)?;
        self.resume_recorded(&runtime, launched).await
    }

    /// Resumes the CPU, recorded as RUNNING first: a stop that follows at once (a
    /// breakpoint) is then recorded after it, and a debug call meanwhile does not take
    /// the session for paused and halt it. A failed resume records PAUSED back.
    pub(super) async fn resume_recorded(
        &self,
        runtime: &Runtime,
        launched: &Launched,
    ) -> Result<(), SessionError> {
        let before = *runtime.state.lock().await;
        self.record(
            runtime,
            EventKind::Resumed,
            SessionState::Running,
            None,
            None,
        )
        .await?;
        if let Err(error) = launched.resume().await {
            if before == SessionState::Paused {
                let message = Some(format!("resume failed: {error}"));
                self.record(
                    runtime,
                    EventKind::Paused,
                    SessionState::Paused,
                    None,
                    message,
                )
                .await?;
            }
            return Err(error);
        }
        Ok(())
    }
}
