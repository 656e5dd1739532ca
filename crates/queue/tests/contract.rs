//! The [`JobQueue`] contract, written once and run against both backends:
//! `memory::*` on [`virserver_queue::MemoryQueue`], `redis::*` on
//! [`virserver_queue::RedisQueue`] and the real Redis server. Each check
//! starts a fresh queue (for Redis, a stream and group no other test uses)
//! and plays several nodes against it.
//!
//! Timings: `reclaim_after` is 500 ms where reclaim is the point, and long
//! elsewhere so that a loaded machine cannot cause a reclaim by accident.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::Backend;
use virserver_queue::{Delivery, JobMessage, JobQueue, QueueError, QueueLength};

const NO_RECLAIM: Duration = Duration::from_secs(60);
const NOW: Duration = Duration::ZERO;

fn length(waiting: u64, in_progress: u64) -> QueueLength {
    QueueLength {
        waiting,
        in_progress,
    }
}

async fn one_node(
    backend: &dyn Backend,
    reclaim_after: Duration,
    max_length: Option<u64>,
) -> Arc<dyn JobQueue> {
    let mut nodes = backend.nodes(reclaim_after, max_length, 1).await;
    nodes.pop().expect("one node")
}

async fn two_nodes(
    backend: &dyn Backend,
    reclaim_after: Duration,
    max_length: Option<u64>,
) -> (Arc<dyn JobQueue>, Arc<dyn JobQueue>) {
    let mut nodes = backend.nodes(reclaim_after, max_length, 2).await;
    let second = nodes.pop().expect("two nodes");
    (nodes.pop().expect("two nodes"), second)
}

async fn take(queue: &Arc<dyn JobQueue>, consumer: &str) -> Delivery {
    queue
        .next(consumer, Duration::from_secs(5))
        .await
        .expect("next")
        .unwrap_or_else(|| panic!("{consumer} got no job"))
}

/// Jobs come out in enqueue order with their attempt, one delivery each, and
/// `len` tracks waiting and in-progress jobs through the whole lifecycle.
async fn delivers_in_enqueue_order(backend: &dyn Backend) {
    let queue = one_node(backend, NO_RECLAIM, None).await;
    assert_eq!(queue.len().await.unwrap(), length(0, 0));
    queue.enqueue("job-a").await.unwrap();
    queue.enqueue("job-b").await.unwrap();
    let retry = JobMessage {
        job_id: "job-c".into(),
        attempt: 2,
    };
    queue.enqueue_message(&retry).await.unwrap();
    assert_eq!(queue.len().await.unwrap(), length(3, 0));

    let a = take(&queue, "node-1").await;
    assert_eq!(
        (a.job_id.as_str(), a.attempt, a.delivery_count),
        ("job-a", 1, 1)
    );
    assert_eq!(queue.len().await.unwrap(), length(2, 1));
    let b = take(&queue, "node-1").await;
    let c = take(&queue, "node-1").await;
    assert_eq!((b.job_id.as_str(), b.attempt), ("job-b", 1));
    assert_eq!(
        (c.job_id.as_str(), c.attempt, c.delivery_count),
        ("job-c", 2, 1)
    );
    let ids: BTreeSet<_> = [&a, &b, &c].iter().map(|d| d.delivery_id.clone()).collect();
    assert_eq!(ids.len(), 3, "distinct delivery ids: {ids:?}");
    assert_eq!(queue.next("node-1", NOW).await.unwrap(), None);
    assert_eq!(queue.len().await.unwrap(), length(0, 3));

    for delivery in [&a, &b, &c] {
        queue.ack(delivery).await.unwrap();
    }
    assert_eq!(queue.len().await.unwrap(), length(0, 0));
}

/// `next` on an empty queue waits for `wait`, then says `None`: no hang, no
/// busy return.
async fn empty_next_waits_then_returns_none(backend: &dyn Backend) {
    let queue = one_node(backend, NO_RECLAIM, None).await;
    let started = Instant::now();
    assert_eq!(
        queue
            .next("node-1", Duration::from_millis(300))
            .await
            .unwrap(),
        None
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(290),
        "returned after {waited:?}"
    );
    assert!(waited < Duration::from_secs(5), "returned after {waited:?}");
}

