//! What editors need from the API: which GDB serves their DAP connections, and every
//! stop and resume of a session's CPU as it happens (what a debug adapter beside the
//! editor needs to tell its client about runs others caused). The per-session endpoint
//! is `Session.dapAddress`, in `sessions.rs`.

use async_graphql::{Context, Enum, ID, Object, SimpleObject, Subscription};
use futures_util::{Stream, StreamExt};
use virserver_gateway::{ResumedBy, RunEvent};

use super::errors::{ApiResult, to_graphql};
use super::sessions::app;

/// The GDB behind the DAP endpoints and the symbolic debug API.
#[derive(SimpleObject)]
#[graphql(name = "Debugger")]
pub struct DebuggerObject {
    path: String,
    /// As GDB prints it, e.g. "18.1".
    version: String,
    /// True when this GDB serves the Debug Adapter Protocol (>= 14, with Python).
    dap: bool,
}

#[derive(Default)]
pub struct IdeQuery;

#[Object]
impl IdeQuery {
    /// The GDB the server runs for DAP and GDB/MI (`gdb_path`, `VIRSERVER_GDB`, else the
    /// newest found); GDB_UNAVAILABLE names what to install when there is none.
    async fn debugger(&self, ctx: &Context<'_>) -> ApiResult<DebuggerObject> {
        let gdb = app(ctx).gdb.get().await?;
        Ok(DebuggerObject {
            path: gdb.path.display().to_string(),
            version: gdb.version,
            dap: gdb.dap,
        })
    }
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum RunEventKind {
    Stopped,
    Resumed,
}

/// A stop or resume of a session's CPU.
#[derive(SimpleObject)]
#[graphql(name = "RunEvent")]
pub struct RunEventObject {
    kind: RunEventKind,
    /// STOPPED: the stop reply as the stub sent it (`T05...`).
    stop: Option<String>,
    /// RESUMED: `client N` (a GDB client of the gateway), `api` or `gateway`.
    by: Option<String>,
    /// RESUMED: a single or range step rather than a continue.
    step: bool,
}

impl From<RunEvent> for RunEventObject {
    fn from(event: RunEvent) -> Self {
        match event {
            RunEvent::Stopped(stop) => Self {
                kind: RunEventKind::Stopped,
                stop: Some(stop.raw),
                by: None,
                step: false,
            },
            RunEvent::Resumed(resume) => Self {
                kind: RunEventKind::Resumed,
                stop: None,
                by: Some(match resume.by {
                    ResumedBy::Client(id) => format!("client {id}"),
                    ResumedBy::Api => "api".into(),
                    ResumedBy::Gateway => "gateway".into(),
                }),
                step: resume.step,
            },
        }
    }
}

#[derive(Default)]
pub struct IdeSubscription;

#[Subscription]
impl IdeSubscription {
    /// Every stop and resume of a powered session's CPU from now on, whoever caused it
    /// (GDB clients, editors, the API). Not recorded in the session's history: a `next`
    /// is several of them. Ends when the session powers off.
    async fn run_events(
        &self,
        ctx: &Context<'_>,
        session_id: ID,
    ) -> async_graphql::Result<impl Stream<Item = RunEventObject> + use<>> {
        crate::auth::guard::check(ctx, "runEvents", &[&session_id]).await?;
        let app = app(ctx).clone();
        let events = app
            .sessions
            .run_events(&session_id)
            .await
            .map_err(to_graphql)?;
        Ok(events
            .take_until(app.shutdown.clone().cancelled_owned())
            .map(RunEventObject::from))
    }
}
