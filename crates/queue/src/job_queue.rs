//! The queue contract the job service programs against, [`JobQueue`], and
//! the plain values that cross it. Both backends ([`crate::MemoryQueue`],
//! [`crate::RedisQueue`]) implement exactly this and are checked by the same
//! contract tests, so the job service cannot tell them apart except by the
//! number of nodes that can share one.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::QueueError;

/// What is queued: a job's id (the row in the database holds everything
/// else) and which attempt this is.
///
/// `attempt` is the job service's own retry counter (re-run after an
/// infrastructure failure); it is carried unchanged. It is not the same as
/// [`Delivery::delivery_count`], which counts how often the queue handed the
/// same message out because a node died or stalled.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JobMessage {
    /// The job's id.
    pub job_id: String,
    /// 1 for the first run, 2 for the first retry, and so on.
    pub attempt: u32,
}

impl JobMessage {
    /// The first attempt of a job.
    pub fn first(job_id: impl Into<String>) -> Self {
        JobMessage {
            job_id: job_id.into(),
            attempt: 1,
        }
    }
}

/// A message handed to one consumer, which now holds it until it calls
/// [`JobQueue::ack`], or stops calling [`JobQueue::heartbeat`] for longer
/// than [`QueueConfig::reclaim_after`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The job's id.
    pub job_id: String,
    /// [`JobMessage::attempt`] as enqueued.
    pub attempt: u32,
    /// The queue entry's id (a Redis stream entry id such as
    /// `1732550000000-0`); the same across redeliveries of one message.
    pub delivery_id: String,
    /// How often this message has been handed out: 1 for a fresh delivery,
    /// 2 or more when it was reclaimed from a consumer that stopped
    /// heartbeating. A job service may give up on a job whose count keeps
    /// growing (it crashes every node that runs it).
    pub delivery_count: u64,
}

/// How many jobs the queue holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueLength {
    /// Enqueued and not yet handed to any consumer.
    pub waiting: u64,
    /// Handed to a consumer and not yet acked (running, or held by a dead
    /// node until it is reclaimed).
    pub in_progress: u64,
}

impl QueueLength {
    /// Waiting plus in progress: what [`QueueConfig::max_length`] limits.
    pub fn total(&self) -> u64 {
        self.waiting + self.in_progress
    }
}

/// Settings shared by both backends; `stream` and `group` only matter to
/// Redis. One value built from the server's configuration can be handed to
/// either.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    /// Redis key of the stream that holds the jobs.
    pub stream: String,
    /// Redis consumer group that every node joins; each node is a consumer
    /// in it, named by the `consumer` argument of [`JobQueue::next`].
    pub group: String,
    /// A delivery whose holder has neither acked nor heartbeated for this
    /// long is taken over by the next consumer that asks for work. Heartbeat
    /// well within it (see [`QueueConfig::heartbeat_interval`]).
    pub reclaim_after: Duration,
    /// Refuse new jobs ([`QueueError::Full`]) once this many are waiting or
    /// in progress. `None` for no limit.
    pub max_length: Option<u64>,
    /// Longest time any single call may wait for Redis (besides the
    /// requested blocking time of [`JobQueue::next`]) before it gives
    /// [`QueueError::Unavailable`]. Also the connect timeout.
    pub operation_timeout: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            stream: "virserver:jobs".to_owned(),
            group: "virserver:nodes".to_owned(),
            reclaim_after: Duration::from_secs(60),
            max_length: Some(10_000),
            operation_timeout: Duration::from_secs(5),
        }
    }
}

impl QueueConfig {
    /// A safe heartbeat period for this `reclaim_after`: a third of it, so
    /// two heartbeats can be late or lost before the job is reclaimed.
    pub fn heartbeat_interval(&self) -> Duration {
        self.reclaim_after / 3
    }
}

/// A work queue with at-least-once delivery to named consumers (nodes).
///
/// The lifecycle of a job: [`enqueue`](JobQueue::enqueue) → one consumer's
/// [`next`](JobQueue::next) → [`heartbeat`](JobQueue::heartbeat) while it
/// runs → [`ack`](JobQueue::ack) when it has a verdict. If the consumer dies
/// instead, another consumer's `next` reclaims the delivery after
/// [`QueueConfig::reclaim_after`], with a higher
/// [`Delivery::delivery_count`]. See the crate documentation for the
/// guarantees and what they ask of the job service.
#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Adds a message at the tail of the queue. [`QueueError::Full`] when
    /// [`QueueConfig::max_length`] jobs are already waiting or in progress.
    async fn enqueue_message(&self, message: &JobMessage) -> Result<(), QueueError>;

    /// Adds the first attempt of a job; see
    /// [`enqueue_message`](JobQueue::enqueue_message).
    async fn enqueue(&self, job_id: &str) -> Result<(), QueueError> {
        self.enqueue_message(&JobMessage::first(job_id)).await
    }

    /// The next job for `consumer`, waiting up to `wait` for one to arrive
    /// (`Duration::ZERO` only looks). First takes over the oldest delivery
    /// that some consumer (this one included, say before a restart) has
    /// held for longer than `reclaim_after` without heartbeat; otherwise the
    /// oldest waiting job. `Ok(None)` when `wait` passed with nothing to do.
    async fn next(&self, consumer: &str, wait: Duration) -> Result<Option<Delivery>, QueueError>;

    /// The job is finished, whatever its verdict: it leaves the queue and is
    /// never delivered again. Idempotent, and allowed from any consumer,
    /// including one whose delivery was meanwhile reclaimed (the job is done,
    /// so the other holder's next heartbeat gets [`QueueError::NotHeld`]).
    async fn ack(&self, delivery: &Delivery) -> Result<(), QueueError>;

    /// Tells the queue `consumer` is still working on `delivery`, so it is
    /// not reclaimed. [`QueueError::NotHeld`] when it was already reclaimed
    /// by another consumer or acked: stop working on it.
    async fn heartbeat(&self, consumer: &str, delivery: &Delivery) -> Result<(), QueueError>;

    /// Jobs waiting and in progress.
    async fn len(&self) -> Result<QueueLength, QueueError>;

    /// No job waiting or in progress.
    async fn is_empty(&self) -> Result<bool, QueueError> {
        Ok(self.len().await?.total() == 0)
    }
}

/// Lets the server hold `Arc<MemoryQueue>` or `Arc<RedisQueue>` (or
/// `Arc<dyn JobQueue>`) and still pass it where a [`JobQueue`] is wanted.
#[async_trait]
impl<Q: JobQueue + ?Sized> JobQueue for Arc<Q> {
    async fn enqueue_message(&self, message: &JobMessage) -> Result<(), QueueError> {
        (**self).enqueue_message(message).await
    }

    async fn enqueue(&self, job_id: &str) -> Result<(), QueueError> {
        (**self).enqueue(job_id).await
    }

    async fn next(&self, consumer: &str, wait: Duration) -> Result<Option<Delivery>, QueueError> {
        (**self).next(consumer, wait).await
    }

    async fn ack(&self, delivery: &Delivery) -> Result<(), QueueError> {
        (**self).ack(delivery).await
    }

    async fn heartbeat(&self, consumer: &str, delivery: &Delivery) -> Result<(), QueueError> {
        (**self).heartbeat(consumer, delivery).await
    }

    async fn len(&self) -> Result<QueueLength, QueueError> {
        (**self).len().await
    }

    async fn is_empty(&self) -> Result<bool, QueueError> {
        (**self).is_empty().await
    }
}
