//! Replays a real session, GDB 13.1 against QEMU 7.2's stub, through the
//! decoder and the packet parsers, with the chunking it had on the wire.
//!
//! The fixture (`fixtures/qemu-7.2-session.log`, how it was recorded is in its
//! header) is the ground truth the hand-written unit tests cannot be: real
//! checksums, real pipelining of acks and packets in one chunk, QEMU's
//! zero-padded thread ids, its `O`-then-`OK` monitor replies, and GDB's
//! fallback from `X` to `M`.

use virserver_rsp::hex::decode_hex;
use virserver_rsp::packets::{
    MonitorReply, ThreadInfoReply, ThreadOperation, VContSupported, XferReply,
    parse_attached_reply, parse_read_memory_reply, parse_register_reply,
};
use virserver_rsp::packets::{StopInfo, WatchKind};
use virserver_rsp::{
    Command, Decoder, Event, Packet, PacketKind, StandardReply, StopReply, ThreadId,
};

const SESSION: &str = include_str!("fixtures/qemu-7.2-session.log");

/// The chunks of each direction, in order.
struct Session {
    to_stub: Vec<Vec<u8>>,
    to_client: Vec<Vec<u8>>,
}

fn load() -> Session {
    let mut session = Session {
        to_stub: Vec::new(),
        to_client: Vec::new(),
    };
    for line in SESSION
        .lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
    {
        let (direction, hex) = line.split_once(' ').expect("direction and hex");
        let chunk = decode_hex(hex.as_bytes()).expect("fixture lines are hex");
        match direction {
            ">" => session.to_stub.push(chunk),
            "<" => session.to_client.push(chunk),
            other => panic!("unknown direction {other:?}"),
        }
    }
    session
}

fn decode(chunks: &[Vec<u8>]) -> Vec<Event> {
    let mut decoder = Decoder::new();
    let mut events = Vec::new();
    for chunk in chunks {
        decoder.feed(chunk);
        events.extend(decoder.events());
    }
    assert!(
        decoder.is_between_frames(),
        "the session ends between frames"
    );
    events
}

fn packets(events: &[Event]) -> Vec<&Packet> {
    events
        .iter()
        .filter_map(|event| match event {
            Event::Packet(packet) => Some(packet),
            _ => None,
        })
        .collect()
}

#[test]
fn forwarding_the_events_reproduces_the_bytes() {
    let session = load();
    for chunks in [&session.to_stub, &session.to_client] {
        let mut forwarded = Vec::new();
        for event in decode(chunks) {
            match event {
                Event::Ack => forwarded.push(b'+'),
                Event::Packet(packet) => packet.write_frame(PacketKind::Packet, &mut forwarded),
                other => panic!("a clean session has no {other:?}"),
            }
        }
        assert_eq!(forwarded, chunks.concat());
    }
}

#[test]
fn any_chunking_gives_the_same_events() {
    let session = load();
    for chunks in [&session.to_stub, &session.to_client] {
        let expected = decode(chunks);
        let stream = chunks.concat();
        for split in 0..=stream.len() {
            let (first, second) = stream.split_at(split);
            assert_eq!(
                decode(&[first.to_vec(), second.to_vec()]),
                expected,
                "split at {split}"
            );
        }
    }
}

#[test]
fn every_client_packet_parses() {
    let session = load();
    let events = decode(&session.to_stub);
    let commands: Vec<Command> = packets(&events)
        .into_iter()
        .map(|packet| {
            Command::from_packet(packet).unwrap_or_else(|error| panic!("{packet:?}: {error}"))
        })
        .collect();
    let Command::QSupported(features) = &commands[0] else {
        panic!("the session opens with qSupported")
    };
    assert!(features.is_supported("multiprocess") && features.is_supported("vContSupported"));
    assert_eq!(features.value("xmlRegisters"), Some("i386"));
    let expected = [
        Command::SetThread {
            operation: ThreadOperation::General,
            thread: ThreadId::multiprocess(0, 0),
        },
        Command::SetThread {
            operation: ThreadOperation::Continue,
            thread: ThreadId::ALL,
        },
        Command::QueryAttached { pid: Some(1) },
        Command::WriteMemoryBinary {
            addr: 0x2000_0004,
            data: Vec::new(),
        },
        Command::WriteMemory {
            addr: 0x2000_0004,
            data: vec![0x7d, 0x2a, 0x23, 0x24],
        },
        Command::parse(b"Z0,e,2").expect("parses"),
        Command::parse(b"Z2,20000010,4").expect("parses"),
        Command::parse(b"vCont;c:p1.-1").expect("parses"),
        Command::parse(b"vCont;s:p1.1").expect("parses"),
        Command::MonitorCommand {
            command: "info status".into(),
        },
        Command::Detach { pid: Some(1) },
    ];
    for command in expected {
        assert!(commands.contains(&command), "{command:?} was sent");
    }
    let others: Vec<String> = commands
        .iter()
        .filter_map(|command| match command {
            Command::Other(payload) => Some(String::from_utf8_lossy(payload).into_owned()),
            _ => None,
        })
        .collect();
    assert_eq!(others, ["qOffsets", "qSymbol::", "qThreadExtraInfo,p1.1"]);
}

