//! The Debug Adapter Protocol end to end: a DAP client drives the real `virserver dap`
//! stdio adapter (which runs a real GDB >= 14 with DAP) against a real server and QEMU,
//! and sessions' own `dapAddress` endpoints over TCP, two clients at once.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{Server, firmware, repo};
use serde_json::{Value, json};
use tokio::process::{Child, Command};
use virserver::dap::client::{DapClient, WAIT};

const TICKER: &str = "ticker-mps2-an385.elf";

fn ticker_source() -> String {
    repo()
        .join("examples/firmware/programs/ticker.c")
        .display()
        .to_string()
}

/// `virserver dap --server URL` with its stdio as the client's stream.
fn adapter(server: &Server, extra: &[&str]) -> (Child, DapClient) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_virserver"))
        .arg("dap")
        .arg("--server")
        .arg(&server.base)
        .args(extra)
        // From another directory: nothing may depend on the project root.
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start virserver dap");
    let client = DapClient::new(child.stdout.take().unwrap(), child.stdin.take().unwrap());
    (child, client)
}

async fn initialize(client: &mut DapClient) -> Value {
    client
        .call(
            "initialize",
            json!({"adapterID": "virserver", "linesStartAt1": true, "columnsStartAt1": true, "pathFormat": "path"}),
        )
        .await.unwrap()
}

/// A breakpoint on `tick_count++` in tick(), verified.
async fn break_in_tick(client: &mut DapClient) {
    let body = client
        .call(
            "setBreakpoints",
            json!({"source": {"path": ticker_source()}, "breakpoints": [{"line": 21}]}),
        )
        .await
        .unwrap();
    assert_eq!(body["breakpoints"][0]["verified"], true, "{body}");
}

async fn top_frame(client: &mut DapClient, thread: &Value) -> Value {
    let body = client
        .call("stackTrace", json!({"threadId": thread, "levels": 20}))
        .await
        .unwrap();
    body["stackFrames"][0].clone()
}

async fn session_state(server: &Server, id: &str) -> String {
    server.session(id).await["state"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn debugger_names_a_gdb_that_serves_dap() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]).await;
    let debugger = server
        .query("{ debugger { path version dap } }", json!({}))
        .await["debugger"]
        .clone();
    assert_eq!(
        debugger["dap"], true,
        "scripts/install-deps.sh installs a GDB with DAP: {debugger}"
    );
    let major: u32 = debugger["version"]
        .as_str()
        .unwrap()
        .split('.')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(major >= 14, "{debugger}");
    let missing = tempfile::tempdir().unwrap();
    let without = Server::start(&missing.path().join("data"), &["--gdb", "/nonexistent/gdb"]).await;
    assert_eq!(
        without.error_code("{ debugger { path } }", json!({})).await,
        "GDB_UNAVAILABLE"
    );
}

