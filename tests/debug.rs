//! Debugging a session end to end: real QEMU, the session's GDB endpoint used by real
//! gdb-multiarch and by the GraphQL debug API at the same time, and breakpoints on
//! functions and source lines resolved through the program's DWARF.

mod common;

use std::time::Duration;

use common::Server;
use serde_json::{Value, json};

async fn powered_ticker(server: &Server) -> (String, String) {
    let session = server.create_session("mps2-an385").await;
    server.upload(&session, "ticker-mps2-an385.elf").await;
    server.power(&session, "ON", false).await;
    server.wait_uart(&session, "tick 1\n").await;
    let gdb = server.gdb_address(&session).await;
    (session, gdb)
}

/// The next HALTED event for `reason`. (Whether halting a running VM also gives an
/// "interrupt" event depends on the QEMU version: 7.2 sends a stop reply when the
/// gateway connects, 10.x does not; those are skipped.)
async fn halted(events: &mut common::Subscription, reason: &str) -> Value {
    loop {
        let event = events.next().await.expect("an event")["sessionEvents"].clone();
        if event["kind"] == "HALTED" && event["reason"] == reason {
            return event;
        }
    }
}

fn number(hex: &Value) -> u64 {
    let text = hex
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {hex}"));
    u64::from_str_radix(text.trim_start_matches("0x"), 16).unwrap()
}

fn pc_of(registers: &Value) -> u64 {
    let pc = registers["registers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "pc");
    number(&pc.unwrap()["value"])
}

#[tokio::test]
async fn api_breakpoints_on_functions_and_lines_stop_there() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]).await;
    let (session, _) = powered_ticker(&server).await;
    let mut events = server
        .subscribe(
            "subscription($s: ID!) { sessionEvents(sessionId: $s) { kind reason pc function file line } }",
            json!({ "s": session }),
        )
        .await;
    let s = json!({ "s": session });
    let registers = "query($s: ID!) { registers(sessionId: $s) { name value } }";
    assert_eq!(
        server.error_code(registers, s.clone()).await,
        "NOT_HALTED",
        "running targets are not read"
    );

    let stopped = server
        .query(
            "mutation($s: ID!) { haltSession(sessionId: $s) { pc function } }",
            s.clone(),
        )
        .await;
    assert!(
        stopped["haltSession"]["pc"]
            .as_str()
            .unwrap()
            .starts_with("0x")
    );
    let breakpoint = server
        .query(
            "mutation($s: ID!) { addBreakpoint(sessionId: $s, location: \"tick\") { address function file line } }",
            s.clone(),
        )
        .await["addBreakpoint"]
        .clone();
    assert_eq!(breakpoint["function"], "tick");
    assert!(
        breakpoint["file"]
            .as_str()
            .unwrap()
            .ends_with("programs/ticker.c"),
        "{breakpoint}"
    );
    server
        .query(
            "mutation($s: ID!) { continueSession(sessionId: $s) }",
            s.clone(),
        )
        .await;
    let event = halted(&mut events, "breakpoint").await;
    assert_eq!(event["function"], "tick", "{event}");
    assert_eq!(event["pc"], breakpoint["address"]);
    assert_eq!(
        pc_of(&server.query(registers, s.clone()).await),
        number(&breakpoint["address"])
    );
    let memory = server
        .query(
            "query($s: ID!, $a: String!) { readMemory(sessionId: $s, address: $a, length: 4) }",
            json!({ "s": session, "a": breakpoint["address"] }),
        )
        .await;
    assert_eq!(memory["readMemory"].as_str().unwrap().len(), 8);

    // A source line inside tick(): uart_puts("tick ") is line 22 of programs/ticker.c.
    server
        .query(
            "mutation($s: ID!) { removeBreakpoint(sessionId: $s, location: \"tick\") }",
            s.clone(),
        )
        .await;
    let line = server
        .query(
            "mutation($s: ID!) { addBreakpoint(sessionId: $s, location: \"programs/ticker.c:22\") { address line } }",
            s.clone(),
        )
        .await;
    assert_eq!(line["addBreakpoint"]["line"], 22);
    server
        .query(
            "mutation($s: ID!) { continueSession(sessionId: $s) }",
            s.clone(),
        )
        .await;
    let event = halted(&mut events, "breakpoint").await;
    assert_eq!(event["line"], 22, "{event}");
    assert_eq!(
        event["file"].as_str().map(|f| f.ends_with("ticker.c")),
        Some(true)
    );

    let history = "query($s: ID!) { session(id: $s) { history { kind } } }";
    let recorded = |reply: Value| reply["session"]["history"].as_array().unwrap().len();
    let before = recorded(server.query(history, s.clone()).await);
    let step = server
        .query(
            "mutation($s: ID!) { stepSession(sessionId: $s, count: 3) { pc function } }",
            s.clone(),
        )
        .await;
    assert_ne!(
        step["stepSession"]["pc"], event["pc"],
        "three instructions later"
    );
    // Each step resumes and pauses QEMU; none of that lasts long enough to be history.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(recorded(server.query(history, s.clone()).await), before);

    for (query, code) in [
        (
            "mutation($s: ID!) { addBreakpoint(sessionId: $s, location: \"no_such_function\") { address } }",
            "NO_SUCH_SYMBOL",
        ),
        (
            "mutation($s: ID!) { addBreakpoint(sessionId: $s, location: \"nope.c:3\") { address } }",
            "NO_SUCH_SYMBOL",
        ),
        (
            "mutation($s: ID!) { addBreakpoint(sessionId: $s, location: \"ticker.c:x\") { address } }",
            "BAD_INPUT",
        ),
        (
            "query($s: ID!) { readMemory(sessionId: $s, address: \"zz\", length: 4) }",
            "BAD_INPUT",
        ),
        (
            "mutation($s: ID!) { writeRegister(sessionId: $s, name: \"nope\", value: \"0x1\") }",
            "NO_SUCH_SYMBOL",
        ),
    ] {
        assert_eq!(server.error_code(query, s.clone()).await, code, "{query}");
    }
    let unpowered = server.create_session("mps2-an385").await;
    assert_eq!(
        server
            .error_code(registers, json!({ "s": unpowered }))
            .await,
        "INVALID_STATE"
    );
}

