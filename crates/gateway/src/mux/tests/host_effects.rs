//! What a client may not reach, scripted: monitor commands outside the
//! allow-list and packets with host effects are answered by the gateway and
//! never go upstream (nor open the link); the allowed queries go upstream
//! as the gateway's own text; the raw passthrough forwards the rest.

use virserver_rsp::hex::hex_string;
use virserver_rsp::packets::parse_console_output;
use virserver_rsp::{Decoder, Event};

use super::*;

/// `$qRcmd,<hex of text>`.
fn qrcmd(text: &str) -> &'static str {
    leak(format!("$qRcmd,{}", hex_string(text.as_bytes())))
}

/// A mux whose client 1 is attached but whose link was never opened.
fn unlinked(config: MuxConfig) -> Mux {
    let mut mux = Mux::new(config);
    check(&mut mux, vec![(Step::Connect(1), &[])]);
    mux
}

/// Sends `monitor text` from client 1 and returns the text of its `O`
/// packets and its final reply; panics if anything else happens.
fn monitor(mux: &mut Mux, text: &str) -> (String, Vec<u8>) {
    mux.handle(Input::ClientBytes {
        client: ClientId(1),
        bytes: frames(qrcmd(text)),
    });
    let mut decoder = Decoder::new();
    while let Some(action) = mux.next_action() {
        match action {
            Action::SendClient {
                client: ClientId(1),
                bytes,
            } => decoder.feed(&bytes),
            // What `audit.rs` and `stats.rs` check.
            action if is_report(&action) => {}
            other => panic!("monitor {text:?}: unexpected {other:?}"),
        }
    }
    let mut output = String::new();
    let mut last = None;
    for event in decoder.events() {
        match event {
            Event::Ack => {}
            Event::Packet(packet) => {
                let payload = packet.decoded().expect("a valid frame");
                match parse_console_output(&payload) {
                    Some(text) => output.push_str(&String::from_utf8_lossy(&text)),
                    None => last = Some(payload.to_vec()),
                }
            }
            other => panic!("monitor {text:?}: unexpected {other:?}"),
        }
    }
    (output, last.expect("a final reply"))
}

fn refusal(shown: &str) -> String {
    format!("virserver: 'monitor {shown}' is not allowed (see 'monitor virserver help')\n")
}

/// HMP commands that reach the host, and ways of smuggling one past a
/// match: each is refused with a note, `E01`, and no stub traffic.
const HOST_COMMANDS: &[(&str, &str)] = &[
    (
        "migrate \"exec:touch /tmp/virserver-x\"",
        "migrate \"exec:touch /tmp/virserver-x\"",
    ),
    ("quit", "quit"),
    ("q", "q"),
    ("dump-guest-memory /tmp/x", "dump-guest-memory /tmp/x"),
    ("pmemsave 0 4096 /tmp/x", "pmemsave 0 4096 /tmp/x"),
    (
        "drive_add 0 if=none,file=/etc/passwd",
        "drive_add 0 if=none,file=/etc/passwd",
    ),
    (
        "chardev-add socket,id=s,path=/tmp/s,server=on",
        "chardev-add socket,id=s,path=/tmp/s,server=on",
    ),
    ("savevm s1", "savevm s1"),
    ("  info status\nquit ", "info status\\nquit"),
    ("system_reset; quit", "system_reset; quit"),
    ("info registers -a", "info registers -a"),
    ("info qtree", "info qtree"),
    ("INFO STATUS", "INFO STATUS"),
];

#[test]
fn host_monitor_commands_are_refused_without_the_stub() {
    for linked in [false, true] {
        let mut mux = if linked {
            probed(MuxConfig::default())
        } else {
            unlinked(MuxConfig::default())
        };
        for (text, shown) in HOST_COMMANDS {
            let (output, reply) = monitor(&mut mux, text);
            assert_eq!(output, refusal(shown), "{text:?}");
            assert_eq!(reply, b"E01", "{text:?}");
        }
        // The emulator never heard of them: still no link, or the link idle.
        assert_eq!(mux.status().upstream_connected, linked);
    }
}

#[test]
fn the_hex_spelling_does_not_matter() {
    let mut mux = unlinked(MuxConfig::default());
    let quit = "$qRcmd,51554954"; // "QUIT"
    let migrate = leak(format!(
        "$qRcmd,{}",
        hex_string(b"migrate exec:id").to_uppercase()
    ));
    let note = |shown: &str| {
        leak(format!(
            "c1: + $O{} $E01",
            hex_string(refusal(shown).as_bytes())
        ))
    };
    check(
        &mut mux,
        vec![
            (Step::Client(1, quit), &[note("QUIT")]),
            (Step::Client(1, migrate), &[note("migrate exec:id")]),
            // Not hex, or not UTF-8: malformed, answered here.
            (Step::Client(1, "$qRcmd,71756974z"), &["c1: + $E16"]),
            (Step::Client(1, "$qRcmd,ff"), &["c1: + $E16"]),
            // Not qRcmd at all: an unknown packet.
            (Step::Client(1, "$QRcmd,71756974"), &["c1: + $"]),
        ],
    );
}

