//! Real QEMU, real gdb-multiarch and a raw RSP client through the gateway at
//! the same time, with the API reading registers during the stop: all three
//! must agree on where the target stopped and on `tick_count`.

mod common;

use std::time::Duration;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gdb_a_raw_client_and_the_api_agree_at_a_breakpoint() {
    let qemu = start_qemu(TICKER).await;
    let gateway = start_gateway(&qemu).await;
    let symbols = Symbols::load(TICKER);
    let (tick, tick_size) = symbols.symbol("tick");
    let (tick_count, _) = symbols.symbol("tick_count");
    let inside_tick = |pc: u64| pc >= tick && pc < tick + tick_size.max(2);

    // A second client attached from the start.
    let mut raw = attach(&gateway).await;
    let mut stops = gateway.stops();

    let mut gdb = Gdb::start(
        TICKER,
        gateway.address(),
        &[
            "break tick",
            "continue",
            "print tick_count",
            "print/x $pc",
            "shell sleep 3",
            "finish",
            "print tick_count",
        ],
    );
    let count_line = gdb.expect_line("$1 = ").await;
    let pc_line = gdb.expect_line("$2 = 0x").await;
    let gdb_count: u32 = count_line
        .rsplit(' ')
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let gdb_pc = u64::from_str_radix(pc_line.rsplit("0x").next().unwrap().trim(), 16).unwrap();
    assert!(
        inside_tick(gdb_pc),
        "gdb stopped at {gdb_pc:#x}, tick is {tick:#x}"
    );

    // While gdb sleeps at the breakpoint: the raw client and the API.
    let stop = raw.request(b"?").await.unwrap();
    assert!(stop.starts_with(b"T05"), "{}", stop.escape_ascii());
    let raw_pc = pc_of(&raw.request(b"g").await.unwrap());
    assert_eq!(u64::from(raw_pc), gdb_pc);
    assert_eq!(read_u32(&mut raw, tick_count).await, gdb_count);
    let api = gateway.client();
    assert!(api.is_halted().await.unwrap());
    let registers = api.registers().await.unwrap();
    let api_pc = registers
        .iter()
        .find(|register| register.name == "pc")
        .unwrap();
    assert_eq!(
        u64::from_str_radix(&api_pc.value_hex[2..], 16).unwrap(),
        gdb_pc
    );
    assert!(
        registers
            .iter()
            .any(|register| register.name == "xpsr" && register.number == 25)
    );
    let memory = api.read_memory(tick_count, 4).await.unwrap();
    assert_eq!(u32::from_le_bytes(memory.try_into().unwrap()), gdb_count);
    let event = stops.recv().await.unwrap();
    assert_eq!(event.pc, Some(gdb_pc));
    assert_eq!(gateway.status().clients.len(), 2);

    // gdb finishes tick() (tick_count grows by one) and detaches at exit.
    let after = gdb.expect_line("$3 = ").await;
    let after: u32 = after.rsplit(' ').next().unwrap().trim().parse().unwrap();
    assert_eq!(after, gdb_count + 1);
    let (_, transcript) = gdb.finish().await;
    assert!(
        transcript.iter().any(|line| line.starts_with("main () at")),
        "{transcript:#?}"
    );

    // gdb is gone; the raw client is still attached and the target halted.
    assert_eq!(read_u32(&mut raw, tick_count).await, after);
    assert!(!vm_running(&qemu).await);
    assert!(api.is_halted().await.unwrap());

    // The last client detaches: the VM resumes and ticks again.
    let before = ticks(&qemu);
    assert_eq!(raw.request(b"D;1").await.unwrap(), b"OK");
    wait_until("ticks after the last detach", || async {
        ticks(&qemu) > before + 2
    })
    .await;
    assert!(!gateway.status().upstream_connected);
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gdbs_in_turn_and_stepping() {
    let qemu = start_qemu(TICKER).await;
    let gateway = start_gateway(&qemu).await;
    let mut keeper = attach(&gateway).await;
    for round in 0..2 {
        let gdb = Gdb::start(
            TICKER,
            gateway.address(),
            &[
                "break tick",
                "continue",
                "stepi",
                "stepi",
                "info registers pc",
                "delete",
                "detach",
            ],
        );
        let (ok, transcript) = gdb.finish().await;
        assert!(ok, "round {round}: {transcript:#?}");
        assert!(
            transcript.iter().any(|line| line.starts_with("pc ")),
            "round {round}: {transcript:#?}"
        );
    }
    // gdb's breakpoints are gone from the stub: only the keeper remains.
    assert_eq!(gateway.status().breakpoints, 0);
    assert_eq!(keeper.request(b"D;1").await.unwrap(), b"OK");
    gateway.shutdown().await;
}

/// GDB's `next` and `step` through the gateway use its range stepping
/// (`vCont;r`, which QEMU lacks) and stop exactly where single-stepping
/// stops: the same pcs, line after line, with range stepping on and off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gdb_range_steps_and_stops_where_single_steps_do() {
    let dir = tempfile::tempdir().unwrap();
    let mut runs = Vec::new();
    for range_stepping in ["on", "off"] {
        let qemu = start_qemu(TICKER).await;
        let gateway = start_gateway(&qemu).await;
        let log = dir.path().join(format!("remote-{range_stepping}.log"));
        let setup = [
            format!("set range-stepping {range_stepping}"),
            format!("set remotelogfile {}", log.display()),
        ];
        let mut commands = vec!["break tick".to_owned(), "continue".to_owned()];
        for command in ["next", "next", "step", "next", "next", "finish", "next"] {
            commands.push(command.to_owned());
            commands.push("printf \"AT=%#x\\n\", $pc".to_owned());
        }
        let commands: Vec<&str> = commands.iter().map(String::as_str).collect();
        let setup: Vec<&str> = setup.iter().map(String::as_str).collect();
        let gdb = Gdb::start_with_setup(TICKER, gateway.address(), &setup, &commands);
        let (ok, transcript) = gdb.finish().await;
        assert!(ok, "{transcript:#?}");
        let stops: Vec<String> = transcript
            .iter()
            .filter_map(|line| line.strip_prefix("AT=").map(str::to_owned))
            .collect();
        assert_eq!(stops.len(), 7, "{transcript:#?}");
        let log = std::fs::read_to_string(&log).unwrap();
        assert_eq!(
            log.contains("vCont;r"),
            range_stepping == "on",
            "range stepping {range_stepping}"
        );
        runs.push(stops);
        gateway.shutdown().await;
    }
    assert_eq!(runs[0], runs[1], "range stepping on, then off");
}

/// Ctrl-C during a `next` the gateway range-steps (a loop of millions of
/// instructions on one line) stops it: GDB reports SIGINT, inside the loop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_a_range_stepped_next() {
    let qemu = start_qemu(TICKER).await;
    let gateway = start_gateway(&qemu).await;
    let (delay, delay_size) = Symbols::load(TICKER).symbol("delay");
    let mut gdb = Gdb::start(
        TICKER,
        gateway.address(),
        &[
            "break delay",
            "continue",
            "next",
            "printf \"AT=%#x\\n\", $pc",
        ],
    );
    gdb.expect_line("Breakpoint 1, delay").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pid = gdb.child.id().expect("gdb runs");
    let status = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    gdb.expect_line("SIGINT").await;
    let at = gdb.expect_line("AT=").await;
    let pc = u64::from_str_radix(at.trim_start_matches("AT=0x").trim(), 16).unwrap();
    assert!(
        (delay & !1..(delay & !1) + delay_size).contains(&pc),
        "stopped at {pc:#x}, delay is {delay:#x}"
    );
    let (ok, transcript) = gdb.finish().await;
    assert!(ok, "{transcript:#?}");
    gateway.shutdown().await;
}
