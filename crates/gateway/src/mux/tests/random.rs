//! The mux fed long random mixes of well-formed and broken inputs (clients
//! coming and going, packets of every family, interrupts, junk, stub replies
//! and stops, API calls, a lost link): it must never panic, whatever it
//! sends upstream must be framed packets or a lone 0x03, and no packet
//! outside the allow-list may be among them.

use virserver_rsp::{Decoder, Event};

use super::*;

/// xorshift64*: deterministic, so a failure names its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[(self.next() % items.len() as u64) as usize]
    }
}

const CLIENT: &[&str] = &[
    "$g",
    "$m20000fe0,40",
    "$m0,10000",
    "$p2",
    "$P2=a4010000",
    "$M20000000,2:abcd",
    "$vCont;s:p1.1",
    "$vCont;c:p1.-1",
    "$vCont;r1a0,1f0:p1.1",
    "$vCont;r1a4,1a4:p1.1;c",
    "$vCont?",
    "$c",
    "$s",
    "$?",
    "$D",
    "$D;1",
    "$k",
    "$vKill;1",
    "$Z0,1a6,2",
    "$z0,1a6,2",
    "$Z2,20000000,4",
    "$Hgp1.1",
    "$Hc-1",
    "$qRcmd,68616c74",
    "$qRcmd,636f6e74",
    "$qRcmd,7669727365727665722073746174757320",
    // Never forwarded: `monitor quit`, host files, a process.
    "$qRcmd,71756974",
    "$vFile:open:2f6574632f706173737764,0,0",
    "$vRun;",
    "$qXfer:exec-file:read:1:0,fff",
    "$QStartNoAckMode",
    "$bs",
    "$bc",
    "$qXfer:memory-map:read::0,fff",
    "$qSupported:multiprocess+",
    "+",
    "-",
    "^C",
];

/// Prefixes of the refused packets in [`CLIENT`].
const NEVER_UPSTREAM: &[&[u8]] = &[b"qRcmd,71756974", b"vFile", b"vRun", b"qXfer:exec-file"];

const STUB: &[&str] = &[
    "$OK",
    "$E22",
    "$E14",
    "$",
    "$T05thread:p01.01;",
    "$T02thread:p01.01;",
    "$T05thread:p01.02;",
    "$T05watch:20000000;thread:p01.01;",
    "$W00",
    "$X09",
    "$O6869",
    "$00000000e00f0020a4010000",
    "$00000000e00f0020b0010000",
    "$000102030405060708090a0b0c0d0e0f",
    "$vCont;c;C;s;S",
    "+",
];

const JUNK: &[&[u8]] = &[b"$g#6", b"#00", b"$m0,4#ff", b"}\x03*", b"$$$", b"\x03\x03"];

fn random_step(rng: &mut Rng) -> Step {
    match rng.next() % 100 {
        0..=2 => Step::Connect(1 + rng.next() % 3),
        3..=4 => Step::Gone(1 + rng.next() % 3),
        5 => Step::UpstreamUp,
        6 => Step::StubGone,
        7..=9 => Step::Invalidate,
        10..=14 => Step::ClientRaw(1 + rng.next() % 3, rng.pick(JUNK)),
        15..=24 => Step::Api(
            rng.next() % 1000,
            [
                ApiCall::Halt,
                ApiCall::Resume,
                ApiCall::Step { count: 2 },
                ApiCall::ReadRegisters,
                ApiCall::IsHalted,
                ApiCall::ReadMemory {
                    addr: 0x2000_0000,
                    length: 0x1000,
                },
            ][(rng.next() % 6) as usize]
                .clone(),
        ),
        25..=59 => Step::Client(1 + rng.next() % 3, rng.pick(CLIENT)),
        _ => Step::Stub(rng.pick(STUB)),
    }
}

#[test]
fn random_inputs_never_panic_and_only_frames_go_upstream() {
    for seed in 1..=1000u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut mux = probed(MuxConfig::default());
        for step in 0..200 {
            feed(&mut mux, random_step(&mut rng));
            while let Some(action) = mux.next_action() {
                if let Action::SendUpstream(bytes) = action {
                    let mut decoder = Decoder::new();
                    decoder.feed(&bytes);
                    for event in decoder.events() {
                        assert!(
                            matches!(event, Event::Packet(_) | Event::Interrupt),
                            "seed {seed}, step {step}: {event:?} in {}",
                            bytes.escape_ascii()
                        );
                        if let Event::Packet(packet) = event {
                            let payload = packet.raw();
                            assert!(
                                !NEVER_UPSTREAM
                                    .iter()
                                    .any(|refused| payload.starts_with(refused)),
                                "seed {seed}, step {step}: {} went upstream",
                                payload.escape_ascii()
                            );
                        }
                    }
                    assert!(decoder.is_between_frames(), "seed {seed}, step {step}");
                }
            }
        }
    }
}
