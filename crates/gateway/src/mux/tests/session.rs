//! The mux's session rules, scripted: the detach policy, breakpoint
//! reference counts, monitor commands, the API, and losing the stub.

use super::*;

#[test]
fn detach_policy() {
    let mut mux = probed(MuxConfig::default());
    check(
        &mut mux,
        vec![
            (Step::Connect(2), &[]),
            // One of two detaches: answered here, the target stays halted.
            (Step::Client(2, "+ $D;1"), &["c2: + $OK"]),
            (Step::Gone(2), &[]),
            (Step::Connect(3), &[]),
            // k and vKill end the client only.
            (Step::Client(3, "$vKill;1"), &["c3: + $OK", "close 3"]),
            // The last client's D goes upstream; the link closes after.
            (Step::Client(1, "$D;1"), &["c1: +", "up: $D;1"]),
            (Step::Stub("$OK"), &["c1: $OK", "disconnect"]),
            (Step::Gone(1), &[]),
            // A new client reopens the link lazily.
            (Step::Connect(4), &[]),
            (Step::Client(4, "$g"), &["c4: +", "connect"]),
        ],
    );
}

#[test]
fn last_client_leaving_while_running() {
    let mut mux = probed(MuxConfig::default());
    check(
        &mut mux,
        vec![
            (Step::Client(1, "$Z0,1a4,2"), &["c1: +", "up: $Z0,1a4,2"]),
            (Step::Stub("$OK"), &["c1: $OK"]),
            (Step::Client(1, "$c"), &["c1: +", "up: $c"]),
            // Gone while running with a breakpoint in: stop, remove, detach.
            (Step::Gone(1), &["up: ^C"]),
            (
                Step::Stub("$T02thread:p01.01;"),
                &["up: $z0,1a4,2 $D;1", "stop Interrupted pc=None"],
            ),
            (Step::Stub("$OK $OK"), &["disconnect"]),
        ],
    );
    let mut mux = probed(MuxConfig::default());
    check(
        &mut mux,
        vec![
            (Step::Client(1, "$c"), &["c1: +", "up: $c"]),
            // Nothing to clean: close without a byte, the VM runs on.
            (Step::Gone(1), &["disconnect"]),
        ],
    );
}

#[test]
fn breakpoints_are_reference_counted() {
    let mut mux = probed(MuxConfig::default());
    check(
        &mut mux,
        vec![
            (Step::Connect(2), &[]),
            (Step::Client(1, "$Z0,1a4,2"), &["c1: +", "up: $Z0,1a4,2"]),
            (Step::Client(2, "+ $Z0,1a4,2"), &["c2: +"]),
            (Step::Stub("$OK"), &["c1: $OK", "c2: $OK"]),
            (Step::Client(1, "$z0,1a4,2"), &["c1: + $OK"]),
            (Step::Client(1, "$z0,1a4,2"), &["c1: + $OK"]),
            (
                Step::Api(
                    1,
                    ApiCall::Breakpoint {
                        insert: true,
                        breakpoint_type: virserver_rsp::packets::BreakpointType::Software,
                        addr: 0x1a4,
                        kind: 2,
                    },
                ),
                &["api 1: Ok(Done)"],
            ),
            (Step::Client(2, "$z0,1a4,2"), &["c2: + $OK"]),
            (
                Step::Api(
                    2,
                    ApiCall::Breakpoint {
                        insert: false,
                        breakpoint_type: virserver_rsp::packets::BreakpointType::Software,
                        addr: 0x1a4,
                        kind: 2,
                    },
                ),
                &["up: $z0,1a4,2"],
            ),
            (Step::Stub("$OK"), &["api 2: Ok(Done)"]),
            // A client leaving releases what it held.
            (Step::Client(2, "$Z1,100,2"), &["c2: +", "up: $Z1,100,2"]),
            (Step::Stub("$OK"), &["c2: $OK"]),
            (Step::Gone(2), &["up: $z1,100,2"]),
            (Step::Stub("$OK"), &[]),
        ],
    );
}

