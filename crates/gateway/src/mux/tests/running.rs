//! The mux while the target runs, scripted: no packet waits for the stop
//! longer than the hold limit, a client attaching meanwhile completes GDB's
//! connect sequence, non-stop clients hear of every stop, the server of
//! every resume, and `load`'s flash commands become memory writes.

use super::*;

#[test]
fn a_client_attaching_while_another_runs_is_answered_at_once() {
    let mut mux = probed(MuxConfig::default());
    check(
        &mut mux,
        vec![
            // The thread list read while halted stays true while running.
            (
                Step::Client(1, "$qfThreadInfo"),
                &["c1: +", "up: $qfThreadInfo"],
            ),
            (Step::Stub("$mp01.01,p01.02"), &["c1: $mp01.01,p01.02"]),
            (Step::Client(1, "$c"), &["c1: +", "up: $c"]),
            (Step::Connect(2), &[]),
            // GDB 13's connect sequence: every packet answered, none upstream.
            (
                Step::Client(2, "+ $qSupported:multiprocess+;swbreak+"),
                &[leak(format!("c2: + {SUPPORTED}"))],
            ),
            (Step::Client(2, "$vMustReplyEmpty"), &["c2: + $"]),
            (Step::Client(2, "$QStartNoAckMode"), &["c2: + $OK"]),
            (Step::Client(2, "$QNonStop:0"), &["c2: $OK"]),
            (Step::Client(2, "$Hgp0.0"), &["c2: $OK"]),
            (
                Step::Client(2, "$qXfer:features:read:target.xml:0,ffb"),
                &[leak(format!("c2: ${TARGET_XML}"))],
            ),
            (Step::Client(2, "$qTStatus"), &["c2: $T0;tnotrun:0"]),
            // An all-stop GDB needs a stop reply: the last stop's.
            (Step::Client(2, "$?"), &["c2: $T05thread:p01.01;"]),
            (Step::Client(2, "$qfThreadInfo"), &["c2: $mp01.01,p01.02"]),
            (Step::Client(2, "$qsThreadInfo"), &["c2: $l"]),
            (Step::Client(2, "$qAttached:1"), &["c2: $1"]),
            (Step::Client(2, "$Hcp1.1"), &["c2: $OK"]),
            (Step::Client(2, "$qC"), &["c2: $QCp1.1"]),
            (Step::Client(2, "$Tp01.01"), &["c2: $OK"]),
            // The registers of the last stop, so that GDB can show a frame.
            (Step::Client(2, "$g"), &["c2: $00000000e00f0020a4010000"]),
            (Step::Client(2, "$p2"), &["c2: $a4010000"]),
            // What the running target changes needs it halted.
            (Step::Client(2, "$m20000fe0,4"), &["c2: $E01"]),
            (Step::Client(2, "$M20000000,1:00"), &["c2: $E01"]),
            (Step::Client(2, "$Z0,1a4,2"), &["c2: $E01"]),
            (Step::Client(2, "$qCRC:0,4"), &["c2: $E01"]),
            (Step::Client(2, "$qOffsets"), &["c2: $"]),
            (
                Step::Client(
                    2,
                    leak(format!(
                        "$qRcmd,{}",
                        virserver_rsp::hex::hex_string(b"info registers")
                    )),
                ),
                &[leak(format!(
                    "c2: $O{} $E01",
                    virserver_rsp::hex::hex_string(
                        b"virserver: the target is running; interrupt it first\n"
                    )
                ))],
            ),
            // Its detach leaves the run alone.
            (Step::Client(2, "$D;1"), &["c2: $OK"]),
            (Step::Gone(2), &[]),
            // The one who resumed still gets its stop.
            (Step::Client(1, "^C"), &["up: ^C"]),
            (
                Step::Stub("$T02thread:p01.01;"),
                &["c1: $T02thread:p01.01;", "up: $g $m20000fa0,c0"],
            ),
        ],
    );
}

