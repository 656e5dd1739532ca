//! Hibernation end to end, on real QEMU: a PAUSED ticker idle past `--hibernate-after`
//! loses its emulator but keeps its state, its GDB address and its history; a real
//! gdb-multiarch attaching to that address wakes it and reads the count it slept with;
//! a resume continues the count; a hibernated session sleeps through a server restart;
//! an attached GDB client keeps a session awake; powering off ends the hibernation;
//! under auth a plain connection wakes nothing and an unused ticket keeps it awake.

mod common;

use std::time::Duration;

use common::{Server, process_alive};
use serde_json::{Value, json};

const STATUS: &str = "query($s: ID!) { session(id: $s) { state hibernated emulatorPid gdbAddress history { kind } } }";
const PAUSE: &str =
    "mutation($s: ID!, $p: ID!) { pauseProgram(sessionId: $s, programId: $p) { state } }";

async fn status(server: &Server, session: &str) -> Value {
    server.query(STATUS, json!({ "s": session })).await["session"].clone()
}

/// Waits until the session's `hibernated` is `asleep` (30 s at most).
async fn wait_hibernated(server: &Server, session: &str, asleep: bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let status = status(server, session).await;
        if status["hibernated"] == asleep {
            return status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "hibernated never became {asleep}: {status}\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn kinds(status: &Value) -> Vec<String> {
    status["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["kind"].as_str().unwrap().to_owned())
        .collect()
}

fn uart(session: &Value) -> String {
    session["uartText"].as_str().unwrap().to_owned()
}

/// The first whole "tick N" line of `text`.
fn first_tick(text: &str) -> Option<u64> {
    let complete = &text[..text.rfind('\n')? + 1];
    complete
        .lines()
        .find_map(|line| line.strip_prefix("tick "))
        .and_then(|n| n.parse().ok())
}

/// Resumes the session and returns the first tick it prints after that.
async fn resume_and_next_tick(server: &Server, session: &str) -> u64 {
    let shown = uart(&server.session(session).await).len();
    server.power(session, "ON", false).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let text = uart(&server.session(session).await);
        if let Some(tick) = first_tick(text.get(shown..).unwrap_or_default()) {
            return tick;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no tick after resuming: {text:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `print tick_count` by a real gdb-multiarch attached to `address`.
async fn gdb_tick_count(elf: &str, address: &str) -> u64 {
    let commands = ["printf \"COUNT=%u\\n\", tick_count", "detach"];
    let output = common::gdb_batch(elf, address, &commands).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .find_map(|line| line.strip_prefix("COUNT="))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no count from gdb: {stdout}\n{}",
                String::from_utf8_lossy(&output.stderr)
            )
        })
}

/// mps2-an385 (its exit goes through semihosting, so the gateway holds the stub).
#[tokio::test]
async fn an_idle_paused_session_sleeps_on_disk_and_wakes_unobserved() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &["--hibernate-after", "500ms"]).await;
    let elf = "ticker-mps2-an385.elf";
    let session = server.create_session("mps2-an385").await;
    let program = server.upload(&session, elf).await;
    server.power(&session, "ON", false).await;
    server.wait_uart(&session, "tick 2\n").await;
    server
        .query(PAUSE, json!({ "s": session, "p": program }))
        .await;
    let awake = status(&server, &session).await;
    let pid = awake["emulatorPid"]
        .as_i64()
        .expect("a powered session has a pid");
    let address = awake["gdbAddress"].as_str().unwrap().to_owned();

    // Asleep: no emulator, the same state, address and history.
    let asleep = wait_hibernated(&server, &session, true).await;
    assert_eq!(asleep["state"], "PAUSED", "{asleep}");
    assert_eq!(asleep["emulatorPid"], Value::Null, "{asleep}");
    assert_eq!(asleep["gdbAddress"], address.as_str(), "{asleep}");
    assert_eq!(kinds(&asleep), kinds(&awake), "hibernation wrote history");
    assert!(!process_alive(pid), "the emulator {pid} still runs");
    let image = data.join("run").join(&session).join("hibernation.qcow2");
    assert!(image.exists(), "no image at {}", image.display());

    // A GDB client at the old address wakes it and sees the count it slept with.
    let count = gdb_tick_count(elf, &address).await;
    assert!(count >= 2, "count {count}");
    assert!(server.log().contains("session woken"), "{}", server.log());

    // It sleeps again once the client left, and a resume continues from there.
    wait_hibernated(&server, &session, true).await;
    assert_eq!(resume_and_next_tick(&server, &session).await, count + 1);
    let running = status(&server, &session).await;
    assert_eq!(running["state"], "RUNNING", "{running}");
    assert_eq!(running["hibernated"], false, "{running}");
    let mut expected = kinds(&awake);
    expected.push("RESUMED".into());
    assert_eq!(kinds(&running), expected, "waking wrote history");
    assert!(!image.exists(), "the image outlived the wake");

    // Asleep through a restart.
    server
        .query(PAUSE, json!({ "s": session, "p": program }))
        .await;
    wait_hibernated(&server, &session, true).await;
    let before_restart = uart(&server.session(&session).await);
    server.terminate().await;
    let server = Server::start(&data, &["--hibernate-after", "500ms"]).await;
    let restarted = status(&server, &session).await;
    assert_eq!(restarted["state"], "PAUSED", "{restarted}");
    assert_eq!(restarted["hibernated"], true, "{restarted}");
    assert!(restarted["gdbAddress"].is_string(), "{restarted}");
    // Whole lines only: the pause may have cut the last one short.
    let last = before_restart[..before_restart.rfind('\n').unwrap() + 1]
        .lines()
        .rev()
        .filter_map(|line| line.strip_prefix("tick "))
        .find_map(|n| n.parse::<u64>().ok())
        .unwrap();
    let next = resume_and_next_tick(&server, &session).await;
    assert!(
        next == last + 1 || next == last + 2,
        "slept at tick {last}, woke to {next}"
    );

    // Powered off while asleep: STOPPED, the image gone.
    server
        .query(PAUSE, json!({ "s": session, "p": program }))
        .await;
    wait_hibernated(&server, &session, true).await;
    let off = server.power(&session, "OFF", false).await;
    assert_eq!(off["state"], "STOPPED", "{off}");
    let off = status(&server, &session).await;
    assert_eq!(off["hibernated"], false, "{off}");
    assert_eq!(kinds(&off).last().unwrap(), "POWERED_OFF", "{off}");
    assert!(!image.exists(), "the image outlived the power-off");
}

