//! The mux's forwarding, scripted: lazy connection, the cache and
//! read-ahead, stop fan-out, junk, large reads, ack modes, unsolicited stops.

use super::*;

#[test]
fn connects_lazily_and_serves_from_cache() {
    let mut mux = Mux::new(MuxConfig::default());
    // A port probe (connect, no bytes) never touches the stub.
    check(
        &mut mux,
        vec![(Step::Connect(7), &[]), (Step::Gone(7), &[])],
    );
    let mut mux = probed(MuxConfig::default());
    check(
        &mut mux,
        vec![
            (
                Step::Client(1, "+ $qXfer:features:read:target.xml:0,ffb"),
                &[
                    "c1: + $l<target><architecture>arm</architecture><xi:include href=\"core.xml\"/></target>",
                ],
            ),
            (Step::Client(1, "$?"), &["c1: + $T05thread:p01.01;"]),
            (Step::Client(1, "$g"), &["c1: + $00000000e00f0020a4010000"]),
            (Step::Client(1, "$p2"), &["c1: + $a4010000"]),
            (Step::Client(1, "$m20000fe4,4"), &["c1: + $04050607"]),
            (Step::Client(1, "$vCont?"), &["c1: + $vCont;c;C;s;S;t;r"]),
            (Step::Client(1, "$qAttached"), &["c1: + $1"]),
            (Step::Client(1, "$vMustReplyEmpty"), &["c1: + $"]),
            // Not cached: forwarded, and the reply goes back.
            (Step::Client(1, "$m0,4"), &["c1: +", "up: $m0,4"]),
            (Step::Stub("$00100020"), &["c1: $00100020"]),
            (Step::Client(1, "$qOffsets"), &["c1: +", "up: $qOffsets"]),
            (
                Step::Stub("$Text=0;Data=0;Bss=0"),
                &["c1: $Text=0;Data=0;Bss=0"],
            ),
            // A write invalidates: the next g goes upstream.
            (
                Step::Client(1, "$M20000000,1:ff"),
                &["c1: +", "up: $M20000000,1:ff"],
            ),
            (Step::Stub("$OK"), &["c1: $OK"]),
            (Step::Client(1, "$g"), &["c1: +", "up: $g"]),
            (Step::Stub(G), &["c1: $00000000e00f0020a4010000"]),
            (Step::Invalidate, &[]),
            (
                Step::Client(1, "$m20000fe4,4"),
                &["c1: +", "up: $m20000fe4,4"],
            ),
        ],
    );
}

#[test]
fn stop_replies_fan_out_to_waiting_clients() {
    let mut mux = probed(MuxConfig::default());
    check(
        &mut mux,
        vec![
            (Step::Connect(2), &[]),
            (
                Step::Client(1, "$vCont;c:p1.1"),
                &["c1: +", "up: $vCont;c:p1.1"],
            ),
            // Client 2 (all-stop) asks for registers while the target runs:
            // those of the last stop, at once; memory needs the halt.
            (
                Step::Client(2, "+ $g"),
                &["c2: + $00000000e00f0020a4010000"],
            ),
            (Step::Client(2, "$m20000fe0,4"), &["c2: + $E01"]),
            // Client 2 continues too: nothing more goes upstream, it waits.
            (Step::Connect(3), &[]),
            (Step::Client(3, "$c"), &["c3: +"]),
            // A Ctrl-C goes upstream once.
            (Step::Client(1, "^C"), &["up: ^C"]),
            (Step::Client(3, "^C"), &[]),
            (
                Step::Stub("$T02thread:p01.01;"),
                &[
                    "c1: $T02thread:p01.01;",
                    "c3: $T02thread:p01.01;",
                    "up: $g $m20000fa0,c0",
                ],
            ),
            (Step::Stub(G), &["stop Interrupted pc=Some(420)"]),
            // The stack guess covers the new sp: served from it.
            (Step::Stub(STACK_GUESS), &[]),
            (Step::Client(2, "$m20000fe0,4"), &["c2: + $00010203"]),
            // Halted: a 0x03 goes nowhere.
            (Step::Client(1, "^C"), &[]),
        ],
    );
}

#[test]
fn junk_half_packets_and_bad_checksums_never_reach_the_stub() {
    let mut mux = probed(MuxConfig::default());
    check(
        &mut mux,
        vec![
            (Step::ClientRaw(1, b"hello\r\n"), &[]),
            (Step::ClientRaw(1, b"$m0,4#00"), &["c1: -"]),
            (Step::ClientRaw(1, b"$D#4"), &[]),
            (Step::ClientRaw(1, b"$qXfer:x"), &[]),
            (Step::ClientRaw(1, b"$bs#d5"), &["c1: + $"]),
            (Step::ClientRaw(1, b"$Dx#bc"), &["c1: + $E16"]),
            (Step::Connect(2), &[]),
            // Client 2 vanishes mid-packet: nothing upstream.
            (Step::ClientRaw(2, b"$c#6"), &[]),
            (Step::Gone(2), &[]),
        ],
    );
}

