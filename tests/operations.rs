//! Running a shared server: HTTPS and WSS with a real certificate chain (made by
//! openssl, used by curl, Python's `websockets` and `virserver submit`), `/metrics`
//! read by the reference OpenMetrics parser (Python `prometheus_client`), browser
//! origins (and DNS-rebound names) refused or allowed, and request ids from the
//! response to the log.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::{Server, create_key, firmware, repo};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

/// The Python of the tests' tools (scripts/install-deps.sh puts the parsers there).
fn python() -> PathBuf {
    let python = repo().join("target/tools/gdb-venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/install-deps.sh",
        python.display()
    );
    python
}

async fn run_python(script: &str, args: &[&str], stdin: &str) -> String {
    let mut child = tokio::process::Command::new(python())
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    let output = child.wait_with_output().await.unwrap();
    assert!(
        output.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// A CA and a certificate it signed for 127.0.0.1 and localhost: (ca, cert, key).
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let output = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(output.status.success(), "openssl {args:?}: {output:?}");
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=virserver test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

fn curl(args: &[&str]) -> std::process::Output {
    std::process::Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .args(args)
        .output()
        .expect("curl")
}

/// `virserver serve` with `args` that must refuse to start; its stderr.
fn serve_refuses(args: &[&str]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_virserver"))
        .arg("serve")
        .args(args)
        .output()
        .unwrap();
    assert!(!output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

const WSS_CLIENT: &str = r#"
import json, ssl, sys
from websockets.sync.client import connect
url, ca = sys.argv[1], sys.argv[2]
context = ssl.create_default_context(cafile=ca)
with connect(url, ssl=context, subprotocols=["graphql-transport-ws"]) as socket:
    socket.send(json.dumps({"type": "connection_init"}))
    print(socket.recv(timeout=20))
    query = 'subscription { sessionEvents(sessionId: "missing") { state } }'
    socket.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
    print(socket.recv(timeout=20))
"#;

#[tokio::test]
async fn https_and_wss_serve_real_clients_with_a_real_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates(dir.path());
    let (cert, key, ca) = (
        cert.to_str().unwrap().to_owned(),
        key.to_str().unwrap().to_owned(),
        ca.to_str().unwrap().to_owned(),
    );
    let data = dir.path().join("data");
    let server = Server::start(&data, &["--tls-cert", &cert, "--tls-key", &key]).await;
    let base = server.base.clone();
    assert!(base.starts_with("https://127.0.0.1:"), "{base}");

    // Clients that open a connection and never say hello hold up nobody.
    let address = base.trim_start_matches("https://").to_owned();
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(tokio::net::TcpStream::connect(&address).await.unwrap());
    }

    let health = curl(&["--cacert", &ca, &format!("{base}/healthz")]);
    assert_eq!(String::from_utf8_lossy(&health.stdout), "ok", "{health:?}");
    let boards = curl(&[
        "--cacert",
        &ca,
        "-H",
        "content-type: application/json",
        "-d",
        r#"{"query":"{ boardTemplates { id } }"}"#,
        &format!("{base}/graphql"),
    ]);
    let boards: Value = serde_json::from_slice(&boards.stdout).unwrap();
    assert!(boards.to_string().contains("mps2-an385"), "{boards}");

    // Untrusted without the CA; plain HTTP on the TLS port is no answer.
    let untrusted = curl(&[&format!("{base}/healthz")]);
    assert_eq!(untrusted.status.code(), Some(60), "{untrusted:?}");
    let plain = curl(&[&format!("http://{address}/healthz")]);
    assert!(!plain.status.success(), "{plain:?}");
    assert_ne!(String::from_utf8_lossy(&plain.stdout), "ok");

    // WSS with an independent client: the handshake, then a coded error with its id.
    let wss = format!("{}/graphql", base.replace("https://", "wss://"));
    let messages = run_python(WSS_CLIENT, &[&wss, &ca], "").await;
    let mut messages = messages
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap());
    assert_eq!(messages.next().unwrap()["type"], "connection_ack");
    let error = messages.next().unwrap();
    let error = error["payload"]
        .get(0)
        .or(error["payload"]["errors"].get(0))
        .cloned();
    let error = error.unwrap_or_else(|| panic!("no error"));
    assert_eq!(error["extensions"]["code"], "NOT_FOUND", "{error}");
    assert_eq!(
        error["extensions"]["requestId"].as_str().unwrap().len(),
        32,
        "{error}"
    );

    // virserver's own client, trusting the CA the way OpenSSL-style tools do.
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_virserver"))
        .arg("submit")
        .arg(firmware("hello-mps2-an385.elf"))
        .args([
            "--server",
            &base,
            "--board",
            "mps2-an385",
            "--expect",
            "counting: 1 2 3",
        ])
        .env("SSL_CERT_FILE", &ca)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("PASSED"), "{stderr}");
    drop(idle);
    server.terminate().await;

    // Files that cannot serve TLS stop the server before it listens, naming them.
    let data = data.to_str().unwrap();
    let missing = serve_refuses(&[
        "--data-dir",
        data,
        "--tls-cert",
        "/nonexistent.pem",
        "--tls-key",
        &key,
    ]);
    assert!(missing.contains("/nonexistent.pem"), "{missing}");
    let swapped = serve_refuses(&["--data-dir", data, "--tls-cert", &key, "--tls-key", &cert]);
    assert!(swapped.contains("no PEM certificate"), "{swapped}");
    let half = serve_refuses(&["--data-dir", data, "--tls-cert", &cert]);
    assert!(
        half.contains("--tls-cert and --tls-key go together"),
        "{half}"
    );
}