#[tokio::test]
async fn gdb_and_the_api_debug_the_same_cpu_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]).await;
    let (session, gdb_address) = powered_ticker(&server).await;
    let api_answer = dir.path().join("api-registers.json");
    // While gdb holds the CPU at tick(), it asks the GraphQL API for the registers (a
    // second client of the same gateway), then prints what it sees itself.
    let request = json!({
        "query": "query($s: ID!) { registers(sessionId: $s) { name value } }",
        "variables": { "s": session },
    });
    let curl = format!(
        "shell curl -s {}/graphql -H 'content-type: application/json' -d '{}' > {}",
        server.base,
        request,
        api_answer.display()
    );
    let commands = [
        "break tick",
        "continue",
        "print tick_count",
        "printf \"PC=0x%x\\n\", $pc",
        &curl,
        "finish",
        "print tick_count",
        "detach",
    ];
    let output = common::gdb_batch("ticker-mps2-an385.elf", &gdb_address, &commands).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stdout.contains("Breakpoint 1, tick ()"),
        "{stdout}\n{stderr}"
    );
    let gdb_pc = stdout
        .lines()
        .find_map(|l| l.strip_prefix("PC="))
        .map(|pc| number(&json!(pc)))
        .unwrap_or_else(|| panic!("no PC in {stdout}"));
    let api: Value = serde_json::from_str(&std::fs::read_to_string(&api_answer).unwrap()).unwrap();
    assert_eq!(
        pc_of(&api["data"]),
        gdb_pc,
        "gdb and the API see the same pc: {api}"
    );
    // tick_count before and after finish(): tick() ran once more.
    let counts: Vec<u64> = stdout
        .lines()
        .filter_map(|l| l.split_once(" = ").and_then(|(_, v)| v.trim().parse().ok()))
        .collect();
    assert_eq!(counts.len(), 2, "{stdout}");
    assert_eq!(counts[1], counts[0] + 1, "{stdout}");
    // gdb detached and was the last client: the target runs again.
    let before = server.session(&session).await["uartText"]
        .as_str()
        .unwrap()
        .len();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while server.session(&session).await["uartText"]
        .as_str()
        .unwrap()
        .len()
        == before
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the target did not resume after detach"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Resuming a PAUSED session (power ON, or a reset that runs on) while the gateway is
/// attached goes through the stub: QEMU 8.1 and later announce the next stop only after
/// a resume their stub was sent, so a QMP `cont` here would leave this HALTED unsaid.
#[tokio::test]
async fn resuming_a_paused_session_reports_the_next_breakpoint() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]).await;
    let session = server.create_session("mps2-an385").await;
    server.upload(&session, "ticker-mps2-an385.elf").await;
    assert_eq!(server.power(&session, "ON", true).await["state"], "PAUSED");
    let mut events = server
        .subscribe(
            "subscription($s: ID!) { sessionEvents(sessionId: $s) { kind reason pc function } }",
            json!({ "s": session }),
        )
        .await;
    let s = json!({ "s": session });
    let breakpoint = server
        .query(
            "mutation($s: ID!) { addBreakpoint(sessionId: $s, location: \"tick\") { address } }",
            s.clone(),
        )
        .await["addBreakpoint"]["address"]
        .clone();

    for action in ["ON", "RESET"] {
        server.power(&session, action, false).await;
        let event =
            tokio::time::timeout(Duration::from_secs(20), halted(&mut events, "breakpoint"))
                .await
                .unwrap_or_else(|_| panic!("power {action}: no HALTED event"));
        assert_eq!(event["function"], "tick", "{event}");
        assert_eq!(event["pc"], breakpoint, "{event}");
        server.wait_state(&session, "PAUSED").await;
    }
}
