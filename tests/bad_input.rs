//! Every kind of bad input gets a typed error with a stable code: never a panic, a 500,
//! or a half-written record.

mod common;

use common::Server;
use serde_json::json;

async fn upload_code(server: &Server, session: &str, name: &str, bytes: Vec<u8>) -> String {
    let response = server.upload_bytes(session, name, bytes).await;
    response["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {response}"))
        .to_owned()
}

#[tokio::test]
async fn bad_programs_are_refused_with_their_codes_and_nothing_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--max-upload-bytes", "65536"]).await;
    let session = server.create_session("mps2-an385").await;

    assert_eq!(
        upload_code(&server, &session, "notes.txt", b"not an elf".to_vec()).await,
        "BAD_ELF"
    );
    let mut truncated = std::fs::read(common::firmware("hello-mps2-an385.elf")).unwrap();
    truncated.truncate(60);
    assert_eq!(
        upload_code(&server, &session, "cut.elf", truncated).await,
        "BAD_ELF"
    );
    let riscv = std::fs::read(common::firmware("hello-riscv32-virt.elf")).unwrap();
    assert_eq!(
        upload_code(&server, &session, "riscv.elf", riscv).await,
        "ARCH_MISMATCH"
    );
    assert_eq!(
        upload_code(&server, &session, "big.elf", vec![0x7f; 70_000]).await,
        "TOO_LARGE"
    );

    // A user board whose only memory is far from where the firmware lives.
    let definition = std::fs::read_to_string(common::repo().join("boards/mps2-an385.yaml"))
        .unwrap()
        .replace("id: mps2-an385", "id: tiny-m3")
        .replace(
            "start: 0x00000000, size: 0x00400000",
            "start: 0x10000000, size: 0x00001000",
        );
    server
        .query(
            "mutation($d: String!) { createBoardTemplate(definition: $d) { id } }",
            json!({ "d": definition }),
        )
        .await;
    let tiny = server.create_session("tiny-m3").await;
    let hello = std::fs::read(common::firmware("hello-mps2-an385.elf")).unwrap();
    assert_eq!(
        upload_code(&server, &tiny, "hello.elf", hello).await,
        "OUT_OF_MEMORY_MAP"
    );

    let details = server.session(&session).await;
    assert_eq!(
        details["programs"],
        json!([]),
        "refused uploads leave no record"
    );
    assert!(
        !server.data_dir.join("programs").exists()
            || std::fs::read_dir(server.data_dir.join("programs"))
                .unwrap()
                .count()
                == 0
    );
}

#[tokio::test]
async fn unknown_ids_missing_programs_and_wrong_states_have_codes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]).await;
    let create = "mutation($b: ID!, $k: Backend!) { createSession(input: {name: \"x\", backend: $k, boardTemplate: $b}) { id } }";
    assert_eq!(
        server
            .error_code(create, json!({ "b": "no-such-board", "k": "QEMU" }))
            .await,
        "NOT_FOUND"
    );
    assert_eq!(
        server
            .error_code(create, json!({ "b": "mps2-an385", "k": "RENODE" }))
            .await,
        "BACKEND_UNAVAILABLE"
    );
    let session_query = "query($s: ID!) { session(id: $s) { id } }";
    assert_eq!(
        server
            .error_code(
                session_query,
                json!({ "s": "00000000-0000-0000-0000-000000000000" })
            )
            .await,
        "NOT_FOUND"
    );
    let power =
        "mutation($s: ID!, $a: PowerAction!) { powerSession(id: $s, action: $a) { state } }";
    let session = server.create_session("mps2-an385").await;
    assert_eq!(
        server
            .error_code(power, json!({ "s": session, "a": "ON" }))
            .await,
        "NO_PROGRAM"
    );
    assert_eq!(
        server
            .error_code(power, json!({ "s": session, "a": "RESET" }))
            .await,
        "INVALID_STATE"
    );
    assert_eq!(
        server
            .error_code(
                "mutation($s: ID!) { sendUartInput(sessionId: $s, data: \"x\") }",
                json!({ "s": session })
            )
            .await,
        "INVALID_STATE"
    );
    assert_eq!(
        server
            .error_code(
                "mutation($s: ID!) { startProgram(sessionId: $s, programId: \"nope\") { id } }",
                json!({ "s": session })
            )
            .await,
        "NOT_FOUND"
    );
    let blank = "mutation { createSession(input: {name: \"  \", backend: QEMU, boardTemplate: \"mps2-an385\"}) { id } }";
    assert_eq!(server.error_code(blank, json!({})).await, "BAD_INPUT");
    assert_eq!(
        server
            .error_code(power, json!({ "s": session, "a": "SIDEWAYS" }))
            .await,
        "GRAPHQL_VALIDATION_FAILED"
    );
    // Powering off a session that is not powered is a no-op, not an error.
    assert_eq!(
        server.power(&session, "OFF", false).await["state"],
        "CREATED"
    );
}

#[tokio::test]
async fn graphql_nonsense_and_broken_requests_get_errors_not_crashes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]).await;
    let response = server.request("{ sessions { id ", json!({})).await;
    assert!(
        response["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("expected"),
        "{response}"
    );
    assert_eq!(
        response["errors"][0]["extensions"]["code"],
        "GRAPHQL_VALIDATION_FAILED"
    );
    let response = server.request("{ noSuchField }", json!({})).await;
    assert_eq!(
        response["errors"][0]["extensions"]["code"],
        "GRAPHQL_VALIDATION_FAILED"
    );

    let http = reqwest::Client::new();
    let url = format!("{}/graphql", server.base);
    let garbage = http
        .post(&url)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), 400);
    let body: serde_json::Value = garbage.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_REQUEST");

    // A body over the limit is refused from its Content-Length, before it is read: the
    // client here sends only the headers and reads the answer.
    let response = raw_http(
        &server.base,
        "POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 41943040\r\n\r\n",
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(response.contains("\"code\":\"TOO_LARGE\""), "{response}");

    let health = http
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.text().await.unwrap(), "ok");
    // Still serving after all that.
    server.query("{ sessions { id } }", json!({})).await;
}

/// Sends raw bytes and returns what the server answers before closing or going quiet.
async fn raw_http(base: &str, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    while let Ok(Ok(n)) =
        tokio::time::timeout(std::time::Duration::from_secs(2), stream.read(&mut buffer)).await
    {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buffer[..n]);
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn errors_over_websocket_have_codes_too() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]).await;
    for (query, code) in [
        ("subscription { noSuchField }", "GRAPHQL_VALIDATION_FAILED"),
        (
            "subscription { uartOutput(sessionId: \"nope\") { seq } }",
            "NOT_FOUND",
        ),
    ] {
        let mut subscription = server.subscribe(query, json!({})).await;
        let message = subscription.next_message().await.expect("an answer");
        let errors = match message["type"].as_str() {
            Some("error") => &message["payload"],
            _ => &message["payload"]["errors"],
        };
        assert_eq!(errors[0]["extensions"]["code"], code, "{query}: {message}");
    }
}
