//! Authentication and authorization with the real binary: keys made with `virserver
//! keys` against the database, a server with `--auth required`, tokens over HTTP and in
//! the WebSocket `connection_init`, real QEMU sessions owned by one user and looked at
//! by others; and a matrix over every mutation and subscription in the schema (read by
//! introspection, so a new one is covered the day it is added).

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use common::Server;
use serde_json::{Map, Value, json};

fn keys(data: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_virserver"))
        .arg("keys")
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .output()
        .unwrap()
}

/// The first error's code of a response (`None` when it succeeded).
fn code(response: &Value) -> Option<&str> {
    response["errors"][0]["extensions"]["code"].as_str()
}

/// The code a subscription was refused with: in an `error` message, or in the errors
/// of its first `next`.
fn refusal(message: &Value) -> Option<&str> {
    match message["type"].as_str() {
        Some("error") => message["payload"][0]["extensions"]["code"].as_str(),
        Some("next") => code(&message["payload"]),
        _ => None,
    }
}

#[tokio::test]
async fn keys_roles_and_owners_over_http_websocket_and_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let root = common::create_key(&data, "root", "admin");
    let ann = common::create_key(&data, "ann", "operator");
    let again = keys(&data, &["create", "--name", "ann", "--role", "viewer"]);
    assert_eq!(again.status.code(), Some(1), "a name is never given twice");
    let server = Server::start(&data, &["--auth", "required"]).await;

    // No token, a bad one, a malformed header: UNAUTHENTICATED, for queries too.
    let sessions = "{ sessions { id } }";
    assert_eq!(
        code(&server.request(sessions, json!({})).await),
        Some("UNAUTHENTICATED")
    );
    server.act_as(Some(
        "vsk_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    ));
    assert_eq!(
        code(&server.request(sessions, json!({})).await),
        Some("UNAUTHENTICATED")
    );
    server.act_as(Some(&root));
    assert_eq!(code(&server.request(sessions, json!({})).await), None);

    // The admin makes two more keys through the API; the token is in the answer once.
    let create = "mutation($n: String!, $r: Role!) { createApiKey(name: $n, role: $r) { token key { name role } } }";
    let made = server
        .query(create, json!({ "n": "bob", "r": "OPERATOR" }))
        .await;
    let bob = made["createApiKey"]["token"].as_str().unwrap().to_owned();
    assert_eq!(made["createApiKey"]["key"]["role"], "OPERATOR");
    let made = server
        .query(create, json!({ "n": "vic", "r": "VIEWER" }))
        .await;
    let vic = made["createApiKey"]["token"].as_str().unwrap().to_owned();
    let listed = server
        .query("{ apiKeys { name role revokedAt } }", json!({}))
        .await;
    let names: Vec<&str> = listed["apiKeys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["root", "ann", "bob", "vic"]);
    assert!(
        !listed.to_string().contains("vsk_"),
        "a listing never shows a token"
    );

    // Ann's session, powered and printing.
    server.act_as(Some(&ann));
    let session = server.create_session("mps2-an385").await;
    server.upload(&session, "hello-mps2-an385.elf").await;
    server.power(&session, "ON", false).await;
    server.wait_state(&session, "EXITED").await;
    let read = "query($id: ID!) { session(id: $id) { id uartText } }";
    let power = "mutation($id: ID!) { powerSession(id: $id, action: OFF) { state } }";

    // Bob, another operator: it does not exist for him.
    server.act_as(Some(&bob));
    assert_eq!(
        server.error_code(read, json!({ "id": session })).await,
        "NOT_FOUND"
    );
    assert_eq!(
        server.error_code(power, json!({ "id": session })).await,
        "NOT_FOUND"
    );
    assert_eq!(
        server.query(sessions, json!({})).await["sessions"],
        json!([])
    );
    let mut uart = server
        .subscribe(
            "subscription($s: ID!) { uartOutput(sessionId: $s) { data } }",
            json!({ "s": session }),
        )
        .await;
    let refused = uart.next_message().await.unwrap();
    assert_eq!(refusal(&refused), Some("NOT_FOUND"), "{refused}");
    let board = "mutation { deleteBoardTemplate(id: \"mps2-an385\") }";
    assert_eq!(server.error_code(board, json!({})).await, "FORBIDDEN");

    // Vic, a viewer: sees everything, changes nothing.
    server.act_as(Some(&vic));
    let seen = server.query(read, json!({ "id": session })).await;
    assert!(
        seen["session"]["uartText"]
            .as_str()
            .unwrap()
            .contains("counting: 1 2 3")
    );
    assert_eq!(
        server.query(sessions, json!({})).await["sessions"][0]["id"],
        session.as_str()
    );
    assert_eq!(
        server.error_code(power, json!({ "id": session })).await,
        "FORBIDDEN"
    );
    let mut uart = server
        .subscribe(
            "subscription($s: ID!) { uartOutput(sessionId: $s) { data } }",
            json!({ "s": session }),
        )
        .await;
    let replayed = uart.next_message().await.unwrap();
    assert!(
        replayed["payload"]["data"]["uartOutput"]["data"]
            .as_str()
            .is_some_and(|d| "Hello".starts_with(d) || d.starts_with("Hello")),
        "{replayed}"
    );
    let program = server
        .query(
            "query($id: ID!) { session(id: $id) { programs { id } } }",
            json!({ "id": session }),
        )
        .await["session"]["programs"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The program file follows the same rules.
    let http = reqwest::Client::new();
    let file = |token: Option<&str>| {
        let request = http.get(format!("{}/programs/{program}", server.base));
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
        .send()
    };
    assert_eq!(file(None).await.unwrap().status(), 401);
    assert_eq!(file(Some(&bob)).await.unwrap().status(), 404);
    assert_eq!(file(Some(&ann)).await.unwrap().status(), 200);

    // `virserver submit` takes the token; without one the server refuses the job.
    let submit = |token: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_virserver"));
        command
            .args(["submit", "--server", &server.base, "--board", "mps2-an385"])
            .arg(common::firmware("hello-mps2-an385.elf"))
            .env_remove("VIRSERVER_TOKEN");
        if let Some(token) = token {
            command.env("VIRSERVER_TOKEN", token);
        }
        command.output().unwrap()
    };
    let refused = submit(None);
    assert_eq!(refused.status.code(), Some(3), "{refused:?}");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("UNAUTHENTICATED"));
    let passed = submit(Some(&bob));
    assert_eq!(passed.status.code(), Some(0), "{passed:?}");
    let jobs = server.query("{ jobs { nodes { id } } }", json!({})).await;
    assert_eq!(
        jobs["jobs"]["nodes"].as_array().unwrap().len(),
        1,
        "vic sees bob's job"
    );
    server.act_as(Some(&ann));
    let jobs = server.query("{ jobs { nodes { id } } }", json!({})).await;
    assert_eq!(
        jobs["jobs"]["nodes"],
        json!([]),
        "ann does not see bob's job"
    );

    // Revoked with the CLI while the server runs: the token stops working at once.
    let revoked = keys(&data, &["revoke", "bob"]);
    assert!(revoked.status.success(), "{revoked:?}");
    server.act_as(Some(&bob));
    assert_eq!(
        code(&server.request(sessions, json!({})).await),
        Some("UNAUTHENTICATED")
    );
    let listed = String::from_utf8(keys(&data, &["list"]).stdout).unwrap();
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("bob ") && l.contains("revoked")),
        "{listed}"
    );

    // The audit log: every mutation on the session, refusals included; an admin reads
    // all of it, anyone else their own entries.
    let log = "query($s: ID) { auditLog(sessionId: $s) { user operation sessionId outcome at arguments } }";
    server.act_as(Some(&root));
    let entries = server.query(log, json!({ "s": session })).await["auditLog"].clone();
    let seen: Vec<(String, String, String)> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let field = |name: &str| e[name].as_str().unwrap().to_owned();
            (field("user"), field("operation"), field("outcome"))
        })
        .collect();
    for (user, operation, outcome) in [
        ("ann", "uploadProgram", "ok"),
        ("ann", "powerSession", "ok"),
        ("bob", "powerSession", "NOT_FOUND"),
        ("vic", "powerSession", "FORBIDDEN"),
    ] {
        let expected = (user.to_owned(), operation.to_owned(), outcome.to_owned());
        assert!(seen.contains(&expected), "{expected:?} not in {seen:?}");
    }
    server.act_as(Some(&ann));
    let own = server.query(log, json!({ "s": null })).await["auditLog"].clone();
    let users: BTreeSet<&str> = own
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["user"].as_str().unwrap())
        .collect();
    assert_eq!(users, BTreeSet::from(["ann"]), "{own}");
    assert_eq!(server.terminate().await, Some(0));

    // The log is in the database: `virserver audit` reads it with the server gone.
    let output = Command::new(env!("CARGO_BIN_EXE_virserver"))
        .args([
            "audit",
            "--format",
            "jsonl",
            "--since",
            "1h",
            "--session",
            &session,
        ])
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let lines: Vec<Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), seen.len(), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|e| e["user"] == "bob" && e["outcome"] == "NOT_FOUND")
    );
}