#[tokio::test]
async fn launch_break_inspect_step_and_disconnect_through_the_stdio_adapter() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]).await;
    let (mut process, mut client) = adapter(&server, &[]);
    let capabilities = initialize(&mut client).await;
    assert_eq!(
        capabilities["supportsConfigurationDoneRequest"], true,
        "{capabilities}"
    );
    let launch = client
        .send(
            "launch",
            json!({"board": "mps2-an385", "program": firmware(TICKER), "stopOnEntry": false,
                   "cwd": repo()}),
        )
        .await
        .unwrap();
    client.event("initialized").await.unwrap();
    // Sent before configurationDone: the symbols are loaded, so it binds at once.
    break_in_tick(&mut client).await;
    client.call("configurationDone", json!({})).await.unwrap();
    let launched = client.response(launch).await.unwrap();
    assert_eq!(launched["success"], true, "{launched}");
    assert_eq!(launched["command"], "launch");

    let stopped = client.event("stopped").await.unwrap();
    assert_eq!(stopped["body"]["reason"], "breakpoint", "{stopped}");
    let thread = stopped["body"]["threadId"].clone();
    let frame = top_frame(&mut client, &thread).await;
    assert_eq!(frame["name"], "tick", "{frame}");
    assert_eq!(frame["line"], 21, "{frame}");
    assert!(
        frame["source"]["path"]
            .as_str()
            .unwrap()
            .ends_with("programs/ticker.c"),
        "{frame}"
    );

    let scopes = client
        .call("scopes", json!({"frameId": frame["id"]}))
        .await
        .unwrap();
    let names: Vec<&str> = scopes["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert!(names.contains(&"Registers"), "{scopes}");
    let registers = scopes["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "Registers")
        .unwrap();
    let variables = client
        .call(
            "variables",
            json!({"variablesReference": registers["variablesReference"]}),
        )
        .await
        .unwrap();
    assert!(
        variables["variables"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["name"] == "pc"),
        "{variables}"
    );

    let count = client
        .call(
            "evaluate",
            json!({"expression": "tick_count", "frameId": frame["id"], "context": "watch"}),
        )
        .await
        .unwrap();
    assert_eq!(count["result"], "0", "{count}");

    client
        .call("next", json!({"threadId": thread}))
        .await
        .unwrap();
    let stepped = client.event("stopped").await.unwrap();
    assert_eq!(stepped["body"]["reason"], "step", "{stepped}");
    assert_eq!(top_frame(&mut client, &thread).await["line"], 22);

    // One more tick: the UART line arrives as output, in order.
    client
        .call("continue", json!({"threadId": thread}))
        .await
        .unwrap();
    client.event("stopped").await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !client.output("stdout").contains("tick 1\n") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no UART output: {:?}",
            client.events
        );
        client.call("threads", json!({})).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let sessions = server.query("{ sessions { id state } }", json!({})).await;
    let session = sessions["sessions"][0]["id"].as_str().unwrap().to_owned();
    client
        .call("disconnect", json!({"terminateDebuggee": true}))
        .await
        .unwrap();
    client.closed().await.unwrap();
    assert!(process.wait().await.unwrap().success());
    assert_eq!(session_state(&server, &session).await, "STOPPED");
}

