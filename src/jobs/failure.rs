//! Debug-on-failure: what a failing job keeps (`keepOnFailure`), so that someone can
//! look at the failure after CI has moved on.
//!
//! The kept state is a snapshot named [`FAILURE_SNAPSHOT`] of the job's own session,
//! taken at the failure point: at the output that broke a rule or at the time-out (the
//! machine still runs then), and before a failing exit. An exit ends QEMU at once
//! (semihosting `SYS_EXIT`, the sifive_test device), so the runner sets breakpoints on
//! the program's exit functions: at each hit it reads the exit code from the first
//! argument register and, when that exit would fail the job, saves the machine
//! before letting it exit. The cost: QEMU runs the code on a page holding a breakpoint
//! one instruction per translation block, so a hot loop next to the exit function
//! (1 KiB pages on Cortex-M, 4 KiB on RISC-V) runs many times slower; the time-out
//! counts it. `debugJob` restores the snapshot into the job's session,
//! which then boots PAUSED at that point, attachable with GDB and DAP.

use std::sync::Arc;

use virserver_gateway::BreakpointKind;

use crate::debugger::{Debugger, Location};
use crate::sessions::{SessionError, SessionService};
use crate::store::SnapshotRecord;

/// The name of the snapshot a failing job keeps.
pub const FAILURE_SNAPSHOT: &str = "failure";

/// Functions a program exits through: the C library's and the example firmware's.
const EXIT_FUNCTIONS: [&str; 3] = ["_exit", "exit", "board_exit"];

/// Registers that hold a call's first argument, by architecture (Arm, RISC-V ABI name,
/// AArch64).
const FIRST_ARGUMENT: [&str; 3] = ["r0", "a0", "x0"];

/// The breakpoints on a job's exit functions.
pub struct ExitWatch {
    debugger: Arc<Debugger>,
    addresses: Vec<u64>,
}

impl ExitWatch {
    /// Sets a breakpoint on each exit function the program has; `None` when it has
    /// none (or no symbols): its exits then keep nothing.
    pub async fn arm(sessions: &SessionService, session_id: &str) -> Option<ExitWatch> {
        let debugger = match sessions.debugger(session_id).await {
            Ok(debugger) => debugger,
            Err(error) => {
                tracing::warn!(%error, "no debugger: a failing exit keeps nothing");
                return None;
            }
        };
        let mut addresses = Vec::new();
        for name in EXIT_FUNCTIONS {
            let Ok(location) = debugger.resolve(&Location::Function(name.to_owned())).await else {
                continue;
            };
            if addresses.contains(&location.address) {
                continue;
            }
            match debugger
                .client()
                .insert_breakpoint(BreakpointKind::Software, location.address)
                .await
            {
                Ok(()) => addresses.push(location.address),
                Err(error) => tracing::warn!(%error, name, "cannot watch an exit function"),
            }
        }
        if addresses.is_empty() {
            tracing::info!(session = %session_id, "no exit function found: a failing exit keeps nothing");
            return None;
        }
        Some(ExitWatch {
            debugger,
            addresses,
        })
    }

    /// Whether a stop at `pc` is the program about to exit.
    pub fn is_exit(&self, pc: Option<u64>) -> bool {
        pc.is_some_and(|pc| self.addresses.contains(&pc))
    }

    /// Removes the breakpoints (a program exits once; a resume from a breakpoint still
    /// in place would stop on it again).
    pub async fn disarm(&self) {
        for address in &self.addresses {
            if let Err(error) = self
                .debugger
                .client()
                .remove_breakpoint(BreakpointKind::Software, *address)
                .await
            {
                tracing::warn!(%error, "cannot remove an exit breakpoint");
            }
        }
    }

    /// The exit code the program is about to exit with (its first argument).
    pub async fn exit_code(&self) -> Option<i32> {
        let registers = self.debugger.client().registers().await.ok()?;
        let register = FIRST_ARGUMENT
            .iter()
            .find_map(|name| registers.iter().find(|r| r.name == *name))?;
        let value = u64::from_str_radix(register.value_hex.trim_start_matches("0x"), 16).ok()?;
        Some(value as u32 as i32)
    }
}

/// Saves the failure point of a job's session, unless one is kept already or the
/// machine has ended (then there is nothing to keep, and the log says so).
pub async fn keep(sessions: &SessionService, session_id: &str) -> Option<SnapshotRecord> {
    if let Ok(existing) = sessions.snapshots(session_id).await
        && let Some(kept) = existing.into_iter().find(|s| s.name == FAILURE_SNAPSHOT)
    {
        return Some(kept);
    }
    match sessions.create_snapshot(session_id, FAILURE_SNAPSHOT).await {
        Ok(snapshot) => Some(snapshot),
        Err(error) => {
            tracing::warn!(session = %session_id, %error, "the failure point could not be kept");
            None
        }
    }
}

/// The snapshot a failed job kept, or why there is none.
pub async fn kept(
    sessions: &SessionService,
    session_id: Option<&str>,
    job_id: &str,
) -> Result<SnapshotRecord, SessionError> {
    let nothing = || {
        SessionError::InvalidState(format!(
            "job '{job_id}' kept no failure point: it passed, ran without keepOnFailure, \
             or its machine had ended"
        ))
    };
    let session_id = session_id.ok_or_else(nothing)?;
    sessions
        .snapshots(session_id)
        .await?
        .into_iter()
        .find(|snapshot| snapshot.name == FAILURE_SNAPSHOT)
        .ok_or_else(nothing)
}