/// The type a `__Type` reference spells in a query (`ID!`, `[String!]!`).
fn spell(t: &Value) -> String {
    match t["kind"].as_str().unwrap() {
        "NON_NULL" => format!("{}!", spell(&t["ofType"])),
        "LIST" => format!("[{}]", spell(&t["ofType"])),
        _ => t["name"].as_str().unwrap().to_owned(),
    }
}

fn named(t: &Value) -> &Value {
    match t["kind"].as_str().unwrap() {
        "NON_NULL" | "LIST" => named(&t["ofType"]),
        _ => t,
    }
}

const TYPE_REF: &str = "fragment T on __Type { kind name ofType { kind name ofType { kind name ofType { kind name } } } }";

/// The ids a value stands for: whose they are decides what an operator may do.
struct Ids {
    session: String,
    job: String,
    snapshot: String,
}

/// A value of type `t` for argument (or input field) `name` of root field `field`;
/// `uses_upload` is set when it is a file.
async fn dummy(
    server: &Server,
    field: &str,
    name: &str,
    t: &Value,
    ids: &Ids,
    uses_upload: &mut bool,
) -> Value {
    match t["kind"].as_str().unwrap() {
        "NON_NULL" => Box::pin(dummy(server, field, name, &t["ofType"], ids, uses_upload)).await,
        "LIST" => {
            json!([Box::pin(dummy(server, field, name, &t["ofType"], ids, uses_upload)).await])
        }
        "ENUM" => {
            let values = server
                .query(
                    "query($n: String!) { __type(name: $n) { enumValues { name } } }",
                    json!({ "n": t["name"] }),
                )
                .await;
            values["__type"]["enumValues"][0]["name"].clone()
        }
        "INPUT_OBJECT" => {
            let fields = server
                .query(
                    &format!("query($n: String!) {{ __type(name: $n) {{ inputFields {{ name type {{ ...T }} }} }} }} {TYPE_REF}"),
                    json!({ "n": t["name"] }),
                )
                .await;
            let mut object = Map::new();
            for input in fields["__type"]["inputFields"].as_array().unwrap() {
                if input["type"]["kind"] == "NON_NULL" {
                    let input_name = input["name"].as_str().unwrap();
                    let value = Box::pin(dummy(
                        server,
                        field,
                        input_name,
                        &input["type"],
                        ids,
                        uses_upload,
                    ))
                    .await;
                    object.insert(input_name.to_owned(), value);
                }
            }
            Value::Object(object)
        }
        _ => match t["name"].as_str().unwrap() {
            "ID" => json!(match (field, name) {
                (_, "boardTemplate") => "mps2-an385",
                ("updateBoardTemplate" | "deleteBoardTemplate", _) => "mps2-an385",
                (_, "jobId") | ("debugJob" | "cancelJob", "id") => ids.job.as_str(),
                (_, "snapshotId") | ("restoreSnapshot" | "deleteSnapshot", "id") => {
                    ids.snapshot.as_str()
                }
                (_, "recordingId") => "00000000-0000-4000-8000-000000000000",
                _ => ids.session.as_str(),
            }),
            "Int" => json!(1),
            "Boolean" => json!(false),
            "Upload" => {
                *uses_upload = true;
                Value::Null
            }
            _ => json!("main"),
        },
    }
}

