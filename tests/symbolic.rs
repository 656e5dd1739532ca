//! The symbolic debug API end to end: real QEMU, the session's gateway, and a real GDB
//! (whichever the server finds) answering backtrace, locals, evaluate and setVariable
//! at a breakpoint in programs/ticker.c; user text that tries to reach GDB as a
//! command; a running target; GDB killed, missing or hanging.

mod common;

use std::time::Duration;

use common::Server;
use serde_json::{Value, json};

const BACKTRACE: &str =
    "query($s: ID!) { backtrace(sessionId: $s) { level function file line pc } }";
const LOCALS: &str =
    "query($s: ID!, $f: Int!) { locals(sessionId: $s, frame: $f) { name value type } }";
const EVALUATE: &str = "query($s: ID!, $e: String!, $f: Int!) { evaluate(sessionId: $s, expression: $e, frame: $f) { value type } }";
const SET: &str = "mutation($s: ID!, $n: String!, $v: String!) { setVariable(sessionId: $s, name: $n, value: $v) { value type } }";

/// A ticker session stopped at the breakpoint on delay() (programs/ticker.c:34, called
/// from main() at line 42); returns it and the breakpoint's address.
async fn stopped_in_delay(server: &Server) -> (String, Value) {
    let session = server.create_session("mps2-an385").await;
    server.upload(&session, "ticker-mps2-an385.elf").await;
    assert_eq!(server.power(&session, "ON", true).await["state"], "PAUSED");
    let s = json!({ "s": session });
    let address = server
        .query(
            "mutation($s: ID!) { addBreakpoint(sessionId: $s, location: \"delay\") { address } }",
            s.clone(),
        )
        .await["addBreakpoint"]["address"]
        .clone();
    server
        .query("mutation($s: ID!) { continueSession(sessionId: $s) }", s)
        .await;
    server.wait_state(&session, "PAUSED").await;
    (session, address)
}

async fn evaluate(server: &Server, session: &str, expression: &str, frame: i32) -> Value {
    server
        .query(
            EVALUATE,
            json!({ "s": session, "e": expression, "f": frame }),
        )
        .await["evaluate"]
        .clone()
}

/// The code and message of the first error of a query that must fail.
async fn failure(server: &Server, query: &str, variables: Value) -> (String, String) {
    let response = server.request(query, variables).await;
    let error = &response["errors"][0];
    let code = error["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {response}"));
    let message = error["message"].as_str().unwrap().to_owned();
    for mi in ["^error", "msg=", "(gdb)", "^done"] {
        assert!(
            !message.contains(mi),
            "MI text reached the client: {message}"
        );
    }
    (code.to_owned(), message)
}

/// The server's GDB/MI processes (children running `--interpreter=mi3`).
fn mi_gdbs(server: &Server) -> Vec<i32> {
    let parent = server.child.id().unwrap().to_string();
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // pid (comm) state ppid ...
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if fields.get(1) == Some(&parent.as_str())
            && fields.first() != Some(&"Z")
            && String::from_utf8_lossy(&cmdline).contains("--interpreter=mi3")
        {
            pids.push(pid);
        }
    }
    pids
}

