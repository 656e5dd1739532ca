//! Several real gdb-multiarch processes through the gateway while one of
//! them runs the CPU of a real QEMU: the others attach, list threads, read
//! and detach without a timeout, and learn of the stop one of them causes;
//! and `load` onto the flash of the memory map.

mod common;

use std::time::Instant;

use common::*;
use virserver_gateway::{Gateway, GatewayConfig, ResumedBy, RunEvent};

/// What GDB prints when a reply comes late, never or garbled.
const TROUBLE: &[&str] = &[
    "Ignoring packet error",
    "Invalid hex digit",
    "timeout",
    "Timed out",
    "Remote communication error",
    "Remote connection closed",
    "Bogus",
];

fn assert_no_trouble(who: &str, transcript: &[String]) {
    for line in transcript {
        assert!(
            !TROUBLE.iter().any(|trouble| line.contains(trouble)),
            "{who}: {line:?} in {transcript:#?}"
        );
    }
}

/// Waits for the first run event `wanted` accepts.
async fn next_event(
    events: &mut tokio::sync::broadcast::Receiver<RunEvent>,
    wanted: impl Fn(&RunEvent) -> bool,
) -> RunEvent {
    tokio::time::timeout(PATIENCE, async {
        loop {
            let event = events.recv().await.expect("run events");
            if wanted(&event) {
                return event;
            }
        }
    })
    .await
    .expect("the run event came")
}

fn kill_int(gdb: &Gdb) {
    let pid = gdb.child.id().expect("gdb runs");
    let status = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gdbs_attach_read_and_detach_while_another_runs_the_cpu() {
    let qemu = start_qemu(TICKER).await;
    let gateway = start_gateway(&qemu).await;
    let mut events = gateway.run_events();
    let dir = tempfile::tempdir().unwrap();
    let halted = dir.path().join("halted");
    let wait_for_halt = format!(
        "shell while [ ! -e {} ]; do sleep 0.1; done",
        halted.display()
    );

    // A non-stop gdb attached before the run (its attach asks to stop
    // every thread, `vCont;t`), waiting for the stop it did not cause.
    let watcher_log = dir.path().join("watcher.log");
    let watcher_setup = format!("set remotelogfile {}", watcher_log.display());
    let mut watcher = Gdb::start_with_setup(
        TICKER,
        gateway.address(),
        &["set non-stop on", &watcher_setup],
        &["echo WATCHING\\n", &wait_for_halt, "info threads", "detach"],
    );
    watcher.expect_line("WATCHING").await;

    let mut runner = Gdb::start(
        TICKER,
        gateway.address(),
        &["continue", "printf \"AT=%#x\\n\", $pc", "detach"],
    );
    let resumed = next_event(&mut events, |event| matches!(event, RunEvent::Resumed(_))).await;
    assert!(
        matches!(resumed, RunEvent::Resumed(resume) if matches!(resume.by, ResumedBy::Client(_)) && !resume.step),
        "{resumed:?}"
    );

    // An all-stop gdb attaches while the CPU runs.
    let started = Instant::now();
    let mut reader = Gdb::start(
        TICKER,
        gateway.address(),
        &[
            "info threads",
            "x/4x $sp",
            "printf \"TICKS=%d\\n\", tick_count",
            "echo READS-DONE\\n",
            &wait_for_halt,
            "printf \"TICKS=%d\\n\", tick_count",
            "detach",
        ],
    );
    reader.expect_line("READS-DONE").await;
    let attach_and_reads = started.elapsed();
    assert!(vm_running(&qemu).await, "attaching stopped nobody");
    assert_eq!(gateway.status().clients.len(), 3);

    // The runner's Ctrl-C: it stops, the others see the halted target.
    kill_int(&runner);
    runner.expect_line("SIGINT").await;
    let at = runner.expect_line("AT=").await;
    let stop = next_event(&mut events, |event| matches!(event, RunEvent::Stopped(_))).await;
    let RunEvent::Stopped(stop) = stop else {
        unreachable!()
    };
    assert_eq!(
        stop.pc.map(|pc| format!("AT={pc:#x}")),
        Some(at.trim().to_owned())
    );
    std::fs::write(&halted, "").unwrap();

    let (ok, runner) = runner.finish().await;
    assert!(ok, "{runner:#?}");
    assert_no_trouble("runner", &runner);
    let (ok, reader) = reader.finish().await;
    assert!(ok, "{reader:#?}");
    assert_no_trouble("reader", &reader);
    let (ok, watcher) = watcher.finish().await;
    assert!(ok, "{watcher:#?}");
    assert_no_trouble("watcher", &watcher);
    eprintln!("attach and reads while running: {attach_and_reads:?}");

    // The reader listed the CPU and could not read memory while it ran...
    assert!(
        reader.iter().any(|line| line.contains("Thread 1")),
        "{reader:#?}"
    );
    let ticks: Vec<&String> = reader
        .iter()
        .filter(|line| line.starts_with("TICKS="))
        .collect();
    assert!(
        reader
            .iter()
            .any(|line| line.contains("Cannot access memory")),
        "{reader:#?}"
    );
    // ...and read it once the runner's interrupt halted it.
    assert_eq!(ticks.len(), 1, "{reader:#?}");
    assert!(
        reader
            .iter()
            .any(|line| line.contains("[Inferior 1 (process 1) detached]")),
        "{reader:#?}"
    );
    // The non-stop watcher heard of the runner's stop and acknowledged it.
    let log = std::fs::read_to_string(&watcher_log).unwrap();
    assert!(log.contains("%Stop:T02"), "{log}");
    assert!(log.contains("vStopped"), "{log}");
    assert!(
        watcher.iter().any(|line| line.contains("Thread 1")),
        "{watcher:#?}"
    );
    gateway.shutdown().await;
}

/// A memory map with the board's flash (at 0, 0x400-byte blocks) and RAM,
/// as the server serves it.
const FLASH_MAP: &str = r#"<?xml version="1.0"?><!DOCTYPE memory-map PUBLIC "+//IDN gnu.org//DTD GDB Memory Map V1.0//EN" "http://sourceware.org/gdb/gdb-memory-map.dtd"><memory-map><memory type="flash" start="0x0" length="0x400000"><property name="blocksize">0x400</property></memory><memory type="ram" start="0x20000000" length="0x400000"/></memory-map>"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gdb_loads_onto_the_flash_of_the_memory_map() {
    let qemu = start_qemu(TICKER).await;
    let mut config = GatewayConfig::new(&qemu.gdb_socket);
    config.memory_map_xml = Some(FLASH_MAP.to_owned());
    let gateway = Gateway::start(config).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("remote.log");
    let setup = format!("set remotelogfile {}", log.display());
    let gdb = Gdb::start_with_setup(
        TICKER,
        gateway.address(),
        &[&setup],
        &["load", "compare-sections", "detach"],
    );
    let (ok, transcript) = gdb.finish().await;
    assert!(ok, "{transcript:#?}");
    assert_no_trouble("gdb", &transcript);
    assert!(
        transcript.iter().any(|line| line.contains("Transfer rate")),
        "{transcript:#?}"
    );
    assert!(
        !transcript
            .iter()
            .any(|line| line.contains("MIS-MATCHED") || line.contains("not support flash")),
        "{transcript:#?}"
    );
    assert!(
        transcript
            .iter()
            .filter(|line| line.starts_with("Section "))
            .all(|line| line.ends_with("matched.")),
        "{transcript:#?}"
    );
    // It went the flash way.
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("vFlashErase"), "flash erase used");
    assert!(log.contains("vFlashDone"), "flash done used");
    gateway.shutdown().await;
}
