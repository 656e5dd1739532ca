//! The things that break QEMU's stub or a shared session, done on purpose
//! through the gateway against a real QEMU: reverse execution without
//! record/replay, junk and half packets, a client killed mid-exchange, one
//! client detaching among several, and the last client leaving.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

#[tokio::test]
async fn reverse_execution_is_refused_and_the_session_survives() {
    let mut qemu = start_qemu(TICKER).await;
    let gateway = start_gateway(&qemu).await;
    let mut client = attach(&gateway).await;
    assert_eq!(client.request(b"bs").await.unwrap(), b"");
    assert_eq!(client.request(b"bc").await.unwrap(), b"");
    let features = client.request(b"qSupported").await.unwrap();
    assert!(!String::from_utf8_lossy(&features).contains("Reverse"));
    // QEMU is alive and the session usable.
    assert!(qemu.is_running());
    client.request(b"g").await.unwrap();
    assert_eq!(client.request(b"vCont;s:p1.1").await.unwrap()[..3], *b"T05");
    assert!(qemu.is_running());
    gateway.shutdown().await;
}

#[tokio::test]
async fn junk_and_half_packets_never_reach_the_stub() {
    let qemu = start_qemu(TICKER).await;
    let gateway = start_gateway(&qemu).await;
    let mut keeper = attach(&gateway).await;
    let pc = pc_of(&keeper.request(b"g").await.unwrap());

    let mut vandal = TcpStream::connect(gateway.address()).await.unwrap();
    // Junk, a packet with a bad checksum (it would resume the VM), a
    // resume cut in half, and then the connection dropped mid-packet.
    vandal
        .write_all(b"hello\r\n\xff\x00$c#00$vCont;c:p1.")
        .await
        .unwrap();
    vandal.write_all(b"1#").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(vandal);
    tokio::time::sleep(Duration::from_millis(200)).await;

    assert!(!vm_running(&qemu).await, "nothing resumed the VM");
    assert_eq!(pc_of(&keeper.request(b"g").await.unwrap()), pc);
    assert_eq!(gateway.status().clients.len(), 1);
    gateway.shutdown().await;
}

#[tokio::test]
async fn a_client_killed_mid_exchange_changes_nothing() {
    let qemu = start_qemu(TICKER).await;
    let gateway = start_gateway(&qemu).await;
    let mut keeper = attach(&gateway).await;
    let mut victim = attach(&gateway).await;
    // A 64 KiB read in flight upstream when the client dies.
    victim.send(b"m0,10000").await.unwrap();
    drop(victim);
    for _ in 0..20 {
        assert_eq!(keeper.request(b"m0,8").await.unwrap().len(), 16);
    }
    assert!(!vm_running(&qemu).await);
    assert_eq!(gateway.status().clients.len(), 1);
    gateway.shutdown().await;
}

#[tokio::test]
async fn detach_of_one_client_leaves_the_other_attached_and_halted() {
    let qemu = start_qemu(TICKER).await;
    let gateway = start_gateway(&qemu).await;
    let mut first = attach(&gateway).await;
    let mut second = attach(&gateway).await;
    let pc = pc_of(&second.request(b"g").await.unwrap());
    assert_eq!(first.request(b"D;1").await.unwrap(), b"OK");
    drop(first);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!vm_running(&qemu).await, "the target stays halted");
    assert_eq!(pc_of(&second.request(b"g").await.unwrap()), pc);
    // k and vKill end the client, never the session.
    let mut third = attach(&gateway).await;
    assert_eq!(third.request(b"vKill;1").await.unwrap(), b"OK");
    assert!(third.recv().await.is_err(), "the gateway closed the killer");
    assert!(!vm_running(&qemu).await);
    assert_eq!(pc_of(&second.request(b"g").await.unwrap()), pc);
    assert!(gateway.status().upstream_connected);
    gateway.shutdown().await;
}

#[tokio::test]
async fn the_last_client_leaving_resumes_the_target() {
    let qemu = start_qemu(TICKER).await;
    let gateway = start_gateway(&qemu).await;
    // Leaving by D.
    let mut client = attach(&gateway).await;
    assert_eq!(ticks(&qemu), 0);
    assert_eq!(client.request(b"D;1").await.unwrap(), b"OK");
    wait_until("ticks after D", || async { ticks(&qemu) >= 3 }).await;
    assert!(vm_running(&qemu).await);
    drop(client);

    // Leaving by closing the socket, target halted at a breakpoint.
    let (tick, _) = Symbols::load(TICKER).symbol("tick");
    let mut client = attach(&gateway).await;
    assert_eq!(
        client
            .request(format!("Z0,{tick:x},2").as_bytes())
            .await
            .unwrap(),
        b"OK"
    );
    let stop = client.request(b"c").await.unwrap();
    assert!(stop.starts_with(b"T05"), "{}", stop.escape_ascii());
    assert_eq!(u64::from(pc_of(&client.request(b"g").await.unwrap())), tick);
    assert!(!vm_running(&qemu).await);
    let before = ticks(&qemu);
    drop(client);
    wait_until("ticks after the socket closed", || async {
        ticks(&qemu) > before + 2
    })
    .await;
    wait_until("the link to close", || async {
        !gateway.status().upstream_connected
    })
    .await;
    gateway.shutdown().await;
}

#[tokio::test]
async fn a_client_joining_a_run_gets_the_next_stop() {
    let qemu = start_qemu(TICKER).await;
    let gateway = start_gateway(&qemu).await;
    let (tick, _) = Symbols::load(TICKER).symbol("tick");
    let mut first = attach(&gateway).await;
    let mut second = attach(&gateway).await;
    assert_eq!(
        first
            .request(format!("Z0,{tick:x},2").as_bytes())
            .await
            .unwrap(),
        b"OK"
    );
    // Both resume; one run, both get the stop reply.
    first.send(b"c").await.unwrap();
    second.send(b"vCont;c").await.unwrap();
    let one = first.recv().await.unwrap();
    let two = second.recv().await.unwrap();
    assert_eq!(one, two);
    assert!(one.starts_with(b"T05"));
    // Interrupting a run: 0x03 from a waiting client.
    assert_eq!(
        first
            .request(format!("z0,{tick:x},2").as_bytes())
            .await
            .unwrap(),
        b"OK"
    );
    first.send(b"c").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(vm_running(&qemu).await);
    first.send_raw(&[0x03]).await.unwrap();
    let stop = first.recv().await.unwrap();
    assert!(stop.starts_with(b"T02"), "{}", stop.escape_ascii());
    assert!(!vm_running(&qemu).await);
    gateway.shutdown().await;
}
