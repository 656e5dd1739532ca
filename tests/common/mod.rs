//! The test harness: the real `virserver` binary on port 0 with a private data dir, a
//! GraphQL client over HTTP (JSON and multipart uploads), and graphql-transport-ws
//! subscriptions over a real WebSocket.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

pub const JOB: &str = "query($id: ID!) { job(id: $id) { id state exitCode node failureReason attempt uartLog junit lcov session { id } } }";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `virserver keys create` on `data_dir`'s database; the token from its last line.
pub fn create_key(data_dir: &Path, name: &str, role: &str) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_virserver"))
        .args(["keys", "create", "--name", name, "--role", role])
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let token = stdout.lines().last().unwrap().to_owned();
    assert!(token.starts_with("vsk_") && token.len() > 60, "{stdout}");
    token
}

pub fn firmware(name: &str) -> PathBuf {
    repo().join("examples/firmware/bin").join(name)
}

pub struct Server {
    pub child: Child,
    pub base: String,
    pub data_dir: PathBuf,
    http: reqwest::Client,
    /// The API key's token every request sends (`act_as`); none by default.
    token: std::sync::Mutex<Option<String>>,
}

impl Server {
    /// Starts `virserver serve` on 127.0.0.1:0 with `data_dir` and extra flags.
    pub async fn start(data_dir: &Path, extra: &[&str]) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_virserver"));
        command
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra);
        Server::spawn(command, data_dir).await
    }

    /// Runs a prepared `virserver serve` command (any binary, any working directory)
    /// that listens on port 0 and keeps its data in `data_dir`; its log goes beside it.
    pub async fn spawn(mut command: Command, data_dir: &Path) -> Server {
        // reqwest is built with rustls and no provider of its own, as in the binary.
        virserver::tls::install_provider();
        command
            .env("VIRSERVER_LOG", "info,virserver=debug")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(data_dir.with_extension("log")).unwrap())
            .kill_on_drop(true);
        let mut child = command.spawn().expect("start virserver");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("server did not announce its address")
            .unwrap()
            .unwrap_or_else(|| panic!("server exited: {}", log_of(data_dir)));
        let base = line
            .strip_prefix("virserver listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line}"))
            .to_owned();
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Server {
            child,
            base,
            data_dir: data_dir.to_owned(),
            http: reqwest::Client::new(),
            token: std::sync::Mutex::new(None),
        }
    }

    /// Makes every later request (HTTP and subscriptions) carry `token`, or none.
    pub fn act_as(&self, token: Option<&str>) {
        *self.token.lock().unwrap() = token.map(str::to_owned);
    }

    fn token(&self) -> Option<String> {
        self.token.lock().unwrap().clone()
    }

    fn post(&self) -> reqwest::RequestBuilder {
        let request = self.http.post(format!("{}/graphql", self.base));
        match self.token() {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    pub fn log(&self) -> String {
        log_of(&self.data_dir)
    }

    /// POSTs a query; returns the whole response (data and errors).
    pub async fn request(&self, query: &str, variables: Value) -> Value {
        self.post()
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// A query that must succeed; returns `data`.
    pub async fn query(&self, query: &str, variables: Value) -> Value {
        let response = self.request(query, variables).await;
        if response.get("errors").is_some() {
            // An INTERNAL error's cause is only in the server's log.
            let log = self.log();
            let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
            panic!("{query}: {response}\nserver errors:\n{}", errors.join("\n"));
        }
        response["data"].clone()
    }

    /// The `extensions.code` of the first error of a query that must fail.
    pub async fn error_code(&self, query: &str, variables: Value) -> String {
        let response = self.request(query, variables).await;
        response["errors"][0]["extensions"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no error code in {response}"))
            .to_owned()
    }

    pub async fn create_session(&self, board: &str) -> String {
        let data = self
            .query(
                "mutation($board: ID!) { createSession(input: {name: \"test\", backend: QEMU, boardTemplate: $board}) { id state } }",
                json!({ "board": board }),
            )
            .await;
        assert_eq!(data["createSession"]["state"], "CREATED");
        data["createSession"]["id"].as_str().unwrap().to_owned()
    }

    /// Sends one file with the GraphQL multipart request spec: `operations` with a null
    /// where the file goes, `path` naming that place; returns the whole response.
    pub async fn multipart(
        &self,
        operations: Value,
        path: &str,
        name: &str,
        bytes: Vec<u8>,
    ) -> Value {
        let form = reqwest::multipart::Form::new()
            .text("operations", operations.to_string())
            .text("map", json!({ "0": [path] }).to_string())
            .part(
                "0",
                reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned()),
            );
        self.post()
            .multipart(form)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Uploads a program to a session; returns the response.
    pub async fn upload_bytes(&self, session: &str, name: &str, bytes: Vec<u8>) -> Value {
        let operations = json!({
            "query": "mutation($s: ID!, $f: Upload!) { uploadProgram(sessionId: $s, file: $f) { id name sha256 entryPoint } }",
            "variables": { "s": session, "f": null },
        });
        self.multipart(operations, "variables.f", name, bytes).await
    }

    /// Uploads example firmware; returns the program id.
    pub async fn upload(&self, session: &str, firmware_name: &str) -> String {
        let bytes = std::fs::read(firmware(firmware_name)).unwrap();
        let response = self.upload_bytes(session, firmware_name, bytes).await;
        assert!(response.get("errors").is_none(), "{response}");
        response["data"]["uploadProgram"]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn power(&self, session: &str, action: &str, halted: bool) -> Value {
        self.query(
            "mutation($id: ID!, $a: PowerAction!, $h: Boolean) { powerSession(id: $id, action: $a, halted: $h) { id state exitCode } }",
            json!({ "id": session, "a": action, "h": halted }),
        )
        .await["powerSession"]
            .clone()
    }

    /// A powered session's GDB endpoint, `HOST:PORT`.
    pub async fn gdb_address(&self, session: &str) -> String {
        self.query(
            "query($s: ID!) { session(id: $s) { gdbAddress } }",
            json!({ "s": session }),
        )
        .await["session"]["gdbAddress"]
            .as_str()
            .expect("a powered session has a GDB endpoint")
            .to_owned()
    }

    /// A powered session's DAP endpoint, `HOST:PORT`.
    pub async fn dap_address(&self, session: &str) -> String {
        self.query(
            "query($s: ID!) { session(id: $s) { dapAddress } }",
            json!({ "s": session }),
        )
        .await["session"]["dapAddress"]
            .as_str()
            .expect("a powered session has a DAP endpoint")
            .to_owned()
    }

    pub async fn session(&self, session: &str) -> Value {
        self.query(
            "query($id: ID!) { session(id: $id) { id name state exitCode stateReason emulatorPid uartText board { id } programs { id } } }",
            json!({ "id": session }),
        )
        .await["session"]
            .clone()
    }

    /// Polls until the session reaches `state` (or fails after 30 s).
    pub async fn wait_state(&self, session: &str, state: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let current = self.session(session).await;
            if current["state"] == state {
                return current;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "session never reached {state}: {current}\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls until the session's console holds `text`.
    pub async fn wait_uart(&self, session: &str, text: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let uart = self.session(session).await["uartText"]
                .as_str()
                .unwrap()
                .to_owned();
            if uart.contains(text) {
                return uart;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {text:?} in {uart:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Creates a job with example firmware uploaded in the same request; returns the
    /// whole response.
    pub async fn create_job(&self, firmware_name: &str, mut input: Value) -> Value {
        input["program"] = Value::Null;
        let operations = json!({
            "query": "mutation($i: CreateJobInput!) { createJob(input: $i) { id state } }",
            "variables": { "i": input },
        });
        let bytes = std::fs::read(firmware(firmware_name)).unwrap();
        self.multipart(operations, "variables.i.program", firmware_name, bytes)
            .await
    }

    /// Polls the job until it is in one of `states` (or fails after 60 s).
    pub async fn wait_job(&self, id: &str, states: &[&str]) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let job = self.query(JOB, json!({ "id": id })).await["job"].clone();
            if states.iter().any(|s| job["state"] == *s) {
                return job;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "job stuck: {job}\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn subscribe(&self, query: &str, variables: Value) -> Subscription {
        Subscription::open(&self.base, self.token(), query, variables).await
    }

    /// SIGTERM, then wait for the process to exit; returns its exit code.
    pub async fn terminate(mut self) -> Option<i32> {
        let pid = self.child.id().unwrap() as i32;
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("server did not stop after SIGTERM")
            .unwrap();
        status.code()
    }
}

fn log_of(data_dir: &Path) -> String {
    std::fs::read_to_string(data_dir.with_extension("log")).unwrap_or_default()
}

/// gdb-multiarch in batch mode with the symbols of example firmware `elf`, attached to
/// `address`, then running `commands` (one `-ex` each); its output, within 60 s.
pub async fn gdb_batch(elf: &str, address: &str, commands: &[&str]) -> std::process::Output {
    let mut command = Command::new("gdb-multiarch");
    command
        .current_dir(repo())
        .args([
            "-nx",
            "-batch",
            "-ex",
            "set pagination off",
            "-ex",
            "set confirm off",
        ])
        .arg("-ex")
        .arg(format!("file {}", firmware(elf).display()))
        .arg("-ex")
        .arg(format!("target extended-remote {address}"));
    for each in commands {
        command.args(["-ex", each]);
    }
    tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("gdb finished")
        .expect("gdb-multiarch runs")
}

pub fn process_alive(pid: i64) -> bool {
    // A zombie has exited; only a process still running counts.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.contains(") Z "),
        Err(_) => false,
    }
}

/// One graphql-transport-ws subscription on its own WebSocket.
pub struct Subscription {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl Subscription {
    async fn open(
        base: &str,
        token: Option<String>,
        query: &str,
        variables: Value,
    ) -> Subscription {
        let url = format!("{}/graphql", base.replace("http://", "ws://"));
        let mut request = url.into_client_request().unwrap();
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "graphql-transport-ws".parse().unwrap(),
        );
        let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        socket
            .send(Message::text(
                match token {
                    Some(token) => json!({ "type": "connection_init",
                                           "payload": { "authorization": format!("Bearer {token}") } }),
                    None => json!({ "type": "connection_init" }),
                }
                .to_string(),
            ))
            .await
            .unwrap();
        let ack = next_json(&mut socket).await.expect("connection_ack");
        assert_eq!(ack["type"], "connection_ack", "{ack}");
        socket
            .send(Message::text(
                json!({ "id": "1", "type": "subscribe", "payload": { "query": query, "variables": variables } })
                    .to_string(),
            ))
            .await
            .unwrap();
        Subscription { socket }
    }

    /// The next protocol message as it came, or `None` after 30 s of nothing.
    pub async fn next_message(&mut self) -> Option<Value> {
        tokio::time::timeout(Duration::from_secs(30), next_json(&mut self.socket))
            .await
            .ok()?
    }

    /// The next `next` payload's data, or the whole message if it is something else.
    /// `None` when the stream ended or nothing came for 30 s.
    pub async fn next(&mut self) -> Option<Value> {
        let message = self.next_message().await?;
        match message["type"].as_str() {
            Some("next") => Some(message["payload"]["data"].clone()),
            Some("complete") => None,
            _ => Some(message),
        }
    }
}

async fn next_json(
    socket: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Option<Value> {
    while let Some(message) = socket.next().await {
        match message.ok()? {
            Message::Text(text) => return serde_json::from_str(&text).ok(),
            Message::Close(_) => return None,
            _ => continue,
        }
    }
    None
}

/// A fresh database on the machine's PostgreSQL for one test, dropped afterwards.
pub struct PostgresDatabase {
    name: String,
}

const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432";

impl PostgresDatabase {
    pub async fn create() -> Self {
        use sea_orm::ConnectionTrait;
        let name = format!("virserver_test_{}", uuid::Uuid::new_v4().simple());
        let admin = sea_orm::Database::connect(format!("{POSTGRES}/test"))
            .await
            .expect("PostgreSQL on 127.0.0.1:5432 (database test) must be running");
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        Self { name }
    }

    pub fn url(&self) -> String {
        format!("{POSTGRES}/{}", self.name)
    }

    pub async fn drop_database(self) {
        use sea_orm::ConnectionTrait;
        let admin = sea_orm::Database::connect(format!("{POSTGRES}/test"))
            .await
            .unwrap();
        admin
            .execute_unprepared(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await
            .unwrap();
    }
}
