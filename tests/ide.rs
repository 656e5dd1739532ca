//! GDB/MI front-ends: cortex-debug's `servertype: "external"` launch and attach
//! sequences, replayed with a real `gdb-multiarch --interpreter=mi2` against a session's
//! gateway (the address `virserver ide-config --kind cortex-debug` names).

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{Server, firmware};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

const TICKER: &str = "ticker-mps2-an385.elf";

/// One gdb-multiarch speaking MI2, as cortex-debug runs it.
struct Mi {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    token: u32,
    /// Every line read, for failure messages.
    seen: Vec<String>,
}

impl Mi {
    fn start() -> Mi {
        let mut child = Command::new("gdb-multiarch")
            .args(["-q", "-nx", "--interpreter=mi2"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("gdb-multiarch (scripts/install-deps.sh installs it)");
        let stdin = child.stdin.take().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Mi {
            child,
            stdin,
            lines,
            token: 0,
            seen: Vec::new(),
        }
    }

    async fn line(&mut self) -> String {
        let line = tokio::time::timeout(Duration::from_secs(60), self.lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("GDB said nothing for 60 s after {:?}", self.seen))
            .unwrap()
            .unwrap_or_else(|| panic!("GDB ended: {:?}", self.seen));
        self.seen.push(line.clone());
        line
    }

    /// Sends a command; returns its result record (`^done...`, `^error...`) and the
    /// console output it printed.
    async fn run(&mut self, command: &str) -> (String, String) {
        self.token += 1;
        let token = self.token.to_string();
        self.stdin
            .write_all(format!("{token}{command}\n").as_bytes())
            .await
            .unwrap();
        let mut console = String::new();
        loop {
            let line = self.line().await;
            if let Some(text) = line.strip_prefix("~\"") {
                console.push_str(text);
            }
            if let Some(record) = line.strip_prefix(&token)
                && record.starts_with('^')
            {
                return (record.to_owned(), console);
            }
        }
    }

    /// A command that must answer `^done` (or `^connected`, `^running`).
    async fn ok(&mut self, command: &str) -> String {
        let (record, console) = self.run(command).await;
        assert!(
            ["^done", "^connected", "^running"]
                .iter()
                .any(|ok| record.starts_with(ok)),
            "{command}: {record} {console}"
        );
        record
    }

    async fn stopped(&mut self, reason: &str) -> String {
        loop {
            let line = self.line().await;
            if line.starts_with("*stopped") {
                assert!(line.contains(&format!("reason=\"{reason}\"")), "{line}");
                return line;
            }
        }
    }

    async fn exit(mut self) {
        let _ = self.stdin.write_all(b"-gdb-exit\n").await;
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }
}

/// What cortex-debug asks once attached and stopped: frames, registers, memory.
async fn inspect(mi: &mut Mi) {
    let frames = mi.ok("-stack-list-frames").await;
    assert!(frames.contains("func=\"tick\""), "{frames}");
    assert!(frames.contains("file=\"programs/ticker.c\""), "{frames}");
    let registers = mi.ok("-data-list-register-values x 15").await;
    assert!(
        registers.contains("number=\"15\",value=\"0x"),
        "{registers}"
    );
    let memory = mi.ok("-data-read-memory-bytes &tick_count 4").await;
    assert!(memory.contains("contents=\""), "{memory}");
}

#[tokio::test]
async fn cortex_debug_launch_and_attach_sequences_work_through_the_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]).await;
    let session = server.create_session("mps2-an385").await;
    server.upload(&session, TICKER).await;
    // Running, as a board is when an IDE connects; cortex-debug resets and halts it.
    server.power(&session, "ON", false).await;
    let target = server.gdb_address(&session).await;
    let elf = firmware(TICKER).display().to_string();

    // Launch: symbols, connect, reset halt, load, break, continue.
    let mut mi = Mi::start();
    mi.ok("-gdb-set mi-async on").await;
    mi.ok("-interpreter-exec console \"set mem inaccessible-by-default off\"")
        .await;
    mi.ok(&format!("-file-exec-and-symbols \"{elf}\"")).await;
    mi.ok(&format!("-target-select extended-remote {target}"))
        .await;
    mi.ok("-interpreter-exec console \"monitor reset halt\"")
        .await;
    let (download, console) = mi.run("-target-download").await;
    assert!(
        download.starts_with("^done"),
        "load through the gateway: {download} {console}"
    );
    mi.ok("-interpreter-exec console \"monitor reset halt\"")
        .await;
    mi.ok("-break-insert -f tick").await;
    mi.ok("-exec-continue").await;
    mi.stopped("breakpoint-hit").await;
    inspect(&mut mi).await;
    mi.ok("-exec-continue").await;
    mi.stopped("breakpoint-hit").await;
    mi.ok("-break-delete").await;
    mi.ok("-exec-continue").await;
    server.wait_uart(&session, "tick 2").await;
    mi.ok("-exec-interrupt").await;
    mi.stopped("signal-received").await;
    mi.ok("-target-detach").await;
    mi.exit().await;

    // Attach to the running session: connect, halt, look, go on.
    mi = Mi::start();
    mi.ok(&format!("-file-exec-and-symbols \"{elf}\"")).await;
    mi.ok(&format!("-target-select extended-remote {target}"))
        .await;
    mi.ok("-interpreter-exec console \"monitor halt\"").await;
    mi.ok("-break-insert tick").await;
    mi.ok("-exec-continue").await;
    mi.stopped("breakpoint-hit").await;
    inspect(&mut mi).await;
    mi.ok("-break-delete").await;
    mi.ok("-target-detach").await;
    mi.exit().await;
    // Detaching the last client lets the firmware run on.
    let printed = server.session(&session).await["uartText"]
        .as_str()
        .unwrap()
        .len();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while server.session(&session).await["uartText"]
        .as_str()
        .unwrap()
        .len()
        <= printed
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the firmware did not run on"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