const PARSE_METRICS: &str = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
samples = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for sample in family.samples:
        samples.append({"name": sample.name, "labels": sample.labels, "value": sample.value})
print(json.dumps(samples))
"#;

/// Every sample of a scrape, through the reference parser (which rejects bad text).
async fn scrape(url: &str, token: Option<&str>) -> Vec<Value> {
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    let parsed = run_python(PARSE_METRICS, &[], &text).await;
    serde_json::from_str::<Vec<Value>>(&parsed).unwrap()
}

/// The value of the sample named `name` whose labels include `labels`.
fn sample(samples: &[Value], name: &str, labels: Value) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s["name"] == name
                && labels
                    .as_object()
                    .unwrap()
                    .iter()
                    .all(|(k, v)| &s["labels"][k] == v)
        })
        .map(|s| s["value"].as_f64().unwrap())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn metrics_parse_and_count_sessions_emulators_requests_and_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let metrics_address = format!("127.0.0.1:{}", free_port());
    let server = Server::start(
        &dir.path().join("data"),
        &[
            "--metrics-listen",
            &metrics_address,
            "--node-name",
            "metrics-node",
        ],
    )
    .await;
    let session = server.create_session("mps2-an385").await;
    server.upload(&session, "ticker-mps2-an385.elf").await;
    server.power(&session, "ON", false).await;
    server.wait_uart(&session, "tick 2\n").await;
    let job = server
        .create_job(
            "hello-mps2-an385.elf",
            json!({ "name": "m", "boardTemplate": "mps2-an385", "expectUart": ["counting: 1 2 3"] }),
        )
        .await;
    let job = job["data"]["createJob"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{job}"));
    server.wait_job(job, &["PASSED"]).await;
    // A client-chosen operation name and an unknown field never become labels.
    server
        .request("query Chosen123 { boardTemplates { id } }", json!({}))
        .await;
    server.request("{ noSuchField }", json!({})).await;
    let _subscriber = server
        .subscribe(
            "subscription($s: ID!) { sessionEvents(sessionId: $s) { state } }",
            json!({ "s": session }),
        )
        .await;

    let samples = scrape(&format!("{}/metrics", server.base), None).await;
    let get = |name: &str, labels: Value| sample(&samples, name, labels);
    assert_eq!(
        get("virserver_info", json!({ "node": "metrics-node" })),
        Some(1.0)
    );
    assert_eq!(
        get(
            "virserver_sessions",
            json!({ "state": "RUNNING", "backend": "QEMU" })
        ),
        Some(1.0)
    );
    assert_eq!(get("virserver_emulators_powered", json!({})), Some(1.0));
    let resident = get(
        "virserver_emulator_resident_bytes",
        json!({ "session": session }),
    )
    .unwrap();
    assert!(resident > 4e6, "an emulator of {resident} bytes");
    assert_eq!(
        get("virserver_gateway_clients", json!({ "session": session })),
        Some(0.0)
    );
    assert!(get("virserver_uart_bytes_total", json!({ "direction": "out" })).unwrap() >= 15.0);
    assert!(get("virserver_audit_writes_total", json!({ "outcome": "ok" })).unwrap() >= 3.0);
    assert!(get("virserver_websocket_connections", json!({})).unwrap() >= 1.0);
    let operation = |op: &str| {
        get(
            "virserver_graphql_operation_duration_seconds_count",
            json!({ "operation": op }),
        )
    };
    assert!(operation("mutation.createSession").unwrap() >= 1.0);
    assert!(operation("query.boardTemplates").unwrap() >= 1.0);
    assert!(operation("invalid").unwrap() >= 1.0);
    assert!(!samples.iter().any(|s| s.to_string().contains("Chosen123")));
    assert!(
        get(
            "virserver_http_request_duration_seconds_count",
            json!({ "route": "/graphql", "method": "POST", "status": "200" })
        )
        .unwrap()
            >= 5.0
    );
    assert!(
        get(
            "virserver_job_duration_seconds_count",
            json!({ "state": "PASSED" })
        )
        .unwrap()
            >= 1.0
    );
    assert!(get("virserver_job_queue_wait_seconds_count", json!({})).unwrap() >= 1.0);
    assert!(get("virserver_jobs", json!({ "state": "PASSED" })).unwrap() >= 1.0);
    assert!(
        get(
            "virserver_job_queue_length",
            json!({ "queue": "embedded", "part": "waiting" })
        )
        .is_some()
    );

    // The unauthenticated listener serves the metrics and nothing else.
    let plain = scrape(&format!("http://{metrics_address}/metrics"), None).await;
    assert!(sample(&plain, "virserver_emulators_powered", json!({})).is_some());
    let other = reqwest::get(format!("http://{metrics_address}/graphql"))
        .await
        .unwrap();
    assert_eq!(other.status(), 404);

    // A real gdb through the gateway: its requests are timed, its reads counted.
    let gdb = server.gdb_address(&session).await;
    let output = common::gdb_batch(
        "ticker-mps2-an385.elf",
        &gdb,
        &["info registers pc", "x/4x $sp", "x/4x $sp", "detach"],
    )
    .await;
    assert!(output.status.success(), "{output:?}");
    let samples = scrape(&format!("{}/metrics", server.base), None).await;
    assert!(
        sample(
            &samples,
            "virserver_gateway_round_trip_seconds_count",
            json!({})
        )
        .unwrap()
            >= 5.0
    );
    let reads = |result: &str| {
        sample(
            &samples,
            "virserver_gateway_cache_reads",
            json!({ "session": session, "result": result }),
        )
        .unwrap()
    };
    assert!(reads("miss") >= 1.0 && reads("hit") >= 1.0, "{samples:?}");

    // Powered off, the emulator leaves the metrics.
    server.power(&session, "OFF", false).await;
    server.wait_state(&session, "STOPPED").await;
    let samples = scrape(&format!("{}/metrics", server.base), None).await;
    assert_eq!(
        sample(&samples, "virserver_emulators_powered", json!({})),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &samples,
            "virserver_emulator_resident_bytes",
            json!({ "session": session })
        ),
        None
    );
}

