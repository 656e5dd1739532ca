//! Real gdb-multiarch, through the gateway, tries what would reach the
//! host behind QEMU's stub: `monitor migrate "exec:touch FILE"`, `monitor
//! quit`, and host file I/O (`vFile`). gdb must show the gateway's refusal,
//! no file may appear, QEMU's own packet trace must show that none of it
//! reached the stub, and QEMU must still run and answer the allowed
//! `monitor info version`. The raw passthrough, when asked for, forwards.

mod common;

use std::path::Path;

use common::*;
use virserver_gateway::bench::QemuProcess;
use virserver_gateway::{Gateway, GatewayConfig};

/// QEMU on the ticker firmware, logging every packet its stub receives.
async fn traced_qemu(trace: &Path) -> QemuProcess {
    init_logging();
    let trace = trace.display().to_string();
    QemuProcess::start_with(
        Path::new("qemu-system-arm"),
        "mps2-an385",
        &firmware(TICKER),
        &["-d", "trace:gdbstub_io_command", "-D", &trace],
    )
    .await
    .expect("QEMU starts")
}

/// gdb-multiarch in batch mode on the ticker: what it printed, stdout and
/// stderr together (gdb writes a stub's console output, which carries
/// `monitor` answers, to stderr).
async fn gdb_batch(address: std::net::SocketAddr, commands: &[&str]) -> Vec<String> {
    let mut command = tokio::process::Command::new("gdb-multiarch");
    command.args(["-q", "-nx", "-batch"]);
    command.args(["-ex", "set pagination off", "-ex", "set confirm off"]);
    command.args(["-ex", &format!("target extended-remote {address}")]);
    for line in commands {
        command.args(["-ex", line]);
    }
    command.arg(firmware(TICKER)).kill_on_drop(true);
    let output = tokio::time::timeout(PATIENCE, command.output())
        .await
        .expect("gdb ends")
        .expect("gdb-multiarch runs");
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    text.lines().map(str::to_owned).collect()
}

/// `qemu-system-arm --version`'s version number (`info version` prints it
/// followed by the package version, spaced differently).
fn qemu_version() -> String {
    let output = std::process::Command::new("qemu-system-arm")
        .arg("--version")
        .output()
        .expect("qemu-system-arm --version");
    let text = String::from_utf8_lossy(&output.stdout);
    let first = text.lines().next().unwrap_or_default();
    first
        .strip_prefix("QEMU emulator version ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected version line {first:?}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gdb_cannot_reach_the_host_through_the_stub() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("gdbstub.log");
    let touched = dir.path().join("touched-by-migrate");
    let copied = dir.path().join("copied-by-vfile");
    let mut qemu = traced_qemu(&trace).await;
    let gateway = start_gateway(&qemu).await;

    let migrate = format!("monitor migrate \"exec:touch {}\"", touched.display());
    let get = format!("remote get /etc/hostname {}", copied.display());
    // vFile:open:/etc/hostname,O_RDONLY,0
    let open = format!(
        "maint packet vFile:open:{},0,0",
        virserver_rsp::hex::hex_string(b"/etc/hostname")
    );
    let transcript = gdb_batch(
        gateway.address(),
        &[
            &migrate,
            "monitor quit",
            &open,
            &get,
            "monitor info version",
            "monitor info registers",
            "monitor info mtree",
            "info registers pc",
        ],
    )
    .await;
    let shown = |needle: &str| transcript.iter().any(|line| line.contains(needle));

    // gdb showed each refusal.
    assert!(
        shown(&format!(
            "virserver: '{migrate}' is not allowed (see 'monitor virserver help')"
        )),
        "{transcript:#?}"
    );
    assert!(
        shown("virserver: 'monitor quit' is not allowed"),
        "{transcript:#?}"
    );
    assert!(shown("received: \"\""), "{transcript:#?}");
    // The allowed queries answered, and QEMU still serves registers.
    assert!(shown("R15="), "{transcript:#?}");
    assert!(shown("address-space: memory"), "{transcript:#?}");
    let version = qemu_version();
    assert!(
        transcript.iter().any(|line| line.starts_with(&version)),
        "no {version:?} in {transcript:#?}"
    );
    assert!(
        transcript.iter().any(|line| line.starts_with("pc ")),
        "{transcript:#?}"
    );

    // Nothing happened on the host.
    assert!(!touched.exists(), "migrate exec ran on the host");
    assert!(!copied.exists(), "vFile read a host file");
    // QEMU runs on (gdb detached at exit: the VM resumes).
    assert!(qemu.is_running(), "QEMU ended");
    wait_until("the VM to run after gdb left", || vm_running(&qemu)).await;

    // And its stub never saw what was refused.
    let received = std::fs::read_to_string(&trace).unwrap();
    let hex = |text: &str| virserver_rsp::hex::hex_string(text.as_bytes());
    assert!(
        received.contains(&format!("qRcmd,{}", hex("info version"))),
        "{received}"
    );
    for refused in [hex("migrate"), hex("quit"), "vFile".to_owned()] {
        assert!(
            !received.contains(&refused),
            "{refused} reached the stub: {received}"
        );
    }
    gateway.shutdown().await;
}

#[tokio::test]
async fn raw_monitor_passes_hmp_through_when_asked() {
    let qemu = start_qemu(TICKER).await;
    let gateway = start_gateway(&qemu).await;
    let mut client = attach(&gateway).await;
    let (output, reply) = client.monitor("info qtree").await.unwrap();
    assert_eq!(reply, b"E01");
    assert!(
        output.contains("'monitor info qtree' is not allowed"),
        "{output}"
    );
    assert_eq!(client.request(b"D;1").await.unwrap(), b"OK");
    gateway.shutdown().await;

    let mut config = GatewayConfig::new(&qemu.gdb_socket);
    config.raw_monitor = true;
    let gateway = Gateway::start(config).await.expect("gateway starts");
    let mut client = attach(&gateway).await;
    let (output, reply) = client.monitor("info qtree").await.unwrap();
    assert_eq!(reply, b"OK");
    assert!(output.contains("bus: main-system-bus"), "{output}");
    gateway.shutdown().await;
}
