//! [`RedisQueue`]: the job queue shared by every node, as one Redis stream
//! with one consumer group that all nodes join. Redis keeps who holds which
//! job (the group's pending entries list, PEL), so a node can die at any
//! moment and another takes its jobs over; nothing about deliveries lives
//! only in a node's memory.
//!
//! | operation   | Redis commands |
//! | ----------- | -------------- |
//! | `connect`   | `XGROUP CREATE <stream> <group> 0 MKSTREAM` (a `BUSYGROUP` reply means it exists) |
//! | `enqueue`   | script: `XLEN`, then `XADD <stream> * job <id> attempt <n>` if below the limit |
//! | `next`      | `XAUTOCLAIM <stream> <group> <consumer> <reclaim_after ms> <cursor> COUNT 1`, and for a claimed entry `XPENDING <stream> <group> <id> <id> 1` (its delivery count); otherwise `XREADGROUP GROUP <group> <consumer> COUNT 1 BLOCK <ms> STREAMS <stream> >` |
//! | `ack`       | `MULTI; XACK <stream> <group> <id>; XDEL <stream> <id>; EXEC` |
//! | `heartbeat` | script: `XPENDING <stream> <group> <id> <id> 1`, then `XCLAIM <stream> <group> <consumer> 0 <id> JUSTID` if the caller holds it |
//! | `len`       | `MULTI; XLEN <stream>; XPENDING <stream> <group>; EXEC` |
//!
//! Short commands share one reconnecting [`ConnectionManager`]; the blocking
//! `XREADGROUP` runs on connections of its own (`read_connections`), so it
//! never holds up the node's acks and heartbeats. `entry` is the layout of
//! a job in the stream, `scripts` the two Lua scripts.

mod entry;
mod read_connections;
mod scripts;

use std::future::Future;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{
    StreamAutoClaimOptions, StreamId, StreamPendingCountReply, StreamPendingReply,
    StreamReadOptions,
};
use redis::{AsyncTypedCommands, Client, RedisResult};
use tokio::time::Instant;

use self::entry::{entry_fields, parse_entry};
use self::read_connections::ReadConnections;
use self::scripts::{
    EnqueueOutcome, HeartbeatOutcome, Scripts, enqueue_outcome, heartbeat_outcome,
};
use crate::error::{from_redis, is_no_group, timed_out};
use crate::{Delivery, JobMessage, JobQueue, QueueConfig, QueueError, QueueLength, redact_url};

/// `XAUTOCLAIM` calls per look for stale deliveries. With `COUNT 1` each
/// call examines up to 10 pending entries; the cursor carries on from there
/// at the next look, so a long PEL is covered over several looks.
const RECLAIM_CALLS_PER_LOOK: usize = 10;
/// Reconnection attempts the connection manager makes per failure before
/// the call fails [`QueueError::Unavailable`] (the next call tries again).
const RECONNECT_RETRIES: usize = 2;

/// A [`JobQueue`] on a Redis stream with a consumer group; see the module
/// documentation for the commands each operation sends.
pub struct RedisQueue {
    commands: ConnectionManager,
    read_connections: ReadConnections,
    config: QueueConfig,
    /// The URL without credentials, for errors and logs.
    url: String,
    /// Where the next `XAUTOCLAIM` scan of the PEL starts.
    reclaim_cursor: Mutex<String>,
    scripts: Scripts,
}

impl std::fmt::Debug for RedisQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisQueue")
            .field("url", &self.url)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// What one look at the queue found.
enum Look {
    Delivered(Delivery),
    Nothing,
    /// Something was there but is not for us (a malformed entry, now
    /// discarded, or a reclaim that lost a race): look again at once.
    Again,
}

impl RedisQueue {
    /// Connects to `url` (such as `redis://127.0.0.1:6379/0`) and creates the
    /// stream and the consumer group if they do not exist yet. The group
    /// starts at the beginning of the stream, so jobs enqueued before any
    /// node connected are delivered too.
    pub async fn connect(url: &str, config: QueueConfig) -> Result<Self, QueueError> {
        let timeout = config.operation_timeout;
        let (client, commands, redacted) = connect_manager(url, timeout).await?;
        let queue = RedisQueue {
            read_connections: ReadConnections::new(client, redacted.clone(), timeout),
            commands,
            config,
            url: redacted,
            reclaim_cursor: Mutex::new("0-0".to_owned()),
            scripts: Scripts::new(),
        };
        queue.ensure_group().await?;
        Ok(queue)
    }

