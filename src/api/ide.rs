//! What editors need from the API: which GDB serves their DAP connections. (The
//! per-session endpoint is `Session.dapAddress`, in `sessions.rs`.)

use async_graphql::{Context, Object, SimpleObject};

use super::errors::ApiResult;
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
