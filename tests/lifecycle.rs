//! What must hold across process boundaries: a restart keeps sessions, SIGTERM leaves no
//! emulator behind, a killed emulator is noticed, and PostgreSQL works like SQLite.

mod common;

use std::time::Duration;

use common::{Server, process_alive};
use serde_json::json;

#[tokio::test]
async fn restart_on_the_same_data_dir_keeps_sessions_and_programs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &[]).await;
    let session = server.create_session("mps2-an385").await;
    let program = server.upload(&session, "hello-mps2-an385.elf").await;
    server.power(&session, "ON", false).await;
    server.wait_state(&session, "EXITED").await;
    assert_eq!(server.terminate().await, Some(0));

    let server = Server::start(&data, &[]).await;
    let again = server.session(&session).await;
    assert_eq!(again["state"], "EXITED");
    assert_eq!(again["exitCode"], 0);
    assert_eq!(again["programs"][0]["id"], program.as_str());
    // The stored program boots again after the restart.
    server.power(&session, "ON", false).await;
    let done = server.wait_state(&session, "EXITED").await;
    assert!(
        done["uartText"]
            .as_str()
            .unwrap()
            .contains("counting: 1 2 3")
    );
}

#[tokio::test]
async fn sigterm_stops_every_emulator_and_records_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &[]).await;
    let mut pids = Vec::new();
    let mut sessions = Vec::new();
    for board in ["mps2-an385", "riscv32-virt"] {
        let session = server.create_session(board).await;
        server
            .upload(&session, &format!("ticker-{board}.elf"))
            .await;
        server.power(&session, "ON", false).await;
        pids.push(
            server.session(&session).await["emulatorPid"]
                .as_i64()
                .unwrap(),
        );
        sessions.push(session);
    }
    assert!(pids.iter().all(|pid| process_alive(*pid)));
    assert_eq!(server.terminate().await, Some(0));
    for pid in &pids {
        assert!(!process_alive(*pid), "QEMU {pid} outlived the server");
    }
    let server = Server::start(&data, &[]).await;
    for session in &sessions {
        assert_eq!(server.session(session).await["state"], "STOPPED");
    }
}

#[tokio::test]
async fn a_killed_server_leaves_no_emulator_and_the_restart_reconciles() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&data, &[]).await;
    let session = server.create_session("mps2-an385").await;
    server.upload(&session, "ticker-mps2-an385.elf").await;
    server.power(&session, "ON", false).await;
    let pid = server.session(&session).await["emulatorPid"]
        .as_i64()
        .unwrap();
    server.child.kill().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while process_alive(pid) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "QEMU {pid} orphaned"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let server = Server::start(&data, &[]).await;
    let reconciled = server.session(&session).await;
    assert_eq!(reconciled["state"], "CRASHED");
    assert!(
        reconciled["stateReason"].as_str().unwrap().contains("lost"),
        "{reconciled}"
    );
}

#[tokio::test]
async fn a_killed_emulator_makes_the_session_crashed_with_an_event() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]).await;
    let session = server.create_session("mps2-an385").await;
    server.upload(&session, "ticker-mps2-an385.elf").await;
    server.power(&session, "ON", false).await;
    let mut events = server
        .subscribe(
            "subscription($s: ID!) { sessionEvents(sessionId: $s) { kind state message } }",
            json!({ "s": session }),
        )
        .await;
    let pid = server.session(&session).await["emulatorPid"]
        .as_i64()
        .unwrap();
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let event = events.next().await.expect("an event")["sessionEvents"].clone();
    assert_eq!(event["kind"], "CRASHED", "{event}");
    assert!(
        event["message"].as_str().unwrap().contains("signal 9"),
        "{event}"
    );
    let crashed = server.session(&session).await;
    assert_eq!(crashed["state"], "CRASHED");
    assert!(crashed["emulatorPid"].is_null());
    // A crashed session can be powered on again.
    assert_eq!(
        server.power(&session, "ON", false).await["state"],
        "RUNNING"
    );
}

#[tokio::test]
async fn postgresql_url_works_like_sqlite_and_survives_a_restart() {
    let database = common::PostgresDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let url = database.url();
    let server = Server::start(&data, &["--database", &url]).await;
    let session = server.create_session("riscv32-virt").await;
    server.upload(&session, "exit3-riscv32-virt.elf").await;
    server.power(&session, "ON", false).await;
    assert_eq!(server.wait_state(&session, "EXITED").await["exitCode"], 3);
    server
        .query(
            "mutation($d: String!) { createBoardTemplate(definition: $d) { id } }",
            json!({ "d": std::fs::read_to_string(common::repo().join("boards/riscv32-virt.yaml")).unwrap().replace("id: riscv32-virt", "id: my-riscv") }),
        )
        .await;
    assert_eq!(server.terminate().await, Some(0));

    let server = Server::start(&data, &["--database", &url]).await;
    assert_eq!(server.session(&session).await["exitCode"], 3);
    let board = server
        .query(
            "{ boardTemplate(id: \"my-riscv\") { id builtIn } }",
            json!({}),
        )
        .await;
    assert_eq!(board["boardTemplate"]["builtIn"], false);
    assert!(
        !data.join("virserver.db").exists(),
        "no SQLite file with a PostgreSQL URL"
    );
    drop(server);
    database.drop_database().await;
}