    /// The settings this queue was connected with.
    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    /// The server's URL without credentials.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Runs one request on the shared connection within the operation
    /// timeout, sorting failures into [`QueueError`].
    async fn within<T>(
        &self,
        operation: &'static str,
        request: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, QueueError> {
        let timeout = self.config.operation_timeout;
        match tokio::time::timeout(timeout, request).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(from_redis(&self.url, operation, error)),
            Err(_) => Err(timed_out(&self.url, operation, timeout)),
        }
    }

    /// `XGROUP CREATE <stream> <group> 0 MKSTREAM`, accepting `BUSYGROUP`.
    async fn ensure_group(&self) -> Result<(), QueueError> {
        let QueueConfig { stream, group, .. } = &self.config;
        let mut connection = self.commands.clone();
        let created = self
            .within(
                "create consumer group",
                connection.xgroup_create_mkstream(stream, group, "0"),
            )
            .await;
        match created {
            Ok(()) => {
                tracing::info!(url = %self.url, stream, group, "created job queue consumer group");
                Ok(())
            }
            Err(QueueError::Rejected { source, .. }) if source.code() == Some("BUSYGROUP") => {
                Ok(())
            }
            Err(error) => Err(error),
        }
    }

    /// One look: a stale delivery to take over, else a new entry, waiting
    /// at most until `deadline` (and at most `reclaim_after`, so deliveries
    /// going stale meanwhile are noticed).
    async fn look(&self, consumer: &str, deadline: Instant) -> Result<Look, QueueError> {
        match self.reclaim(consumer).await? {
            Look::Nothing => {}
            found => return Ok(found),
        }
        let block = deadline
            .saturating_duration_since(Instant::now())
            .min(self.config.reclaim_after);
        self.read_new(consumer, block).await
    }

    async fn reclaim(&self, consumer: &str) -> Result<Look, QueueError> {
        let QueueConfig { stream, group, .. } = &self.config;
        let mut connection = self.commands.clone();
        let min_idle = millis(self.config.reclaim_after);
        for _ in 0..RECLAIM_CALLS_PER_LOOK {
            let cursor = lock(&self.reclaim_cursor).clone();
            let options = StreamAutoClaimOptions::default().count(1);
            let reply = self
                .within(
                    "next (reclaim)",
                    connection
                        .xautoclaim_options(stream, group, consumer, min_idle, &cursor, options),
                )
                .await?;
            let scan_complete = reply.next_stream_id == "0-0";
            *lock(&self.reclaim_cursor) = reply.next_stream_id;
            if let Some(entry) = reply.claimed.into_iter().next() {
                return self.reclaimed(consumer, entry).await;
            }
            if scan_complete {
                break;
            }
        }
        Ok(Look::Nothing)
    }

    /// Turns an entry `XAUTOCLAIM` just gave `consumer` into a delivery,
    /// reading its delivery count from the PEL.
    async fn reclaimed(&self, consumer: &str, entry: StreamId) -> Result<Look, QueueError> {
        let QueueConfig { stream, group, .. } = &self.config;
        let mut connection = self.commands.clone();
        let pending: StreamPendingCountReply = self
            .within(
                "next (reclaim)",
                connection.xpending_count(stream, group, &entry.id, &entry.id, 1),
            )
            .await?;
        let delivery_count = match pending.ids.first() {
            Some(held) if held.id == entry.id && held.consumer == consumer => held.times_delivered,
            // Acked, or claimed again, between the two commands.
            _ => return Ok(Look::Again),
        };
        let Some(delivery) = self.delivery(&entry, delivery_count as u64).await? else {
            return Ok(Look::Again);
        };
        tracing::info!(
            url = %self.url,
            stream,
            consumer,
            job_id = delivery.job_id,
            delivery_id = delivery.delivery_id,
            delivery_count,
            "reclaimed a job whose consumer stopped heartbeating"
        );
        Ok(Look::Delivered(delivery))
    }

