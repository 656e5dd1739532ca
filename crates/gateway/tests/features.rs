//! What the gateway adds to QEMU's stub, checked against a real QEMU: the
//! memory map, reads past the stub's 0x800-byte limit, monitor commands,
//! tickets, and the API's own debug client.

mod common;

use std::time::Duration;

use common::*;
use tokio::net::TcpStream;
use virserver_gateway::bench::RspClient;
use virserver_gateway::{BreakpointKind, DebugError, Gateway, GatewayConfig, StopReason};

const MEMORY_MAP: &str = r#"<?xml version="1.0"?><!DOCTYPE memory-map PUBLIC "+//IDN gnu.org//DTD GDB Memory Map V1.0//EN" "http://sourceware.org/gdb/gdb-memory-map.dtd"><memory-map><memory type="rom" start="0x0" length="0x400000"/><memory type="ram" start="0x20000000" length="0x400000"/></memory-map>"#;

#[tokio::test]
async fn the_memory_map_is_served_from_the_configuration() {
    let qemu = start_qemu(TICKER).await;
    let mut config = GatewayConfig::new(&qemu.gdb_socket);
    config.memory_map_xml = Some(MEMORY_MAP.to_owned());
    let gateway = Gateway::start(config).await.unwrap();
    let mut client = attach(&gateway).await;
    let features = client.request(b"qSupported:multiprocess+").await.unwrap();
    assert!(String::from_utf8_lossy(&features).contains("qXfer:memory-map:read+"));
    let mut map = Vec::new();
    loop {
        let request = format!("qXfer:memory-map:read::{:x},40", map.len());
        let reply = client.request(request.as_bytes()).await.unwrap();
        map.extend_from_slice(&reply[1..]);
        if reply[0] == b'l' {
            break;
        }
        assert_eq!(reply[0], b'm');
    }
    assert_eq!(map, MEMORY_MAP.as_bytes());
    // gdb reads it and uses it.
    let gdb = Gdb::start(TICKER, gateway.address(), &["info mem"]);
    drop(client);
    let (ok, transcript) = gdb.finish().await;
    assert!(ok, "{transcript:#?}");
    assert!(
        transcript
            .iter()
            .any(|line| line.contains("0x20000000 0x20400000 rw")),
        "{transcript:#?}"
    );
}

#[tokio::test]
async fn a_64_kib_read_matches_the_elf() {
    let qemu = start_qemu(TICKER).await;
    let gateway = start_gateway(&qemu).await;
    let mut client = attach(&gateway).await;
    let reply = client.request(b"m0,10000").await.unwrap();
    let memory = virserver_rsp::hex::decode_hex(&reply).unwrap();
    assert_eq!(memory.len(), 0x10000);
    assert_eq!(memory, Symbols::load(TICKER).image(0, 0x10000));
    // The API reads any length too, and the same bytes.
    let api = gateway.client();
    assert_eq!(api.read_memory(0, 0x10000).await.unwrap(), memory);
    assert_eq!(
        api.read_memory(0x1001, 0x2345).await.unwrap(),
        memory[0x1001..0x3346]
    );
    // Unmapped memory is an error, not a hang.
    assert!(matches!(
        api.read_memory(0xf000_0000, 16).await,
        Err(DebugError::Memory { .. })
    ));
    gateway.shutdown().await;
}

#[tokio::test]
async fn monitor_commands() {
    let qemu = start_qemu(TICKER).await;
    let gateway = start_gateway(&qemu).await;
    let mut first = attach(&gateway).await;
    let _second = attach(&gateway).await;
    let (output, reply) = first.monitor("virserver status").await.unwrap();
    assert_eq!(reply, b"OK");
    assert!(output.contains("2 client(s)"), "{output}");
    assert_eq!(output.matches("  client ").count(), 2, "{output}");
    // HMP passes through, O packets then OK.
    let (output, reply) = first.monitor("info status").await.unwrap();
    assert_eq!(reply, b"OK");
    assert!(output.contains("VM status"), "{output}");
    // reset halt: back at the reset vector, still halted.
    first.request(b"vCont;s:p1.1").await.unwrap();
    first.request(b"vCont;s:p1.1").await.unwrap();
    let stepped = pc_of(&first.request(b"g").await.unwrap());
    let (_, reply) = first.monitor("reset halt").await.unwrap();
    assert_eq!(reply, b"OK");
    let reset = pc_of(&first.request(b"g").await.unwrap());
    assert_ne!(reset, stepped);
    assert_eq!(
        u64::from(reset),
        Symbols::load(TICKER).symbol("Reset_Handler").0
    );
    assert!(!vm_running(&qemu).await);
    // HMP cont would resume the VM behind the stub: refused, with a note.
    let (output, reply) = first.monitor("cont").await.unwrap();
    assert_eq!(reply, b"E01");
    assert!(output.contains("use GDB's continue"), "{output}");
    assert!(!vm_running(&qemu).await);
    // monitor halt: OK when halted; interrupts when running.
    assert_eq!(first.monitor("halt").await.unwrap().1, b"OK");
    let mut runner = attach(&gateway).await;
    runner.send(b"c").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(vm_running(&qemu).await);
    assert_eq!(first.monitor("halt").await.unwrap().1, b"OK");
    assert!(runner.recv().await.unwrap().starts_with(b"T02"));
    assert!(!vm_running(&qemu).await);
    gateway.shutdown().await;
}