#[test]
fn monitor_commands() {
    let mut mux = probed(MuxConfig {
        memory_map_xml: Some("<memory-map/>".into()),
        ..MuxConfig::default()
    });
    let status = virserver_rsp::hex::hex_string(b"virserver status");
    let info = virserver_rsp::hex::hex_string(b"info status");
    let reset = virserver_rsp::hex::hex_string(b"reset halt");
    let system_reset = virserver_rsp::hex::hex_string(b"system_reset");
    let leak = |text: String| -> &'static str { Box::leak(text.into_boxed_str()) };
    let status_reply = format!(
        "c1: + ${} $OK",
        virserver_rsp::hex::hex_string(
            b"virserver gateway: 1 client(s), upstream connected, target Halted\n  client 1 127.0.0.1:40001 since 0 (unix time)\nAPI holds a halt: no; breakpoints in the stub: 0\n"
        )
        .replacen("", "O", 1)
    );
    check(
        &mut mux,
        vec![
            (
                Step::Client(1, leak(format!("$qRcmd,{status}"))),
                &[leak(status_reply)],
            ),
            (
                Step::Client(1, leak(format!("$qRcmd,{info}"))),
                &["c1: +", leak(format!("up: $qRcmd,{info}"))],
            ),
            (Step::Stub("$O56 $O57"), &["c1: $O56 $O57"]),
            (Step::Stub("$OK"), &["c1: $OK"]),
            (
                Step::Client(1, leak(format!("$qRcmd,{reset}"))),
                &["c1: +", leak(format!("up: $qRcmd,{system_reset}"))],
            ),
            (Step::Stub("$OK"), &["c1: $OK"]),
            (
                Step::Client(1, "$qXfer:memory-map:read::0,5"),
                &["c1: + $m<memo"],
            ),
            (
                Step::Client(1, "$qXfer:memory-map:read::5,100"),
                &["c1: + $lry-map/>"],
            ),
        ],
    );
}

#[test]
fn api_calls_share_the_link() {
    let mut mux = probed(MuxConfig::default());
    check(
        &mut mux,
        vec![
            (
                Step::Api(1, ApiCall::ReadRegisters),
                &[
                    "api 1: Ok(Registers([Register { name: \"r0\", number: 0, bits: 32, value_hex: \"0x00000000\" }, Register { name: \"sp\", number: 1, bits: 32, value_hex: \"0x20000fe0\" }, Register { name: \"pc\", number: 2, bits: 32, value_hex: \"0x000001a4\" }]))",
                ],
            ),
            (
                Step::Api(
                    2,
                    ApiCall::ReadMemory {
                        addr: 0x20000fe0,
                        length: 2,
                    },
                ),
                &["api 2: Ok(Memory([0, 1]))"],
            ),
            (Step::Api(3, ApiCall::Step { count: 1 }), &["up: $s"]),
            (Step::Stub("$T05thread:p01.01;"), &["up: $g $m20000fa0,c0"]),
            (
                Step::Stub(G),
                &[
                    "stop Step pc=Some(420)",
                    "api 3: Ok(Stopped(StopEvent { reason: Step, signal: Some(5), thread: Some(\"p1.1\"), pc: Some(420), raw: \"T05thread:p01.01;\", solicited: true }))",
                ],
            ),
            (Step::Stub(STACK_GUESS), &[]),
            (
                Step::Api(
                    4,
                    ApiCall::WriteRegister {
                        name: "pc".into(),
                        value: 0x1a8,
                    },
                ),
                &["up: $P2=a8010000"],
            ),
            (Step::Stub("$OK"), &["api 4: Ok(Done)"]),
            (
                Step::Api(
                    5,
                    ApiCall::WriteRegister {
                        name: "nope".into(),
                        value: 0,
                    },
                ),
                &["api 5: Err(UnknownRegister(\"nope\"))"],
            ),
            // With a client attached the API resumes through the stub.
            (
                Step::Api(51, ApiCall::Resume),
                &["up: $c", "api 51: Ok(Resumed(ThroughStub))"],
            ),
            (
                Step::Api(52, ApiCall::Resume),
                &["api 52: Ok(Resumed(AlreadyRunning))"],
            ),
            (Step::Api(53, ApiCall::Halt), &["up: ^C"]),
            (Step::Stub("$T02thread:p01.01;"), &["up: $g $m20000fa0,c0"]),
            (
                Step::Stub(G),
                &["stop Interrupted pc=Some(420)", "api 53: Ok(Done)"],
            ),
            (Step::Stub(STACK_GUESS), &[]),
            // The API holds a halt: the last client leaving does not resume.
            (Step::Api(6, ApiCall::Halt), &["api 6: Ok(Done)"]),
            (Step::Gone(1), &[]),
            (
                Step::Api(7, ApiCall::IsHalted),
                &["api 7: Ok(Halted(true))"],
            ),
            // Releasing it with nobody attached detaches.
            (
                Step::Api(8, ApiCall::Resume),
                &["up: $D;1", "api 8: Ok(Resumed(Detached))"],
            ),
            (Step::Stub("$OK"), &["disconnect"]),
            (
                Step::Api(9, ApiCall::ReadRegisters),
                &["api 9: Err(NotHalted)"],
            ),
            // No link: nothing to resume through; the caller uses QMP.
            (
                Step::Api(10, ApiCall::Resume),
                &["api 10: Ok(Resumed(NotConnected))"],
            ),
        ],
    );
}

#[test]
fn upstream_loss_closes_clients() {
    let mut mux = probed(MuxConfig::default());
    check(
        &mut mux,
        vec![
            (Step::Connect(2), &[]),
            (Step::StubGone, &["close 1", "close 2"]),
        ],
    );
}

