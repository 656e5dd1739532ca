//! The stub's File-I/O requests (semihosting with `target=gdb`), scripted:
//! the gateway reads the guest's arguments, asks the host, writes results
//! back and replies; clients never see a request; an interrupt rides on the
//! reply; with `hold_link` the last client's `D` resumes instead of
//! detaching.

use super::*;

fn holding() -> Mux {
    probed(MuxConfig {
        hold_link: true,
        ..MuxConfig::default()
    })
}

#[test]
fn a_console_write_is_answered_by_the_gateway() {
    let mut mux = holding();
    check(
        &mut mux,
        vec![
            (Step::Client(1, "$c"), &["c1: +", "up: $c"]),
            // "hi\n" at 0x20000100: read it, hand it to the host, reply.
            (Step::Stub("$Fwrite,2,20000100,3"), &["up: $m20000100,3"]),
            (
                Step::Stub("$68690a"),
                &[r#"host: Write { fd: 2, data: [104, 105, 10] }"#],
            ),
            (Step::HostDone(HostReply::value(3)), &["up: $F3"]),
            // The client still waits for its stop.
            (
                Step::Stub("$T05thread:p01.01;"),
                &["c1: $T05thread:p01.01;", "up: $g $m20000fa0,c0"],
            ),
        ],
    );
}

#[test]
fn a_read_writes_guest_memory_before_the_reply() {
    let mut mux = holding();
    check(
        &mut mux,
        vec![
            (Step::Client(1, "$c"), &["c1: +", "up: $c"]),
            // open("in", O_RDONLY): the path (with its NUL) is read first.
            (Step::Stub("$Fopen,20000200/3x,0,0"), &["up: $m20000200,3"]),
            (
                Step::Stub("$696e00"),
                &[r#"host: Open { path: [105, 110], flags: 0, mode: 0 }"#],
            ),
            (Step::HostDone(HostReply::value(3)), &["up: $F3"]),
            (
                Step::Stub("$Fread,3,20000300,4"),
                &["host: Read { fd: 3, count: 4 }"],
            ),
            (
                Step::HostDone(HostReply {
                    result: Ok(2),
                    data: b"ok".to_vec(),
                }),
                &["up: $M20000300,2:6f6b"],
            ),
            (Step::Stub("$OK"), &["up: $F2"]),
        ],
    );
}

#[test]
fn refusals_and_faults() {
    let mut mux = holding();
    check(
        &mut mux,
        vec![
            (Step::Client(1, "$c"), &["c1: +", "up: $c"]),
            // system: refused by the host; its command is not even read.
            (
                Step::Stub("$Fsystem,20000400/10"),
                &["host: System { command: [] }"],
            ),
            (Step::HostDone(HostReply::error(1)), &["up: $F-1,1"]),
            // Memory the guest named is not there: EFAULT, no host call.
            (Step::Stub("$Funlink,90000000/5"), &["up: $m90000000,5"]),
            (Step::Stub("$E14"), &["up: $F-1,e"]),
            // Malformed and unknown calls fail with EINVAL.
            (Step::Stub("$Fwrite,zz"), &["up: $F-1,16"]),
            (Step::Stub("$Fmkdir,100/2,1ff"), &["up: $F-1,16"]),
        ],
    );
}

#[test]
fn an_interrupt_during_a_call_rides_on_the_reply() {
    let mut mux = holding();
    check(
        &mut mux,
        vec![
            (Step::Client(1, "$c"), &["c1: +", "up: $c"]),
            (Step::Stub("$Fisatty,1"), &["host: Isatty { fd: 1 }"]),
            // Ctrl-C now: no 0x03 to a stub waiting for the reply.
            (Step::ClientRaw(1, &[0x03]), &[]),
            (Step::HostDone(HostReply::value(1)), &["up: $F1,0,C"]),
            (
                Step::Stub("$T02thread:p01.01;"),
                &["c1: $T02thread:p01.01;", "up: $g $m20000fa0,c0"],
            ),
        ],
    );
}

#[test]
fn holding_the_link_resumes_where_it_would_detach() {
    let mut mux = holding();
    check(
        &mut mux,
        vec![
            // The last client's D: OK from the gateway, `c` upstream, no
            // disconnect.
            (Step::Client(1, "$D;1"), &["c1: +", "up: $c", "c1: $OK"]),
            (Step::Gone(1), &[]),
            // A call with nobody attached is still answered.
            (Step::Stub("$Fwrite,1,20000100,1"), &["up: $m20000100,1"]),
            (Step::Stub("$41"), &["host: Write { fd: 1, data: [65] }"]),
            (Step::HostDone(HostReply::value(1)), &["up: $F1"]),
            // A new client finds the target halted, as after a stub's connect.
            (Step::Connect(2), &["up: ^C"]),
            // Its `?` waits for that stop, moments away.
            (Step::Client(2, "$?"), &["c2: +", "wake after 500ms"]),
            (
                Step::Stub("$T02thread:p01.01;"),
                &["up: $g $m20000fa0,c0", "c2: $T02thread:p01.01;"],
            ),
        ],
    );
    // Without hold_link a File-I/O request is still never a client's.
    let mut mux = probed(MuxConfig::default());
    check(
        &mut mux,
        vec![
            (Step::Client(1, "$c"), &["c1: +", "up: $c"]),
            (Step::Stub("$Fclose,3"), &["host: Close { fd: 3 }"]),
        ],
    );
}

/// The server attaches for semihosting with the API (halt, then resume): that run is
/// nobody's, so a client that attaches, stops it and detaches leaves it running.
#[test]
fn the_api_resume_of_a_held_link_holds_no_stop() {
    let mut mux = holding();
    check(
        &mut mux,
        vec![
            (Step::Gone(1), &["up: $c"]),
            (Step::Api(1, ApiCall::Halt), &["up: ^C"]),
            (Step::Stub("$T02thread:p01.01;"), &["up: $g $m20000fa0,c0"]),
            (
                Step::Stub(G),
                &["stop Interrupted pc=Some(420)", "api 1: Ok(Done)"],
            ),
            (
                Step::Api(2, ApiCall::Resume),
                &["up: $c", "api 2: Ok(Resumed(ThroughStub))"],
            ),
            (Step::Connect(2), &["up: ^C"]),
            (Step::Stub("$T02thread:p01.01;"), &["up: $g $m20000fa0,c0"]),
            (Step::Client(2, "$D;1"), &["c2: +", "up: $c", "c2: $OK"]),
        ],
    );
}
