//! Time control end to end, on real QEMU: snapshots saved from running and paused
//! sessions, restored into the running machine and into a powered-off one (also after a
//! server restart), forks with gateways of their own, jobs that start from a snapshot,
//! and deterministic runs of firmware that reads a hardware timer.

mod common;

use std::time::Duration;

use common::Server;
use serde_json::{Value, json};

const CREATE: &str = "mutation($s: ID!, $n: String!) { createSnapshot(sessionId: $s, name: $n) { id name createdAt sizeBytes } }";
const RESTORE: &str = "mutation($id: ID!) { restoreSnapshot(id: $id) { id state emulatorPid } }";
const FORK: &str = "mutation($id: ID!, $n: String!, $c: Int!) { forkSession(snapshotId: $id, name: $n, count: $c) { id name state gdbAddress deterministic snapshots { id name } } }";
const SNAPSHOTS: &str =
    "query($s: ID!) { session(id: $s) { state snapshots { id name sizeBytes } } }";
const EVALUATE: &str =
    "query($s: ID!, $e: String!) { evaluate(sessionId: $s, expression: $e, frame: 0) { value } }";

async fn snapshot(server: &Server, session: &str, name: &str) -> Value {
    server
        .query(CREATE, json!({ "s": session, "n": name }))
        .await["createSnapshot"]
        .clone()
}

async fn restore(server: &Server, snapshot: &str) -> Value {
    server.query(RESTORE, json!({ "id": snapshot })).await["restoreSnapshot"].clone()
}