#[test]
fn packets_wait_for_an_imminent_stop_at_most_the_hold_limit() {
    let mut mux = probed(MuxConfig::default());
    check(
        &mut mux,
        vec![
            (Step::Connect(2), &[]),
            // A step ends in moments: client 2's read waits for it.
            (Step::Client(1, "$s"), &["c1: +", "up: $s"]),
            (
                Step::Client(2, "+ $m20000fe0,4"),
                &["c2: +", "wake after 500ms"],
            ),
            (Step::Client(2, "$g"), &["c2: +"]),
            (
                Step::Stub("$T05thread:p01.01;"),
                &["c1: $T05thread:p01.01;", "up: $g $m20000fa0,c0"],
            ),
            (Step::Stub(G), &["stop Step pc=Some(420)"]),
            (
                Step::Stub(STACK_GUESS),
                &["c2: $00010203 $00000000e00f0020a4010000"],
            ),
            // The wake-up of a stop that came in time changes nothing.
            (Step::Wake, &[]),
            // A step that does not end (a `wfi`): answered at the wake-up,
            // and nothing waits any more until the stop.
            (Step::Client(1, "$s"), &["c1: +", "up: $s"]),
            (
                Step::Client(2, "$m20000fe0,4"),
                &["c2: +", "wake after 500ms"],
            ),
            (Step::Client(2, "$?"), &["c2: +"]),
            (Step::Wake, &["c2: $E01 $T05thread:p01.01;"]),
            (Step::Client(2, "$m20000fe0,4"), &["c2: + $E01"]),
            // An interrupt on its way counts as imminent too.
            (Step::Client(1, "^C"), &["up: ^C"]),
            (
                Step::Stub("$T02thread:p01.01;"),
                &["c1: $T02thread:p01.01;", "up: $g $m20000fa0,c0"],
            ),
            (Step::Stub(G), &["stop Interrupted pc=Some(420)"]),
            (Step::Stub(STACK_GUESS), &[]),
            (Step::Client(1, "$c"), &["c1: +", "up: $c"]),
            (Step::Client(1, "^C"), &["up: ^C"]),
            (Step::Client(2, "$g"), &["c2: +", "wake after 500ms"]),
            (Step::Wake, &["c2: $00000000e00f0020a4010000"]),
        ],
    );
}

#[test]
fn non_stop_clients_hear_of_every_stop() {
    let mut mux = probed(MuxConfig::default());
    check(
        &mut mux,
        vec![
            (Step::Connect(2), &[]),
            (Step::Client(2, "+ $QNonStop:1"), &["c2: + $OK"]),
            // Halted: `?` reports the stopped thread, vStopped ends the list.
            (Step::Client(2, "$?"), &["c2: + $T05thread:p01.01;"]),
            (Step::Client(2, "$vStopped"), &["c2: + $OK"]),
            // Client 1 (all-stop) resumes; client 2 sees a running target.
            (Step::Client(1, "$c"), &["c1: +", "up: $c"]),
            (Step::Client(2, "$?"), &["c2: + $OK"]),
            (Step::Client(2, "$g"), &["c2: + $E01"]),
            // The stop client 1 caused reaches client 2 as a notification.
            (Step::Client(1, "^C"), &["up: ^C"]),
            (
                Step::Stub("$T02thread:p01.01;"),
                &[
                    "c1: $T02thread:p01.01;",
                    "c2: %Stop:T02thread:p01.01;",
                    "up: $g $m20000fa0,c0",
                ],
            ),
            (Step::Client(2, "$vStopped"), &["c2: + $OK"]),
            (Step::Stub(G), &["stop Interrupted pc=Some(420)"]),
            (Step::Stub(STACK_GUESS), &[]),
            // Its own resume is acknowledged at once, its stop notified.
            (
                Step::Client(2, "$vCont;c:p1.1"),
                &["c2: + $OK", "up: $vCont;c:p1.1"],
            ),
            (
                Step::Client(2, "$vCont;t:p1.1"),
                &["c2: +", "up: ^C", "c2: $OK"],
            ),
            (
                Step::Stub("$T02thread:p01.01;"),
                &["c2: %Stop:T02thread:p01.01;", "up: $g $m20000fa0,c0"],
            ),
            (Step::Stub(G), &["stop Interrupted pc=Some(420)"]),
            (Step::Stub(STACK_GUESS), &[]),
            // A second stop before the handshake ends waits for vStopped.
            (Step::Client(1, "$s"), &["c1: +", "up: $s"]),
            (
                Step::Stub("$T05thread:p01.01;"),
                &["c1: $T05thread:p01.01;", "up: $g $m20000fa0,c0"],
            ),
            (Step::Client(2, "$vStopped"), &["c2: + $T05thread:p01.01;"]),
            (Step::Client(2, "$vStopped"), &["c2: + $OK"]),
            (Step::Client(2, "$vCtrlC"), &["c2: + $OK"]),
        ],
    );
}

#[test]
fn a_loaded_snapshot_is_a_stop_every_client_can_see() {
    let mut mux = probed(MuxConfig::default());
    check(
        &mut mux,
        vec![
            (Step::Connect(2), &[]),
            (Step::Client(2, "+ $QNonStop:1"), &["c2: + $OK"]),
            (Step::Client(1, "$g"), &["c1: + $00000000e00f0020a4010000"]),
            // New registers are read, the non-stop client is told, the stop
            // is broadcast; the all-stop client waits on nothing.
            (
                Step::StateReplaced,
                &["c2: %Stop:T02thread:p1.1;", "up: $g $m20000fa0,c0"],
            ),
            (
                Step::Stub("$00000000c00f0020b0010000"),
                &["stop Interrupted pc=Some(432)"],
            ),
            (Step::Stub(STACK_GUESS), &[]),
            (Step::Client(1, "$g"), &["c1: + $00000000c00f0020b0010000"]),
        ],
    );
}

