//! Jobs with the embedded queue: verdicts by exit code, console rules and time-outs,
//! cancellation, artifacts, limits, and a restart that loses no queued job.

mod common;

use common::Server;
use serde_json::{Value, json};

use std::time::Duration;

async fn job_id(server: &Server, firmware: &str, input: Value) -> String {
    let response = server.create_job(firmware, input).await;
    assert!(response.get("errors").is_none(), "{response}");
    response["data"]["createJob"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

const CREATE: &str = "mutation($i: CreateJobInput!) { createJob(input: $i) { id state } }";

#[tokio::test]
async fn a_passing_job_streams_progress_and_keeps_its_artifacts() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--node-name", "node-a"]).await;
    let id = job_id(
        &server,
        "hello-mps2-an385.elf",
        json!({ "name": "hello", "boardTemplate": "mps2-an385", "expectUart": ["Hello from", "counting: 1 2 3"], "expectExitCode": 0, "coverage": true }),
    )
    .await;
    let mut events = server
        .subscribe(
            "subscription($j: ID!) { jobEvents(jobId: $j) { state progress node } }",
            json!({ "j": id }),
        )
        .await;
    let mut states = Vec::new();
    while let Some(event) = events.next().await {
        let state = event["jobEvents"]["state"].as_str().unwrap().to_owned();
        states.push(state.clone());
        if state == "PASSED" {
            break;
        }
    }
    assert_eq!(
        states.last().map(String::as_str),
        Some("PASSED"),
        "{states:?}"
    );
    let job = server.wait_job(&id, &["PASSED"]).await;
    assert_eq!(job["exitCode"], 0);
    let collector = server
        .query(
            "query($j: ID!) { job(id: $j) { coverageCollector } }",
            json!({ "j": id }),
        )
        .await;
    assert_eq!(collector["job"]["coverageCollector"], "IN_ASM");
    assert_eq!(job["node"], "node-a");
    assert_eq!(job["attempt"], 1);
    assert!(job["uartLog"].as_str().unwrap().contains("counting: 1 2 3"));
    assert!(job["junit"].as_str().unwrap().contains("<testsuite"));
    assert!(job["lcov"].as_str().unwrap().contains("SF:"), "{job}");
    let session = job["session"]["id"].as_str().unwrap();
    let coverage = server
        .query(
            "query($j: ID!) { coverage(jobId: $j) { linesHit } }",
            json!({ "j": id }),
        )
        .await;
    assert!(
        coverage["coverage"]["linesHit"].as_i64().unwrap() > 0,
        "{session}"
    );
}

#[tokio::test]
async fn failures_time_outs_and_cancellation_have_their_states_and_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--max-concurrent-jobs", "3"]).await;
    let exit3 = job_id(
        &server,
        "exit3-mps2-an385.elf",
        json!({ "name": "exit", "boardTemplate": "mps2-an385" }),
    )
    .await;
    let forbidden = job_id(
        &server,
        "hello-mps2-an385.elf",
        json!({ "name": "forbid", "boardTemplate": "mps2-an385", "forbidUart": ["count\\w+"] }),
    )
    .await;
    let slow = job_id(
        &server,
        "ticker-mps2-an385.elf",
        json!({ "name": "slow", "boardTemplate": "mps2-an385", "timeoutSeconds": 1 }),
    )
    .await;
    let job = server.wait_job(&exit3, &["FAILED"]).await;
    assert_eq!(job["exitCode"], 3);
    assert!(
        job["failureReason"]
            .as_str()
            .unwrap()
            .contains("exit code 3"),
        "{job}"
    );
    let job = server.wait_job(&forbidden, &["FAILED"]).await;
    assert!(
        job["failureReason"].as_str().unwrap().contains("forbidden"),
        "{job}"
    );
    let job = server.wait_job(&slow, &["TIMED_OUT"]).await;
    assert!(
        job["junit"].as_str().unwrap().contains("failures=\"1\""),
        "{job}"
    );

    let endless = job_id(
        &server,
        "ticker-mps2-an385.elf",
        json!({ "name": "endless", "boardTemplate": "mps2-an385", "timeoutSeconds": 600 }),
    )
    .await;
    server.wait_job(&endless, &["RUNNING"]).await;
    let cancelled = server
        .query(
            "mutation($j: ID!) { cancelJob(id: $j) { state } }",
            json!({ "j": endless }),
        )
        .await;
    assert_eq!(cancelled["cancelJob"]["state"], "CANCELLED");
    let job = server.wait_job(&endless, &["CANCELLED"]).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut job = job;
    while job["uartLog"].is_null() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a cancelled job keeps its console: {job}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        job = server.query(common::JOB, json!({ "id": endless })).await["job"].clone();
    }
    let session = job["session"]["id"].as_str().unwrap().to_owned();
    // The job's emulator stops.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while server.session(&session).await["state"] == "RUNNING" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "cancelled job still running"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let again = "mutation($j: ID!) { cancelJob(id: $j) { state } }";
    assert_eq!(
        server.error_code(again, json!({ "j": endless })).await,
        "INVALID_STATE"
    );
    let page = server
        .query(
            "{ jobs(state: FAILED, first: 1) { nodes { id } hasNextPage endCursor } }",
            json!({}),
        )
        .await;
    assert_eq!(page["jobs"]["nodes"].as_array().unwrap().len(), 1);
    assert_eq!(page["jobs"]["hasNextPage"], true);
    let next = server
        .query(
            "query($a: ID) { jobs(state: FAILED, first: 5, after: $a) { nodes { id } hasNextPage } }",
            json!({ "a": page["jobs"]["endCursor"] }),
        )
        .await;
    assert_eq!(next["jobs"]["nodes"].as_array().unwrap().len(), 1);
    assert_eq!(next["jobs"]["hasNextPage"], false);
}

