//! `virserver dap --server URL`: the stdio adapter an editor starts, with its session
//! operations done through the server's GraphQL API (HTTP for queries and the upload,
//! graphql-transport-ws for the console), and its GDB beside the editor, where the
//! sources are.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use virserver_dap::{BridgeConfig, OpError, Ready};

use super::{GdbLaunch, RunFeed, SessionOps, UartFeed};
use crate::gdb::GdbLocator;

#[derive(Debug, clap::Args)]
pub struct DapCommand {
    /// The server's base URL, e.g. http://127.0.0.1:8080
    #[arg(long, env = "VIRSERVER_SERVER")]
    pub server: String,
    /// Attach to this session (else the session comes from `launch` or `attach`).
    #[arg(long, conflicts_with_all = ["board", "program"])]
    pub session: Option<String>,
    /// Launch on this board (with --program) whatever `launch` names.
    #[arg(long, requires = "program")]
    pub board: Option<String>,
    /// The ELF to launch (with --board).
    #[arg(long, requires = "board")]
    pub program: Option<PathBuf>,
    /// The GDB to run (>= 14 with Python); default: see `virserver debugger`.
    #[arg(long = "gdb", env = "VIRSERVER_GDB")]
    pub gdb: Option<PathBuf>,
    /// The API key's token, for a server with `--auth required`.
    #[arg(long, env = "VIRSERVER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// Runs the adapter on stdin/stdout. Logs go to stderr, never to stdout (the protocol).
pub async fn run(command: DapCommand) -> anyhow::Result<()> {
    let gdb = GdbLocator::new(command.gdb.clone())
        .get()
        .await?
        .require_dap()?
        .clone();
    let ops = Arc::new(RemoteOps::new(&command.server, command.token.clone())?);
    let launch_defaults = command
        .board
        .zip(command.program)
        .map(|(board, program)| (board, program.display().to_string()));
    // Capabilities are answered before the attach: only a session named on the
    // command line can offer stepping back.
    let reverse = match &command.session {
        Some(session) => ops.replays(session).await,
        None => false,
    };
    let config = BridgeConfig {
        session: command.session,
        confined: false,
        launch_defaults,
        reverse,
    };
    let launch = GdbLaunch {
        gdb,
        confined: None,
    };
    super::serve(
        tokio::io::stdin(),
        tokio::io::stdout(),
        &launch,
        ops,
        config,
    )
    .await
}

/// Session operations through the GraphQL API.
pub struct RemoteOps {
    base: String,
    http: reqwest::Client,
    /// Sent in every request and in each subscription's `connection_init`.
    token: Option<String>,
    /// Programs downloaded for an attach, removed when the adapter ends.
    downloads: tempfile::TempDir,
}

impl RemoteOps {
    pub fn new(server: &str, token: Option<String>) -> anyhow::Result<Self> {
        reqwest::Url::parse(server).with_context(|| format!("--server {server:?} is not a URL"))?;
        Ok(Self {
            base: server.trim_end_matches('/').to_owned(),
            http: crate::auth::bearer_client(token.as_deref())?,
            token,
            downloads: tempfile::Builder::new()
                .prefix("virserver-dap-")
                .tempdir()?,
        })
    }

    async fn graphql(&self, query: &str, variables: Value) -> Result<Value, OpError> {
        let request = self
            .http
            .post(format!("{}/graphql", self.base))
            .json(&json!({ "query": query, "variables": variables }));
        answer(request).await
    }

    /// Whether the session replays a recording (false when that cannot be told).
    async fn replays(&self, session_id: &str) -> bool {
        self.graphql(
            "query($id: ID!) { session(id: $id) { replayOf { id } } }",
            json!({ "id": session_id }),
        )
        .await
        .is_ok_and(|data| data["session"]["replayOf"]["id"].is_string())
    }

