//! The time-control domain of the API: snapshots of a session's machine, restoring
//! them, and forking sessions from them. The work is in `crate::sessions::snapshots`.

use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};

use super::errors::ApiResult;
use super::sessions::{Session, app};
use crate::store::SnapshotRecord;

/// A saved state of a session's whole machine: CPU, memory and devices.
pub struct Snapshot(pub SnapshotRecord);

#[Object]
impl Snapshot {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// Disk space it takes (counted against the session's snapshot quota).
    async fn size_bytes(&self) -> i64 {
        self.0.size_bytes
    }

    async fn session_id(&self) -> ID {
        ID(self.0.session_id.clone())
    }

    /// The program the machine ran when it was saved.
    async fn program_id(&self) -> ID {
        ID(self.0.program_id.clone())
    }
}

#[derive(Default)]
pub struct SnapshotMutation;

#[Object]
impl SnapshotMutation {
    /// Saves a powered session's machine (RUNNING or PAUSED; it is in the same state
    /// afterwards). SNAPSHOT_UNSUPPORTED names a device that cannot be saved;
    /// TOO_LARGE when the session's snapshot quota is used up.
    async fn create_snapshot(
        &self,
        ctx: &Context<'_>,
        session_id: ID,
        name: String,
    ) -> ApiResult<Snapshot> {
        let snapshot = app(ctx)
            .sessions
            .create_snapshot(&session_id, &name)
            .await?;
        Ok(Snapshot(snapshot))
    }

    /// Puts the snapshot's session at the snapshot's point, PAUSED (CPU, memory,
    /// devices). A powered-off session boots straight into it. Attached GDB clients
    /// read the new state; non-stop and DAP clients are told the target stopped.
    async fn restore_snapshot(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Session> {
        Ok(Session(app(ctx).sessions.restore_snapshot(&id).await?))
    }

    async fn delete_snapshot(&self, ctx: &Context<'_>, id: ID) -> ApiResult<bool> {
        app(ctx).sessions.delete_snapshot(&id).await?;
        Ok(true)
    }

    /// `count` new sessions, each PAUSED at the snapshot with the source's board,
    /// program and settings and a gateway of its own; the source is not touched.
    /// Named `name` (`name #1`, `name #2`, ... when several).
    async fn fork_session(
        &self,
        ctx: &Context<'_>,
        snapshot_id: ID,
        name: String,
        #[graphql(default = 1)] count: i32,
    ) -> ApiResult<Vec<Session>> {
        // The service says BAD_INPUT for a count out of range (a negative one is 0).
        let count = usize::try_from(count).unwrap_or(0);
        let forks = app(ctx).sessions.fork(&snapshot_id, &name, count).await?;
        Ok(forks.into_iter().map(Session).collect())
    }
}