#[tokio::test]
async fn bad_jobs_are_refused_with_codes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &["--max-queued-jobs", "1", "--max-concurrent-jobs", "1"],
    )
    .await;
    let code = |response: Value| {
        response["errors"][0]["extensions"]["code"]
            .as_str()
            .unwrap_or("none")
            .to_owned()
    };
    let base = json!({ "name": "x", "boardTemplate": "mps2-an385" });
    let mut bad_regex = base.clone();
    bad_regex["expectUart"] = json!(["("]);
    assert_eq!(
        code(server.create_job("hello-mps2-an385.elf", bad_regex).await),
        "BAD_INPUT"
    );
    assert_eq!(
        code(
            server
                .create_job("hello-riscv32-virt.elf", base.clone())
                .await
        ),
        "ARCH_MISMATCH"
    );
    let mut unknown = base.clone();
    unknown["boardTemplate"] = json!("nope");
    assert_eq!(
        code(server.create_job("hello-mps2-an385.elf", unknown).await),
        "NOT_FOUND"
    );
    let mut zero = base.clone();
    zero["timeoutSeconds"] = json!(0);
    assert_eq!(
        code(server.create_job("hello-mps2-an385.elf", zero).await),
        "BAD_INPUT"
    );
    let no_program = server.request(CREATE, json!({ "i": base })).await;
    assert_eq!(code(no_program), "BAD_INPUT");

    let mut long = base.clone();
    long["timeoutSeconds"] = json!(600);
    let first = job_id(&server, "ticker-mps2-an385.elf", long.clone()).await;
    assert_eq!(
        code(server.create_job("ticker-mps2-an385.elf", long).await),
        "QUEUE_FULL"
    );
    server
        .query(
            "mutation($j: ID!) { cancelJob(id: $j) { state } }",
            json!({ "j": first }),
        )
        .await;
}

#[tokio::test]
async fn the_embedded_queue_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &["--max-concurrent-jobs", "1"]).await;
    let running = job_id(
        &server,
        "ticker-mps2-an385.elf",
        json!({ "name": "long", "boardTemplate": "mps2-an385", "expectUart": ["tick 15\n"] }),
    )
    .await;
    let queued = job_id(
        &server,
        "hello-mps2-an385.elf",
        json!({ "name": "next", "boardTemplate": "mps2-an385" }),
    )
    .await;
    server.wait_job(&running, &["RUNNING"]).await;
    assert_eq!(
        server.query(common::JOB, json!({ "id": queued })).await["job"]["state"],
        "QUEUED"
    );
    assert_eq!(server.terminate().await, Some(0));

    let server = Server::start(&data, &["--max-concurrent-jobs", "1"]).await;
    let first = server.wait_job(&running, &["PASSED"]).await;
    assert_eq!(
        first["attempt"], 2,
        "the interrupted job ran again: {first}"
    );
    let second = server.wait_job(&queued, &["PASSED"]).await;
    assert_eq!(second["attempt"], 1);
}