    /// `XREADGROUP ... >` on a connection of its own, blocking up to `block`.
    async fn read_new(&self, consumer: &str, block: Duration) -> Result<Look, QueueError> {
        let mut options = StreamReadOptions::default()
            .group(&self.config.group, consumer)
            .count(1);
        if !block.is_zero() {
            options = options.block(millis(block));
        }
        let reply = self
            .read_connections
            .read(&self.config.stream, &options, block)
            .await?;
        let entry = reply
            .into_iter()
            .flat_map(|reply| reply.keys)
            .flat_map(|key| key.ids)
            .next();
        match entry {
            None => Ok(Look::Nothing),
            Some(entry) => Ok(match self.delivery(&entry, 1).await? {
                Some(delivery) => Look::Delivered(delivery),
                None => Look::Again,
            }),
        }
    }

    /// The delivery for an entry now held by this node, or `None` after
    /// discarding an entry that does not parse (it would otherwise be
    /// reclaimed and fail again forever).
    async fn delivery(
        &self,
        entry: &StreamId,
        delivery_count: u64,
    ) -> Result<Option<Delivery>, QueueError> {
        match parse_entry(entry) {
            Ok(JobMessage { job_id, attempt }) => Ok(Some(Delivery {
                job_id,
                attempt,
                delivery_id: entry.id.clone(),
                delivery_count,
            })),
            Err(reason) => {
                tracing::warn!(
                    url = %self.url,
                    stream = self.config.stream,
                    entry_id = entry.id,
                    reason,
                    "discarding a job queue entry this server cannot read"
                );
                self.remove(&entry.id, "next (discard malformed entry)")
                    .await?;
                Ok(None)
            }
        }
    }

    /// `MULTI; XACK; XDEL; EXEC`: out of the PEL and out of the stream in one
    /// step, so `XLEN` keeps counting exactly the waiting and running jobs.
    async fn remove(&self, entry_id: &str, operation: &'static str) -> Result<(), QueueError> {
        let QueueConfig { stream, group, .. } = &self.config;
        let mut connection = self.commands.clone();
        let mut transaction = redis::pipe();
        transaction
            .atomic()
            .xack(stream, group, &[entry_id])
            .ignore()
            .xdel(stream, &[entry_id])
            .ignore();
        self.within(operation, transaction.exec_async(&mut connection))
            .await
    }
}

#[async_trait]
impl JobQueue for RedisQueue {
    async fn enqueue_message(&self, message: &JobMessage) -> Result<(), QueueError> {
        let mut connection = self.commands.clone();
        let limit = self.config.max_length.map_or(-1, |max_length| {
            i64::try_from(max_length).unwrap_or(i64::MAX)
        });
        let mut invocation = self.scripts.enqueue.key(&self.config.stream);
        invocation.arg(limit);
        for (field, value) in entry_fields(message) {
            invocation.arg(field).arg(value);
        }
        let reply = self
            .within("enqueue", invocation.invoke_async(&mut connection))
            .await?;
        match enqueue_outcome(reply) {
            EnqueueOutcome::Added => Ok(()),
            EnqueueOutcome::Full { length } => Err(QueueError::Full {
                length,
                max_length: self.config.max_length.unwrap_or_default(),
            }),
        }
    }

    async fn next(&self, consumer: &str, wait: Duration) -> Result<Option<Delivery>, QueueError> {
        let deadline = deadline_after(wait);
        let mut recreated_group = false;
        loop {
            let look = match self.look(consumer, deadline).await {
                Err(error) if is_missing_group(&error) && !recreated_group => {
                    tracing::warn!(
                        url = %self.url,
                        stream = self.config.stream,
                        "the job stream or its consumer group disappeared; creating it again"
                    );
                    recreated_group = true;
                    self.ensure_group().await?;
                    continue;
                }
                look => look?,
            };
            match look {
                Look::Delivered(delivery) => return Ok(Some(delivery)),
                Look::Nothing if Instant::now() >= deadline => return Ok(None),
                Look::Nothing | Look::Again => {}
            }
        }
    }