/// Runs root field `field` of `operation` with a value for each required argument, as
/// whoever the server acts as; the first error code (`None`: no error).
async fn call(server: &Server, operation: &str, field: &Value, ids: &Ids) -> Option<String> {
    let name = field["name"].as_str().unwrap();
    let mut declared = Vec::new();
    let mut passed = Vec::new();
    let mut variables = Map::new();
    let mut upload_path = None;
    for (i, argument) in field["args"].as_array().unwrap().iter().enumerate() {
        if argument["type"]["kind"] != "NON_NULL" {
            continue;
        }
        let argument_name = argument["name"].as_str().unwrap();
        let mut uses_upload = false;
        let value = dummy(
            server,
            name,
            argument_name,
            &argument["type"],
            ids,
            &mut uses_upload,
        )
        .await;
        if uses_upload {
            upload_path = Some(format!("variables.a{i}"));
        }
        declared.push(format!("$a{i}: {}", spell(&argument["type"])));
        passed.push(format!("{argument_name}: $a{i}"));
        variables.insert(format!("a{i}"), value);
    }
    let selection = match named(&field["type"])["kind"].as_str().unwrap() {
        "OBJECT" | "INTERFACE" | "UNION" => " { __typename }",
        _ => "",
    };
    let arguments = if passed.is_empty() {
        String::new()
    } else {
        format!("({})", passed.join(", "))
    };
    let head = if declared.is_empty() {
        operation.to_owned()
    } else {
        format!("{operation}({})", declared.join(", "))
    };
    let query = format!("{head} {{ {name}{arguments}{selection} }}");
    if operation == "subscription" {
        let mut subscription = server.subscribe(&query, Value::Object(variables)).await;
        let message = subscription.next_message().await.unwrap_or(Value::Null);
        return refusal(&message).map(str::to_owned);
    }
    let response = match upload_path {
        Some(path) => {
            let bytes = std::fs::read(common::firmware("hello-mps2-an385.elf")).unwrap();
            let operations = json!({ "query": query, "variables": variables });
            server
                .multipart(operations, &path, "hello.elf", bytes)
                .await
        }
        None => server.request(&query, Value::Object(variables)).await,
    };
    code(&response).map(str::to_owned)
}