#[test]
fn resumes_are_events_whoever_makes_them() {
    let mut mux = probed(MuxConfig::default());
    check_events(
        &mut mux,
        vec![
            (
                Step::Client(1, "$c"),
                &["c1: +", "up: $c", "resumed Client(1) step=false"],
            ),
            (Step::Connect(2), &[]),
            // Joining a run resumes nothing.
            (Step::Client(2, "+ $c"), &["c2: +"]),
            (Step::Api(1, ApiCall::Halt), &["up: ^C"]),
            (
                Step::Stub("$T02thread:p01.01;"),
                &[
                    "c1: $T02thread:p01.01;",
                    "c2: $T02thread:p01.01;",
                    "up: $g $m20000fa0,c0",
                ],
            ),
            (
                Step::Stub(G),
                &["stop Interrupted pc=Some(420)", "api 1: Ok(Done)"],
            ),
            (Step::Stub(STACK_GUESS), &[]),
            (
                Step::Api(2, ApiCall::Step { count: 1 }),
                &["up: $s", "resumed Api step=true"],
            ),
            (Step::Stub("$T05thread:p01.01;"), &["up: $g $m20000fa0,c0"]),
        ],
    );
    // The last client's `D` lets the VM run on: a resume too.
    let mut mux = probed(MuxConfig::default());
    check_events(
        &mut mux,
        vec![(
            Step::Client(1, "$D;1"),
            &["c1: +", "up: $D;1", "resumed Client(1) step=false"],
        )],
    );
}

#[test]
fn flash_commands_become_memory_writes() {
    let mut mux = probed(MuxConfig {
        memory_map_xml: Some("<memory-map/>".into()),
        ..MuxConfig::default()
    });
    check(
        &mut mux,
        vec![
            (
                Step::Client(1, "$vFlashErase:100,4"),
                &["c1: +", "up: $M100,4:ffffffff"],
            ),
            (Step::Stub("$OK"), &["c1: $OK"]),
            // Binary data, escaped on the wire, written as it decodes.
            (
                Step::Client(1, "$vFlashWrite:100:a#}"),
                &["c1: +", "up: $M100,3:61237d"],
            ),
            (Step::Stub("$OK"), &["c1: $OK"]),
            (Step::Client(1, "$vFlashDone"), &["c1: + $OK"]),
            // The cache is gone: the next read asks the stub.
            (
                Step::Client(1, "$m20000fe4,4"),
                &["c1: +", "up: $m20000fe4,4"],
            ),
            (Step::Stub("$04050607"), &["c1: $04050607"]),
            (Step::Client(1, "$vFlashErase:zz"), &["c1: + $E16"]),
            // A refused chunk is the reply.
            (
                Step::Client(1, "$vFlashWrite:f0000000:x"),
                &["c1: +", "up: $Mf0000000,1:78"],
            ),
            (Step::Stub("$E14"), &["c1: $E14"]),
            // Writes need a halted target.
            (Step::Client(1, "$c"), &["c1: +", "up: $c"]),
            (Step::Connect(2), &[]),
            (Step::Client(2, "$vFlashWrite:100:a"), &["c2: + $E01"]),
            (Step::Client(2, "$vFlashDone"), &["c2: + $E01"]),
        ],
    );
}

#[test]
fn the_api_executes_backwards_only_where_the_stub_can() {
    let mut plain = probed(MuxConfig::default());
    check(
        &mut plain,
        vec![(
            Step::Api(1, ApiCall::Reverse { step: true }),
            &["api 1: Err(NoReverse)"],
        )],
    );
    // A stub replaying a recording advertises reverse execution.
    let mut mux = Mux::new(MuxConfig::default());
    check(
        &mut mux,
        vec![
            (Step::Api(1, ApiCall::Halt), &["connect"]),
            (
                Step::UpstreamUp,
                &[
                    "up: $qSupported:multiprocess+;swbreak+;hwbreak+;vContSupported+ $qXfer:features:read:target.xml:0,ffb $? $vCont?",
                ],
            ),
            (
                Step::Stub(
                    "+ $PacketSize=1000;qXfer:features:read+;vContSupported+;multiprocess+;ReverseStep+;ReverseContinue+",
                ),
                &[],
            ),
            (
                Step::StubPayload(TARGET_XML),
                &["up: $qXfer:features:read:core.xml:0,ffb"],
            ),
            (Step::Stub("$T05thread:p01.01; $vCont;c;C;s;S"), &[]),
            (Step::StubPayload(CORE_XML), &["up: $g", "api 1: Ok(Done)"]),
            (Step::Stub(G), &["up: $m20000fe0,40"]),
            (Step::Stub(STACK), &[]),
        ],
    );
    check(
        &mut mux,
        vec![
            (Step::Api(2, ApiCall::Reverse { step: true }), &["up: $bs"]),
            (Step::Stub("$T05thread:p01.01;"), &["up: $g $m20000fa0,c0"]),
            // The stop ends the call, as a step's does.
            (
                Step::Stub(G),
                &[
                    "stop Step pc=Some(420)",
                    "api 2: Ok(Stopped(StopEvent { reason: Step, signal: Some(5), thread: Some(\"p1.1\"), pc: Some(420), raw: \"T05thread:p01.01;\", solicited: true }))",
                ],
            ),
        ],
    );
}
