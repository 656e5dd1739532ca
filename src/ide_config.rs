//! `virserver ide-config`: what an editor or a GDB needs to attach to a session, printed
//! ready to paste: a launch.json entry for VirServer's own debugger type or for
//! cortex-debug (`servertype: external`), or a `.gdbinit`. Read from the server's API,
//! so the addresses are the session's current ones. With an API key (`--token`, for a
//! server with `--auth required`, whose GDB endpoints take tickets only) the GDB address
//! of a cortex-debug entry or a .gdbinit is a one-time ticket's, valid for one
//! connection within `--ticket-ttl` seconds; the `virserver` entry needs none (`virserver
//! dap` asks for its own ticket).

use anyhow::Context;
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IdeKind {
    /// A launch.json entry for cortex-debug, `servertype: external` on the gateway.
    CortexDebug,
    /// A launch.json entry of type `virserver` (the VS Code extension's debugger).
    Virserver,
    /// A .gdbinit for gdb-multiarch or any GDB.
    Gdb,
}

#[derive(Debug, clap::Args)]
pub struct IdeConfigCommand {
    /// The server's base URL, e.g. http://127.0.0.1:8080
    #[arg(long, env = "VIRSERVER_SERVER")]
    pub server: String,
    /// The session to attach to.
    #[arg(long)]
    pub session: String,
    #[arg(long, value_enum)]
    pub kind: IdeKind,
    /// The API key's token, for a server with `--auth required`.
    #[arg(long, env = "VIRSERVER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// With a token: how long the one-time GDB address stays open, in seconds.
    #[arg(long, default_value_t = 300)]
    pub ticket_ttl: u32,
}

const QUERY: &str =
    "query($id: ID!) { session(id: $id) { id name state gdbAddress currentProgram { name } } }";

const TICKET: &str = "mutation($id: ID!, $ttl: Int!) { createAttachTicket(sessionId: $id, ttlSeconds: $ttl) { address } }";

pub async fn print(command: IdeConfigCommand) -> anyhow::Result<()> {
    let url = format!("{}/graphql", command.server.trim_end_matches('/'));
    let client = crate::auth::bearer_client(command.token.as_deref())?;
    let ask = |query: &str, variables: Value| {
        crate::auth::graphql(
            client
                .post(&url)
                .json(&json!({ "query": query, "variables": variables })),
        )
    };
    let mut session = ask(QUERY, json!({ "id": command.session })).await?["session"].take();
    let needs_gdb = command.kind != IdeKind::Virserver;
    if command.token.is_some() && needs_gdb && !session["gdbAddress"].is_null() {
        let ticket = ask(
            TICKET,
            json!({ "id": command.session, "ttl": command.ticket_ttl }),
        )
        .await?;
        session["gdbAddress"] = ticket["createAttachTicket"]["address"].clone();
        eprintln!(
            "virserver: the GDB address is a one-time ticket: one connection within {} s",
            command.ticket_ttl
        );
    }
    print!("{}", render(command.kind, &command.server, &session)?);
    Ok(())
}

/// The text for one session (the `session` object of [`QUERY`]).
pub fn render(kind: IdeKind, server: &str, session: &Value) -> anyhow::Result<String> {
    let id = session["id"].as_str().context("no such session")?;
    let name = session["name"].as_str().unwrap_or(id);
    let program = session["currentProgram"]["name"].as_str();
    let gdb_address = || {
        session["gdbAddress"].as_str().with_context(|| {
            format!(
                "session {id} is {} and has no GDB endpoint: power it on first",
                session["state"].as_str().unwrap_or("not powered")
            )
        })
    };
    let executable = format!("${{workspaceFolder}}/{}", program.unwrap_or("firmware.elf"));
    let text = match kind {
        IdeKind::Virserver => pretty(&json!({
            "type": "virserver",
            "request": "attach",
            "name": format!("VirServer: {name}"),
            "server": server,
            "sessionId": id,
        })),
        IdeKind::CortexDebug => pretty(&json!({
            "type": "cortex-debug",
            "request": "attach",
            "name": format!("VirServer (cortex-debug): {name}"),
            "servertype": "external",
            "gdbTarget": gdb_address()?,
            "executable": executable,
            "gdbPath": "gdb-multiarch",
            "cwd": "${workspaceFolder}",
        })),
        IdeKind::Gdb => {
            let file = program.map(|p| format!("file {p}\n")).unwrap_or_default();
            format!(
                "# VirServer session {id} ({name})\n{file}target extended-remote {}\n",
                gdb_address()?
            )
        }
    };
    Ok(text)
}

fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("JSON values serialise");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(gdb: Option<&str>) -> Value {
        json!({"id": "s1", "name": "demo", "state": if gdb.is_some() { "RUNNING" } else { "STOPPED" },
               "gdbAddress": gdb, "currentProgram": {"name": "ticker.elf"}})
    }

    #[test]
    fn each_kind_names_the_session_and_its_gateway() {
        let server = "http://127.0.0.1:8080";
        let cortex: Value = serde_json::from_str(
            &render(
                IdeKind::CortexDebug,
                server,
                &session(Some("127.0.0.1:4000")),
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(cortex["servertype"], "external");
        assert_eq!(cortex["gdbTarget"], "127.0.0.1:4000");
        assert_eq!(cortex["executable"], "${workspaceFolder}/ticker.elf");
        let ours: Value =
            serde_json::from_str(&render(IdeKind::Virserver, server, &session(None)).unwrap())
                .unwrap();
        assert_eq!(
            (ours["type"].as_str(), ours["sessionId"].as_str()),
            (Some("virserver"), Some("s1"))
        );
        let gdbinit = render(IdeKind::Gdb, server, &session(Some("127.0.0.1:4000"))).unwrap();
        assert!(
            gdbinit.contains("file ticker.elf\ntarget extended-remote 127.0.0.1:4000\n"),
            "{gdbinit}"
        );
    }

    #[test]
    fn a_session_without_gateway_is_a_clear_error() {
        let error = render(IdeKind::Gdb, "http://x", &session(None)).unwrap_err();
        assert!(error.to_string().contains("power it on"), "{error}");
        assert!(render(IdeKind::Gdb, "http://x", &Value::Null).is_err());
    }
}
