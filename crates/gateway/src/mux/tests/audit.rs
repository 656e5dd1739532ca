//! The client operations the mux names for an audit log, in order, with what
//! matters of each; reads name none.

use super::*;

/// Feeds `steps` and returns only the audit actions they produced.
fn audits(mux: &mut Mux, steps: Vec<Step>) -> Vec<String> {
    actions_of(mux, steps, |action| matches!(action, Action::Audit(_)))
}

#[test]
fn writes_breakpoints_runs_and_monitor_commands_are_named() {
    let mut mux = probed(MuxConfig::default());
    let seen = audits(
        &mut mux,
        vec![
            Step::Client(1, "$m20000fe4,4"),
            Step::Client(1, "$g"),
            Step::Client(1, "$M20000000,2:abcd"),
            Step::Stub("$OK"),
            Step::Client(1, "$P2=00000000"),
            Step::Stub("$OK"),
            Step::Client(1, "$Z0,1a4,2"),
            Step::Stub("$OK"),
            Step::Client(1, "$qRcmd,76697273657276657220737461747573"),
            Step::Client(1, "$vCont;s:p1.1;c"),
            Step::ClientRaw(1, b"\x03"),
            Step::Connect(2),
            Step::Gone(2),
        ],
    );
    assert_eq!(
        seen,
        [
            "audit c1 gdb.memoryWrite address 0x20000000, 2 bytes",
            "audit c1 gdb.registerWrite register 2",
            "audit c1 gdb.breakpoint insert Software at 0x1a4",
            "audit c1 gdb.monitor virserver status",
            "audit c1 gdb.step ",
            "audit c1 gdb.halt 0x03",
            "audit c2 gdb.attach 127.0.0.1:40002",
            "audit c2 gdb.detach ",
        ]
    );
}