/// The console text printed after `from` bytes of it.
async fn uart_after(server: &Server, session: &str, from: usize, text: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let uart = server.session(session).await["uartText"]
            .as_str()
            .unwrap()
            .to_owned();
        let tail = uart.get(from..).unwrap_or_default().to_owned();
        if tail.contains(text) {
            return tail;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {text:?} after byte {from} of {uart:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn uart_len(server: &Server, session: &str) -> usize {
    server.session(session).await["uartText"]
        .as_str()
        .unwrap()
        .len()
}

/// The ticker's count as the symbolic API (a GDB through the gateway) reads it.
async fn tick_count(server: &Server, session: &str) -> u64 {
    let value = server
        .query(EVALUATE, json!({ "s": session, "e": "tick_count" }))
        .await["evaluate"]["value"]
        .clone();
    value.as_str().unwrap().parse().unwrap()
}

/// On both boards the tests use: a snapshot of a running ticker, restored into the
/// running machine (PAUSED at the saved count), then after power off and a server
/// restart booted straight into; deleting it and the session removes the images.
#[tokio::test]
async fn snapshots_restore_into_running_and_powered_off_sessions_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for (board, elf) in [
        ("mps2-an385", "ticker-mps2-an385.elf"),
        ("riscv32-virt", "ticker-riscv32-virt.elf"),
    ] {
        let server = Server::start(&data, &[]).await;
        let session = server.create_session(board).await;
        server.upload(&session, elf).await;
        server.power(&session, "ON", false).await;
        server.wait_uart(&session, "tick 2\n").await;
        let saved = snapshot(&server, &session, "after boot").await;
        assert!(saved["sizeBytes"].as_i64().unwrap() > 0, "{saved}");
        assert_eq!(server.session(&session).await["state"], "RUNNING");
        // The count at the snapshot: the console only says it was at least 2.
        let shown = uart_len(&server, &session).await;
        let text = uart_after(&server, &session, shown, "tick ").await;
        let next: u64 = text
            .lines()
            .find_map(|line| line.strip_prefix("tick "))
            .unwrap()
            .parse()
            .unwrap();
        server
            .wait_uart(&session, &format!("tick {}\n", next + 2))
            .await;

        let restored = restore(&server, saved["id"].as_str().unwrap()).await;
        assert_eq!(restored["state"], "PAUSED", "{restored}");
        let at_restore = tick_count(&server, &session).await;
        assert!(
            at_restore < next + 2,
            "restored count {at_restore}, the console was at {}",
            next + 2
        );
        let shown = uart_len(&server, &session).await;
        server.power(&session, "ON", false).await;
        uart_after(
            &server,
            &session,
            shown,
            &format!("tick {}\n", at_restore + 1),
        )
        .await;

        server.power(&session, "OFF", false).await;
        assert_eq!(server.terminate().await, Some(0));
        let server = Server::start(&data, &[]).await;
        let listed = server.query(SNAPSHOTS, json!({ "s": session })).await["session"].clone();
        assert_eq!(listed["state"], "STOPPED");
        assert_eq!(listed["snapshots"][0]["name"], "after boot", "{listed}");
        let booted = restore(&server, saved["id"].as_str().unwrap()).await;
        assert_eq!(booted["state"], "PAUSED", "{booted}");
        assert!(booted["emulatorPid"].is_i64(), "{booted}");
        assert_eq!(tick_count(&server, &session).await, at_restore);
        server.power(&session, "ON", false).await;
        uart_after(&server, &session, 0, &format!("tick {}\n", at_restore + 1)).await;

        let image = data
            .join("run")
            .join(&session)
            .join("snapshots")
            .join(saved["id"].as_str().unwrap());
        assert!(image.is_file(), "{image:?}");
        server
            .query(
                "mutation($id: ID!) { deleteSnapshot(id: $id) }",
                json!({ "id": saved["id"] }),
            )
            .await;
        assert!(!image.exists());
        let again = snapshot(&server, &session, "second").await;
        server
            .query(
                "mutation($id: ID!) { deleteSession(id: $id) }",
                json!({ "id": session }),
            )
            .await;
        assert!(!data.join("run").join(&session).exists());
        let code = server
            .error_code(RESTORE, json!({ "id": again["id"] }))
            .await;
        assert_eq!(code, "NOT_FOUND");
        assert_eq!(server.terminate().await, Some(0));
    }
}

/// A snapshot of a PAUSED session; after running on, restoring it puts memory back,
/// and the clients of the gateway read the restored state (its caches are dropped):
/// the symbolic API's GDB sees the count at the snapshot, and sessionEvents says the
/// CPU halted.
#[tokio::test]
async fn restoring_a_paused_snapshot_puts_memory_back_for_attached_clients() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]).await;
    let session = server.create_session("mps2-an385").await;
    server.upload(&session, "ticker-mps2-an385.elf").await;
    server.power(&session, "ON", false).await;
    server.wait_uart(&session, "tick 2\n").await;
    server
        .query(
            "mutation($s: ID!) { haltSession(sessionId: $s) { pc } }",
            json!({ "s": session }),
        )
        .await;
    let saved_count = tick_count(&server, &session).await;
    let saved = snapshot(&server, &session, "paused").await;
    assert_eq!(server.session(&session).await["state"], "PAUSED");
    assert_eq!(tick_count(&server, &session).await, saved_count);
    server
        .query(
            "mutation($s: ID!) { continueSession(sessionId: $s) }",
            json!({ "s": session }),
        )
        .await;
    server
        .wait_uart(&session, &format!("tick {}\n", saved_count + 2))
        .await;
    server
        .query(
            "mutation($s: ID!) { haltSession(sessionId: $s) { pc } }",
            json!({ "s": session }),
        )
        .await;
    assert!(tick_count(&server, &session).await >= saved_count + 2);
    let mut events = server
        .subscribe(
            "subscription($s: ID!) { sessionEvents(sessionId: $s) { kind state reason pc message } }",
            json!({ "s": session }),
        )
        .await;
    let restored = restore(&server, saved["id"].as_str().unwrap()).await;
    assert_eq!(restored["state"], "PAUSED");
    assert_eq!(tick_count(&server, &session).await, saved_count);
    let mut kinds = Vec::new();
    while !kinds.contains(&"HALTED".to_owned()) || !kinds.contains(&"RESTORED".to_owned()) {
        let event = tokio::time::timeout(Duration::from_secs(20), events.next())
            .await
            .expect("HALTED and RESTORED events")
            .expect("an event")["sessionEvents"]
            .clone();
        kinds.push(event["kind"].as_str().unwrap().to_owned());
    }
    let history = server
        .query(
            "query($s: ID!) { session(id: $s) { history { kind message } } }",
            json!({ "s": session }),
        )
        .await["session"]["history"]
        .clone();
    let restores: Vec<&Value> = history
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| event["kind"] == "RESTORED")
        .collect();
    assert_eq!(restores.len(), 1, "{history}");
    assert!(
        restores[0]["message"]
            .as_str()
            .unwrap()
            .contains("'paused'")
    );
    assert_eq!(server.terminate().await, Some(0));
}

