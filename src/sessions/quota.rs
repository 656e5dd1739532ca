//! Per-user quotas, so that one user cannot take a node (each QEMU here holds about
//! 37 MB): how many sessions a user may have (`--max-sessions-per-user`, checked when
//! one is created: by the API, a job, a fork or a replay) and how many of them may be
//! powered at once (`--max-powered-sessions`, checked when an emulator is launched; a
//! hibernated session waking is not a new one). The user is the session's owner; with
//! auth off everyone is `local` and the quotas apply to the server as a whole.
//!
//! A refusal is [`SessionError::LimitExceeded`] (LIMIT_EXCEEDED), naming the quota.
//! Jobs have theirs where they are queued (`--max-queued-jobs-per-user`,
//! `jobs::service`).
//! Two requests of one user at the same instant can both pass the count (it is not
//! taken under one lock for all sessions): a quota bounds a user, it is not exact to
//! the session.

use super::{SessionError, SessionRecord};
use crate::store::Store;

/// The limits; `None` for no limit.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quotas {
    pub sessions_per_user: Option<u64>,
    pub powered_per_user: Option<u64>,
}

/// States in which a session has an emulator (or sleeps in a hibernation image).
const POWERED: &[&str] = &["RUNNING", "PAUSED"];

fn who(owner: Option<&str>) -> &str {
    owner.unwrap_or("local")
}

impl Quotas {
    /// Before a session of `owner` is created.
    pub(super) async fn check_create(
        &self,
        store: &Store,
        owner: Option<&str>,
    ) -> Result<(), SessionError> {
        let Some(limit) = self.sessions_per_user else {
            return Ok(());
        };
        let count = store.count_sessions(owner, None, None).await?;
        if count >= limit {
            return Err(SessionError::LimitExceeded(format!(
                "{} has {count} sessions, the most --max-sessions-per-user allows ({limit}): delete one first",
                who(owner)
            )));
        }
        Ok(())
    }

    /// Before `session`'s emulator is launched.
    pub(super) async fn check_power_on(
        &self,
        store: &Store,
        session: &SessionRecord,
    ) -> Result<(), SessionError> {
        let Some(limit) = self.powered_per_user else {
            return Ok(());
        };
        let owner = session.owner.as_deref();
        let count = store
            .count_sessions(owner, Some(POWERED), Some(&session.id))
            .await?;
        if count >= limit {
            return Err(SessionError::LimitExceeded(format!(
                "{} has {count} powered sessions, the most --max-powered-sessions allows ({limit}): power one off first",
                who(owner)
            )));
        }
        Ok(())
    }
}
