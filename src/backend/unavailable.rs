//! Backends that cannot run on this host kind: Renode and SkyEye (not installable here)
//! and probe-rs (real hardware, behind a cargo feature not yet built). They exist so that
//! `capabilities` names them with the reason, and so that creating a session on them
//! fails with BACKEND_UNAVAILABLE instead of a vague error. If the emulator is found on
//! PATH the reason says the adapter is untested here; it still refuses to launch.

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::{
    Availability, Backend, BackendError, BackendKind, LaunchRequest, Machine, MachineEvent,
};
use crate::boards::BoardTemplate;

pub struct UnavailableBackend {
    kind: BackendKind,
    availability: Availability,
}

impl UnavailableBackend {
    pub fn renode() -> Self {
        Self::looked_up(BackendKind::Renode, "renode")
    }

    pub fn skyeye() -> Self {
        Self::looked_up(BackendKind::Skyeye, "skyeye")
    }

    pub fn probe_rs() -> Self {
        Self {
            kind: BackendKind::ProbeRs,
            availability: Availability {
                available: false,
                reason: Some(
                    "real hardware through probe-rs is not built into this server yet".into(),
                ),
                binaries: Vec::new(),
            },
        }
    }

    fn looked_up(kind: BackendKind, binary: &str) -> Self {
        let reason = match find_on_path(binary) {
            Some(path) => format!(
                "{} found at {}, but its adapter is not implemented or tested on this host",
                binary,
                path.display()
            ),
            None => format!("'{binary}' was not found on PATH"),
        };
        Self {
            kind,
            availability: Availability {
                available: false,
                reason: Some(reason),
                binaries: Vec::new(),
            },
        }
    }
}

/// The first executable file called `name` in PATH.
pub(crate) fn find_on_path(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

#[async_trait]
impl Backend for UnavailableBackend {
    fn kind(&self) -> BackendKind {
        self.kind
    }

    fn availability(&self) -> &Availability {
        &self.availability
    }

    fn supports_board(&self, _board: &BoardTemplate) -> Result<(), BackendError> {
        Err(self.unavailable())
    }

    async fn launch(
        &self,
        _request: LaunchRequest,
    ) -> Result<(Box<dyn Machine>, mpsc::Receiver<MachineEvent>), BackendError> {
        Err(self.unavailable())
    }
}

impl UnavailableBackend {
    fn unavailable(&self) -> BackendError {
        BackendError::Unavailable {
            backend: self.kind.as_str(),
            reason: self.availability.reason.clone().unwrap_or_default(),
        }
    }
}