/// Forks come up PAUSED at the snapshot, each with its own gateway, and run on from
/// the saved count; the source keeps running. Bad input gets its codes.
#[tokio::test]
async fn forks_start_paused_at_the_snapshot_and_the_source_runs_on() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &["--snapshot-quota-bytes", "4000000"],
    )
    .await;
    let session = server.create_session("riscv32-virt").await;
    server.upload(&session, "ticker-riscv32-virt.elf").await;
    assert_eq!(
        server
            .error_code(CREATE, json!({ "s": session, "n": "early" }))
            .await,
        "INVALID_STATE"
    );
    server.power(&session, "ON", false).await;
    server.wait_uart(&session, "tick 1\n").await;
    server
        .query(
            "mutation($s: ID!) { haltSession(sessionId: $s) { pc } }",
            json!({ "s": session }),
        )
        .await;
    let count = tick_count(&server, &session).await;
    let saved = snapshot(&server, &session, "init").await;
    assert_eq!(
        server
            .error_code(CREATE, json!({ "s": session, "n": "init" }))
            .await,
        "ALREADY_EXISTS"
    );
    server.power(&session, "ON", false).await;

    let forks = server
        .query(FORK, json!({ "id": saved["id"], "n": "fork", "c": 3 }))
        .await["forkSession"]
        .clone();
    let forks = forks.as_array().unwrap();
    assert_eq!(forks.len(), 3);
    let mut gdb = std::collections::HashSet::new();
    for (index, fork) in forks.iter().enumerate() {
        assert_eq!(fork["state"], "PAUSED", "{fork}");
        assert_eq!(fork["name"], format!("fork #{}", index + 1));
        assert_eq!(fork["snapshots"][0]["name"], "init");
        assert!(gdb.insert(fork["gdbAddress"].as_str().unwrap().to_owned()));
        let id = fork["id"].as_str().unwrap();
        assert_eq!(tick_count(&server, id).await, count);
    }
    let first = forks[0]["id"].as_str().unwrap();
    server.power(first, "ON", false).await;
    let text = server
        .wait_uart(first, &format!("tick {}\n", count + 1))
        .await;
    assert!(
        !text.contains(&format!("tick {count}\n")),
        "a fork printed what its source printed before the snapshot: {text:?}"
    );
    assert_eq!(server.session(&session).await["state"], "RUNNING");
    assert_eq!(
        server.session(forks[1]["id"].as_str().unwrap()).await["state"],
        "PAUSED"
    );

    for (query, variables, code) in [
        (
            FORK,
            json!({ "id": saved["id"], "n": "x", "c": 0 }),
            "BAD_INPUT",
        ),
        (
            FORK,
            json!({ "id": saved["id"], "n": "x", "c": 1000 }),
            "BAD_INPUT",
        ),
        (FORK, json!({ "id": "nope", "n": "x", "c": 1 }), "NOT_FOUND"),
        (RESTORE, json!({ "id": "../../etc" }), "NOT_FOUND"),
        (CREATE, json!({ "s": session, "n": "" }), "BAD_INPUT"),
    ] {
        assert_eq!(server.error_code(query, variables).await, code, "{query}");
    }
    // The quota (4 MB here) is reached after a few snapshots, and says so.
    let mut quota = None;
    for n in 0..20 {
        let response = server
            .request(CREATE, json!({ "s": session, "n": format!("s{n}") }))
            .await;
        if let Some(code) = response["errors"][0]["extensions"]["code"].as_str() {
            quota = Some(code.to_owned());
            break;
        }
    }
    assert_eq!(quota.as_deref(), Some("TOO_LARGE"));
    assert_eq!(server.terminate().await, Some(0));
}

