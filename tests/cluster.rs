//! Several nodes sharing one PostgreSQL and one Redis: jobs are spread over the nodes,
//! each finishes exactly once, a node killed mid-job loses nothing, and a cancel sent
//! to one node stops the job on another. Each test uses its own PostgreSQL database and
//! its own Redis database number.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{PostgresDatabase, Server};
use serde_json::{Value, json};

/// Empties Redis database `n` and returns its URL.
fn redis_db(n: u32) -> String {
    let status = std::process::Command::new("redis-cli")
        .args(["-n", &n.to_string(), "flushdb"])
        .status()
        .expect("redis-cli must be installed, with Redis on 127.0.0.1:6379");
    assert!(status.success());
    format!("redis://127.0.0.1:6379/{n}")
}

async fn node(
    dir: &std::path::Path,
    name: &str,
    database: &str,
    redis: &str,
    extra: &[&str],
) -> Server {
    let mut args = vec![
        "--node-name",
        name,
        "--database",
        database,
        "--redis",
        redis,
    ];
    args.extend_from_slice(extra);
    Server::start(&dir.join(name), &args).await
}

#[tokio::test]
async fn two_nodes_share_twenty_jobs_each_finishing_once_and_cancel_crosses_nodes() {
    let database = PostgresDatabase::create().await;
    let redis = redis_db(11);
    let dir = tempfile::tempdir().unwrap();
    let a = node(
        dir.path(),
        "node-a",
        &database.url(),
        &redis,
        &["--max-concurrent-jobs", "2"],
    )
    .await;
    let b = node(
        dir.path(),
        "node-b",
        &database.url(),
        &redis,
        &["--max-concurrent-jobs", "2"],
    )
    .await;
    let mut ids = Vec::new();
    for i in 0..20 {
        let server = if i % 2 == 0 { &a } else { &b };
        let response = server.create_job(
            "hello-mps2-an385.elf",
            json!({ "name": format!("job-{i}"), "boardTemplate": "mps2-an385", "expectExitCode": 0 }),
        )
        .await;
        ids.push(
            response["data"]["createJob"]["id"]
                .as_str()
                .unwrap_or_else(|| panic!("{response}"))
                .to_owned(),
        );
    }
    let mut nodes = HashSet::new();
    for id in &ids {
        let job = a
            .wait_job(id, &["PASSED", "FAILED", "ERROR", "TIMED_OUT"])
            .await;
        assert_eq!(job["state"], "PASSED", "{job}");
        assert_eq!(job["attempt"], 1, "ran exactly once: {job}");
        nodes.insert(job["node"].as_str().unwrap().to_owned());
    }
    assert_eq!(nodes.len(), 2, "both nodes worked: {nodes:?}");

    // A job submitted through node A and cancelled through node B stops wherever it runs.
    let response = a
        .create_job(
            "ticker-mps2-an385.elf",
            json!({ "name": "endless", "boardTemplate": "mps2-an385", "timeoutSeconds": 600 }),
        )
        .await;
    let endless = response["data"]["createJob"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut events = a
        .subscribe(
            "subscription($j: ID!) { jobEvents(jobId: $j) { state node } }",
            json!({ "j": endless }),
        )
        .await;
    b.wait_job(&endless, &["RUNNING"]).await;
    let cancelled = b
        .query(
            "mutation($j: ID!) { cancelJob(id: $j) { state } }",
            json!({ "j": endless }),
        )
        .await;
    assert_eq!(cancelled["cancelJob"]["state"], "CANCELLED");
    let mut seen = Vec::new();
    while let Some(event) = events.next().await {
        let state = event["jobEvents"]["state"].as_str().unwrap().to_owned();
        seen.push(state.clone());
        if state == "CANCELLED" {
            break;
        }
    }
    assert!(
        seen.contains(&"CANCELLED".to_owned()),
        "node A's subscriber saw the cancel: {seen:?}"
    );
    let mut job = a.wait_job(&endless, &["CANCELLED"]).await;
    // The run links its session when it ends, which may be just after the cancel.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while job["session"].is_null() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no session on {job}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        job = a.query(common::JOB, json!({ "id": endless })).await["job"].clone();
    }
    let owner = if job["node"] == "node-a" { &a } else { &b };
    let session = job["session"]["id"].as_str().unwrap().to_owned();
    while owner.session(&session).await["state"] == "RUNNING" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the cancelled job's emulator still runs"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Session events cross nodes too: a session of node B watched from node A.
    let session = b.create_session("mps2-an385").await;
    b.upload(&session, "exit3-mps2-an385.elf").await;
    let mut events = a
        .subscribe(
            "subscription($s: ID!) { sessionEvents(sessionId: $s) { kind state exitCode } }",
            json!({ "s": session }),
        )
        .await;
    b.power(&session, "ON", false).await;
    let mut kinds = Vec::new();
    while let Some(event) = events.next().await {
        let event = event["sessionEvents"].clone();
        kinds.push(event["kind"].as_str().unwrap().to_owned());
        if event["kind"] == "EXITED" {
            assert_eq!(event["exitCode"], 3);
            break;
        }
    }
    assert_eq!(
        kinds,
        ["POWERED_ON", "EXITED"],
        "node A saw node B's session"
    );
    let code = a
        .error_code(
            "mutation($s: ID!) { powerSession(id: $s, action: OFF) { state } }",
            json!({ "s": session }),
        )
        .await;
    assert_eq!(code, "INVALID_STATE", "only the owning node runs a session");
    drop((a, b));
    database.drop_database().await;
}

