//! QMP and GDB on the same VM: the server resumes or stops the VM through
//! QMP behind the clients' back, and the gateway must follow from the stop
//! replies QEMU sends unasked.

mod common;

use std::time::Duration;

use common::*;
use virserver_gateway::StopReason;

#[tokio::test]
async fn qmp_cont_and_stop_behind_the_clients_back() {
    let qemu = start_qemu(TICKER).await;
    let gateway = start_gateway(&qemu).await;
    let (tick, _) = Symbols::load(TICKER).symbol("tick");
    let mut client = attach(&gateway).await;
    let mut stops = gateway.stops();
    assert_eq!(
        client
            .request(format!("Z0,{tick:x},2").as_bytes())
            .await
            .unwrap(),
        b"OK"
    );

    // QMP cont: QEMU runs to the breakpoint and says T05 unasked.
    qemu.qmp("cont").await.unwrap();
    gateway.invalidate();
    let stop = tokio::time::timeout(Duration::from_secs(5), stops.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(!stop.solicited);
    assert_eq!(stop.reason, StopReason::Breakpoint);
    assert_eq!(stop.pc, Some(tick));
    assert!(client.request(b"?").await.unwrap().starts_with(b"T05"));
    assert_eq!(u64::from(pc_of(&client.request(b"g").await.unwrap())), tick);

    // QMP stop while the client waits on c: it gets the T02.
    assert_eq!(
        client
            .request(format!("z0,{tick:x},2").as_bytes())
            .await
            .unwrap(),
        b"OK"
    );
    client.send(b"c").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    qemu.qmp("stop").await.unwrap();
    let reply = client.recv().await.unwrap();
    assert!(reply.starts_with(b"T02"), "{}", reply.escape_ascii());
    let stop = tokio::time::timeout(Duration::from_secs(5), stops.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(stop.solicited);
    assert_eq!(stop.reason, StopReason::Interrupted);
    assert!(client.request(b"g").await.is_ok());
    gateway.shutdown().await;
}