    async fn gdb_address(&self, session_id: &str) -> Result<(String, Option<String>), OpError> {
        let data = self
            .graphql(
                "query($id: ID!) { session(id: $id) { state gdbAddress currentProgram { id } } }",
                json!({ "id": session_id }),
            )
            .await?;
        let session = &data["session"];
        if session.is_null() {
            return Err(OpError(format!("no session {session_id}")));
        }
        let address = session["gdbAddress"].as_str().ok_or_else(|| {
            OpError(format!(
                "session {session_id} is {} and has no GDB endpoint: power it on first",
                session["state"].as_str().unwrap_or("not powered")
            ))
        })?;
        let program = session["currentProgram"]["id"].as_str().map(str::to_owned);
        if self.token.is_none() {
            return Ok((address.to_owned(), program));
        }
        // A server that requires keys takes GDB clients through tickets only.
        let ticket = self
            .graphql(
                "mutation($id: ID!) { createAttachTicket(sessionId: $id) { address } }",
                json!({ "id": session_id }),
            )
            .await?;
        let address = ticket["createAttachTicket"]["address"]
            .as_str()
            .ok_or_else(|| OpError("the server answered no ticket address".into()))?;
        Ok((address.to_owned(), program))
    }
}

#[async_trait::async_trait]
impl SessionOps for RemoteOps {
    async fn launch(&self, board: &str, program: &str, coverage: bool) -> Result<Ready, OpError> {
        let program = PathBuf::from(program);
        let program = std::fs::canonicalize(&program)
            .map_err(|error| OpError(format!("cannot read {}: {error}", program.display())))?;
        let bytes = std::fs::read(&program)
            .map_err(|error| OpError(format!("cannot read {}: {error}", program.display())))?;
        let name = program
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_else(|| "program".into());
        let created = self
            .graphql(
                "mutation($i: CreateSessionInput!) { createSession(input: $i) { id } }",
                json!({ "i": { "name": format!("dap: {name}"), "backend": "QEMU",
                               "boardTemplate": board, "coverage": coverage } }),
            )
            .await?;
        let session_id = created["createSession"]["id"]
            .as_str()
            .ok_or_else(|| OpError("the server answered no session id".into()))?
            .to_owned();
        let upload =
            "mutation($s: ID!, $f: Upload!) { uploadProgram(sessionId: $s, file: $f) { id } }";
        let form = reqwest::multipart::Form::new()
            .text(
                "operations",
                json!({ "query": upload, "variables": { "s": session_id, "f": null } }).to_string(),
            )
            .text("map", json!({ "0": ["variables.f"] }).to_string())
            .part("0", reqwest::multipart::Part::bytes(bytes).file_name(name));
        let uploaded = answer(
            self.http
                .post(format!("{}/graphql", self.base))
                .multipart(form),
        )
        .await;
        let powered = match uploaded {
            Ok(_) => {
                self.graphql(
                    "mutation($id: ID!) { powerSession(id: $id, action: ON, halted: true) { state } }",
                    json!({ "id": session_id }),
                )
                .await
            }
            Err(error) => Err(error),
        };
        if let Err(error) = powered {
            // Nothing half-made stays behind.
            let _ = self
                .graphql(
                    "mutation($id: ID!) { deleteSession(id: $id) }",
                    json!({ "id": session_id }),
                )
                .await;
            return Err(error);
        }
        let (gdb_address, _) = self.gdb_address(&session_id).await?;
        Ok(Ready {
            session_id,
            gdb_address,
            program: program.display().to_string(),
        })
    }

    async fn attach(&self, session_id: &str, program: Option<&str>) -> Result<Ready, OpError> {
        let (gdb_address, program_id) = self.gdb_address(session_id).await?;
        let program = match program {
            Some(path) => path.to_owned(),
            None => {
                let id = program_id
                    .ok_or_else(|| OpError(format!("session {session_id} has no program")))?;
                self.download(&id).await?
            }
        };
        Ok(Ready {
            session_id: session_id.to_owned(),
            gdb_address,
            program,
        })
    }

    async fn power_off(&self, session_id: &str) -> Result<(), OpError> {
        self.graphql(
            "mutation($id: ID!) { powerSession(id: $id, action: OFF) { state } }",
            json!({ "id": session_id }),
        )
        .await
        .map(drop)
    }

    /// Not beside the editor: `runEvents` reaches this adapter later than its own
    /// GDB's stop, so a notice of the adapter's own `next` would look like someone
    /// else's run. Others' halts still arrive, through its GDB, as `pause` whenever it
    /// waits on a run of its own.
    async fn run_events(&self, _session_id: &str) -> Result<RunFeed, OpError> {
        Err(OpError(
            "run events are not correlated with this adapter's own GDB".into(),
        ))
    }

