//! The mux driven by scripted bytes: each test is a table of inputs and the
//! exact actions each must produce, checked by one `check` helper.
//!
//! Frames are written without checksums: `"$g"` in an input becomes
//! `$g#67`, and actions are rendered back the same way (`up: $g`, `c1: +
//! $OK`, `^C` for an interrupt), so a table reads like a packet log.

use std::collections::HashMap;
use std::time::UNIX_EPOCH;

use virserver_rsp::{Decoder, Event, encode_packet};

use super::*;

mod audit;
mod file_io;
mod forwarding;
mod host_effects;
mod random;
mod running;
mod session;
mod stats;
use crate::debug_api::ApiCall;

/// A `'static` copy of a formatted script line.
pub(super) fn leak(text: String) -> &'static str {
    Box::leak(text.into_boxed_str())
}

/// One input of a script.
pub(super) enum Step {
    /// A client connects.
    Connect(u64),
    /// Frames from a client (space-separated, see [`frames`]).
    Client(u64, &'static str),
    /// Raw bytes from a client.
    ClientRaw(u64, &'static [u8]),
    /// The client's socket closes.
    Gone(u64),
    /// The upstream connection is up.
    UpstreamUp,
    /// Frames from the stub.
    Stub(&'static str),
    /// One frame from the stub whose payload has spaces.
    StubPayload(&'static str),
    /// The upstream connection dropped.
    StubGone,
    /// An API call.
    Api(u64, ApiCall),
    /// The server's invalidate().
    Invalidate,
    /// The server's state_replaced().
    StateReplaced,
    /// The I/O layer's answer to a host call.
    HostDone(HostReply),
    /// The wake-up asked for came.
    Wake,
}

/// `"$g + ^C $OK"` as bytes: `$payload` tokens framed with checksums, `+`,
/// `-` and `^C` as themselves.
pub(super) fn frames(script: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for token in script.split(' ').filter(|token| !token.is_empty()) {
        match token {
            "+" => out.push(b'+'),
            "-" => out.push(b'-'),
            "^C" => out.push(0x03),
            _ => encode_packet(token.trim_start_matches('$').as_bytes(), &mut out),
        }
    }
    out
}

/// Bytes rendered as frames, the inverse of [`frames`]; a frame still open
/// at the end (a streamed reply) renders as `...`.
fn render(decoder: &mut Decoder, bytes: &[u8]) -> String {
    decoder.feed(bytes);
    let tokens: Vec<String> = decoder
        .events()
        .map(|event| match event {
            Event::Packet(packet) => format!("${}", String::from_utf8_lossy(packet.raw())),
            Event::Ack => "+".into(),
            Event::Nack => "-".into(),
            Event::Interrupt => "^C".into(),
            Event::Notification(packet) => format!("%{}", String::from_utf8_lossy(packet.raw())),
            other => format!("?{other:?}"),
        })
        .collect();
    let mut text = tokens.join(" ");
    if !decoder.is_between_frames() {
        text.push_str(if text.is_empty() { "..." } else { " ..." });
    }
    text
}

fn render_action(decoders: &mut HashMap<u64, Decoder>, action: Action) -> String {
    match action {
        Action::ConnectUpstream => "connect".into(),
        Action::SendUpstream(bytes) => format!("up: {}", render(&mut Decoder::new(), &bytes)),
        Action::DisconnectUpstream => "disconnect".into(),
        Action::SendClient { client, bytes } => {
            let decoder = decoders.entry(client.0).or_insert_with(|| {
                Decoder::with_config(virserver_rsp::DecoderConfig {
                    max_packet_size: 1 << 20,
                    verify_checksums: true,
                })
            });
            format!("c{}: {}", client.0, render(decoder, &bytes))
        }
        Action::CloseClient { client } => format!("close {}", client.0),
        Action::ApiReply { request, result } => format!("api {}: {result:?}", request.0),
        Action::Stopped(event) => format!("stop {:?} pc={:?}", event.reason, event.pc),
        Action::HostCall(call) => format!("host: {call:?}"),
        Action::Resumed(event) => format!("resumed {:?} step={}", event.by, event.step),
        Action::WakeAfter(after) => format!("wake after {after:?}"),
        Action::Audit(operation) => format!(
            "audit c{} {} {}",
            operation.client.0, operation.operation, operation.detail
        ),
        Action::RequestStarted { client } => format!("started c{}", client.0),
        Action::RequestAnswered { client } => format!("answered c{}", client.0),
    }
}

fn feed(mux: &mut Mux, step: Step) {
    let input = match step {
        Step::Connect(id) => Input::ClientConnected {
            client: ClientId(id),
            peer: format!("127.0.0.1:{}", 40000 + id),
            since: UNIX_EPOCH,
        },
        Step::Client(id, script) => Input::ClientBytes {
            client: ClientId(id),
            bytes: frames(script),
        },
        Step::ClientRaw(id, bytes) => Input::ClientBytes {
            client: ClientId(id),
            bytes: bytes.to_vec(),
        },
        Step::Gone(id) => Input::ClientGone {
            client: ClientId(id),
        },
        Step::UpstreamUp => Input::UpstreamConnected,
        Step::Stub(script) => Input::UpstreamBytes(frames(script)),
        Step::StubPayload(payload) => {
            let mut bytes = Vec::new();
            encode_packet(payload.as_bytes(), &mut bytes);
            Input::UpstreamBytes(bytes)
        }
        Step::StubGone => Input::UpstreamFailed {
            reason: "closed".into(),
        },
        Step::Api(id, call) => Input::Api {
            request: ApiRequestId(id),
            call,
        },
        Step::Invalidate => Input::Invalidate,
        Step::StateReplaced => Input::StateReplaced,
        Step::HostDone(reply) => Input::HostCallDone(reply),
        Step::Wake => Input::Wake,
    };
    mux.handle(input);
}

/// Feeds each step and checks the actions it produced, exactly and in order
/// ([`Action::Resumed`] aside: [`check_events`] checks those too; and
/// [`Action::Audit`], which `audit.rs` checks).
pub(super) fn check(mux: &mut Mux, script: Vec<(Step, &[&str])>) {
    run_script(mux, script, false);
}

/// [`check`], with the resume events among the actions.
pub(super) fn check_events(mux: &mut Mux, script: Vec<(Step, &[&str])>) {
    run_script(mux, script, true);
}

/// Feeds `steps` and renders only the actions `keep` selects, in order.
pub(super) fn actions_of(
    mux: &mut Mux,
    steps: Vec<Step>,
    keep: impl Fn(&Action) -> bool,
) -> Vec<String> {
    let mut decoders = HashMap::new();
    let mut seen = Vec::new();
    for step in steps {
        feed(mux, step);
        seen.extend(
            std::iter::from_fn(|| mux.next_action())
                .filter(|action| keep(action))
                .map(|action| render_action(&mut decoders, action)),
        );
    }
    seen
}

/// Actions that write nothing and that scripts leave out: `audit.rs` and
/// `stats.rs` check them.
pub(super) fn is_report(action: &Action) -> bool {
    matches!(
        action,
        Action::Audit(_) | Action::RequestStarted { .. } | Action::RequestAnswered { .. }
    )
}

fn run_script(mux: &mut Mux, script: Vec<(Step, &[&str])>, resumes: bool) {
    let mut decoders = HashMap::new();
    for (index, (step, expected)) in script.into_iter().enumerate() {
        feed(mux, step);
        let actions: Vec<String> = std::iter::from_fn(|| mux.next_action())
            .filter(|action| resumes || !matches!(action, Action::Resumed(_)))
            .filter(|action| !is_report(action))
            .map(|action| render_action(&mut decoders, action))
            .collect();
        assert_eq!(actions, expected, "step {index}");
    }
}

pub(super) const TARGET_XML: &str =
    r#"l<target><architecture>arm</architecture><xi:include href="core.xml"/></target>"#;
pub(super) const CORE_XML: &str = r#"l<feature name="core"><reg name="r0" bitsize="32"/><reg name="sp" bitsize="32"/><reg name="pc" bitsize="32"/></feature>"#;
/// r0 = 0, sp = 0x20000fe0, pc = 0x1a4.
pub(super) const G: &str = "$00000000e00f0020a4010000";
pub(super) const STACK: &str = "$000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c0d0e0f";
/// The guessed stack read at a stop: 0xc0 bytes from sp - 0x40.
pub(super) const STACK_GUESS: &str = "$000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c0d0e0f";
pub(super) const SUPPORTED: &str = "$PacketSize=20000;qXfer:features:read+;vContSupported+;multiprocess+;QStartNoAckMode+;QNonStop+";

/// A mux with client 1 attached, the stub probed, and the read-ahead done.
pub(super) fn probed(config: MuxConfig) -> Mux {
    let supported = match config.memory_map_xml {
        Some(_) => format!("c1: {SUPPORTED};qXfer:memory-map:read+"),
        None => format!("c1: {SUPPORTED}"),
    };
    let mut mux = Mux::new(config);
    check(
        &mut mux,
        vec![
            (Step::Connect(1), &[]),
            (
                Step::Client(1, "+ $qSupported:multiprocess+"),
                &["c1: +", "connect"],
            ),
            (
                Step::UpstreamUp,
                &[
                    "up: $qSupported:multiprocess+;swbreak+;hwbreak+;vContSupported+ $qXfer:features:read:target.xml:0,ffb $? $vCont?",
                ],
            ),
            (
                Step::Stub("+ $PacketSize=1000;qXfer:features:read+;vContSupported+;multiprocess+"),
                &[],
            ),
            (
                Step::StubPayload(TARGET_XML),
                &["up: $qXfer:features:read:core.xml:0,ffb"],
            ),
            (Step::Stub("$T05thread:p01.01; $vCont;c;C;s;S"), &[]),
            (Step::StubPayload(CORE_XML), &["up: $g", &supported]),
            (Step::Stub(G), &["up: $m20000fe0,40"]),
            (Step::Stub(STACK), &[]),
        ],
    );
    mux
}
