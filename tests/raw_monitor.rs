//! Raw monitor access (`serve --allow-raw-monitor`) as users meet it: refused at start,
//! with a message and a non-zero status, whenever the GDB endpoints are not loopback
//! (flag, environment or file); when allowed, a session's GDB clients reach QEMU's
//! monitor beyond the gateway's allow-list and attach tickets are refused. Without it
//! the same command is refused and tickets work.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::Server;
use serde_json::json;
use tokio::net::TcpStream;
use virserver_gateway::bench::RspClient;

/// `virserver serve` that must refuse to start: its exit status and stderr.
async fn refused_start(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_virserver"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(30), command.output())
        .await
        .expect("the server must refuse to start, not serve")
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code().expect("an exit status"), stderr)
}

#[tokio::test]
async fn raw_monitor_is_refused_with_endpoints_beyond_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("virserver.toml");
    std::fs::write(&file, "allow_raw_monitor = true\ngdb_listen = \"::\"\n").unwrap();
    let file = file.display().to_string();
    for (args, env, address) in [
        (
            &["--allow-raw-monitor", "--gdb-listen", "0.0.0.0"][..],
            &[][..],
            "0.0.0.0",
        ),
        (
            &[],
            &[
                ("VIRSERVER_ALLOW_RAW_MONITOR", "true"),
                ("VIRSERVER_GDB_LISTEN", "192.0.2.1"),
            ][..],
            "192.0.2.1",
        ),
        (&["--config", &file], &[], "::"),
    ] {
        let (status, stderr) = refused_start(&data, args, env).await;
        assert_eq!(status, 1, "{args:?} {env:?}: {stderr}");
        assert!(
            stderr.contains("allow_raw_monitor is refused")
                && stderr.contains(&format!("listen on {address}, which is not loopback")),
            "{args:?} {env:?}: {stderr}"
        );
    }
}

/// The GDB endpoint of a ticker session powered on halted (HMP commands that reach the
/// stub wait for a halt, like every stub request).
async fn gdb_endpoint(server: &Server) -> (String, String) {
    let session = server.create_session("mps2-an385").await;
    server.upload(&session, "ticker-mps2-an385.elf").await;
    server.power(&session, "ON", true).await;
    let address = server.gdb_address(&session).await;
    (session, address)
}

/// `monitor info qtree` (not on the allow-list) from a raw client: output and reply.
async fn qtree(address: &str) -> (String, Vec<u8>) {
    let mut client = RspClient::new(TcpStream::connect(address).await.unwrap());
    client.request(b"qSupported:multiprocess+").await.unwrap();
    client.read_target_xml().await.unwrap();
    let answer = client.monitor("info qtree").await.unwrap();
    assert_eq!(client.request(b"D;1").await.unwrap(), b"OK");
    answer
}

const TICKET: &str = "mutation($s: ID!) { createAttachTicket(sessionId: $s) { address } }";

#[tokio::test]
async fn allowed_raw_monitor_reaches_hmp_and_refuses_tickets() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--allow-raw-monitor"]).await;
    let (session, address) = gdb_endpoint(&server).await;
    let (output, reply) = qtree(&address).await;
    assert_eq!(reply, b"OK");
    assert!(output.contains("bus: main-system-bus"), "{output}");
    assert_eq!(
        server.error_code(TICKET, json!({ "s": session })).await,
        "UNSUPPORTED"
    );
}

#[tokio::test]
async fn by_default_hmp_is_refused_and_tickets_work() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]).await;
    let (session, address) = gdb_endpoint(&server).await;
    let (output, reply) = qtree(&address).await;
    assert_eq!(reply, b"E01");
    assert!(
        output.contains("'monitor info qtree' is not allowed"),
        "{output}"
    );
    let ticket = server.query(TICKET, json!({ "s": session })).await;
    assert!(
        ticket["createAttachTicket"]["address"]
            .as_str()
            .is_some_and(|address| address.starts_with("127.0.0.1:")),
        "{ticket}"
    );
}
