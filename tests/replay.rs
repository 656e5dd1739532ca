//! Record and replay end to end on real QEMU: a recorded session's run replayed byte for
//! byte, real gdb-multiarch executing backwards through the replay's gateway, the API's
//! reverseStep/reverseContinue, a console that shows each byte once, and debugJob of a
//! failed recorded job replaying to its failure.

mod common;

use std::time::Duration;

use common::Server;
use serde_json::{Value, json};

const SESSION: &str = "query($s: ID!) { session(id: $s) { state uartText instructions record recording { id instructions } replayOf { id } gdbAddress } }";
const REPLAY: &str =
    "mutation($r: ID!) { replaySession(recordingId: $r) { id state gdbAddress replayOf { id } } }";
const EVALUATE: &str =
    "query($s: ID!, $e: String!) { evaluate(sessionId: $s, expression: $e, frame: 0) { value } }";

async fn recorded_session(server: &Server, board: &str, elf: &str) -> String {
    let session = server
        .query(
            "mutation($b: ID!) { createSession(input: {name: \"rec\", backend: QEMU, boardTemplate: $b, record: true}) { id record } }",
            json!({ "b": board }),
        )
        .await["createSession"]
        .clone();
    assert_eq!(session["record"], true);
    let id = session["id"].as_str().unwrap().to_owned();
    server.upload(&id, elf).await;
    id
}

async fn session(server: &Server, id: &str) -> Value {
    server.query(SESSION, json!({ "s": id })).await["session"].clone()
}