    async fn uart(&self, session_id: &str) -> Result<UartFeed, OpError> {
        let mut chunks = self
            .subscribe(
                "subscription($s: ID!) { uartOutput(sessionId: $s) { data dropped } }",
                json!({ "s": session_id }),
            )
            .await?;
        let (sender, receiver) = mpsc::channel(256);
        tokio::spawn(async move {
            while let Some(data) = chunks.recv().await {
                let chunk = &data["uartOutput"];
                let text = chunk["data"].as_str().unwrap_or_default().to_owned();
                let dropped = chunk["dropped"].as_u64().unwrap_or(0);
                if sender.send((text, dropped)).await.is_err() {
                    break;
                }
            }
        });
        Ok(receiver)
    }
}

impl RemoteOps {
    /// A GraphQL subscription over graphql-transport-ws: each event's `data`.
    async fn subscribe(
        &self,
        query: &str,
        variables: Value,
    ) -> Result<mpsc::Receiver<Value>, OpError> {
        let url = format!("{}/graphql", self.base.replacen("http", "ws", 1));
        let mut request = url
            .into_client_request()
            .map_err(|error| OpError(format!("bad server URL: {error}")))?;
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "graphql-transport-ws".parse().expect("a valid header"),
        );
        let (mut socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .map_err(|error| OpError(format!("subscription: {error}")))?;
        let subscribe = json!({ "id": "1", "type": "subscribe",
                                "payload": { "query": query, "variables": variables } });
        let init = match &self.token {
            Some(token) => json!({ "type": "connection_init",
                                   "payload": { "authorization": format!("Bearer {token}") } }),
            None => json!({ "type": "connection_init" }),
        };
        for message in [init, subscribe] {
            socket
                .send(Message::Text(message.to_string().into()))
                .await
                .map_err(|error| OpError(format!("subscription: {error}")))?;
        }
        let (sender, receiver) = mpsc::channel(256);
        tokio::spawn(async move {
            while let Some(Ok(message)) = socket.next().await {
                let Message::Text(text) = message else {
                    continue;
                };
                let Ok(value) = serde_json::from_str::<Value>(&text) else {
                    continue;
                };
                match value["type"].as_str() {
                    // The reader went away: so does the subscription.
                    Some("next")
                        if sender.send(value["payload"]["data"].clone()).await.is_err() =>
                    {
                        break;
                    }
                    Some("ping") => {
                        let pong = json!({ "type": "pong" }).to_string();
                        let _ = socket.send(Message::Text(pong.into())).await;
                    }
                    Some("complete" | "error") => break,
                    _ => {}
                }
            }
        });
        Ok(receiver)
    }
}

impl RemoteOps {
    /// The session's program, for GDB's symbols, into a directory of this adapter.
    async fn download(&self, program_id: &str) -> Result<String, OpError> {
        let response = self
            .http
            .get(format!("{}/programs/{program_id}", self.base))
            .send()
            .await
            .map_err(|error| OpError(format!("cannot reach the server: {error}")))?;
        if !response.status().is_success() {
            return Err(OpError(format!(
                "downloading program {program_id}: HTTP {}",
                response.status()
            )));
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|error| OpError(format!("downloading program {program_id}: {error}")))?;
        let path = self.downloads.path().join(format!("{program_id}.elf"));
        std::fs::write(&path, &bytes)
            .map_err(|error| OpError(format!("cannot write {}: {error}", path.display())))?;
        Ok(path.display().to_string())
    }
}

/// A GraphQL answer's `data`, or its first error's message (and code).
async fn answer(request: reqwest::RequestBuilder) -> Result<Value, OpError> {
    let response = request
        .send()
        .await
        .map_err(|error| OpError(format!("cannot reach the server: {error}")))?;
    let body: Value = response
        .json()
        .await
        .map_err(|error| OpError(format!("the server's answer is not JSON: {error}")))?;
    if let Some(error) = body["errors"].as_array().and_then(|errors| errors.first()) {
        let message = error["message"].as_str().unwrap_or("error");
        return Err(OpError(match error["extensions"]["code"].as_str() {
            Some(code) => format!("{message} ({code})"),
            None => message.to_owned(),
        }));
    }
    Ok(body["data"].clone())
}