    async fn ack(&self, delivery: &Delivery) -> Result<(), QueueError> {
        match self.remove(&delivery.delivery_id, "ack").await {
            // No group means no pending entries: nothing left to ack.
            Err(error) if is_missing_group(&error) => Ok(()),
            result => result,
        }
    }

    async fn heartbeat(&self, consumer: &str, delivery: &Delivery) -> Result<(), QueueError> {
        let mut connection = self.commands.clone();
        let mut invocation = self.scripts.heartbeat.key(&self.config.stream);
        invocation
            .arg(&self.config.group)
            .arg(consumer)
            .arg(&delivery.delivery_id);
        let outcome = match self
            .within("heartbeat", invocation.invoke_async(&mut connection))
            .await
        {
            Ok(reply) => heartbeat_outcome(reply),
            Err(error) if is_missing_group(&error) => HeartbeatOutcome::NotPending,
            Err(error) => return Err(error),
        };
        let owner = match outcome {
            HeartbeatOutcome::Held => return Ok(()),
            HeartbeatOutcome::HeldBy(owner) => Some(owner),
            HeartbeatOutcome::NotPending => None,
        };
        Err(QueueError::NotHeld {
            job_id: delivery.job_id.clone(),
            delivery_id: delivery.delivery_id.clone(),
            consumer: consumer.to_owned(),
            owner,
        })
    }

    async fn len(&self) -> Result<QueueLength, QueueError> {
        let QueueConfig { stream, group, .. } = &self.config;
        let mut connection = self.commands.clone();
        let mut transaction = redis::pipe();
        transaction.atomic().xlen(stream).xpending(stream, group);
        let counted: Result<(u64, StreamPendingReply), QueueError> = self
            .within("len", transaction.query_async(&mut connection))
            .await;
        match counted {
            Ok((length, pending)) => {
                let in_progress = pending.count() as u64;
                Ok(QueueLength {
                    // Acked entries are deleted, so the stream holds exactly
                    // the waiting and the in-progress ones.
                    waiting: length.saturating_sub(in_progress),
                    in_progress,
                })
            }
            // Without a group nothing is held; whatever is in the stream
            // waits for `next` to create the group again.
            Err(error) if is_missing_group(&error) => Ok(QueueLength {
                waiting: self.within("len", connection.xlen(stream)).await? as u64,
                in_progress: 0,
            }),
            Err(error) => Err(error),
        }
    }
}

/// Opens the reconnecting connection for short commands, shared by
/// [`RedisQueue`] and [`crate::RedisEvents`]: the client (for opening more
/// connections), the connection, and the URL without credentials.
pub(crate) async fn connect_manager(
    url: &str,
    timeout: Duration,
) -> Result<(Client, ConnectionManager, String), QueueError> {
    let redacted = redact_url(url);
    let client = Client::open(url).map_err(|source| QueueError::InvalidUrl {
        url: redacted.clone(),
        source,
    })?;
    let manager_config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(RECONNECT_RETRIES)
        .set_max_delay(Duration::from_secs(1));
    let connecting = ConnectionManager::new_with_config(client.clone(), manager_config);
    match tokio::time::timeout(timeout, connecting).await {
        Ok(Ok(manager)) => Ok((client, manager, redacted)),
        Ok(Err(error)) => Err(from_redis(&redacted, "connect", error)),
        Err(_) => Err(timed_out(&redacted, "connect", timeout)),
    }
}

fn is_missing_group(error: &QueueError) -> bool {
    matches!(error, QueueError::Rejected { source, .. } if is_no_group(source))
}

/// Whole milliseconds for a Redis argument, at least 1 (Redis reads
/// `BLOCK 0` as "forever").
fn millis(duration: Duration) -> usize {
    usize::try_from(duration.as_millis())
        .unwrap_or(usize::MAX)
        .max(1)
}

fn deadline_after(wait: Duration) -> Instant {
    let now = Instant::now();
    // A wait too long to represent is as good as forever.
    now.checked_add(wait)
        .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while these locks are held; a poisoned one is intact.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
