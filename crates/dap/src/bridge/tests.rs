use super::*;

fn request(seq: u64, command: &str, arguments: Value) -> Input {
    Input::Client(
        json!({"seq": seq, "type": "request", "command": command, "arguments": arguments}),
    )
}

fn drain(bridge: &mut Bridge) -> Vec<Action> {
    std::iter::from_fn(|| bridge.next_action()).collect()
}

fn ready() -> Ready {
    Ready {
        session_id: "s1".into(),
        gdb_address: "127.0.0.1:4000".into(),
        program: "/fw/a b.elf".into(),
    }
}

/// Initialize, then a launch up to the moment GDB got its attach.
fn launched(stop_on_entry: bool) -> (Bridge, Vec<Action>) {
    let mut bridge = Bridge::new(BridgeConfig::default());
    bridge.handle(request(1, "initialize", json!({"adapterID": "virserver"})));
    let forwarded = drain(&mut bridge);
    assert!(
        matches!(&forwarded[..], [Action::ToGdb(m)] if m["command"] == "initialize" && m["seq"] == 1)
    );
    bridge.handle(Input::Gdb(json!({"type": "response", "request_seq": 1, "seq": 1, "command": "initialize", "success": true,
                                    "body": {"supportsConfigurationDoneRequest": true, "exceptionBreakpointFilters": [{"filter": "throw"}]}})));
    bridge.handle(Input::Gdb(
        json!({"type": "event", "event": "initialized", "seq": 2}),
    ));
    let to_client = drain(&mut bridge);
    assert_eq!(to_client.len(), 1, "initialized is held: {to_client:?}");
    let Action::ToClient(capabilities) = &to_client[0] else {
        panic!()
    };
    assert_eq!(
        capabilities["body"]["exceptionBreakpointFilters"],
        json!([])
    );
    assert_eq!(
        capabilities["body"]["supportsConfigurationDoneRequest"],
        true
    );
    bridge.handle(request(2, "launch", json!({"board": "mps2-an385", "program": "/fw/a.elf", "stopOnEntry": stop_on_entry, "cwd": "/src"})));
    assert_eq!(
        drain(&mut bridge),
        vec![Action::Op(Op::Launch {
            board: "mps2-an385".into(),
            program: "/fw/a.elf".into(),
            coverage: false
        })]
    );
    bridge.handle(Input::OpDone(Ok(Some(ready()))));
    let mut setup = drain(&mut bridge);
    let named = setup.remove(0);
    assert!(
        matches!(&named, Action::ToClient(m) if m["event"] == "virserverSession" && m["body"]["sessionId"] == "s1"),
        "{named:?}"
    );
    (bridge, setup)
}

