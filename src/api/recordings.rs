//! Record and replay in the API: recordings of sessions' runs, replay sessions, and
//! reverse execution on them. The work is in `crate::sessions::recording`.

use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};

use super::errors::ApiResult;
use super::sessions::{Session, app};
use crate::store::RecordingRecord;

/// One recorded run of a session: `replaySession` replays it exactly.
pub struct Recording(pub RecordingRecord);

#[Object]
impl Recording {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }

    async fn session_id(&self) -> ID {
        ID(self.0.session_id.clone())
    }

    async fn program_id(&self) -> ID {
        ID(self.0.program_id.clone())
    }

    /// The last instruction count the server saw while recording (decimal; GraphQL Int
    /// has 32 bits).
    async fn instructions(&self) -> Option<String> {
        self.0.instructions.map(|count| count.to_string())
    }

    /// Where a recorded job failed, as an instruction count.
    async fn failure_at(&self) -> Option<String> {
        self.0.failure_at.map(|count| count.to_string())
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

#[derive(Default)]
pub struct RecordingMutation;

#[Object]
impl RecordingMutation {
    /// A new session replaying the recording, PAUSED at its start: the same console byte
    /// for byte, GDB through its `gdbAddress` (whose stub offers
    /// `ReverseStep+;ReverseContinue+`), and `reverseStep`/`reverseContinue`.
    async fn replay_session(&self, ctx: &Context<'_>, recording_id: ID) -> ApiResult<Session> {
        Ok(Session(app(ctx).sessions.replay(&recording_id).await?))
    }
}
