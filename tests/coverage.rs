//! Coverage end to end: a session with coverage on runs the example firmware under real
//! QEMU; the report maps its trace to source lines; the real `lcov` and `genhtml` accept
//! the LCOV. The offline CLI does the same on a saved trace.

mod common;

use common::Server;
use serde_json::json;

const REPORT: &str = "query($s: ID!, $x: [String!]) { coverage(sessionId: $s, exclude: $x) { linesFound linesHit functionsFound functionsHit files { path linesHit lines { line hits } functions { name hits } } lcov cobertura } }";

#[tokio::test]
async fn a_session_with_coverage_reports_executed_lines_as_valid_lcov() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]).await;
    let data = server
        .query(
            "mutation { createSession(input: {name: \"cov\", backend: QEMU, boardTemplate: \"mps2-an385\", coverage: true}) { id coverage } }",
            json!({}),
        )
        .await;
    let session = data["createSession"]["id"].as_str().unwrap().to_owned();
    assert_eq!(data["createSession"]["coverage"], true);
    assert_eq!(
        server.error_code(REPORT, json!({ "s": session })).await,
        "NOT_FOUND",
        "no run yet"
    );

    server.upload(&session, "hello-mps2-an385.elf").await;
    server.power(&session, "ON", false).await;
    server.wait_state(&session, "EXITED").await;
    let report = server
        .query(REPORT, json!({ "s": session, "x": ["*/startup.c"] }))
        .await["coverage"]
        .clone();

    let files = report["files"].as_array().unwrap();
    assert!(
        files
            .iter()
            .all(|f| !f["path"].as_str().unwrap().ends_with("startup.c")),
        "excluded"
    );
    let hello = files
        .iter()
        .find(|f| f["path"].as_str().unwrap().ends_with("programs/hello.c"))
        .unwrap_or_else(|| panic!("no hello.c in {report}"));
    let hits = |line: i64| {
        hello["lines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["line"] == line)
            .map(|l| l["hits"].as_i64().unwrap())
    };
    for line in [16, 18, 19, 21, 26, 27, 28, 29] {
        assert_eq!(hits(line), Some(1), "hello.c:{line} ran: {hello}");
    }
    let count_to = hello["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "count_to");
    assert_eq!(count_to.unwrap()["hits"], 1);
    assert!(report["linesHit"].as_i64().unwrap() < report["linesFound"].as_i64().unwrap());
    assert!(report["cobertura"].as_str().unwrap().contains("<coverage"));

    let lcov = dir.path().join("session.info");
    std::fs::write(&lcov, report["lcov"].as_str().unwrap()).unwrap();
    check_with_lcov_tools(&lcov, dir.path());
}

#[tokio::test]
async fn the_hit_count_collector_counts_loop_iterations() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]).await;
    let capability = server
        .query(
            "{ capabilities { backend hitCounts hitCountsReason } }",
            json!({}),
        )
        .await;
    let qemu = capability["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["backend"] == "QEMU")
        .unwrap()
        .clone();
    assert_eq!(
        qemu["hitCounts"], true,
        "the plugin is built with the workspace: {qemu}"
    );
    let data = server
        .query(
            "mutation { createSession(input: {name: \"counts\", backend: QEMU, boardTemplate: \"mps2-an385\", coverage: true, coverageCollector: HIT_COUNTS}) { id coverageCollector } }",
            json!({}),
        )
        .await;
    assert_eq!(data["createSession"]["coverageCollector"], "HIT_COUNTS");
    let session = data["createSession"]["id"].as_str().unwrap().to_owned();
    server.upload(&session, "hello-mps2-an385.elf").await;
    server.power(&session, "ON", false).await;
    server.wait_state(&session, "EXITED").await;
    let report = server.query(REPORT, json!({ "s": session })).await["coverage"].clone();
    let hello = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"].as_str().unwrap().ends_with("programs/hello.c"))
        .unwrap()
        .clone();
    let hits = |line: i64| {
        hello["lines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["line"] == line)
            .map(|l| l["hits"].as_i64().unwrap())
    };
    // count_to(3): the loop body runs three times, the rest of main once.
    assert_eq!(hits(18), Some(3), "{hello}");
    assert_eq!(hits(27), Some(1), "{hello}");
}

#[tokio::test]
async fn coverage_needs_a_session_created_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]).await;
    let session = server.create_session("mps2-an385").await;
    assert_eq!(
        server.error_code(REPORT, json!({ "s": session })).await,
        "INVALID_STATE"
    );
    let neither = "{ coverage { linesFound } }";
    assert_eq!(server.error_code(neither, json!({})).await, "BAD_INPUT");
}

/// `lcov --summary` must accept the file, and `genhtml` must render it (sources are
/// found relative to the repository root, as the firmware's DWARF names them).
fn check_with_lcov_tools(lcov: &std::path::Path, scratch: &std::path::Path) {
    let summary = std::process::Command::new("lcov")
        .arg("--summary")
        .arg(lcov)
        .output()
        .expect("lcov must be installed (scripts/install-deps.sh)");
    let text = String::from_utf8_lossy(&summary.stdout).to_string()
        + &String::from_utf8_lossy(&summary.stderr);
    assert!(summary.status.success() && text.contains("lines"), "{text}");
    let html = scratch.join("html");
    let genhtml = std::process::Command::new("genhtml")
        .current_dir(common::repo())
        .arg("--output-directory")
        .arg(&html)
        .arg(lcov)
        .output()
        .expect("genhtml must be installed");
    assert!(
        genhtml.status.success(),
        "{}",
        String::from_utf8_lossy(&genhtml.stderr)
    );
    assert!(html.join("index.html").exists());
}

#[test]
fn the_cli_maps_a_saved_trace_and_merges_lcov_files() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = common::repo().join("crates/coverage/tests/fixtures/cortex-m3");
    let one = dir.path().join("one.info");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_virserver"))
        .args(["coverage", "--elf"])
        .arg(fixtures.join("fixture.elf"))
        .arg("--trace")
        .arg(fixtures.join("trace.log"))
        .arg("-o")
        .arg(&one)
        .status()
        .unwrap();
    assert!(status.success());
    let single = std::fs::read_to_string(&one).unwrap();
    assert!(
        single.contains("DA:") && single.contains("FNDA:"),
        "{single}"
    );

    let merged = std::process::Command::new(env!("CARGO_BIN_EXE_virserver"))
        .args(["coverage", "merge"])
        .arg(&one)
        .arg(&one)
        .output()
        .unwrap();
    assert!(merged.status.success());
    let merged = String::from_utf8(merged.stdout).unwrap();
    // Hits add up: a line hit once in each file is hit twice in the merge.
    assert!(
        single.contains(",1\n") && merged.contains(",2\n") && !merged.contains(",1\n"),
        "{merged}"
    );

    let missing = std::process::Command::new(env!("CARGO_BIN_EXE_virserver"))
        .args([
            "coverage",
            "--elf",
            "/no/such.elf",
            "--trace",
            "/no/such.log",
        ])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read /no/such.log"));
}