#[tokio::test]
async fn two_editors_attach_to_one_session_through_its_dap_address() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]).await;
    let session = server.create_session("mps2-an385").await;
    server.upload(&session, TICKER).await;
    server.power(&session, "ON", false).await;
    server.wait_uart(&session, "tick 1").await;
    let address = server.dap_address(&session).await;

    // What an IDE is told to attach with, from the built binary in another directory.
    let gdb_address = server.gdb_address(&session).await;
    for (kind, expected) in [
        ("gdb", format!("target extended-remote {gdb_address}\n")),
        ("cortex-debug", format!("\"gdbTarget\": \"{gdb_address}\"")),
        ("virserver", format!("\"sessionId\": \"{session}\"")),
    ] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_virserver"))
            .args([
                "ide-config",
                "--server",
                &server.base,
                "--session",
                &session,
                "--kind",
                kind,
            ])
            .current_dir(std::env::temp_dir())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && text.contains(&expected),
            "{kind}: {text}"
        );
    }

    let mut clients = Vec::new();
    for _ in 0..2 {
        let mut client = DapClient::tcp(&address).await.unwrap();
        initialize(&mut client).await;
        let attach = client
            .send("attach", json!({"sessionId": session}))
            .await
            .unwrap();
        client.event("initialized").await.unwrap();
        client.call("configurationDone", json!({})).await.unwrap();
        let attached = client.response(attach).await.unwrap();
        assert_eq!(attached["success"], true, "{attached}");
        clients.push(client);
    }
    // Each sees where the CPU is, with symbols loaded from the server's copy.
    for client in &mut clients {
        let threads = client.call("threads", json!({})).await.unwrap();
        let thread = threads["threads"][0]["id"].clone();
        let pause = client
            .send("pause", json!({"threadId": thread}))
            .await
            .unwrap();
        client.response(pause).await.unwrap();
        let frame = top_frame(client, &thread).await;
        assert!(frame["name"].is_string(), "{frame}");
        // The server's GDB runs no host commands.
        let refused = client
            .refused(
                "evaluate",
                json!({"expression": "shell touch /tmp/virserver-dap-pwned", "context": "repl"}),
            )
            .await
            .unwrap();
        assert!(refused.contains("not allowed"), "{refused}");
        let refused = client
            .refused(
                "evaluate",
                json!({"expression": "$_shell(\"id\")", "context": "watch"}),
            )
            .await
            .unwrap();
        assert!(refused.contains("$_shell"), "{refused}");
        client
            .call("continue", json!({"threadId": thread}))
            .await
            .unwrap();
    }
    assert!(!std::path::Path::new("/tmp/virserver-dap-pwned").exists());
    for client in &mut clients {
        client
            .call("disconnect", json!({"terminateDebuggee": true}))
            .await
            .unwrap();
        client.closed().await.unwrap();
    }
    // An attached session keeps running after its editors leave.
    let before = server.session(&session).await["uartText"]
        .as_str()
        .unwrap()
        .len();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let now = server.session(&session).await;
        if now["state"] == "RUNNING" && now["uartText"].as_str().unwrap().len() > before {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the session stopped: {now}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn bad_input_gets_dap_errors_or_a_clean_end() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]).await;
    let (mut process, mut client) = adapter(&server, &[]);
    initialize(&mut client).await;
    let missing = client
        .refused(
            "launch",
            json!({"board": "no-such-board", "program": firmware(TICKER)}),
        )
        .await
        .unwrap();
    assert!(missing.contains("no-such-board"), "{missing}");
    let dir_elf = dir.path().join("not.elf");
    std::fs::write(&dir_elf, b"this is no ELF").unwrap();
    let bad_elf = client
        .refused("launch", json!({"board": "mps2-an385", "program": dir_elf}))
        .await
        .unwrap();
    assert!(bad_elf.contains("BAD_ELF"), "{bad_elf}");
    // Nothing half-made stays behind.
    let sessions = server.query("{ sessions { id } }", json!({})).await;
    assert_eq!(sessions["sessions"], json!([]), "{sessions}");
    let unknown = client.refused("noSuchRequest", json!({})).await.unwrap();
    assert!(!unknown.is_empty());
    // Garbage: a clean end, the adapter exits and takes its GDB along.
    client.send_raw(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    client.closed().await.unwrap();
    let status = tokio::time::timeout(WAIT, process.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");

    // A session endpoint: garbage closes the connection, the endpoint keeps serving.
    let session = server.create_session("mps2-an385").await;
    server.upload(&session, TICKER).await;
    server.power(&session, "ON", true).await;
    let address = server.dap_address(&session).await;
    let mut garbage = DapClient::tcp(&address).await.unwrap();
    garbage
        .send_raw(b"Content-Length: 9999999999\r\n\r\n")
        .await
        .unwrap();
    garbage.closed().await.unwrap();
    let mut client = DapClient::tcp(&address).await.unwrap();
    initialize(&mut client).await;
    let other = client
        .refused("attach", json!({"sessionId": "another"}))
        .await
        .unwrap();
    assert!(other.contains(&session), "{other}");
    // A client that vanishes: its GDB goes too (no gdb left attached to the gateway).
    drop(client);
    server.power(&session, "OFF", false).await;
    let powered_off = server
        .query(
            "query($s: ID!) { session(id: $s) { dapAddress } }",
            json!({"s": session}),
        )
        .await;
    assert_eq!(powered_off["session"]["dapAddress"], Value::Null);
}

/// The pc of a client's top frame after a stop, as "0x...".
async fn client_pc(client: &mut DapClient) -> String {
    let frame = top_frame(client, &json!(1)).await;
    let pc = frame["instructionPointerReference"].as_str().unwrap();
    format!(
        "0x{:x}",
        u64::from_str_radix(pc.trim_start_matches("0x"), 16).unwrap()
    )
}

async fn api_pc(server: &Server, session: &str) -> String {
    let halted = server
        .query(
            "mutation($s: ID!) { haltSession(sessionId: $s) { pc } }",
            json!({"s": session}),
        )
        .await;
    let pc = halted["haltSession"]["pc"].as_str().unwrap();
    format!(
        "0x{:x}",
        u64::from_str_radix(pc.trim_start_matches("0x"), 16).unwrap()
    )
}

async fn api_continue(server: &Server, session: &str) {
    server
        .query(
            "mutation($s: ID!) { continueSession(sessionId: $s) }",
            json!({"s": session}),
        )
        .await;
}

/// Two editors, a gdb-multiarch and the API on one CPU through run/stop cycles: after
/// each, every client's view matches the CPU.
#[tokio::test]
async fn every_client_sees_the_stops_and_resumes_others_cause() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]).await;
    let session = server.create_session("mps2-an385").await;
    server.upload(&session, TICKER).await;
    server.power(&session, "ON", true).await;
    let address = server.dap_address(&session).await;
    let mut a = DapClient::tcp(&address).await.unwrap();
    let mut b = DapClient::tcp(&address).await.unwrap();
    for client in [&mut a, &mut b] {
        initialize(client).await;
        let attach = client.send("attach", json!({})).await.unwrap();
        client.event("initialized").await.unwrap();
        client.call("configurationDone", json!({})).await.unwrap();
        assert_eq!(client.response(attach).await.unwrap()["success"], true);
        client.event("stopped").await.unwrap();
    }

    // The API runs and halts the CPU: both editors hear of both.
    api_continue(&server, &session).await;
    for client in [&mut a, &mut b] {
        client.event("continued").await.unwrap();
    }
    server.wait_uart(&session, "tick 1").await;
    let pc = api_pc(&server, &session).await;
    for client in [&mut a, &mut b] {
        let stopped = client.event("stopped").await.unwrap();
        assert_eq!(stopped["body"]["reason"], "pause", "{stopped}");
        assert_eq!(
            client_pc(client).await,
            pc,
            "a client's view is not the CPU"
        );
    }

    // Again, with the CPU halted somewhere else.
    api_continue(&server, &session).await;
    for client in [&mut a, &mut b] {
        client.event("continued").await.unwrap();
    }
    let pc = api_pc(&server, &session).await;
    for client in [&mut a, &mut b] {
        let stopped = client.event("stopped").await.unwrap();
        assert_eq!(stopped["body"]["reason"], "pause", "{stopped}");
        assert_eq!(client_pc(client).await, pc);
    }
    // Editor A runs it; B hears of the run. The API halts it: A's GDB, waiting on its
    // continue, reports the stop as a pause; B is told by the bridge.
    a.call("continue", json!({"threadId": 1})).await.unwrap();
    b.event("continued").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pc = api_pc(&server, &session).await;
    for client in [&mut a, &mut b] {
        let stopped = client.event("stopped").await.unwrap();
        assert_eq!(stopped["body"]["reason"], "pause", "{stopped}");
        assert_eq!(client_pc(client).await, pc);
    }

    // A plain gdb-multiarch attaching now sees the same CPU.
    let gdb_address = server.gdb_address(&session).await;
    let output = tokio::process::Command::new("gdb-multiarch")
        .args(["-nx", "-batch", "-ex", "set architecture arm"])
        .arg("-ex")
        .arg(format!("target extended-remote {gdb_address}"))
        .args(["-ex", "printf \"pc=0x%x\\n\", $pc", "-ex", "detach"])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains(&format!("pc={pc}")), "{text}");
    for client in [&mut a, &mut b] {
        client.call("disconnect", json!({})).await.unwrap();
        client.closed().await.unwrap();
    }
}