async fn tick_count(server: &Server, session: &str) -> u64 {
    server
        .query(EVALUATE, json!({ "s": session, "e": "tick_count" }))
        .await["evaluate"]["value"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

fn ticks(text: &str) -> Vec<u64> {
    text.lines()
        .filter_map(|line| line.strip_prefix("tick ")?.parse().ok())
        .collect()
}

#[tokio::test]
async fn a_recorded_run_replays_and_executes_backwards() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]).await;
    let recorded = recorded_session(&server, "riscv32-virt", "ticker-riscv32-virt.elf").await;
    server.power(&recorded, "ON", false).await;
    server.wait_uart(&recorded, "tick 4\n").await;
    let live = session(&server, &recorded).await;
    assert!(live["instructions"].is_string(), "{live}");
    assert_eq!(
        server
            .error_code(REPLAY, json!({ "r": live["recording"]["id"] }))
            .await,
        "INVALID_STATE",
        "a recording still being made cannot be replayed"
    );
    server.power(&recorded, "OFF", false).await;
    let original = session(&server, &recorded).await;
    let recording = original["recording"]["id"].as_str().unwrap().to_owned();
    let recorded_text = original["uartText"].as_str().unwrap().to_owned();

    // Refused where there is no recording to move along.
    assert_eq!(
        server
            .error_code(
                "mutation($s: ID!) { createSnapshot(sessionId: $s, name: \"x\") { id } }",
                json!({ "s": recorded })
            )
            .await,
        "INVALID_STATE"
    );

    let replay = server.query(REPLAY, json!({ "r": recording })).await["replaySession"].clone();
    assert_eq!(replay["state"], "PAUSED", "{replay}");
    assert_eq!(replay["replayOf"]["id"], recording.as_str());
    let id = replay["id"].as_str().unwrap().to_owned();

    // gdb-multiarch through the replay's gateway: forward to the third tick, then back.
    let elf = common::firmware("ticker-riscv32-virt.elf");
    let script = [
        "set pagination off",
        "break tick",
        "continue",
        "continue",
        "continue",
        "printf \"AT=%d\\n\", tick_count",
        "reverse-stepi",
        "printf \"STEPPED=%d\\n\", tick_count",
        "reverse-continue",
        "printf \"BACK=%d\\n\", tick_count",
        "continue",
        "printf \"AGAIN=%d\\n\", tick_count",
        "delete",
        "detach",
    ];
    let mut command = tokio::process::Command::new("gdb-multiarch");
    command.args(["-nx", "-batch"]);
    command
        .arg("-ex")
        .arg(format!("file {}", elf.display()))
        .arg("-ex")
        .arg(format!(
            "target extended-remote {}",
            replay["gdbAddress"].as_str().unwrap()
        ));
    for line in script {
        command.arg("-ex").arg(line);
    }
    let output = tokio::time::timeout(Duration::from_secs(240), command.output())
        .await
        .expect("gdb finished")
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    let value = |key: &str| -> u64 {
        text.lines()
            .find_map(|line| line.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in {text}"))
            .trim()
            .parse()
            .unwrap()
    };
    let at = value("AT=");
    assert!(at >= 2, "{text}");
    // At tick()'s breakpoint the count is the previous tick's.
    assert_eq!(value("STEPPED="), at, "{text}");
    assert_eq!(value("BACK="), at - 1, "{text}");
    assert_eq!(value("AGAIN="), at, "{text}");

    // The API executes backwards too; a normal session cannot.
    server
        .query(
            "mutation($s: ID!) { haltSession(sessionId: $s) { pc } }",
            json!({ "s": id }),
        )
        .await;
    let before = tick_count(&server, &id).await;
    let stop = server
        .query(
            "mutation($s: ID!) { reverseStep(sessionId: $s, count: 3) { pc function } }",
            json!({ "s": id }),
        )
        .await["reverseStep"]
        .clone();
    assert!(stop["pc"].is_string(), "{stop}");
    server
        .query(
            "mutation($s: ID!) { reverseContinue(sessionId: $s) { pc function } }",
            json!({ "s": id }),
        )
        .await;
    assert!(tick_count(&server, &id).await <= before);

    // The replay's console chunks say where the CPU was.
    let mut console = server
        .subscribe(
            "subscription($s: ID!) { uartOutput(sessionId: $s) { data instructions } }",
            json!({ "s": id }),
        )
        .await;
    let chunk = console.next().await.expect("a console chunk")["uartOutput"].clone();
    assert!(chunk["instructions"].is_string(), "{chunk}");

    // Each recorded byte once, in order, whatever was re-executed.
    let shown = session(&server, &id).await["uartText"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        recorded_text.starts_with(&shown),
        "{shown:?} vs {recorded_text:?}"
    );
    let seen = ticks(&shown);
    assert_eq!(
        seen,
        (1..=seen.len() as u64).collect::<Vec<_>>(),
        "{shown:?}"
    );
    assert!(seen.len() as u64 >= at - 1, "{shown:?}");

    let normal = server.create_session("riscv32-virt").await;
    server.upload(&normal, "ticker-riscv32-virt.elf").await;
    server.power(&normal, "ON", true).await;
    assert_eq!(
        server
            .error_code(
                "mutation($s: ID!) { reverseStep(sessionId: $s) { pc } }",
                json!({ "s": normal })
            )
            .await,
        "NOT_REPLAYING"
    );
    assert_eq!(
        server.error_code(REPLAY, json!({ "r": "nope" })).await,
        "NOT_FOUND"
    );
    assert_eq!(server.terminate().await, Some(0));
}

/// A failed recorded job: debugJob replays it to where it failed (the exit call), and
/// reverse execution walks back from there.
#[tokio::test]
async fn debug_job_of_a_recorded_failure_replays_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]).await;
    let response = server
        .create_job(
            "exit3-riscv32-virt.elf",
            json!({ "name": "exit3", "backend": "QEMU", "boardTemplate": "riscv32-virt", "record": true }),
        )
        .await;
    let id = response["data"]["createJob"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let job = server.wait_job(&id, &["PASSED", "FAILED", "ERROR"]).await;
    assert_eq!(job["state"], "FAILED", "{job}");
    let session = server
        .query(
            "mutation($id: ID!) { debugJob(id: $id) { id state replayOf { id failureAt } } }",
            json!({ "id": id }),
        )
        .await["debugJob"]
        .clone();
    assert_eq!(session["state"], "PAUSED", "{session}");
    assert!(session["replayOf"]["failureAt"].is_string(), "{session}");
    let replay = session["id"].as_str().unwrap();
    let frames = server
        .query(
            "query($s: ID!) { backtrace(sessionId: $s) { function } }",
            json!({ "s": replay }),
        )
        .await["backtrace"]
        .clone();
    assert_eq!(frames[0]["function"], "board_exit", "{frames}");
    let back = server
        .query(
            "mutation($s: ID!) { reverseStep(sessionId: $s) { function } }",
            json!({ "s": replay }),
        )
        .await["reverseStep"]
        .clone();
    assert_ne!(back["function"], "board_exit", "{back}");
    assert_eq!(server.terminate().await, Some(0));
}