#[test]
fn allowed_queries_go_upstream_as_the_gateways_own_text() {
    let mut mux = probed(MuxConfig::default());
    let up = |text: &str| leak(format!("up: $qRcmd,{}", hex_string(text.as_bytes())));
    check(
        &mut mux,
        vec![
            (
                Step::Client(1, qrcmd("  info \t version ")),
                &["c1: +", up("info version")],
            ),
            (Step::Stub("$O372e320a $OK"), &["c1: $O372e320a $OK"]),
            (
                Step::Client(1, qrcmd("info registers")),
                &["c1: +", up("info registers")],
            ),
            (Step::Stub("$OK"), &["c1: $OK"]),
            (
                Step::Client(1, qrcmd("info mtree")),
                &["c1: +", up("info mtree")],
            ),
            (Step::Stub("$OK"), &["c1: $OK"]),
            (
                Step::Client(1, qrcmd("info status")),
                &["c1: +", up("info status")],
            ),
            (Step::Stub("$OK"), &["c1: $OK"]),
            // cortex-debug's restart: `stop` is the gateway's halt,
            // `system_reset` its reset.
            (Step::Client(1, qrcmd("stop")), &["c1: + $OK"]),
            (
                Step::Client(1, qrcmd("system_reset")),
                &["c1: +", up("system_reset")],
            ),
            (Step::Stub("$OK"), &["c1: $OK"]),
        ],
    );
}

#[test]
fn help_says_what_happens_to_other_commands() {
    let mut mux = unlinked(MuxConfig::default());
    let (help, reply) = monitor(&mut mux, "virserver help");
    assert_eq!(reply, b"OK");
    assert!(help.contains("monitor info version"), "{help}");
    assert!(help.contains("any other command is refused"), "{help}");
    // A bare `monitor` shows the same.
    assert_eq!(monitor(&mut mux, "").0, help);
    let mut raw = unlinked(MuxConfig {
        raw_monitor: true,
        ..MuxConfig::default()
    });
    let (help, _) = monitor(&mut raw, "virserver help");
    assert!(
        help.contains("any other command goes to QEMU's monitor"),
        "{help}"
    );
}

#[test]
fn raw_monitor_forwards_what_the_allow_list_lacks() {
    let mut mux = probed(MuxConfig {
        raw_monitor: true,
        ..MuxConfig::default()
    });
    let up = |text: &str| leak(format!("up: $qRcmd,{}", hex_string(text.as_bytes())));
    let cont_refused = leak(format!(
        "c1: + $O{} $E01",
        hex_string(b"virserver: 'monitor cont' would resume the VM behind the GDB stub, which then may not report the next stop; use GDB's continue\n")
    ));
    check(
        &mut mux,
        vec![
            // As typed, spaces and all.
            (
                Step::Client(1, qrcmd("info  qtree")),
                &["c1: +", up("info  qtree")],
            ),
            (Step::Stub("$OK"), &["c1: $OK"]),
            // The allowed ones are still the gateway's own text.
            (
                Step::Client(1, qrcmd("info  version")),
                &["c1: +", up("info version")],
            ),
            (Step::Stub("$OK"), &["c1: $OK"]),
            // cont stays refused: it would make the next stop silent.
            (Step::Client(1, qrcmd("cont")), &[cont_refused]),
        ],
    );
}

/// Packets with host effects (or none the gateway can vouch for): the
/// empty reply, whether or not the link is open, and nothing upstream.
const REFUSED_PACKETS: &[&str] = &[
    "$vFile:setfs:0",
    "$vFile:open:2f6574632f706173737764,0,0",
    "$vFile:pread:3,1000,0",
    "$vFile:unlink:2f746d702f78",
    "$vRun;2f62696e2f7368",
    "$vRun;",
    "$vAttach;1",
    "$!",
    "$R00",
    "$A10,0,2f62696e2f7368",
    "$QSetWorkingDir:2f746d70",
    "$QEnvironmentHexEncoded:504154483d2f746d70",
    "$QEnvironmentUnset:50415448",
    "$QEnvironmentReset",
    "$QStartupWithShell:1",
    "$QDisableRandomization:1",
    "$qXfer:exec-file:read:1:0,fff",
    "$qXfer:auxv:read::0,fff",
    "$qXfer:libraries:read::0,fff",
    "$qXfer:libraries-svr4:read::0,fff",
    "$qXfer:osdata:read::0,fff",
    "$qXfer:siginfo:read::0,fff",
    "$qXfer:auxv:write::0:ab",
    "$F-1,16",
    "$Fffffffff,2;C",
    "$Qqemu.PhyMemMode:1",
    "$Qqemu.sstep=1",
    "$qPlatform_shell:6964,0",
    "$qLaunchGDBServer:host:;",
    "$qRcmdx",
    "$",
];

#[test]
fn host_effect_packets_are_answered_here() {
    let mut unlinked = unlinked(MuxConfig::default());
    let mut linked = probed(MuxConfig::default());
    for packet in REFUSED_PACKETS {
        check(&mut unlinked, vec![(Step::Client(1, packet), &["c1: + $"])]);
        check(&mut linked, vec![(Step::Client(1, packet), &["c1: + $"])]);
    }
    assert!(!unlinked.status().upstream_connected);
}

#[test]
fn what_gdb_needs_still_goes_upstream() {
    let mut mux = probed(MuxConfig::default());
    let mut script: Vec<(Step, &[&str])> = Vec::new();
    for packet in [
        "$qOffsets",
        "$qSymbol::",
        "$qThreadExtraInfo,p1.1",
        "$qCRC:0,4",
        "$qqemu.Supported",
        "$qqemu.sstepbits",
        "$qXfer:threads:read::0,fff",
        "$qXfer:features:read:arm-m-profile.xml:0,ffb",
        "$qTStatus",
        "$qC",
        "$qfThreadInfo",
        "$qsThreadInfo",
        "$Tp1.1",
    ] {
        script.push((Step::Client(1, packet), leak_pair(packet)));
        script.push((Step::Stub("$"), &["c1: $"]));
    }
    check(&mut mux, script);
}

/// `["c1: +", "up: <packet>"]` for a forwarded packet.
fn leak_pair(packet: &str) -> &'static [&'static str] {
    Box::leak(Box::new(["c1: +", leak(format!("up: {packet}"))]))
}
