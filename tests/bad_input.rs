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
        "POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 41943040\r\n\r\n",
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

/// hello-mps2-an385.elf (ELF32, little endian) with `edit` applied to its bytes.
fn edited_hello(edit: impl Fn(&mut Vec<u8>)) -> Vec<u8> {
    let mut elf = std::fs::read(common::firmware("hello-mps2-an385.elf")).unwrap();
    edit(&mut elf);
    elf
}

fn put_u16(elf: &mut [u8], at: usize, value: u16) {
    elf[at..at + 2].copy_from_slice(&value.to_le_bytes());
}

/// createJob with `bytes` uploaded as a file called `name`; returns the response.
async fn job_upload(server: &Server, name: &str, bytes: Vec<u8>) -> serde_json::Value {
    let operations = json!({
        "query": "mutation($i: CreateJobInput!) { createJob(input: $i) { id programName } }",
        "variables": { "i": { "name": "hostile", "boardTemplate": "mps2-an385", "program": null } },
    });
    server
        .multipart(operations, "variables.i.program", name, bytes)
        .await
}

#[tokio::test]
async fn hostile_elfs_are_refused_by_uploads_and_jobs_and_their_names_stay_names() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]).await;
    let session = server.create_session("mps2-an385").await;
    let cases = [
        // e_shnum and e_phnum of the header.
        (
            edited_hello(|e| put_u16(e, 0x30, 5000)),
            "the ELF has 5000 sections; at most 4096 are accepted",
        ),
        (
            edited_hello(|e| put_u16(e, 0x2c, 65)),
            "the ELF has 65 program headers; at most 64 are accepted",
        ),
        // Extended numbering: e_shnum 0, the count in section 0's sh_size.
        (
            edited_hello(|e| {
                put_u16(e, 0x30, 0);
                let section_0 = u32::from_le_bytes(e[0x20..0x24].try_into().unwrap()) as usize;
                e[section_0 + 20..section_0 + 24].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
            }),
            "the ELF has 2147483647 sections",
        ),
        // A header cut short after its identification bytes.
        (edited_hello(|e| e.truncate(40)), "malformed ELF"),
    ];
    for (bytes, message) in cases {
        for response in [
            server
                .upload_bytes(&session, "hostile.elf", bytes.clone())
                .await,
            job_upload(&server, "hostile.elf", bytes).await,
        ] {
            let error = &response["errors"][0];
            assert_eq!(error["extensions"]["code"], "BAD_ELF", "{response}");
            assert!(
                error["message"].as_str().unwrap().contains(message),
                "{message}: {response}"
            );
        }
    }

    // The name the client sends is a display name only: one component, no control
    // characters, at most 200 characters; the file is stored by its SHA-256.
    let hello = std::fs::read(common::firmware("hello-mps2-an385.elf")).unwrap();
    let sneaky = "../../../tmp/virserver-escape-name\u{202e}fle.elf";
    let uploaded = server.upload_bytes(&session, sneaky, hello.clone()).await;
    let program = &uploaded["data"]["uploadProgram"];
    assert_eq!(
        program["name"], "virserver-escape-namefle.elf",
        "{uploaded}"
    );
    let queued = job_upload(&server, sneaky, hello.clone()).await;
    assert_eq!(
        queued["data"]["createJob"]["programName"], "virserver-escape-namefle.elf",
        "{queued}"
    );
    let long = job_upload(&server, &"x".repeat(5000), hello).await;
    assert_eq!(
        long["data"]["createJob"]["programName"],
        "x".repeat(200),
        "{long}"
    );
    let stored: Vec<String> = std::fs::read_dir(server.data_dir.join("programs"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        stored,
        [format!("{}.elf", program["sha256"].as_str().unwrap())]
    );
    assert!(!std::path::Path::new("/tmp").join(&sneaky[13..]).exists());
}

#[tokio::test]
async fn ids_that_look_like_paths_are_unknown_ids_and_touch_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]).await;
    // Where "../../victim" from the data dir's run/ folder would lead.
    let victim = dir.path().join("victim");
    std::fs::create_dir(&victim).unwrap();
    std::fs::write(victim.join("keep"), "x").unwrap();
    let operations = [
        "query($id: ID!) { session(id: $id) { id } }",
        "mutation($id: ID!) { deleteSession(id: $id) }",
        "mutation($id: ID!) { powerSession(id: $id, action: ON) { id } }",
        "query($id: ID!) { coverage(sessionId: $id) { linesFound } }",
        "query($id: ID!) { job(id: $id) { id } }",
        "query($id: ID!) { boardTemplate(id: $id) { id } }",
        "mutation($id: ID!) { deleteBoardTemplate(id: $id) }",
    ];
    for id in ["../../victim", "/etc", "..", "run/../../victim", "x\0y"] {
        for query in operations {
            assert_eq!(
                server.error_code(query, json!({ "id": id })).await,
                "NOT_FOUND",
                "{query} with {id:?}"
            );
        }
    }
    assert!(victim.join("keep").exists());
}

/// PostgreSQL refuses a NUL byte in a text parameter: a job id holding one must be an
/// unknown job (NOT_FOUND), not a database error (INTERNAL).
#[tokio::test]
async fn job_ids_with_a_nul_byte_are_unknown_on_postgresql() {
    let database = common::PostgresDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--database", &database.url()]).await;
    for query in [
        "query($id: ID!) { job(id: $id) { id } }",
        "mutation($id: ID!) { cancelJob(id: $id) { id } }",
        "query($id: ID!) { coverage(jobId: $id) { linesFound } }",
    ] {
        assert_eq!(
            server.error_code(query, json!({ "id": "x\0y" })).await,
            "NOT_FOUND",
            "{query}"
        );
    }
    let page = server
        .query(
            "query($after: ID!) { jobs(after: $after) { nodes { id } } }",
            json!({ "after": "x\0y" }),
        )
        .await;
    assert_eq!(page["jobs"]["nodes"], json!([]));
    drop(server);
    database.drop_database().await;
}
