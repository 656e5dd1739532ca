//! The slow-consumer rule, with the slow part made slow for real: a PostgreSQL table
//! locked by another client, a Redis stopped with SIGSTOP. A slow database may delay a
//! session's history, never its console or its emulator; a stopped Redis costs other
//! nodes their events, never this node's power and debug calls.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{PostgresDatabase, Server};
use sea_orm::{ConnectionTrait, TransactionTrait};
use serde_json::{Value, json};

/// The tick numbers the ticker firmware printed, in order.
fn ticks(uart: &Value) -> Vec<u64> {
    uart.as_str()
        .unwrap_or("")
        .lines()
        .filter_map(|line| line.strip_prefix("tick ")?.parse().ok())
        .collect()
}

async fn uart(server: &Server, session: &str) -> Value {
    server
        .query(
            "query($id: ID!) { session(id: $id) { uartText } }",
            json!({ "id": session }),
        )
        .await["session"]["uartText"]
        .clone()
}

#[tokio::test]
async fn a_stalled_database_delays_the_history_never_the_console() {
    let database = PostgresDatabase::create().await;
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &["--database", &database.url()]).await;
    let session = server.create_session("mps2-an385").await;
    server.upload(&session, "ticker-mps2-an385.elf").await;
    server.power(&session, "ON", false).await;
    server.wait_uart(&session, "tick 2\n").await;
    let gdb = server.gdb_address(&session).await;

    // Another client holds the history table: every state change the server records
    // waits for it.
    let holder = sea_orm::Database::connect(database.url()).await.unwrap();
    let lock = holder.begin().await.unwrap();
    lock.execute_unprepared("LOCK TABLE session_events IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    // A GDB client halts the CPU and lets it go: PAUSED and RESUMED to record, and a
    // HALTED event to announce after them.
    let detached = common::gdb_batch("ticker-mps2-an385.elf", &gdb, &["detach"]).await;
    assert!(detached.status.success(), "{detached:?}");
    let before = *ticks(&uart(&server, &session).await).last().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let now = ticks(&uart(&server, &session).await);
        if now.last().is_some_and(|last| *last >= before + 3) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the console stopped behind the locked database at tick {before}: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    lock.rollback().await.unwrap();

    // The history catches up, in order, and the console lost nothing.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let data = server
            .query(
                "query($id: ID!) { session(id: $id) { history { kind } } }",
                json!({ "id": session }),
            )
            .await;
        let kinds: Vec<String> = data["session"]["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|event| event["kind"].as_str().unwrap().to_owned())
            .collect();
        let paused = kinds.iter().position(|k| k == "PAUSED");
        let resumed = kinds.iter().rposition(|k| k == "RESUMED");
        if let (Some(paused), Some(resumed)) = (paused, resumed)
            && paused < resumed
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "history never caught up: {kinds:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let all = ticks(&uart(&server, &session).await);
    let expected: Vec<u64> = (all[0]..all[0] + all.len() as u64).collect();
    assert_eq!(all, expected, "every tick once, in order");
    assert_eq!(all[0], 1);
    server.terminate().await;
    database.drop_database().await;
}

/// A redis-server of the test's own, so that it can be stopped.
struct OwnRedis {
    child: Child,
    port: u16,
}

impl OwnRedis {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let redis = Self {
            child: Command::new("redis-server")
                .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
                .args(["--save", "", "--appendonly", "no"])
                .stdout(Stdio::null())
                .spawn()
                .expect("redis-server runs"),
            port,
        };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return redis;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server did not listen on {port}");
    }

    fn signal(&self, signal: i32) {
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, signal) }, 0);
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_stopped_redis_stalls_no_power_or_debug_call() {
    let redis = OwnRedis::start();
    let data = tempfile::tempdir().unwrap();
    let url = format!("redis://127.0.0.1:{}", redis.port);
    let server = Server::start(data.path(), &["--redis", &url]).await;
    let session = server.create_session("mps2-an385").await;
    server.upload(&session, "ticker-mps2-an385.elf").await;
    server.power(&session, "ON", true).await;
    server.wait_state(&session, "PAUSED").await;

    redis.signal(libc::SIGSTOP);
    // Each call below changes the session's state, and each change is published to the
    // other nodes. Publishing to a stopped Redis times out after 5 s; 4 rounds of calls
    // making 3 changes each would take a minute if any call waited for it.
    let calls = async {
        for _ in 0..4 {
            server
                .query(
                    "mutation($s: ID!) { continueSession(sessionId: $s) }",
                    json!({ "s": session }),
                )
                .await;
            server
                .query(
                    "mutation($s: ID!) { haltSession(sessionId: $s) { pc } }",
                    json!({ "s": session }),
                )
                .await;
            server
                .query(
                    "query($s: ID!) { registers(sessionId: $s) { name value } }",
                    json!({ "s": session }),
                )
                .await;
            server.power(&session, "RESET", true).await;
        }
        server.power(&session, "OFF", false).await;
    };
    tokio::time::timeout(Duration::from_secs(30), calls)
        .await
        .expect("a power or debug call waited for the stopped Redis");
    assert_eq!(server.session(&session).await["state"], "STOPPED");
    redis.signal(libc::SIGCONT);
    server.terminate().await;
}