/// A blocked `next` on one node wakes as soon as another node enqueues.
async fn blocked_next_wakes_on_enqueue(backend: &dyn Backend) {
    let (worker, producer) = two_nodes(backend, NO_RECLAIM, None).await;
    let waiting = tokio::spawn(async move {
        let started = Instant::now();
        let delivery = worker.next("node-1", Duration::from_secs(20)).await;
        (delivery, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    producer.enqueue("job-late").await.unwrap();
    let (delivery, waited) = waiting.await.unwrap();
    assert_eq!(delivery.unwrap().map(|d| d.job_id), Some("job-late".into()));
    assert!(waited < Duration::from_secs(5), "woke after {waited:?}");
}

/// A consumer that never acks and stops heartbeating loses its job to the
/// next consumer after `reclaim_after`, as the same delivery with count 2;
/// its late heartbeat is refused rather than stealing the job back.
async fn reclaims_after_holder_stops_heartbeating(backend: &dyn Backend) {
    let reclaim_after = Duration::from_millis(500);
    let (node_a, node_b) = two_nodes(backend, reclaim_after, None).await;
    node_a.enqueue("job-orphan").await.unwrap();
    let first = take(&node_a, "node-a").await;
    let delivered_at = Instant::now();
    assert_eq!(first.delivery_count, 1);
    assert_eq!(
        node_b.next("node-b", NOW).await.unwrap(),
        None,
        "not stale yet"
    );

    let second = node_b
        .next("node-b", Duration::from_secs(10))
        .await
        .unwrap()
        .expect("reclaimed");
    let after = delivered_at.elapsed();
    assert!(
        after >= Duration::from_millis(450),
        "reclaimed after only {after:?}"
    );
    assert!(after < Duration::from_secs(8), "reclaimed after {after:?}");
    assert_eq!(second.job_id, "job-orphan");
    assert_eq!(second.attempt, first.attempt);
    assert_eq!(second.delivery_id, first.delivery_id);
    assert_eq!(second.delivery_count, 2);

    match node_a.heartbeat("node-a", &first).await {
        Err(QueueError::NotHeld {
            owner, consumer, ..
        }) => {
            assert_eq!(owner.as_deref(), Some("node-b"));
            assert_eq!(consumer, "node-a");
        }
        other => panic!("late heartbeat of the old holder: {other:?}"),
    }
    node_b.heartbeat("node-b", &second).await.unwrap();
    assert_eq!(node_a.len().await.unwrap(), length(0, 1));
    node_b.ack(&second).await.unwrap();
    match node_b.heartbeat("node-b", &second).await {
        Err(QueueError::NotHeld { owner: None, .. }) => {}
        other => panic!("heartbeat after ack: {other:?}"),
    }
    assert_eq!(node_a.len().await.unwrap(), length(0, 0));
}

/// A holder that heartbeats keeps its job however long it runs.
async fn heartbeating_holder_keeps_its_job(backend: &dyn Backend) {
    let reclaim_after = Duration::from_millis(1_000);
    let (node_a, node_b) = two_nodes(backend, reclaim_after, None).await;
    node_a.enqueue("job-long").await.unwrap();
    let delivery = take(&node_a, "node-a").await;

    let running = Arc::new(AtomicBool::new(true));
    let heartbeats = tokio::spawn({
        let (queue, delivery, running) = (node_a.clone(), delivery.clone(), running.clone());
        async move {
            let mut sent = 0;
            while running.load(Ordering::SeqCst) {
                queue
                    .heartbeat("node-a", &delivery)
                    .await
                    .expect("heartbeat");
                sent += 1;
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
            sent
        }
    });
    // Three times reclaim_after.
    let stolen = node_b.next("node-b", Duration::from_secs(3)).await.unwrap();
    running.store(false, Ordering::SeqCst);
    let sent = heartbeats.await.unwrap();
    assert_eq!(stolen, None, "a heartbeating holder's job was reclaimed");
    assert!(sent >= 10, "only {sent} heartbeats");
    node_a.ack(&delivery).await.unwrap();
    assert_eq!(node_b.len().await.unwrap(), length(0, 0));
}

/// An acked job is gone for good: not redelivered after `reclaim_after`, to
/// anyone. Ack is idempotent.
async fn acked_jobs_are_never_delivered_again(backend: &dyn Backend) {
    let reclaim_after = Duration::from_millis(300);
    let (node_a, node_b) = two_nodes(backend, reclaim_after, None).await;
    node_a.enqueue("job-done").await.unwrap();
    let delivery = take(&node_a, "node-a").await;
    node_a.ack(&delivery).await.unwrap();
    node_a.ack(&delivery).await.unwrap();
    node_b.ack(&delivery).await.unwrap();

    tokio::time::sleep(reclaim_after * 2).await;
    assert_eq!(
        node_b
            .next("node-b", Duration::from_millis(500))
            .await
            .unwrap(),
        None
    );
    assert_eq!(node_a.next("node-a", NOW).await.unwrap(), None);
    assert_eq!(node_a.len().await.unwrap(), length(0, 0));
    assert!(node_b.is_empty().await.unwrap());
}

/// Two nodes pulling concurrently with nobody dying: each of 20 jobs goes
/// to exactly one of them, and both do some of the work.
async fn two_consumers_share_twenty_jobs_exactly_once(backend: &dyn Backend) {
    let (node_0, node_1) = two_nodes(backend, NO_RECLAIM, None).await;
    let nodes = [node_0, node_1];
    let workers: Vec<_> = nodes
        .iter()
        .enumerate()
        .map(|(index, queue)| {
            let queue = queue.clone();
            tokio::spawn(async move {
                let consumer = format!("node-{index}");
                let mut done = Vec::new();
                while let Some(delivery) = queue
                    .next(&consumer, Duration::from_secs(2))
                    .await
                    .expect("next")
                {
                    // Work takes a moment, so the other node gets its turn.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    queue.ack(&delivery).await.expect("ack");
                    done.push(delivery.job_id);
                }
                done
            })
        })
        .collect();
    let expected: BTreeSet<String> = (0..20).map(|n| format!("job-{n:02}")).collect();
    for job_id in &expected {
        nodes[0].enqueue(job_id).await.unwrap();
    }

    let mut per_node = Vec::new();
    for worker in workers {
        per_node.push(worker.await.unwrap());
    }
    let all: Vec<&String> = per_node.iter().flatten().collect();
    let unique: BTreeSet<String> = all.iter().map(|id| id.to_string()).collect();
    assert_eq!(all.len(), 20, "deliveries: {per_node:?}");
    assert_eq!(unique, expected);
    assert!(
        per_node.iter().all(|done| !done.is_empty()),
        "one node did nothing: {per_node:?}"
    );
    assert_eq!(nodes[1].len().await.unwrap(), length(0, 0));
}

/// With `max_length` 3, a fourth job is refused with a typed error, counting
/// in-progress jobs too, until one is acked.
async fn full_queue_refuses_enqueue(backend: &dyn Backend) {
    let queue = one_node(backend, NO_RECLAIM, Some(3)).await;
    for n in 0..3 {
        queue.enqueue(&format!("job-{n}")).await.unwrap();
    }
    let full = |result: Result<(), QueueError>| match result {
        Err(QueueError::Full { length, max_length }) => (length, max_length),
        other => panic!("expected Full, got {other:?}"),
    };
    assert_eq!(full(queue.enqueue("job-3").await), (3, 3));

    let running = take(&queue, "node-1").await;
    assert_eq!(full(queue.enqueue("job-3").await), (3, 3));
    assert_eq!(queue.len().await.unwrap(), length(2, 1));

    queue.ack(&running).await.unwrap();
    queue.enqueue("job-3").await.unwrap();
    assert_eq!(queue.len().await.unwrap(), length(3, 0));
}

/// A `next` blocked on a node does not hold up that node's acks and
/// heartbeats (which would let its running jobs be reclaimed).
async fn blocked_next_does_not_delay_ack_or_heartbeat(backend: &dyn Backend) {
    let queue = one_node(backend, NO_RECLAIM, None).await;
    queue.enqueue("job-1").await.unwrap();
    let delivery = take(&queue, "node-1").await;
    let blocked = tokio::spawn({
        let queue = queue.clone();
        async move { queue.next("node-1", Duration::from_secs(3)).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;

    let started = Instant::now();
    queue.heartbeat("node-1", &delivery).await.unwrap();
    queue.ack(&delivery).await.unwrap();
    assert_eq!(queue.len().await.unwrap(), length(0, 0));
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "heartbeat + ack + len took {took:?}"
    );
    assert_eq!(blocked.await.unwrap().unwrap(), None);
}

macro_rules! contract_tests {
    ($($check:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    super::$check(&crate::common::MemoryBackend).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    super::$check(&crate::common::RedisBackend::new()).await;
                }
            )*
        }
    };
}

contract_tests!(
    delivers_in_enqueue_order,
    empty_next_waits_then_returns_none,
    blocked_next_wakes_on_enqueue,
    reclaims_after_holder_stops_heartbeating,
    heartbeating_holder_keeps_its_job,
    acked_jobs_are_never_delivered_again,
    two_consumers_share_twenty_jobs_exactly_once,
    full_queue_refuses_enqueue,
    blocked_next_does_not_delay_ack_or_heartbeat,
);