/// Two nodes sharing the database and Redis db `redis`, with `extra` flags: one runs a
/// long job, then that node is killed (its QEMU dies with it). Returns the job as the
/// survivor ends it, and the survivor's name.
async fn kill_the_node_running_a_job(redis: u32, extra: &[&str]) -> (Value, &'static str) {
    let database = PostgresDatabase::create().await;
    let redis = redis_db(redis);
    let dir = tempfile::tempdir().unwrap();
    let mut flags = vec!["--max-concurrent-jobs", "1", "--job-reclaim-seconds", "2"];
    flags.extend_from_slice(extra);
    let a = node(dir.path(), "node-a", &database.url(), &redis, &flags).await;
    let b = node(dir.path(), "node-b", &database.url(), &redis, &flags).await;
    let response = b.create_job(
        "ticker-mps2-an385.elf",
        json!({ "name": "long", "boardTemplate": "mps2-an385", "expectUart": ["tick 20\n"], "timeoutSeconds": 60 }),
    )
    .await;
    let id = response["data"]["createJob"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let running = b.wait_job(&id, &["RUNNING"]).await;
    let (mut victim, survivor, survivor_name) = if running["node"] == "node-a" {
        (a, b, "node-b")
    } else {
        (b, a, "node-a")
    };
    victim.child.kill().await.unwrap();
    let job = survivor
        .wait_job(&id, &["PASSED", "FAILED", "ERROR", "TIMED_OUT"])
        .await;
    database.drop_database().await;
    (job, survivor_name)
}

#[tokio::test]
async fn a_node_killed_mid_job_loses_nothing() {
    // The other node takes the job over and runs it again.
    let (job, survivor) = kill_the_node_running_a_job(12, &[]).await;
    assert_eq!(job["state"], "PASSED", "{job}");
    assert_eq!(job["attempt"], 2, "run again after the kill: {job}");
    assert_eq!(job["node"], survivor);
}

/// A job whose node dies each time is not handed out forever: past
/// `--job-max-deliveries` it ends as ERROR, with the reason.
#[tokio::test]
async fn a_job_that_kills_its_nodes_is_given_up() {
    let (job, _) = kill_the_node_running_a_job(13, &["--job-max-deliveries", "1"]).await;
    assert_eq!(job["state"], "ERROR", "{job}");
    let reason = job["failureReason"].as_str().unwrap_or_default();
    assert!(reason.contains("given up"), "{job}");
}