#[tokio::test]
async fn a_ticket_accepts_exactly_one_connection() {
    let qemu = start_qemu(TICKER).await;
    let gateway = start_gateway(&qemu).await;
    let ticket = gateway
        .create_ticket(Duration::from_secs(10), Some("ann".into()))
        .await
        .unwrap();
    assert_ne!(ticket, gateway.address());
    let mut client = RspClient::new(TcpStream::connect(ticket).await.unwrap());
    client.request(b"qSupported").await.unwrap();
    assert!(client.read_target_xml().await.is_ok());
    assert!(
        TcpStream::connect(ticket).await.is_err(),
        "a second connection is refused"
    );
    // An unused ticket expires.
    let unused = gateway
        .create_ticket(Duration::from_millis(100), None)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(TcpStream::connect(unused).await.is_err());
    assert_eq!(gateway.status().clients.len(), 1);
    assert!(
        gateway.status().clients[0].peer.ends_with(" user ann"),
        "{:?}",
        gateway.status().clients
    );
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_debugs_without_any_gdb() {
    let qemu = start_qemu(TICKER).await;
    let gateway = start_gateway(&qemu).await;
    let symbols = Symbols::load(TICKER);
    let (tick, _) = symbols.symbol("tick");
    let (tick_count, _) = symbols.symbol("tick_count");
    let api = gateway.client();
    // Lazy: nothing connected, and data calls refuse rather than connect.
    assert!(!gateway.status().upstream_connected);
    assert_eq!(api.registers().await, Err(DebugError::NotHalted));
    assert!(!api.is_halted().await.unwrap());

    api.halt().await.unwrap();
    assert!(api.is_halted().await.unwrap());
    let registers = api.registers().await.unwrap();
    assert!(registers.iter().any(|register| register.name == "sp"));
    let mut stops = gateway.stops();
    api.insert_breakpoint(BreakpointKind::Software, tick)
        .await
        .unwrap();
    api.resume().await.unwrap();
    let stop = tokio::time::timeout(PATIENCE, stops.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stop.reason, StopReason::Breakpoint);
    assert_eq!(stop.pc, Some(tick));
    let count = u32::from_le_bytes(
        api.read_memory(tick_count, 4)
            .await
            .unwrap()
            .try_into()
            .unwrap(),
    );
    // Write memory and a register, read them back.
    api.write_memory(tick_count, &(count + 100).to_le_bytes())
        .await
        .unwrap();
    assert_eq!(
        api.read_memory(tick_count, 4).await.unwrap(),
        (count + 100).to_le_bytes()
    );
    api.write_register("r0", 0x1234_5678).await.unwrap();
    let r0 = api
        .registers()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.name == "r0")
        .unwrap();
    assert_eq!(r0.value_hex, "0x12345678");
    let stepped = api.step(3).await.unwrap().unwrap();
    assert_eq!(stepped.reason, StopReason::Step);
    assert_ne!(stepped.pc, Some(tick));
    api.remove_breakpoint(BreakpointKind::Software, tick)
        .await
        .unwrap();
    assert_eq!(gateway.status().breakpoints, 0);
    // No client, no breakpoint: resume detaches and the VM ticks.
    api.halt().await.unwrap();
    api.resume().await.unwrap();
    wait_until("the link to close", || async {
        !gateway.status().upstream_connected
    })
    .await;
    wait_until("ticks", || async { ticks(&qemu) > 2 }).await;
    assert!(
        qemu.output().contains(&format!("tick {}", count + 101)),
        "{}",
        qemu.output()
    );
    gateway.shutdown().await;
}

#[tokio::test]
async fn riscv32_through_the_gateway() {
    let qemu = start_qemu("ticker-riscv32-virt.elf").await;
    let gateway = start_gateway(&qemu).await;
    let (tick, _) = Symbols::load("ticker-riscv32-virt.elf").symbol("tick");
    let gdb = Gdb::start(
        "ticker-riscv32-virt.elf",
        gateway.address(),
        &["break tick", "continue", "print/x $pc", "print tick_count"],
    );
    let (ok, transcript) = gdb.finish().await;
    assert!(ok, "{transcript:#?}");
    assert!(
        transcript
            .iter()
            .any(|line| line == &format!("$1 = {tick:#x}")),
        "{transcript:#?}"
    );
    gateway.shutdown().await;
}