/// `vCont;r` run by the gateway: steps while the pc stays in the range and
/// off breakpoints, then one stop reply; an interrupt ends it at the next stop.
#[test]
fn range_stepping_for_a_stub_without_it() {
    const G_1A6: &str = "$00000000e00f0020a6010000";
    const G_1B0: &str = "$00000000e00f0020b0010000";
    let mut mux = probed(MuxConfig::default());
    check(
        &mut mux,
        vec![
            (
                Step::Client(1, "$vCont;r1a4,1b0:p1.1"),
                &["c1: +", "up: $vCont;s:p1.1"],
            ),
            (Step::Stub("$T05thread:p01.01;"), &["up: $g"]),
            (Step::Stub(G_1A6), &["up: $vCont;s:p1.1"]),
            (Step::Stub("$T05thread:p01.01;"), &["up: $g"]),
            // Out of the range: the client gets the last stop, then the
            // usual read-ahead.
            (
                Step::Stub(G_1B0),
                &["c1: $T05thread:p01.01;", "up: $g $m20000fa0,c0"],
            ),
            (Step::Stub(G_1B0), &["stop Step pc=Some(432)"]),
            (Step::Stub(STACK_GUESS), &[]),
            // A breakpoint inside the range ends it there.
            (Step::Client(1, "$Z0,1a6,2"), &["c1: +", "up: $Z0,1a6,2"]),
            (Step::Stub("$OK"), &["c1: $OK"]),
            (
                Step::Client(1, "$vCont;r1a0,1b0:p1.1"),
                &["c1: +", "up: $vCont;s:p1.1"],
            ),
            (Step::Stub("$T05thread:p01.01;"), &["up: $g"]),
            (
                Step::Stub(G_1A6),
                &["c1: $T05thread:p01.01;", "up: $g $m20000fa0,c0"],
            ),
            (Step::Stub(G_1A6), &["stop Breakpoint pc=Some(422)"]),
            (Step::Stub(STACK_GUESS), &[]),
            // Another CPU's stop ends the loop: it is that CPU's breakpoint.
            (Step::Client(1, "$z0,1a6,2"), &["c1: +", "up: $z0,1a6,2"]),
            (Step::Stub("$OK"), &["c1: $OK"]),
            (
                Step::Client(1, "$vCont;r1a0,1f0:p1.1;c:p1.-1"),
                &["c1: +", "up: $vCont;s:p1.1;c:p1.-1"],
            ),
            (
                Step::Stub("$T05thread:p01.02;"),
                &["c1: $T05thread:p01.02;", "up: $g $m20000fa0,c0"],
            ),
            (Step::Stub(G), &["stop Breakpoint pc=Some(420)"]),
            (Step::Stub(STACK_GUESS), &[]),
            // An interrupt goes upstream once (a step may never end) and ends
            // the loop at the next stop, reported as T02 so GDB stops too.
            (
                Step::Client(1, "$vCont;r1a0,1f0:p1.1"),
                &["c1: +", "up: $vCont;s:p1.1"],
            ),
            (Step::ClientRaw(1, b"\x03"), &["up: ^C"]),
            (
                Step::Stub("$T05thread:p01.01;"),
                &["c1: $T02thread:p01.01;", "up: $g $m20000fa0,c0"],
            ),
            (Step::Stub(G), &["stop Interrupted pc=Some(420)"]),
            (Step::Stub(STACK_GUESS), &[]),
            // A resume the stub refuses leaves no loop behind: a later plain
            // step is the client's own.
            (
                Step::Client(1, "$vCont;r1a0,1f0:p1.7"),
                &["c1: +", "up: $vCont;s:p1.7"],
            ),
            (Step::Stub("$E22"), &["c1: $E22"]),
            (
                Step::Client(1, "$vCont;s:p1.1"),
                &["c1: +", "up: $vCont;s:p1.1"],
            ),
            (
                Step::Stub("$T05thread:p01.01;"),
                &["c1: $T05thread:p01.01;", "up: $g $m20000fa0,c0"],
            ),
        ],
    );
}

/// The last client leaving during a range step: the loop ends at the next
/// stop and the gateway detaches then, so the VM runs on rather than stay
/// paused behind a closed link.
#[test]
fn last_client_leaving_mid_range_step_detaches_at_the_stop() {
    let mut mux = probed(MuxConfig::default());
    check(
        &mut mux,
        vec![
            (
                Step::Client(1, "$vCont;r1a0,1f0:p1.1"),
                &["c1: +", "up: $vCont;s:p1.1"],
            ),
            (Step::Gone(1), &[]),
            (Step::Stub("$T05thread:p01.01;"), &["up: $g"]),
            (
                Step::Stub("$00000000e00f0020a6010000"),
                &["up: $D;1", "stop Step pc=None"],
            ),
            (Step::Stub("$OK"), &["disconnect"]),
        ],
    );
}