#[tokio::test]
async fn metrics_under_auth_need_a_key_that_may_see_every_session() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let viewer = create_key(&data, "grafana", "viewer");
    let operator = create_key(&data, "dev", "operator");
    let metrics_address = format!("127.0.0.1:{}", free_port());
    let server = Server::start(
        &data,
        &["--auth", "required", "--metrics-listen", &metrics_address],
    )
    .await;
    let url = format!("{}/metrics", server.base);
    let code = |response: reqwest::Response| async move {
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        (
            status,
            body["errors"][0]["extensions"]["code"]
                .as_str()
                .unwrap()
                .to_owned(),
        )
    };
    let client = reqwest::Client::new();
    let anonymous = client.get(&url).send().await.unwrap();
    assert_eq!(code(anonymous).await, (401, "UNAUTHENTICATED".to_owned()));
    let operated = client
        .get(&url)
        .bearer_auth(&operator)
        .send()
        .await
        .unwrap();
    assert_eq!(code(operated).await, (403, "FORBIDDEN".to_owned()));
    let samples = scrape(&url, Some(&viewer)).await;
    assert!(sample(&samples, "virserver_emulators_powered", json!({})).is_some());
    scrape(&format!("http://{metrics_address}/metrics"), None).await;
}

const CREATE_SESSION: &str = r#"{"query":"mutation { createSession(input: { name: \"csrf\", backend: QEMU, boardTemplate: \"mps2-an385\" }) { id } }"}"#;