/// `runEvents` streams every stop and resume of a session's CPU, with who resumed it.
#[tokio::test]
async fn run_events_say_every_stop_and_resume_and_who_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]).await;
    let session = server.create_session("mps2-an385").await;
    server.upload(&session, TICKER).await;
    server.power(&session, "ON", true).await;
    api_pc(&server, &session).await;
    let mut events = server
        .subscribe(
            "subscription($s: ID!) { runEvents(sessionId: $s) { kind stop by step } }",
            json!({"s": session}),
        )
        .await;
    // The stream starts a moment after the subscribe message: cycle until a whole
    // resume and stop of the API's arrive.
    let mut seen: Vec<Value> = Vec::new();
    for _ in 0..5 {
        api_continue(&server, &session).await;
        api_pc(&server, &session).await;
        while let Ok(Some(event)) =
            tokio::time::timeout(Duration::from_secs(5), events.next()).await
        {
            let kind = event["runEvents"]["kind"].clone();
            seen.push(event["runEvents"].clone());
            if kind == "STOPPED" {
                break;
            }
        }
        if seen.iter().any(|event| event["kind"] == "RESUMED") {
            break;
        }
    }
    let resumed = seen
        .iter()
        .position(|event| event["kind"] == "RESUMED")
        .unwrap_or_else(|| panic!("no RESUMED in {seen:?}"));
    assert_eq!(seen[resumed]["by"], "api", "{seen:?}");
    let stopped = seen[resumed + 1..]
        .iter()
        .find(|event| event["kind"] == "STOPPED")
        .unwrap_or_else(|| panic!("no STOPPED after the resume in {seen:?}"));
    assert!(
        stopped["stop"].as_str().unwrap().starts_with('T'),
        "{stopped}"
    );
}