/// Checks one stub reply against the grammar of the command it answers.
fn check_reply(command: &Command, reply: &[u8]) {
    let shown = String::from_utf8_lossy(reply);
    match command {
        Command::QSupported(_) => {
            let features = virserver_rsp::packets::Features::parse(reply).expect("features");
            assert_eq!(features.packet_size(), Some(0x1000));
            assert!(features.is_supported("qXfer:features:read"));
        }
        Command::MustReplyEmpty
        | Command::TraceStatus
        | Command::WriteMemoryBinary { .. }
        | Command::Other(_)
            if reply.is_empty() => {}
        Command::Other(payload) if payload.starts_with(b"qThreadExtraInfo") => {
            assert_eq!(decode_hex(reply), Ok(b"CPU#0 [running]".to_vec()));
        }
        Command::SetThread { .. }
        | Command::InsertBreakpoint(_)
        | Command::RemoveBreakpoint(_)
        | Command::WriteMemory { .. }
        | Command::Detach { .. } => assert_eq!(
            StandardReply::parse(reply),
            Some(StandardReply::Ok),
            "{shown}"
        ),
        Command::XferRead(read) => {
            let XferReply::Last(data) = XferReply::parse(reply).expect("qXfer reply") else {
                panic!("QEMU sends each XML file in one piece")
            };
            assert!(data.starts_with(b"<?xml"), "{} is XML", read.annex);
        }
        Command::QueryStopReason | Command::VCont(_) => {
            let stop = StopReply::parse(reply).expect("stop reply");
            assert_eq!(stop.signal(), Some(5));
            assert_eq!(stop.thread(), Some(ThreadId::multiprocess(1, 1)));
        }
        Command::ThreadInfoFirst => assert_eq!(
            ThreadInfoReply::parse(reply),
            Ok(ThreadInfoReply::More(vec![ThreadId::multiprocess(1, 1)]))
        ),
        Command::ThreadInfoNext => {
            assert_eq!(ThreadInfoReply::parse(reply), Ok(ThreadInfoReply::Last))
        }
        Command::QueryAttached { .. } => assert_eq!(parse_attached_reply(reply), Some(true)),
        Command::ReadRegisters => {
            assert_eq!(parse_register_reply(reply).map(|bytes| bytes.len()), Ok(68))
        }
        Command::ReadMemory { length, .. } => {
            let data = parse_read_memory_reply(reply).expect("hex memory");
            assert_eq!(data.len() as u64, *length);
        }
        Command::VContQuery => assert_eq!(VContSupported::parse(reply), Ok(VContSupported::QEMU)),
        other => panic!("unexpected reply {shown:?} to {other:?}"),
    }
}

#[test]
fn every_stub_reply_matches_its_command() {
    let session = load();
    let client_events = decode(&session.to_stub);
    let stub_events = decode(&session.to_client);
    let mut replies = packets(&stub_events).into_iter();
    let mut n_checked = 0;
    for packet in packets(&client_events) {
        let command = Command::from_packet(packet).expect("parses");
        let mut reply = replies.next().expect("a reply for every command");
        if let Command::MonitorCommand { .. } = command {
            let decoded = reply.decoded().expect("decodes");
            let output = MonitorReply::parse(&decoded).expect("monitor reply");
            assert_eq!(
                output,
                MonitorReply::Output(b"VM status: paused (debug)\r\n".to_vec())
            );
            reply = replies.next().expect("the final OK");
            assert_eq!(MonitorReply::parse(reply.raw()), Ok(MonitorReply::Done));
            continue;
        }
        check_reply(&command, &reply.decoded().expect("decodes"));
        n_checked += 1;
    }
    assert_eq!(replies.next(), None);
    assert_eq!(
        n_checked, 179,
        "every command but qRcmd had one reply checked"
    );
}

#[test]
fn the_watchpoint_stop() {
    let session = load();
    let events = decode(&session.to_client);
    let watch_stop = packets(&events)
        .into_iter()
        .find(|packet| packet.raw().starts_with(b"T05thread:p01.01;watch"))
        .expect("the session hits the watchpoint");
    let stop = StopReply::parse(watch_stop.raw()).expect("parses");
    assert_eq!(
        stop.info(),
        [
            StopInfo::Thread(ThreadId::multiprocess(1, 1)),
            StopInfo::Watch {
                kind: WatchKind::Write,
                addr: 0x2000_0010
            },
        ]
    );
}