#[tokio::test]
async fn browser_requests_from_other_origins_are_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]).await;
    let client = reqwest::Client::new();
    let graphql = format!("{}/graphql", server.base);
    let post = |origin: &str, content_type: &str| {
        client
            .post(&graphql)
            .header("origin", origin)
            .header("content-type", content_type)
            .header("x-request-id", "csrf-probe-7")
            .body(CREATE_SESSION)
            .send()
    };
    // What a page elsewhere can make a browser send without asking (a simple request).
    for content_type in ["text/plain", "application/json"] {
        let refused = post("http://evil.example", content_type).await.unwrap();
        assert_eq!(refused.status(), 403);
        assert!(
            refused
                .headers()
                .get("access-control-allow-origin")
                .is_none()
        );
        let body: Value = refused.json().await.unwrap();
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "FORBIDDEN_ORIGIN",
            "{body}"
        );
        assert_eq!(body["errors"][0]["extensions"]["requestId"], "csrf-probe-7");
    }
    let refused = post("null", "text/plain").await.unwrap();
    assert_eq!(refused.status(), 403);
    // DNS rebinding: a page whose own name resolves to 127.0.0.1 is "same-origin" to
    // the browser; its Host gives it away.
    let port = server.base.rsplit(':').next().unwrap().to_owned();
    let rebound = client
        .post(&graphql)
        .header("host", format!("evil.example:{port}"))
        .header("origin", format!("http://evil.example:{port}"))
        .header("content-type", "text/plain")
        .body(CREATE_SESSION)
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), 403);
    let body: Value = rebound.json().await.unwrap();
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "FORBIDDEN_HOST",
        "{body}"
    );
    let local = client
        .post(&graphql)
        .header("host", format!("localhost:{port}"))
        .json(&json!({ "query": "{ boardTemplates { id } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(local.status(), 200);
    // Nothing ran, and the log says why, under the request's id.
    let sessions = server.query("{ sessions { id } }", json!({})).await;
    assert_eq!(sessions["sessions"], json!([]));
    assert!(
        server
            .log()
            .lines()
            .any(|l| l.contains("csrf-probe-7") && l.contains("evil.example")),
        "{}",
        server.log()
    );
    // A WebSocket (which CORS never covers) from elsewhere is refused at the upgrade.
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut upgrade = graphql
        .replace("http://", "ws://")
        .into_client_request()
        .unwrap();
    upgrade
        .headers_mut()
        .insert("origin", "http://evil.example".parse().unwrap());
    upgrade.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    match tokio_tungstenite::connect_async(upgrade).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403)
        }
        other => panic!("upgrade from another origin: {other:?}"),
    }
    // The server's own pages (GraphiQL) are of its origin.
    let own = post(&server.base, "application/json").await.unwrap();
    assert_eq!(own.status(), 200);
    server.terminate().await;

    // An allowed dashboard gets CORS headers, preflight included; others still nothing.
    let server = Server::start(
        &dir.path().join("data"),
        &["--cors-origin", "https://dash.example"],
    )
    .await;
    let graphql = format!("{}/graphql", server.base);
    let preflight = client
        .request(reqwest::Method::OPTIONS, &graphql)
        .header("origin", "https://dash.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{preflight:?}");
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "https://dash.example"
    );
    let allowed = client
        .post(&graphql)
        .header("origin", "https://dash.example")
        .header("content-type", "application/json")
        .body(r#"{"query":"{ boardTemplates { id } }"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), 200);
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://dash.example"
    );
    let evil = client
        .post(&graphql)
        .header("origin", "http://evil.example")
        .body(CREATE_SESSION)
        .send()
        .await
        .unwrap();
    assert_eq!(evil.status(), 403);
    server.terminate().await;

    let bad = serve_refuses(&[
        "--data-dir",
        dir.path().join("data").to_str().unwrap(),
        "--cors-origin",
        "dash.example",
    ]);
    assert!(bad.contains("\"dash.example\" is not an origin"), "{bad}");
}

#[tokio::test]
async fn every_error_carries_the_request_id_of_its_response() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]).await;
    let client = reqwest::Client::new();
    let ask = |id: Option<&str>| {
        let mut request = client
            .post(format!("{}/graphql", server.base))
            .json(&json!({ "query": "{ session(id: \"missing\") { id } }" }));
        if let Some(id) = id {
            request = request.header("x-request-id", id);
        }
        request.send()
    };
    let response = ask(None).await.unwrap();
    let header = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{body}"
    );
    assert_eq!(
        body["errors"][0]["extensions"]["requestId"],
        header.as_str()
    );
    // A caller's own id (a CI job's, a load balancer's) is kept; a strange one replaced.
    let response = ask(Some("ci-1234.build_5")).await.unwrap();
    assert_eq!(response.headers()["x-request-id"], "ci-1234.build_5");
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["errors"][0]["extensions"]["requestId"],
        "ci-1234.build_5"
    );
    let response = ask(Some("<script>")).await.unwrap();
    let replaced = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(replaced.len(), 32, "{replaced}");
    // Over a WebSocket each operation has one.
    let mut subscription = server
        .subscribe(
            "subscription { sessionEvents(sessionId: \"missing\") { state } }",
            json!({}),
        )
        .await;
    let message = subscription.next_message().await.unwrap();
    let error = &message["payload"]["errors"][0];
    assert_eq!(error["extensions"]["code"], "NOT_FOUND", "{message}");
    assert_eq!(
        error["extensions"]["requestId"].as_str().unwrap().len(),
        32,
        "{message}"
    );
}
