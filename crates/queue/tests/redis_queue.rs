//! What only the Redis backend can meet: Redis that refuses, drops, or
//! never answers; a stream tampered with from outside (foreign entries, the
//! key deleted); and the Redis state the queue leaves behind. All against
//! the real server, through proxies where a failure is staged.

mod common;

use std::time::{Duration, Instant};

use common::proxy::{SilentServer, TcpProxy};
use common::{RedisBackend, RedisKeys, raw_connection, redis_address, refused_port, unique_name};
use redis::AsyncTypedCommands;
use virserver_queue::{
    Delivery, JobQueue, QueueConfig, QueueError, QueueLength, RedisQueue, UnavailableReason,
};

fn config_for(stream: &str, operation_timeout: Duration) -> QueueConfig {
    QueueConfig {
        stream: stream.to_owned(),
        group: format!("{stream}:nodes"),
        reclaim_after: Duration::from_secs(60),
        max_length: None,
        operation_timeout,
    }
}

fn assert_unavailable<T: std::fmt::Debug>(result: Result<T, QueueError>, url: &str) -> QueueError {
    match result {
        Err(error @ QueueError::Unavailable { .. }) => {
            assert!(error.is_transient());
            let message = error.to_string();
            assert!(message.contains(url), "{message:?} should name {url}");
            error
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connection_is_unavailable_and_hides_the_password() {
    let port = refused_port();
    let url = format!("redis://worker:hunter2@127.0.0.1:{port}/0");
    let started = Instant::now();
    let result = RedisQueue::connect(&url, config_for("unused", Duration::from_secs(2))).await;
    let error = assert_unavailable(result, &format!("redis://127.0.0.1:{port}/0"));
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
    let shown = format!("{error} / {error:?}");
    assert!(!shown.contains("hunter2"), "password leaked: {shown}");
    assert!(!shown.contains("worker"), "user name leaked: {shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_server_times_out_instead_of_hanging() {
    let server = SilentServer::start().await;
    let url = format!("redis://{}", server.address);
    let started = Instant::now();
    let result = RedisQueue::connect(&url, config_for("unused", Duration::from_millis(300))).await;
    let error = assert_unavailable(result, &url);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    match error {
        QueueError::Unavailable {
            reason: UnavailableReason::TimedOut(_) | UnavailableReason::Connection(_),
            ..
        } => {}
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_url_is_a_typed_error() {
    let result =
        RedisQueue::connect("http://user:pw@example.invalid/", QueueConfig::default()).await;
    match result {
        Err(QueueError::InvalidUrl { url, .. }) => assert_eq!(url, "http://example.invalid/"),
        other => panic!("expected InvalidUrl, got {other:?}"),
    }
}

/// Redis goes away under a connected queue: every operation fails
/// Unavailable within its timeout (no panic, no hang); when Redis is back,
/// the same queue works again without being rebuilt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connection_is_unavailable_then_recovers() {
    let stream = unique_name("jobs");
    let _keys = RedisKeys::new([stream.clone()]);
    let mut proxy = TcpProxy::start(redis_address()).await;
    let url = proxy.url("");
    let queue = RedisQueue::connect(&url, config_for(&stream, Duration::from_secs(1)))
        .await
        .expect("connect through the proxy");
    queue.enqueue("job-before").await.unwrap();
    let held = queue
        .next("node-1", Duration::ZERO)
        .await
        .unwrap()
        .expect("job-before");

    proxy.stop();
    let started = Instant::now();
    assert_unavailable(queue.enqueue("job-lost").await, &url);
    assert_unavailable(queue.next("node-1", Duration::from_millis(500)).await, &url);
    assert_unavailable(queue.heartbeat("node-1", &held).await, &url);
    assert_unavailable(queue.ack(&held).await, &url);
    assert_unavailable(queue.len().await, &url);
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "five failing calls took {took:?}"
    );

    proxy.restart().await;
    let recovered_by = Instant::now() + Duration::from_secs(15);
    loop {
        match queue.enqueue("job-after").await {
            Ok(()) => break,
            Err(error) if error.is_transient() && Instant::now() < recovered_by => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("queue did not recover: {error}"),
        }
    }
    queue.heartbeat("node-1", &held).await.unwrap();
    queue.ack(&held).await.unwrap();
    let after = queue.next("node-1", Duration::from_secs(5)).await.unwrap();
    assert_eq!(after.map(|d| d.job_id), Some("job-after".into()));
}

/// Entries this crate did not write are logged, removed and skipped; the
/// good job behind them is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_entries_are_discarded_not_delivered() {
    let backend = RedisBackend::new();
    let queue = backend.connect(Duration::from_secs(60), None).await;
    let mut redis = raw_connection().await;
    redis
        .xadd(&backend.stream, "*", &[("unrelated", "x")])
        .await
        .unwrap();
    redis
        .xadd(
            &backend.stream,
            "*",
            &[("job", "job-bad"), ("attempt", "zero")],
        )
        .await
        .unwrap();
    queue.enqueue("job-good").await.unwrap();

    let delivery = queue.next("node-1", Duration::ZERO).await.unwrap();
    assert_eq!(
        delivery.as_ref().map(|d| d.job_id.as_str()),
        Some("job-good")
    );
    assert_eq!(
        redis.xlen(&backend.stream).await.unwrap(),
        1,
        "foreign entries removed"
    );
    assert_eq!(
        queue.len().await.unwrap(),
        QueueLength {
            waiting: 0,
            in_progress: 1
        }
    );
}

/// Someone deletes the stream key (a FLUSHDB, an operator): the queue
/// creates stream and group again instead of failing forever with NOGROUP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_stream_is_recreated() {
    let backend = RedisBackend::new();
    let queue = backend.connect(Duration::from_secs(60), None).await;
    queue.enqueue("job-1").await.unwrap();
    let held = queue
        .next("node-1", Duration::ZERO)
        .await
        .unwrap()
        .expect("job-1");
    let mut redis = raw_connection().await;
    redis.del(&backend.stream).await.unwrap();

    assert_eq!(queue.len().await.unwrap(), QueueLength::default());
    assert!(matches!(
        queue.heartbeat("node-1", &held).await,
        Err(QueueError::NotHeld { owner: None, .. })
    ));
    queue.ack(&held).await.unwrap();
    queue.enqueue("job-2").await.unwrap();
    assert_eq!(queue.len().await.unwrap().waiting, 1);
    let delivery = queue.next("node-1", Duration::from_secs(2)).await.unwrap();
    assert_eq!(delivery.map(|d| d.job_id), Some("job-2".into()));
}

/// The Redis state behind the contract: an acked job leaves neither a
/// stream entry nor a pending entry, and the fields are the documented ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_state_matches_the_documented_layout() {
    let backend = RedisBackend::new();
    let queue = backend.connect(Duration::from_secs(60), None).await;
    let mut redis = raw_connection().await;
    queue.enqueue("job-1").await.unwrap();

    let entries = redis.xrange_all(&backend.stream).await.unwrap();
    let [entry] = entries.ids.as_slice() else {
        panic!("one entry expected: {entries:?}")
    };
    assert_eq!(entry.get::<String>("job").as_deref(), Some("job-1"));
    assert_eq!(entry.get::<String>("attempt").as_deref(), Some("1"));

    let delivery: Delivery = queue
        .next("node-1", Duration::ZERO)
        .await
        .unwrap()
        .expect("job-1");
    assert_eq!(delivery.delivery_id, entry.id);
    let pending = redis
        .xpending(&backend.stream, &backend.group)
        .await
        .unwrap();
    assert_eq!(pending.count(), 1);

    queue.ack(&delivery).await.unwrap();
    assert_eq!(redis.xlen(&backend.stream).await.unwrap(), 0);
    let pending = redis
        .xpending(&backend.stream, &backend.group)
        .await
        .unwrap();
    assert_eq!(pending.count(), 0);
}