/// An editor on a replay's DAP endpoint is offered stepping back, and `reverseContinue`
/// and `stepBack` move the CPU backwards.
#[tokio::test]
async fn editors_step_back_on_a_replay() {
    use virserver::dap::client::DapClient;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]).await;
    let recorded = recorded_session(&server, "riscv32-virt", "ticker-riscv32-virt.elf").await;
    server.power(&recorded, "ON", false).await;
    server.wait_uart(&recorded, "tick 3\n").await;
    server.power(&recorded, "OFF", false).await;
    let recording = session(&server, &recorded).await["recording"]["id"].clone();
    let replay = server.query(REPLAY, json!({ "r": recording })).await["replaySession"].clone();
    let id = replay["id"].as_str().unwrap();
    let mut client = DapClient::tcp(&server.dap_address(id).await).await.unwrap();
    let capabilities = client
        .call(
            "initialize",
            json!({"adapterID": "virserver", "linesStartAt1": true, "pathFormat": "path"}),
        )
        .await
        .unwrap();
    assert_eq!(capabilities["supportsStepBack"], true, "{capabilities}");
    let attach = client
        .send("attach", json!({"sessionId": id}))
        .await
        .unwrap();
    client.event("initialized").await.unwrap();
    client.call("configurationDone", json!({})).await.unwrap();
    assert_eq!(client.response(attach).await.unwrap()["success"], true);
    client.event("stopped").await.unwrap();
    // By the editor's path, which the endpoint's confined GDB cannot read (`sources.rs`).
    let source = common::repo().join("examples/firmware/programs/ticker.c");
    let body = client
        .call(
            "setBreakpoints",
            json!({"source": {"path": source}, "breakpoints": [{"line": 21}]}),
        )
        .await
        .unwrap();
    assert_eq!(body["breakpoints"][0]["verified"], true, "{body}");
    for _ in 0..2 {
        client
            .call("continue", json!({"threadId": 1}))
            .await
            .unwrap();
        client.event("stopped").await.unwrap();
    }
    let frames = client
        .call("stackTrace", json!({"threadId": 1, "levels": 1}))
        .await
        .unwrap();
    assert_eq!(
        frames["stackFrames"][0]["source"]["path"],
        source.display().to_string(),
        "a stop names the editor's file: {frames}"
    );
    let at = dap_tick_count(&mut client).await;
    client
        .call("reverseContinue", json!({"threadId": 1}))
        .await
        .unwrap();
    client.event("stopped").await.unwrap();
    assert_eq!(dap_tick_count(&mut client).await, at - 1);
    client
        .call(
            "stepBack",
            json!({"threadId": 1, "granularity": "instruction"}),
        )
        .await
        .unwrap();
    client.event("stopped").await.unwrap();
    // One instruction before the breakpoint is still before that tick's increment.
    assert_eq!(dap_tick_count(&mut client).await, at - 1);
    let frames = client
        .call("stackTrace", json!({"threadId": 1, "levels": 1}))
        .await
        .unwrap();
    assert_ne!(frames["stackFrames"][0]["line"], 21, "{frames}");
    assert_eq!(server.terminate().await, Some(0));
}

async fn dap_tick_count(client: &mut virserver::dap::client::DapClient) -> u64 {
    let value = client
        .call(
            "evaluate",
            json!({"expression": "tick_count", "context": "watch"}),
        )
        .await
        .unwrap();
    value["result"].as_str().unwrap().parse().unwrap()
}