/// Waits until the server runs no GDB/MI process (they are killed, not asked to leave).
async fn no_gdb_left(server: &Server) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !mi_gdbs(server).is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "GDB still runs: {:?}",
            mi_gdbs(server)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn backtrace_locals_evaluate_and_set_variable_at_a_breakpoint() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]).await;
    let (session, address) = stopped_in_delay(&server).await;
    let s = json!({ "s": session });

    let frames = server.query(BACKTRACE, s.clone()).await["backtrace"].clone();
    let frames = frames.as_array().unwrap();
    assert!(frames.len() >= 2, "{frames:?}");
    assert_eq!(frames[0]["level"], 0);
    assert_eq!(frames[0]["function"], "delay");
    assert!(
        frames[0]["file"]
            .as_str()
            .unwrap()
            .ends_with("programs/ticker.c"),
        "{frames:?}"
    );
    assert_eq!(frames[0]["line"], 34);
    assert_eq!(
        frames[0]["pc"], address,
        "the frame is where the API stopped"
    );
    assert_eq!(frames[1]["level"], 1);
    assert_eq!(frames[1]["function"], "main");
    assert_eq!(frames[1]["line"], 42);

    let locals = server.query(LOCALS, json!({ "s": session, "f": 0 })).await["locals"].clone();
    let loops = locals
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "loops")
        .unwrap_or_else(|| panic!("no argument loops in {locals}"));
    assert_eq!(loops["value"], "100000000");
    assert_eq!(loops["type"], "unsigned int");
    assert!(
        locals.as_array().unwrap().iter().any(|v| v["name"] == "i"),
        "{locals}"
    );
    let main_locals = server.query(LOCALS, json!({ "s": session, "f": 1 })).await["locals"].clone();
    assert_eq!(main_locals, json!([]), "main() has no variables");

    assert_eq!(
        evaluate(&server, &session, "tick_count", 0).await,
        json!({ "value": "0", "type": "volatile unsigned int" })
    );
    assert_eq!(
        evaluate(&server, &session, "loops / 1000 + 1", 0).await,
        json!({ "value": "100001", "type": "unsigned int" })
    );
    assert_eq!(
        evaluate(&server, &session, "sizeof(tick_count) == 4", 1).await["value"],
        "1"
    );

    let set = server
        .query(
            SET,
            json!({ "s": session, "n": "tick_count", "v": "41 + 1" }),
        )
        .await["setVariable"]
        .clone();
    assert_eq!(
        set,
        json!({ "value": "42", "type": "volatile unsigned int" })
    );
    assert_eq!(
        evaluate(&server, &session, "tick_count", 0).await["value"],
        "42",
        "read back from the target"
    );
    // The target's memory really changed: the register/memory API sees it too.
    let tick_count_address =
        evaluate(&server, &session, "(unsigned long)&tick_count", 0).await["value"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap();
    let memory = server
        .query(
            "query($s: ID!, $a: String!) { readMemory(sessionId: $s, address: $a, length: 4) }",
            json!({ "s": session, "a": format!("0x{tick_count_address:x}") }),
        )
        .await;
    assert_eq!(memory["readMemory"], "2a000000");

    let (code, message) = failure(
        &server,
        EVALUATE,
        json!({ "s": session, "e": "no_such_symbol + 1", "f": 0 }),
    )
    .await;
    assert_eq!(code, "BAD_EXPRESSION");
    assert!(message.contains("no_such_symbol"), "{message}");
    let (code, _) = failure(&server, LOCALS, json!({ "s": session, "f": 99 })).await;
    assert_eq!(code, "NO_SUCH_FRAME");
    let (code, _) = failure(&server, LOCALS, json!({ "s": session, "f": -1 })).await;
    assert_eq!(code, "BAD_INPUT");
    let (code, _) = failure(
        &server,
        SET,
        json!({ "s": session, "n": "tick_count + 1", "v": "3" }),
    )
    .await;
    assert_eq!(code, "BAD_EXPRESSION", "an rvalue cannot be assigned");
    assert_eq!(mi_gdbs(&server).len(), 1, "one GDB for the session");

    // Powering off ends the session's GDB.
    server.power(&session, "OFF", false).await;
    no_gdb_left(&server).await;
}