#[test]
fn a_launch_loads_symbols_before_releasing_initialized_and_attaches_to_the_gateway() {
    let (mut bridge, setup) = launched(true);
    let gdb: Vec<&Value> = setup
        .iter()
        .map(|action| match action {
            Action::ToGdb(message) => message,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(gdb[0]["arguments"]["expression"], "cd /src");
    assert_eq!(gdb[1]["arguments"]["expression"], "file \"/fw/a b.elf\"");
    assert_eq!(gdb[2]["command"], "attach");
    assert_eq!(gdb[2]["arguments"]["target"], "127.0.0.1:4000");
    assert_eq!(
        gdb.iter()
            .map(|m| m["seq"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        vec![2, 3, 4]
    );

    bridge.handle(Input::Gdb(json!({"type": "response", "request_seq": 2, "seq": 3, "command": "evaluate", "success": true})));
    assert!(
        drain(&mut bridge).is_empty(),
        "initialized waits for the file"
    );
    bridge.handle(Input::Gdb(json!({"type": "response", "request_seq": 3, "seq": 4, "command": "evaluate", "success": true})));
    let released = drain(&mut bridge);
    assert!(
        matches!(&released[..], [Action::ToClient(m)] if m["event"] == "initialized" && m["seq"] == 3),
        "{released:?}"
    );

    // GDB answers the attach: the client's launch response.
    bridge.handle(Input::Gdb(json!({"type": "response", "request_seq": 4, "seq": 7, "command": "attach", "success": true})));
    bridge.handle(Input::Gdb(json!({"type": "event", "event": "stopped", "seq": 8, "body": {"reason": "attach", "threadId": 1}})));
    let answered = drain(&mut bridge);
    let [Action::ToClient(response), Action::ToClient(stopped)] = &answered[..] else {
        panic!("{answered:?}")
    };
    assert_eq!(
        (
            response["command"].as_str(),
            response["request_seq"].as_u64()
        ),
        (Some("launch"), Some(2))
    );
    assert_eq!(stopped["body"]["reason"], "entry");
    assert!(stopped["seq"].as_u64() > response["seq"].as_u64());
    assert_eq!(bridge.session_id(), Some("s1"));
}

#[test]
fn without_stop_on_entry_the_entry_stop_is_swallowed_and_the_cpu_resumed() {
    let (mut bridge, _) = launched(false);
    bridge.handle(Input::Gdb(json!({"type": "event", "event": "stopped", "seq": 8, "body": {"reason": "attach", "threadId": 1}})));
    let actions = drain(&mut bridge);
    assert!(
        matches!(&actions[..], [Action::ToGdb(m)] if m["command"] == "continue"),
        "{actions:?}"
    );
    let Action::ToGdb(resume) = &actions[0] else {
        unreachable!()
    };
    bridge.handle(Input::Gdb(json!({"type": "response", "request_seq": resume["seq"], "seq": 9, "command": "continue", "success": true})));
    assert!(
        drain(&mut bridge).is_empty(),
        "the bridge's own resume is not answered to the client"
    );
    // Later stops pass through.
    bridge.handle(Input::Gdb(json!({"type": "event", "event": "stopped", "seq": 10, "body": {"reason": "breakpoint", "threadId": 1}})));
    assert!(
        matches!(&drain(&mut bridge)[..], [Action::ToClient(m)] if m["body"]["reason"] == "breakpoint")
    );
}

#[test]
fn requests_pass_through_renumbered_and_answers_return_with_the_clients_seq() {
    let (mut bridge, _) = launched(true);
    bridge.handle(request(9, "stackTrace", json!({"threadId": 1})));
    let [Action::ToGdb(forwarded)] = &drain(&mut bridge)[..] else {
        panic!()
    };
    assert_eq!(forwarded["command"], "stackTrace");
    assert_eq!(forwarded["arguments"]["threadId"], 1);
    let gdb_seq = forwarded["seq"].clone();
    assert_ne!(gdb_seq, 9);
    bridge.handle(Input::Gdb(json!({"type": "response", "request_seq": gdb_seq, "seq": 20, "command": "stackTrace", "success": true, "body": {"stackFrames": []}})));
    let [Action::ToClient(answer)] = &drain(&mut bridge)[..] else {
        panic!()
    };
    assert_eq!(answer["request_seq"], 9);
    assert_eq!(answer["body"]["stackFrames"], json!([]));
}

#[test]
fn uart_output_becomes_ordered_output_events_and_losses_are_said() {
    let mut bridge = Bridge::new(BridgeConfig::default());
    bridge.handle(Input::Uart {
        data: "tick 1\n".into(),
        dropped: 0,
    });
    bridge.handle(Input::Uart {
        data: "tick 9\n".into(),
        dropped: 3,
    });
    let events: Vec<Value> = drain(&mut bridge)
        .into_iter()
        .map(|action| match action {
            Action::ToClient(m) => m,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        events[0]["body"],
        json!({"category": "stdout", "output": "tick 1\n"})
    );
    assert!(
        events[1]["body"]["output"]
            .as_str()
            .unwrap()
            .contains("3 chunks")
    );
    assert_eq!(events[2]["body"]["output"], "tick 9\n");
    let seqs: Vec<u64> = events.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, vec![1, 2, 3]);
}

#[test]
fn disconnect_powers_a_launched_session_off_and_keeps_an_attached_one() {
    let (mut bridge, _) = launched(true);
    bridge.handle(request(5, "disconnect", json!({})));
    assert_eq!(
        drain(&mut bridge),
        vec![Action::Op(Op::PowerOff {
            session_id: "s1".into()
        })]
    );
    bridge.handle(Input::OpDone(Ok(None)));
    let actions = drain(&mut bridge);
    assert!(
        matches!(&actions[..], [Action::ToClient(m), Action::Close] if m["success"] == true && m["request_seq"] == 5),
        "{actions:?}"
    );

    let mut attached = Bridge::new(BridgeConfig::default());
    attached.handle(request(1, "attach", json!({"sessionId": "s7"})));
    assert_eq!(
        drain(&mut attached),
        vec![Action::Op(Op::Attach {
            session_id: "s7".into(),
            program: None
        })]
    );
    attached.handle(Input::OpDone(Ok(Some(ready()))));
    drain(&mut attached);
    attached.handle(request(2, "disconnect", json!({"terminateDebuggee": true})));
    let actions = drain(&mut attached);
    assert!(
        matches!(&actions[..], [Action::ToClient(m), Action::Close] if m["success"] == true),
        "{actions:?}"
    );
}

#[test]
fn a_launch_that_fails_is_an_error_response_and_a_launch_needs_its_arguments() {
    let mut bridge = Bridge::new(BridgeConfig::default());
    bridge.handle(request(1, "launch", json!({"program": "/fw/a.elf"})));
    let [Action::ToClient(refused)] = &drain(&mut bridge)[..] else {
        panic!()
    };
    assert_eq!(refused["success"], false);
    assert!(refused["message"].as_str().unwrap().contains("board"));
    bridge.handle(request(
        2,
        "launch",
        json!({"board": "nope", "program": "/fw/a.elf"}),
    ));
    drain(&mut bridge);
    bridge.handle(Input::OpDone(Err(OpError("no board template nope".into()))));
    let [Action::ToClient(failed)] = &drain(&mut bridge)[..] else {
        panic!()
    };
    assert_eq!(
        (failed["request_seq"].as_u64(), failed["success"].as_bool()),
        (Some(2), Some(false))
    );
    assert_eq!(failed["message"], "no board template nope");
    bridge.handle(request(
        3,
        "launch",
        json!({"board": "b", "program": "/fw/a\n-file x"}),
    ));
    let [Action::ToClient(control)] = &drain(&mut bridge)[..] else {
        panic!()
    };
    assert_eq!(control["success"], false);
}

#[test]
fn a_session_endpoint_attaches_to_its_own_session_only() {
    let mut bridge = Bridge::new(BridgeConfig {
        session: Some("s1".into()),
        confined: true,
        launch_defaults: None,
        reverse: false,
    });
    bridge.handle(request(1, "attach", json!({"sessionId": "s2"})));
    let [Action::ToClient(refused)] = &drain(&mut bridge)[..] else {
        panic!()
    };
    assert!(refused["message"].as_str().unwrap().contains("s1"));
    bridge.handle(request(
        2,
        "launch",
        json!({"program": "/etc/passwd", "cwd": "/"}),
    ));
    assert_eq!(
        drain(&mut bridge),
        vec![Action::Op(Op::Attach {
            session_id: "s1".into(),
            program: None
        })]
    );
}

#[test]
fn a_confined_gdb_runs_no_host_commands() {
    let mut bridge = Bridge::new(BridgeConfig {
        session: Some("s1".into()),
        confined: true,
        launch_defaults: None,
        reverse: false,
    });
    for (seq, expression) in [
        (1, "shell id"),
        (2, "python import os"),
        (3, "pipe bt | sh"),
        (4, "set logging file /tmp/x"),
        (5, "dump memory /tmp/x 0 4"),
        (6, "source /tmp/x"),
        (7, "print $_shell(\"id\")"),
        (8, "p 1\nshell id"),
        (9, "!id"),
        (10, "cd /"),
    ] {
        bridge.handle(request(
            seq,
            "evaluate",
            json!({"expression": expression, "context": "repl"}),
        ));
        let actions = drain(&mut bridge);
        assert!(
            matches!(&actions[..], [Action::ToClient(m)] if m["success"] == false && m["request_seq"] == seq),
            "{expression}: {actions:?}"
        );
    }
    bridge.handle(request(
        20,
        "setBreakpoints",
        json!({"breakpoints": [{"line": 3, "condition": "$_shell(\"id\")"}]}),
    ));
    assert!(matches!(&drain(&mut bridge)[..], [Action::ToClient(m)] if m["success"] == false));
    bridge.handle(request(21, "source", json!({"sourceReference": 1})));
    assert!(matches!(&drain(&mut bridge)[..], [Action::ToClient(m)] if m["success"] == false));
    for (seq, expression) in [
        (30, "print tick_count"),
        (31, "p/x $pc"),
        (32, "set var tick_count = 3"),
        (33, "info registers"),
        (34, "x/4x $sp"),
    ] {
        bridge.handle(request(
            seq,
            "evaluate",
            json!({"expression": expression, "context": "repl"}),
        ));
        assert!(
            matches!(&drain(&mut bridge)[..], [Action::ToGdb(_)]),
            "{expression}"
        );
    }
    // Hover and watch expressions are GDB expressions, not commands.
    bridge.handle(request(
        40,
        "evaluate",
        json!({"expression": "tick_count", "context": "hover"}),
    ));
    assert!(matches!(&drain(&mut bridge)[..], [Action::ToGdb(_)]));
}

#[test]
fn gdb_ending_ends_the_debug_session_and_garbage_closes_it() {
    let (mut bridge, _) = launched(true);
    bridge.handle(Input::GdbExited("killed".into()));
    let actions = drain(&mut bridge);
    assert!(
        matches!(&actions[..], [Action::ToClient(_), Action::ToClient(t), Action::Close] if t["event"] == "terminated"),
        "{actions:?}"
    );
    let mut bridge = Bridge::new(BridgeConfig::default());
    bridge.handle(Input::ClientGarbage("bad header".into()));
    assert!(matches!(drain(&mut bridge).last(), Some(Action::Close)));
    bridge.handle(request(1, "threads", json!({})));
    assert!(drain(&mut bridge).is_empty());
}

#[test]
fn non_requests_are_noted_not_forwarded() {
    let mut bridge = Bridge::new(BridgeConfig::default());
    bridge.handle(Input::Client(json!({"hello": 1})));
    assert!(matches!(&drain(&mut bridge)[..], [Action::ToClient(m)] if m["event"] == "output"));
    bridge.handle(Input::Client(
        json!({"type": "response", "request_seq": 1, "seq": 4}),
    ));
    assert!(drain(&mut bridge).is_empty());
}

#[test]
fn stops_and_resumes_of_others_reach_the_client() {
    let (mut bridge, _) = launched(true);
    bridge.handle(Input::Gdb(json!({"type": "response", "request_seq": 4, "seq": 7, "command": "attach", "success": true})));
    bridge.handle(Input::Gdb(json!({"type": "event", "event": "stopped", "seq": 8, "body": {"reason": "attach", "threadId": 1}})));
    drain(&mut bridge);
    // Another debugger resumes and halts the CPU this client saw halted.
    bridge.handle(Input::Run(RunNotice::Resumed));
    let [Action::ToClient(continued)] = &drain(&mut bridge)[..] else {
        panic!()
    };
    assert_eq!(continued["event"], "continued");
    bridge.handle(Input::Run(RunNotice::Stopped));
    let [Action::ToGdb(refresh)] = &drain(&mut bridge)[..] else {
        panic!()
    };
    assert_eq!(
        refresh["arguments"]["expression"],
        "maintenance flush register-cache"
    );
    bridge.handle(Input::Gdb(json!({"type": "response", "request_seq": refresh["seq"], "seq": 9, "command": "evaluate", "success": true})));
    let [Action::ToClient(stopped)] = &drain(&mut bridge)[..] else {
        panic!()
    };
    assert_eq!(
        (
            stopped["event"].as_str(),
            stopped["body"]["reason"].as_str()
        ),
        (Some("stopped"), Some("pause"))
    );

    // This client's own run: GDB reports it; the gateway's notices add nothing.
    bridge.handle(request(10, "continue", json!({"threadId": 1})));
    drain(&mut bridge);
    bridge.handle(Input::Run(RunNotice::Resumed));
    bridge.handle(Input::Run(RunNotice::Stopped));
    assert!(drain(&mut bridge).is_empty());
    // A halt by someone else reaches GDB as a signal: reported as a pause.
    bridge.handle(Input::Gdb(json!({"type": "event", "event": "stopped", "seq": 12, "body": {"reason": "signal", "threadId": 1}})));
    let [Action::ToClient(paused)] = &drain(&mut bridge)[..] else {
        panic!()
    };
    assert_eq!(paused["body"]["reason"], "pause");
    // The client's own pause stays what GDB says.
    bridge.handle(request(11, "continue", json!({"threadId": 1})));
    bridge.handle(request(12, "pause", json!({"threadId": 1})));
    drain(&mut bridge);
    bridge.handle(Input::Gdb(json!({"type": "event", "event": "stopped", "seq": 13, "body": {"reason": "signal", "threadId": 1}})));
    let [Action::ToClient(own)] = &drain(&mut bridge)[..] else {
        panic!()
    };
    assert_eq!(own["body"]["reason"], "signal");
}

#[test]
fn the_command_line_board_and_program_win_over_the_launch_arguments() {
    let mut bridge = Bridge::new(BridgeConfig {
        launch_defaults: Some(("lm3s6965evb".into(), "/fw/cli.elf".into())),
        ..BridgeConfig::default()
    });
    bridge.handle(request(1, "launch", json!({})));
    assert_eq!(
        drain(&mut bridge),
        vec![Action::Op(Op::Launch {
            board: "lm3s6965evb".into(),
            program: "/fw/cli.elf".into(),
            coverage: false
        })]
    );
}

#[test]
fn threads_while_running_get_the_last_stops_list() {
    let (mut bridge, _) = launched(false);
    bridge.handle(Input::Gdb(json!({"type": "response", "request_seq": 4, "seq": 7, "command": "attach", "success": true})));
    drain(&mut bridge);
    bridge.handle(request(3, "threads", json!({})));
    let [Action::ToGdb(asked)] = &drain(&mut bridge)[..] else {
        panic!()
    };
    let list = json!({"threads": [{"id": 1, "name": "CPU#0"}]});
    bridge.handle(Input::Gdb(json!({"type": "response", "request_seq": asked["seq"], "seq": 8, "command": "threads", "success": true, "body": list})));
    drain(&mut bridge);
    bridge.handle(request(4, "continue", json!({"threadId": 1})));
    drain(&mut bridge);
    bridge.handle(request(5, "threads", json!({})));
    let [Action::ToGdb(asked)] = &drain(&mut bridge)[..] else {
        panic!()
    };
    bridge.handle(Input::Gdb(json!({"type": "response", "request_seq": asked["seq"], "seq": 9, "command": "threads", "success": false,
                                    "message": "Cannot execute this command while the target is running."})));
    let [Action::ToClient(answer)] = &drain(&mut bridge)[..] else {
        panic!()
    };
    assert_eq!(
        (answer["success"].as_bool(), answer["request_seq"].as_u64()),
        (Some(true), Some(5))
    );
    assert_eq!(answer["body"], list);
    assert!(answer.get("message").is_none());
}

#[test]
fn step_back_and_reverse_continue_become_gdb_reverse_commands_on_a_replay() {
    let mut bridge = Bridge::new(BridgeConfig {
        reverse: true,
        ..BridgeConfig::default()
    });
    bridge.handle(request(1, "initialize", json!({})));
    drain(&mut bridge);
    bridge.handle(Input::Gdb(json!({"type": "response", "request_seq": 1, "seq": 1, "command": "initialize", "success": true, "body": {}})));
    let [Action::ToClient(capabilities)] = &drain(&mut bridge)[..] else {
        panic!()
    };
    assert_eq!(capabilities["body"]["supportsStepBack"], true);
    for (seq, command, arguments, line) in [
        (2, "stepBack", json!({"threadId": 1}), "reverse-next"),
        (
            3,
            "stepBack",
            json!({"threadId": 1, "granularity": "instruction"}),
            "reverse-stepi",
        ),
        (
            4,
            "reverseContinue",
            json!({"threadId": 1}),
            "reverse-continue",
        ),
    ] {
        bridge.handle(request(seq, command, arguments));
        let [Action::ToGdb(evaluate)] = &drain(&mut bridge)[..] else {
            panic!()
        };
        assert_eq!(evaluate["command"], "evaluate");
        assert_eq!(evaluate["arguments"]["expression"], line);
        let gdb_seq = evaluate["seq"].as_u64().unwrap();
        bridge.handle(Input::Gdb(json!({"type": "response", "request_seq": gdb_seq, "seq": 10 + seq, "command": "evaluate", "success": true, "body": {"result": "text"}})));
        let [Action::ToClient(answer)] = &drain(&mut bridge)[..] else {
            panic!()
        };
        assert_eq!(answer["command"], command);
        assert_eq!(answer["request_seq"], seq);
        assert_eq!(answer["body"], json!({}));
    }
    // Elsewhere they are refused, and not offered.
    let mut plain = Bridge::new(BridgeConfig::default());
    plain.handle(request(1, "stepBack", json!({"threadId": 1})));
    let [Action::ToClient(refused)] = &drain(&mut plain)[..] else {
        panic!()
    };
    assert_eq!(refused["success"], false);
}