/// Every mutation and subscription, for each kind of caller, gives the code its rule
/// says: nobody UNAUTHENTICATED, a viewer FORBIDDEN (mutations), another operator
/// NOT_FOUND (FORBIDDEN for admin work), an admin never an auth error.
#[tokio::test]
async fn every_mutation_and_subscription_answers_each_role_with_its_code() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let root = common::create_key(&data, "root", "admin");
    let ann = common::create_key(&data, "ann", "operator");
    let bob = common::create_key(&data, "bob", "operator");
    let vic = common::create_key(&data, "vic", "viewer");
    let server = Server::start(&data, &["--auth", "required"]).await;

    // What ann owns: a paused session with a snapshot, and a job.
    server.act_as(Some(&ann));
    let session = server.create_session("mps2-an385").await;
    server.upload(&session, "ticker-mps2-an385.elf").await;
    server.power(&session, "ON", true).await;
    let snapshot = server
        .query(
            "mutation($s: ID!) { createSnapshot(sessionId: $s, name: \"s\") { id } }",
            json!({ "s": session }),
        )
        .await["createSnapshot"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let job = server
        .create_job(
            "hello-mps2-an385.elf",
            json!({ "name": "j", "boardTemplate": "mps2-an385" }),
        )
        .await;
    let job = job["data"]["createJob"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{job}"))
        .to_owned();
    let owned = Ids {
        session: session.clone(),
        job,
        snapshot,
    };
    let nothing = "00000000-0000-4000-8000-000000000000".to_owned();
    let missing = Ids {
        session: nothing.clone(),
        job: nothing.clone(),
        snapshot: nothing,
    };

    server.act_as(None);
    let schema = server
        .query(
            &format!("{{ __schema {{ mutationType {{ fields {{ name type {{ ...T }} args {{ name type {{ ...T }} }} }} }} subscriptionType {{ fields {{ name type {{ ...T }} args {{ name type {{ ...T }} }} }} }} }} }} {TYPE_REF}"),
            json!({}),
        )
        .await;
    let mutations = schema["__schema"]["mutationType"]["fields"]
        .as_array()
        .unwrap()
        .clone();
    let subscriptions = schema["__schema"]["subscriptionType"]["fields"]
        .as_array()
        .unwrap()
        .clone();
    assert!(mutations.len() >= 30 && subscriptions.len() >= 4);
    let admin_only: BTreeSet<&str> = [
        "createBoardTemplate",
        "updateBoardTemplate",
        "deleteBoardTemplate",
        "createApiKey",
        "revokeApiKey",
    ]
    .into();
    let unowned: BTreeSet<&str> = ["createSession", "createJob"].into();

    let mut wrong = Vec::new();
    let mut check = |operation: &str, field: &str, who: &str, got: Option<String>, ok: bool| {
        if !ok {
            wrong.push(format!("{operation} {field} as {who}: {got:?}"));
        }
    };
    let auth_error =
        |got: &Option<String>| matches!(got.as_deref(), Some("UNAUTHENTICATED" | "FORBIDDEN"));
    for (operation, fields) in [("mutation", &mutations), ("subscription", &subscriptions)] {
        for field in fields {
            let name = field["name"].as_str().unwrap();
            server.act_as(None);
            let got = call(&server, operation, field, &owned).await;
            let ok = got.as_deref() == Some("UNAUTHENTICATED");
            check(operation, name, "nobody", got, ok);

            server.act_as(Some(&bob));
            let got = call(&server, operation, field, &owned).await;
            let ok = if admin_only.contains(name) {
                got.as_deref() == Some("FORBIDDEN")
            } else if unowned.contains(name) {
                !auth_error(&got) && got.as_deref() != Some("NOT_FOUND")
            } else {
                got.as_deref() == Some("NOT_FOUND")
            };
            check(operation, name, "another operator", got, ok);

            if operation == "mutation" {
                server.act_as(Some(&vic));
                let got = call(&server, operation, field, &owned).await;
                let ok = got.as_deref() == Some("FORBIDDEN");
                check(operation, name, "a viewer", got, ok);

                server.act_as(Some(&root));
                let got = call(&server, operation, field, &missing).await;
                let ok = !auth_error(&got);
                check(operation, name, "an admin", got, ok);
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "unexpected answers:\n{}",
        wrong.join("\n")
    );

    // Ann's own things are hers to drive.
    server.act_as(Some(&ann));
    let state = server.session(&session).await["state"].clone();
    assert_eq!(state, "PAUSED");
    server.terminate().await;
}

/// Sends one DAP request over `socket`; the first message that comes back, or `None`
/// when the other side closed first.
async fn dap_round_trip(socket: &mut tokio::net::TcpStream, request: Value) -> Option<Value> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = request.to_string();
    let framed = format!("Content-Length: {}\r\n\r\n{body}", body.len());
    socket.write_all(framed.as_bytes()).await.ok()?;
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&received).into_owned();
        if let Some((head, rest)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))?
                .trim()
                .parse()
                .ok()?;
            if rest.len() >= length {
                return serde_json::from_str(&rest[..length]).ok();
            }
        }
        let read =
            tokio::time::timeout(std::time::Duration::from_secs(30), socket.read(&mut buffer))
                .await
                .ok()?
                .ok()?;
        if read == 0 {
            return None;
        }
        received.extend_from_slice(&buffer[..read]);
    }
}