#[tokio::test]
async fn user_text_never_reaches_gdb_as_a_command() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]).await;
    let (session, _) = stopped_in_delay(&server).await;
    assert_eq!(
        evaluate(&server, &session, "tick_count", 0).await["value"],
        "0"
    );
    let gdb = mi_gdbs(&server);
    let pwned = dir.path().join("pwned");
    let attempts = [
        "1\n-gdb-exit".to_owned(),
        "1\r\n-gdb-exit".to_owned(),
        format!("1\"; shell touch {}", pwned.display()),
        format!(
            "1\" \"\n-interpreter-exec console \"shell touch {}\"",
            pwned.display()
        ),
        "1\\".to_owned(),
        format!("$_shell(\"touch {}\")", pwned.display()),
    ];
    for attempt in &attempts {
        let (code, message) = failure(
            &server,
            EVALUATE,
            json!({ "s": session, "e": attempt, "f": 0 }),
        )
        .await;
        assert_eq!(code, "BAD_EXPRESSION", "{attempt:?}: {message}");
        let (code, _) = failure(
            &server,
            SET,
            json!({ "s": session, "n": "tick_count", "v": attempt }),
        )
        .await;
        assert_eq!(code, "BAD_EXPRESSION", "{attempt:?}");
    }
    assert!(!pwned.exists(), "a shell command ran");
    // The same GDB still answers.
    assert_eq!(
        evaluate(&server, &session, "tick_count", 0).await["value"],
        "0"
    );
    assert_eq!(mi_gdbs(&server), gdb);

    // A running target is refused at once rather than waited for.
    let s = json!({ "s": session });
    server
        .query(
            "mutation($s: ID!) { removeBreakpoint(sessionId: $s, location: \"delay\") }",
            s.clone(),
        )
        .await;
    server
        .query(
            "mutation($s: ID!) { continueSession(sessionId: $s) }",
            s.clone(),
        )
        .await;
    server.wait_uart(&session, "tick 1\n").await;
    for query in [BACKTRACE, LOCALS, EVALUATE] {
        let variables = json!({ "s": session, "e": "tick_count", "f": 0 });
        let answer =
            tokio::time::timeout(Duration::from_secs(20), failure(&server, query, variables))
                .await
                .expect("a running target is answered, not waited for");
        assert_eq!(answer.0, "NOT_HALTED", "{query}: {}", answer.1);
    }

    // Halted again, GDB sees the state the target ran into.
    server
        .query(
            "mutation($s: ID!) { haltSession(sessionId: $s) { pc } }",
            s.clone(),
        )
        .await;
    let ticks: u64 = evaluate(&server, &session, "tick_count", 0).await["value"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(ticks >= 1, "tick_count is read fresh: {ticks}");

    // Deleting the session ends its GDB.
    server
        .query("mutation($s: ID!) { deleteSession(id: $s) }", s)
        .await;
    no_gdb_left(&server).await;
}

#[tokio::test]
async fn a_killed_gdb_is_replaced_by_the_next_request() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]).await;
    let (session, _) = stopped_in_delay(&server).await;
    let s = json!({ "s": session });
    assert_eq!(
        server.query(BACKTRACE, s.clone()).await["backtrace"][0]["function"],
        "delay"
    );
    let [first] = mi_gdbs(&server)[..] else {
        panic!("one GDB: {:?}", mi_gdbs(&server))
    };
    unsafe { libc::kill(first, libc::SIGKILL) };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while mi_gdbs(&server).contains(&first) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "SIGKILL did not end GDB"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        server.query(BACKTRACE, s).await["backtrace"][0]["function"],
        "delay"
    );
    let now = mi_gdbs(&server);
    assert_eq!(now.len(), 1, "{now:?}");
    assert_ne!(now[0], first);
}

#[tokio::test]
async fn no_gdb_is_gdb_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--gdb", "/nonexistent/gdb"]).await;
    let (session, _) = stopped_in_delay(&server).await;
    let (code, message) = failure(&server, BACKTRACE, json!({ "s": session })).await;
    assert_eq!(code, "GDB_UNAVAILABLE");
    assert!(
        message.contains("gdb-for-pwndbg"),
        "names what to install: {message}"
    );
}

/// A "GDB" that passes the server's probe and then never answers MI.
#[tokio::test]
async fn a_gdb_that_hangs_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("gdb");
    std::fs::write(
        &fake,
        // Confined, it may run nothing and write nowhere: it reads its commands and
        // never answers.
        "#!/bin/sh\ncase \"$*\" in\n  *-batch*) echo virserver-version=14.0; exit 0;;\nesac\nwhile read line; do :; done\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let server = Server::start(&dir.path().join("data"), &["--gdb", fake.to_str().unwrap()]).await;
    let (session, _) = stopped_in_delay(&server).await;
    let (code, message) = tokio::time::timeout(
        Duration::from_secs(120),
        failure(&server, BACKTRACE, json!({ "s": session })),
    )
    .await
    .expect("a hanging GDB is given up on");
    assert_eq!(code, "GDB_FAILED", "{message}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while running(&fake) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the hanging GDB still runs"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether a process runs the script at `path` (`/bin/sh PATH ...`; the server's own
/// command line names it too, as `--gdb PATH`).
fn running(path: &std::path::Path) -> bool {
    let needle = path.as_os_str().as_encoded_bytes();
    std::fs::read_dir("/proc").unwrap().flatten().any(|entry| {
        std::fs::read(entry.path().join("cmdline"))
            .map(|cmdline| cmdline.split(|b| *b == 0).take(2).any(|arg| arg == needle))
            .unwrap_or(false)
    })
}