/// riscv32-virt: a connected GDB client keeps the session awake; once it leaves the
/// session sleeps with its GDB and DAP endpoints, and UART input wakes it.
#[tokio::test]
async fn an_attached_client_keeps_a_session_awake() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &["--hibernate-after", "300ms"]).await;
    let session = server.create_session("riscv32-virt").await;
    let program = server.upload(&session, "ticker-riscv32-virt.elf").await;
    server.power(&session, "ON", false).await;
    server.wait_uart(&session, "tick 1\n").await;
    server
        .query(PAUSE, json!({ "s": session, "p": program }))
        .await;
    let address = status(&server, &session).await["gdbAddress"]
        .as_str()
        .unwrap()
        .to_owned();
    let dap = server.dap_address(&session).await;
    let client = tokio::net::TcpStream::connect(&address).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let held = status(&server, &session).await;
    assert_eq!(held["hibernated"], false, "{held}");
    assert!(held["emulatorPid"].is_i64(), "{held}");
    drop(client);
    let asleep = wait_hibernated(&server, &session, true).await;
    assert_eq!(asleep["gdbAddress"], address.as_str(), "{asleep}");
    // The editors' endpoint stays open too.
    assert_eq!(server.dap_address(&session).await, dap);

    let sent = server
        .query(
            "mutation($s: ID!) { sendUartInput(sessionId: $s, data: \"x\") }",
            json!({ "s": session }),
        )
        .await;
    assert_eq!(sent["sendUartInput"], true, "{sent}");
    let woken = status(&server, &session).await;
    assert_eq!(woken["state"], "PAUSED", "{woken}");
    assert!(woken["emulatorPid"].is_i64(), "{woken}");
}

/// Under auth a session's GDB endpoint takes tickets only: a plain connection to a
/// hibernated session is refused as an awake one's is, and wakes nothing (else anyone
/// who reaches the port could undo hibernation and spend the node's memory); a ticket
/// wakes it, and its client reads the count the session slept with.
#[tokio::test]
async fn under_auth_a_plain_connection_wakes_nothing_and_a_ticket_wakes_it() {
    use tokio::io::AsyncReadExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ann = common::create_key(&data, "ann", "operator");
    let server = Server::start(&data, &["--auth", "required", "--hibernate-after", "500ms"]).await;
    server.act_as(Some(&ann));
    let elf = "ticker-mps2-an385.elf";
    let session = server.create_session("mps2-an385").await;
    let program = server.upload(&session, elf).await;
    server.power(&session, "ON", false).await;
    server.wait_uart(&session, "tick 2\n").await;
    server
        .query(PAUSE, json!({ "s": session, "p": program }))
        .await;
    let asleep = wait_hibernated(&server, &session, true).await;
    let address = asleep["gdbAddress"].as_str().unwrap().to_owned();

    for _ in 0..3 {
        let mut plain = tokio::net::TcpStream::connect(&address).await.unwrap();
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(10), plain.read(&mut byte))
            .await
            .expect("a plain connection is closed, not held");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let still = status(&server, &session).await;
    assert_eq!(still["hibernated"], true, "{still}");
    assert_eq!(still["emulatorPid"], Value::Null, "{still}");
    assert!(!server.log().contains("session woken"), "{}", server.log());

    let ticket = server
        .query(
            "mutation($s: ID!) { createAttachTicket(sessionId: $s) { address } }",
            json!({ "s": session }),
        )
        .await["createAttachTicket"]["address"]
        .as_str()
        .unwrap()
        .to_owned();
    // An unused ticket keeps it awake, however long its client takes to come.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let waiting = status(&server, &session).await;
    assert_eq!(waiting["hibernated"], false, "{waiting}");
    let count = gdb_tick_count(elf, &ticket).await;
    assert!(count >= 2, "count {count}\n{}", server.log());
}
