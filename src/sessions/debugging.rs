//! A powered session's CPU as the debug API sees it: its debugger, attaching to a
//! session paused through QMP, and resuming, which goes through the GDB gateway while
//! it holds the stub's link (QEMU 8.1 and later announce a stop only after a resume
//! their stub was sent).

use std::sync::Arc;

use virserver_gateway::Resumed;

use super::{EventKind, Launched, Runtime, SessionError, SessionService, SessionState, powered};
use crate::debugger::Debugger;

impl Launched {
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
    pub async fn debugger(&self, id: &str) -> Result<Arc<Debugger>, SessionError> {
        let (_, runtime) = self.existing(id).await?;
        let mut control = runtime.control.lock().await;
        let launched = powered(&mut control, id)?;
        let debugger = launched.debugger.clone().ok_or_else(|| {
            SessionError::Unsupported(format!("session '{id}' has no GDB endpoint"))
        })?;
        drop(control);
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