/// A job started from a snapshot of the echo firmware, taken once it is ready, runs
/// from there: its console starts after "echo ready" and the input gets its echo.
#[tokio::test]
async fn jobs_start_from_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]).await;
    let session = server.create_session("mps2-an385").await;
    server.upload(&session, "echo-mps2-an385.elf").await;
    server.power(&session, "ON", false).await;
    server.wait_uart(&session, "echo ready\n").await;
    let saved = snapshot(&server, &session, "ready").await;
    let job = server
        .query(
            "mutation($i: CreateJobInput!) { createJob(input: $i) { id fromSnapshot } }",
            json!({ "i": {
                "name": "from snapshot",
                "backend": "QEMU",
                "boardTemplate": "mps2-an385",
                "fromSnapshot": saved["id"],
                "uartInput": "hi\nq",
                "expectUart": ["hi"],
                "expectExitCode": 3,
            }}),
        )
        .await["createJob"]
        .clone();
    assert_eq!(job["fromSnapshot"], saved["id"]);
    let done = server
        .wait_job(job["id"].as_str().unwrap(), &["PASSED", "FAILED", "ERROR"])
        .await;
    assert_eq!(done["state"], "PASSED", "{done}");
    let log = done["uartLog"].as_str().unwrap();
    assert!(!log.contains("echo ready"), "{log:?}");
    assert!(log.contains("bye"), "{log:?}");
    assert_eq!(server.terminate().await, Some(0));
}

/// Firmware that reads SysTick / mtime prints the same values in every deterministic
/// run (sessions, `virserver run --deterministic`) and different ones when free.
#[tokio::test]
async fn deterministic_runs_repeat_timer_reads() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]).await;
    let mut outputs = Vec::new();
    for run in 0..2 {
        for board in ["mps2-an385", "riscv32-virt"] {
            let session = server
                .query(
                    "mutation($b: ID!) { createSession(input: {name: \"det\", backend: QEMU, boardTemplate: $b, deterministic: true}) { id deterministic } }",
                    json!({ "b": board }),
                )
                .await["createSession"]
                .clone();
            assert_eq!(session["deterministic"], true);
            let id = session["id"].as_str().unwrap();
            server.upload(id, &format!("timer-{board}.elf")).await;
            server.power(id, "ON", false).await;
            let done = server.wait_state(id, "EXITED").await;
            let line = done["uartText"]
                .as_str()
                .unwrap()
                .lines()
                .find(|line| line.starts_with("timer:"))
                .unwrap_or_else(|| panic!("no timer line: {done}"))
                .to_owned();
            outputs.push((run, board, line));
        }
    }
    assert_eq!(outputs[0].2, outputs[2].2, "{outputs:?}");
    assert_eq!(outputs[1].2, outputs[3].2, "{outputs:?}");

    let run_cli = |deterministic: bool| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_virserver"));
        command
            .current_dir(dir.path())
            .args(["run", "--board", "mps2-an385"])
            .arg(common::firmware("timer-mps2-an385.elf"));
        if deterministic {
            command.arg("--deterministic");
        }
        let output = command.output().unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    let (first, second) = (run_cli(true), run_cli(true));
    assert!(first.contains("timer: "), "{first}");
    assert_eq!(first, second);
    assert!(first.contains(&outputs[0].2), "{first} vs {outputs:?}");
    assert_eq!(server.terminate().await, Some(0));
}