#[test]
fn large_reads_are_split_and_pipelined() {
    let mut mux = probed(MuxConfig::default());
    let chunk = format!("${}", "ab".repeat(0x800));
    let chunk: &'static str = Box::leak(chunk.into_boxed_str());
    let joined = format!("c1: ${}", "ab".repeat(0x1000));
    let leak = |text: String| -> &'static str { Box::leak(text.into_boxed_str()) };
    check(
        &mut mux,
        vec![
            (
                Step::Client(1, "$m0,1000"),
                &["c1: +", "up: $m0,800 $m800,800"],
            ),
            // Streamed: the reply opens with the first piece.
            (Step::Stub(chunk), &["c1: ..."]),
            (Step::Stub(chunk), &[&joined]),
            // A short or failed piece ends the data there (RSP partial read).
            (
                Step::Client(1, "$m10000,1000"),
                &["c1: +", "up: $m10000,800 $m10800,800"],
            ),
            (Step::Stub("$abcd $E0e"), &["c1: $abcd"]),
            (
                Step::Client(1, "$m20000,1000"),
                &["c1: +", "up: $m20000,800 $m20800,800"],
            ),
            // A packet (and its ack) arriving mid-stream waits for the end.
            (Step::Stub(chunk), &["c1: ..."]),
            (Step::Client(1, "$g"), &[]),
            (
                Step::Stub("$E0e"),
                &[leak(format!(
                    "c1: ${} + $00000000e00f0020a4010000",
                    "ab".repeat(0x800)
                ))],
            ),
            (
                Step::Client(1, "$m30000000,1000"),
                &["c1: +", "up: $m30000000,800 $m30000800,800"],
            ),
            (Step::Stub("$E0e $E0e"), &["c1: $E0e"]),
        ],
    );
}

#[test]
fn no_ack_mode_is_per_client() {
    let mut mux = probed(MuxConfig::default());
    check(
        &mut mux,
        vec![
            (Step::Connect(2), &[]),
            (Step::Client(1, "$QStartNoAckMode"), &["c1: + $OK"]),
            (Step::Client(1, "+ $g"), &["c1: $00000000e00f0020a4010000"]),
            // A bad checksum is not checked any more in no-ack mode.
            (Step::ClientRaw(1, b"$?#00"), &["c1: $T05thread:p01.01;"]),
            (Step::Client(2, "$g"), &["c2: + $00000000e00f0020a4010000"]),
            // '-' makes an ack-mode client get the last frame again.
            (Step::Client(2, "-"), &["c2: $00000000e00f0020a4010000"]),
        ],
    );
}

#[test]
fn unsolicited_stops_are_recognised() {
    let mut mux = probed(MuxConfig::default());
    check(
        &mut mux,
        vec![
            (Step::Client(1, "$m0,4"), &["c1: +", "up: $m0,4"]),
            // QMP cont, then a breakpoint: a T05 arrives before the reply.
            (Step::Stub("$T05thread:p01.01;"), &["up: $g $m20000fa0,c0"]),
            (Step::Stub("$00100020"), &["c1: $00100020"]),
            (Step::Stub(G), &["stop Breakpoint pc=Some(420)"]),
        ],
    );
}

#[test]
fn flooding_client_is_disconnected() {
    let mut mux = probed(MuxConfig {
        max_queued_packets: 2,
        ..MuxConfig::default()
    });
    check(
        &mut mux,
        vec![
            (Step::Client(1, "$c"), &["c1: +", "up: $c"]),
            (
                Step::Client(1, "$g $g $g"),
                &["c1: + + +", "close 1", "disconnect"],
            ),
        ],
    );
}

#[test]
fn a_running_vm_says_t02_when_the_link_opens() {
    let mut mux = Mux::new(MuxConfig::default());
    check(
        &mut mux,
        vec![
            (Step::Connect(1), &[]),
            (Step::Client(1, "$qSupported"), &["c1: +", "connect"]),
            (
                Step::UpstreamUp,
                &[
                    "up: $qSupported:multiprocess+;swbreak+;hwbreak+;vContSupported+ $qXfer:features:read:target.xml:0,ffb $? $vCont?",
                ],
            ),
            // QEMU paused the running VM for the new connection.
            (
                Step::Stub("$T02thread:p01.01;"),
                &["stop Interrupted pc=None"],
            ),
            (
                Step::Stub("$PacketSize=1000;qXfer:features:read+;vContSupported+;multiprocess+"),
                &[],
            ),
            (
                Step::StubPayload(TARGET_XML),
                &["up: $qXfer:features:read:core.xml:0,ffb"],
            ),
            (Step::Stub("$T05thread:p01.01; $vCont;c;C;s;S"), &[]),
            (
                Step::StubPayload(CORE_XML),
                &["up: $g", &format!("c1: {SUPPORTED}")],
            ),
            (Step::Client(1, "$D;1"), &["c1: +", "up: $D;1"]),
        ],
    );
}
