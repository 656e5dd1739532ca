//! QMP and GDB on the same VM: the server resumes or stops the VM through
//! QMP behind the clients' back, and the gateway must follow from the stop
//! replies QEMU sends unasked.
//!
//! QEMU changed here in 8.1: its stub sends a stop reply only after a
//! resume it was sent (or `?`). A QMP `stop` of a run a client started is
//! reported on every version; a breakpoint hit after a QMP `cont` is
//! reported by 7.2 only. The supported way to resume while the gateway is
//! attached is therefore through it ([`DebugClient::resume`], which the
//! server uses), tested here on both.
mod common;

use std::time::Duration;

use common::*;
use virserver_gateway::{Resumed, StopReason};

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

    // QMP cont: QEMU runs to the breakpoint; 7.2 says T05 unasked.
    qemu.qmp("cont").await.unwrap();
    gateway.invalidate();
    if reports_stops_after_qmp_cont(&qemu).await {
        let stop = tokio::time::timeout(PATIENCE, stops.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(!stop.solicited);
        assert_eq!(stop.reason, StopReason::Breakpoint);
        assert_eq!(stop.pc, Some(tick));
        assert!(client.request(b"?").await.unwrap().starts_with(b"T05"));
    } else {
        // 8.1 and later stop there silently; the gateway still reads the
        // halted CPU right.
        wait_until("the breakpoint", || async {
            qemu.qmp("query-status")
                .await
                .unwrap()
                .contains("\"debug\"")
        })
        .await;
        assert!(stops.try_recv().is_err(), "no stop reply, no event");
    }
    assert_eq!(u64::from(pc_of(&client.request(b"g").await.unwrap())), tick);

    // Resuming through the gateway works on every version: `c` goes to the
    // stub, which reports the next stop.
    assert_eq!(
        gateway.client().resume().await.unwrap(),
        Resumed::ThroughStub
    );
    let stop = tokio::time::timeout(PATIENCE, stops.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stop.reason, StopReason::Breakpoint);
    assert_eq!(stop.pc, Some(tick));

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
    let stop = tokio::time::timeout(PATIENCE, stops.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(stop.solicited);
    assert_eq!(stop.reason, StopReason::Interrupted);
    assert!(client.request(b"g").await.is_ok());
    gateway.shutdown().await;
}

/// True for QEMU before 8.1, whose stub reports a stop however the VM was
/// resumed.
async fn reports_stops_after_qmp_cont(qemu: &virserver_gateway::bench::QemuProcess) -> bool {
    let reply = qemu.qmp("query-version").await.unwrap();
    let field = |name: &str| -> u32 {
        let start = reply.find(&format!("\"{name}\": ")).unwrap() + name.len() + 4;
        let digits: String = reply[start..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().unwrap()
    };
    (field("major"), field("minor")) < (8, 1)
}
