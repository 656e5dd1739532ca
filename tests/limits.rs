//! Limits, with the real server: per-user quotas on sessions, powered sessions and
//! queued jobs (real QEMU), the schema's depth limit and the per-user rate limit, each refusal
//! coded LIMIT_EXCEEDED while the server stays healthy.

mod common;

use common::Server;
use serde_json::json;

const CREATE: &str = "mutation { createSession(input: {name: \"q\", backend: QEMU, boardTemplate: \"mps2-an385\"}) { id } }";
const POWER: &str =
    "mutation($id: ID!, $a: PowerAction!) { powerSession(id: $id, action: $a) { state } }";

#[tokio::test]
async fn quotas_keep_one_user_from_taking_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ann = common::create_key(&data, "ann", "operator");
    let bob = common::create_key(&data, "bob", "operator");
    let server = Server::start(
        &data,
        &[
            "--auth",
            "required",
            "--max-sessions-per-user",
            "2",
            "--max-powered-sessions",
            "1",
        ],
    )
    .await;
    server.act_as(Some(&ann));
    let first = server.create_session("mps2-an385").await;
    let second = server.create_session("mps2-an385").await;
    let refused = server.request(CREATE, json!({})).await;
    assert_eq!(
        refused["errors"][0]["extensions"]["code"], "LIMIT_EXCEEDED",
        "{refused}"
    );
    assert!(refused.to_string().contains("--max-sessions-per-user"));
    server.act_as(Some(&bob));
    server.create_session("mps2-an385").await;

    server.act_as(Some(&ann));
    for session in [&first, &second] {
        server.upload(session, "ticker-mps2-an385.elf").await;
    }
    server.power(&first, "ON", false).await;
    let refused = server
        .request(POWER, json!({ "id": second, "a": "ON" }))
        .await;
    assert_eq!(
        refused["errors"][0]["extensions"]["code"], "LIMIT_EXCEEDED",
        "{refused}"
    );
    assert_eq!(server.session(&second).await["state"], "CREATED");
    // Resetting the powered one is no new emulator; powering it off frees the slot.
    server.power(&first, "RESET", false).await;
    server.power(&first, "OFF", false).await;
    server.power(&second, "ON", false).await;
    server.wait_uart(&second, "tick 1\n").await;
    server.terminate().await;
}

#[tokio::test]
async fn depth_and_rate_limits_are_coded_and_the_server_stays_healthy() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--rate-limit", "5"]).await;
    let mut deep = String::from("{ __schema { queryType { fields { type ");
    for _ in 0..16 {
        deep.push_str("{ ofType ");
    }
    deep.push_str("{ name }");
    for _ in 0..16 {
        deep.push_str(" }");
    }
    deep.push_str(" } } } }");
    assert_eq!(server.error_code(&deep, json!({})).await, "LIMIT_EXCEEDED");

    let http = reqwest::Client::new();
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let response = http
            .post(format!("{}/graphql", server.base))
            .json(&json!({ "query": "{ sessions { id } }" }))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap();
        if status == 429 {
            assert_eq!(body["errors"][0]["extensions"]["code"], "LIMIT_EXCEEDED");
        }
        statuses.push(status);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    // A burst of 5, less the deep query's token, plus what refills meanwhile.
    let passed = statuses.iter().filter(|s| **s == 200).count();
    assert!((4..=6).contains(&passed), "{statuses:?}");
    let health = http
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    assert_eq!(
        server.query("{ sessions { id } }", json!({})).await["sessions"],
        json!([])
    );
    server.terminate().await;
}

#[tokio::test]
async fn a_user_may_queue_only_so_many_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ann = common::create_key(&data, "ann", "operator");
    let bob = common::create_key(&data, "bob", "operator");
    let server = Server::start(
        &data,
        &["--auth", "required", "--max-queued-jobs-per-user", "1"],
    )
    .await;
    let waiting = json!({ "name": "w", "boardTemplate": "mps2-an385", "timeoutSeconds": 60, "expectUart": ["never printed"] });
    server.act_as(Some(&ann));
    let first = server
        .create_job("ticker-mps2-an385.elf", waiting.clone())
        .await;
    let first = first["data"]["createJob"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{first}"))
        .to_owned();
    let refused = server
        .create_job("ticker-mps2-an385.elf", waiting.clone())
        .await;
    assert_eq!(
        refused["errors"][0]["extensions"]["code"], "LIMIT_EXCEEDED",
        "{refused}"
    );
    assert!(refused.to_string().contains("--max-queued-jobs-per-user"));
    // Another user has a quota of their own.
    server.act_as(Some(&bob));
    let other = server
        .create_job(
            "hello-mps2-an385.elf",
            json!({ "name": "h", "boardTemplate": "mps2-an385" }),
        )
        .await;
    assert!(other.get("errors").is_none(), "{other}");
    // Once ann's job ends, she may queue again.
    server.act_as(Some(&ann));
    server
        .query(
            "mutation($id: ID!) { cancelJob(id: $id) { state } }",
            json!({ "id": first }),
        )
        .await;
    server.wait_job(&first, &["CANCELLED"]).await;
    let again = server.create_job("ticker-mps2-an385.elf", waiting).await;
    assert!(again.get("errors").is_none(), "{again}");
}