/// Under `--auth required` a session's GDB and DAP endpoints refuse plain connections
/// before any byte reaches the stub; `createAttachTicket` (which checks the key) gives
/// one-time addresses for both, and the server's own GDBs (symbolic API) still work.
#[tokio::test]
async fn under_auth_gdb_and_dap_attach_only_through_a_ticket() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ann = common::create_key(&data, "ann", "operator");
    let server = Server::start(&data, &["--auth", "required"]).await;
    server.act_as(Some(&ann));
    let session = server.create_session("mps2-an385").await;
    server.upload(&session, "ticker-mps2-an385.elf").await;
    server.power(&session, "ON", false).await;
    server.wait_uart(&session, "tick 1\n").await;
    let plain = server.gdb_address(&session).await;

    // A register comes from the target only (a variable would come from the ELF).
    let reached = |output: &std::process::Output| {
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .any(|line| line.starts_with("pc "))
    };
    let refused = common::gdb_batch("ticker-mps2-an385.elf", &plain, &["info registers pc"]).await;
    assert!(
        !reached(&refused),
        "a plain connection reached the stub: {refused:?}"
    );
    let status = server
        .query(
            "mutation($s: ID!) { haltSession(sessionId: $s) { pc } }",
            json!({ "s": session }),
        )
        .await;
    assert!(status["haltSession"]["pc"].is_string(), "{status}");

    let ticket = server
        .query(
            "mutation($s: ID!) { createAttachTicket(sessionId: $s) { address dapAddress } }",
            json!({ "s": session }),
        )
        .await["createAttachTicket"]
        .clone();
    let through = common::gdb_batch(
        "ticker-mps2-an385.elf",
        ticket["address"].as_str().unwrap(),
        &["info registers pc", "monitor virserver status"],
    )
    .await;
    assert!(reached(&through), "{through:?}");
    // The ticket's user is the client's name in the gateway's status.
    let status = format!(
        "{}{}",
        String::from_utf8_lossy(&through.stdout),
        String::from_utf8_lossy(&through.stderr)
    );
    assert!(status.contains(" user ann "), "{status}");
    // ...and its operations are in the audit log under that user.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let log = server
            .query(
                "query($s: ID) { auditLog(sessionId: $s) { user operation arguments } }",
                json!({ "s": session }),
            )
            .await["auditLog"]
            .clone();
        let gdb: Vec<&str> = log
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["user"] == "ann")
            .filter_map(|e| e["operation"].as_str())
            .filter(|op| op.starts_with("gdb."))
            .collect();
        if gdb.contains(&"gdb.detach") {
            assert!(
                gdb.contains(&"gdb.attach") && gdb.contains(&"gdb.monitor"),
                "{log}"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no GDB operations in {log}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // The symbolic API's GDB is the server's own: it gets a ticket of its own.
    let frames = server
        .query(
            "query($s: ID!) { backtrace(sessionId: $s) { function } }",
            json!({ "s": session }),
        )
        .await;
    assert!(frames["backtrace"][0]["function"].is_string(), "{frames}");

    let initialize = json!({ "seq": 1, "type": "request", "command": "initialize",
                             "arguments": { "adapterID": "virserver" } });
    let dap = server
        .query(
            "query($id: ID!) { session(id: $id) { dapAddress } }",
            json!({ "id": session }),
        )
        .await["session"]["dapAddress"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut socket = tokio::net::TcpStream::connect(&dap).await.unwrap();
    assert_eq!(dap_round_trip(&mut socket, initialize.clone()).await, None);
    let mut socket = tokio::net::TcpStream::connect(ticket["dapAddress"].as_str().unwrap())
        .await
        .unwrap();
    let answer = dap_round_trip(&mut socket, initialize)
        .await
        .expect("a DAP answer");
    assert_eq!(answer["command"], "initialize", "{answer}");
    assert_eq!(answer["success"], true, "{answer}");
    server.terminate().await;
}

/// With auth off every entry is `local`; an operation whose entry cannot be written
/// fails (here the table is dropped behind the server's back).
#[tokio::test]
async fn an_operation_that_cannot_be_audited_fails() {
    use sea_orm::ConnectionTrait;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &[]).await;
    let session = server.create_session("mps2-an385").await;
    let log = server
        .query("{ auditLog { user operation outcome } }", json!({}))
        .await;
    assert_eq!(
        log["auditLog"],
        json!([{ "user": "local", "operation": "createSession", "outcome": "ok" }])
    );
    let url = format!("sqlite://{}?mode=rw", data.join("virserver.db").display());
    let db = sea_orm::Database::connect(url).await.unwrap();
    db.execute_unprepared("DROP TABLE audit_log").await.unwrap();
    db.close().await.unwrap();
    let response = server
        .request(
            "mutation($id: ID!) { deleteSession(id: $id) }",
            json!({ "id": session }),
        )
        .await;
    assert_eq!(code(&response), Some("INTERNAL"), "{response}");
    assert!(response.to_string().contains("audit log"), "{response}");
    server.terminate().await;
}

/// `virserver ide-config` under auth: without a key it is refused; with one
/// (VIRSERVER_TOKEN) a .gdbinit names a one-time ticket a real gdb attaches through,
/// where the session's own address would refuse it.
#[tokio::test]
async fn ide_config_with_a_key_names_a_ticket_gdb_can_use() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ann = common::create_key(&data, "ann", "operator");
    let server = Server::start(&data, &["--auth", "required"]).await;
    server.act_as(Some(&ann));
    let session = server.create_session("mps2-an385").await;
    server.upload(&session, "ticker-mps2-an385.elf").await;
    server.power(&session, "ON", false).await;
    server.wait_uart(&session, "tick 1\n").await;
    let plain = server.gdb_address(&session).await;
    let ide_config = |token: Option<&str>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_virserver"));
        command
            .args([
                "ide-config",
                "--server",
                &server.base,
                "--session",
                &session,
            ])
            .args(["--kind", "gdb"])
            .env_remove("VIRSERVER_TOKEN")
            .current_dir(std::env::temp_dir());
        if let Some(token) = token {
            command.env("VIRSERVER_TOKEN", token);
        }
        command.output().unwrap()
    };
    let refused = ide_config(None);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("API key"),
        "{refused:?}"
    );
    let output = ide_config(Some(&ann));
    assert!(output.status.success(), "{output:?}");
    let gdbinit = String::from_utf8_lossy(&output.stdout);
    let address = gdbinit
        .lines()
        .find_map(|line| line.strip_prefix("target extended-remote "))
        .unwrap_or_else(|| panic!("{gdbinit}"));
    assert_ne!(address, plain);
    assert!(String::from_utf8_lossy(&output.stderr).contains("one-time ticket"));
    let through = common::gdb_batch("ticker-mps2-an385.elf", address, &["info registers pc"]).await;
    assert!(
        String::from_utf8_lossy(&through.stdout)
            .lines()
            .any(|line| line.starts_with("pc ")),
        "{through:?}"
    );
}
