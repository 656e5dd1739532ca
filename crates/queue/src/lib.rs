//! The job queue that VirServer nodes take CI jobs from, and the event bus
//! that lets any node follow what another node is running.
//!
//! ```text
//! job service ──enqueue──▶ JobQueue ──next──▶ worker on some node ──heartbeat…──▶ ack
//!                            │                       │ dies / stalls
//!                            │                       ▼
//!                            └──── after reclaim_after, another node's next() takes it over
//!
//! worker ──publish(channel, json)──▶ RedisEvents ──▶ subscribe(channel) on every node
//! ```
//!
//! One server process is a *node*; it names itself as a *consumer* when it
//! asks for work. With no Redis configured the server uses [`MemoryQueue`]
//! (and persists jobs in its own database); with `--redis URL` every node
//! uses [`RedisQueue`] on the same stream, so all of them take jobs.
//!
//! # Layout
//!
//! - `job_queue`: the [`JobQueue`] trait and the values crossing it:
//!   [`JobMessage`] in, [`Delivery`] out, [`QueueLength`], and the
//!   [`QueueConfig`] both backends read.
//! - `memory`: [`MemoryQueue`], one node, in process: a FIFO, a table of
//!   held deliveries, a `Notify`.
//! - `redis_queue`: [`RedisQueue`], many nodes: one Redis stream and one
//!   consumer group. Its module doc lists the Redis commands of each
//!   operation. Beside it: `entry` (the stream entry layout), `scripts`
//!   (the two Lua scripts and their replies), `read_connections` (the
//!   connections blocking reads run on).
//! - `events`: [`RedisEvents`], pub/sub of text payloads across nodes, with
//!   subscriptions that reconnect by themselves.
//! - `error`: [`QueueError`], one enum for the crate, and [`redact_url`].
//!
//! # Delivery guarantees
//!
//! - **At least once.** A job enqueued (the call returned `Ok`) is handed to
//!   consumers until one of them acks it. It leaves the queue only by
//!   [`JobQueue::ack`]. With Redis it survives the death of any node; it
//!   is as durable as the Redis server's own persistence settings.
//! - **Reclaim.** A delivery whose holder neither acks nor heartbeats for
//!   [`QueueConfig::reclaim_after`] is handed to the next consumer that calls
//!   [`JobQueue::next`], with [`Delivery::delivery_count`] one higher.
//!   Heartbeat every [`QueueConfig::heartbeat_interval`] while a job runs.
//! - **Exactly once while nobody stalls.** With every holder heartbeating in
//!   time, each job goes to exactly one consumer.
//! - **Order.** Fresh jobs are handed out in enqueue order (reclaimed ones
//!   come first); with several consumers they *finish* in any order.
//! - **Back-pressure.** With [`QueueConfig::max_length`] set, an enqueue that
//!   would exceed it fails [`QueueError::Full`] and adds nothing.
//! - **Redis failures are values.** A refused, dropped, or silent Redis gives
//!   [`QueueError::Unavailable`] (with the URL, never its password) within
//!   [`QueueConfig::operation_timeout`] (plus the blocking time of `next`),
//!   never a panic or a hang. The next call reconnects.
//!
//! # What this asks of the job service
//!
//! Because delivery is at least once, **the same job can run twice**: a node
//! that stalls past `reclaim_after` (GC pause, overloaded host, network
//! partition) and then wakes up may finish a job that another node has
//! meanwhile reclaimed and also runs. So:
//!
//! - **Completing a job must be idempotent**: record the verdict and
//!   artifacts with a conditional update (only if the job is not already
//!   finished, or keyed by job id and attempt) so the second completion is a
//!   no-op, never a second result or a double notification.
//! - **Ack after the verdict is stored**, not before: an ack followed by a
//!   crash before the database write would lose the job.
//! - **Stop on [`QueueError::NotHeld`]**: a heartbeat that gets it means the
//!   job was reclaimed by another node (or finished); the worker should kill
//!   its emulator and not record a verdict.
//! - **Watch [`Delivery::delivery_count`]**: a job that kills every node that
//!   runs it comes back forever; past a threshold, mark it failed and ack it.
//! - Starting a job should check the database state: a delivery for a job
//!   already finished or cancelled is acked and skipped.
//!
//! # Design notes (refinements of the first sketch)
//!
//! - `enqueue(job_id)` stays, as a provided method over
//!   [`JobQueue::enqueue_message`], so a retry can carry its `attempt`.
//! - [`JobQueue::heartbeat`] checks ownership before it refreshes (a Lua
//!   script around `XPENDING` and `XCLAIM ... JUSTID`): a bare `XCLAIM`
//!   would let a node that woke up late steal its job back from the node
//!   that reclaimed it, and both would run it to the end.
//! - The length limit is checked and the entry added in one Lua script,
//!   because `XADD MAXLEN` evicts the *oldest* jobs instead of refusing the
//!   new one, and a client-side `XLEN` check races between nodes.
//! - [`JobQueue::ack`] is `XACK` plus `XDEL` in one `MULTI`, so the stream
//!   holds exactly waiting plus in-progress jobs: `XLEN` is the length to
//!   limit, and no trimming policy is needed.
//! - `next` blocks on a connection of its own (`read_connections`), and
//!   blocks at most `reclaim_after` at a time, so it notices stale
//!   deliveries while it waits for new ones.
//! - [`RedisEvents::subscribe`] is `async` and returns once Redis confirmed
//!   the subscription, so a caller can subscribe, then read the current
//!   state, and miss nothing in between.
//! - Redis 7.0 is the floor: `XAUTOCLAIM` needs 6.2, and 7.0 reports
//!   deleted entries in its reply. Newer commands (`XACKDEL`, `XREADGROUP
//!   CLAIM`, `XNACK`, all 8.2 or later) are not used.
//!
//! # Invariants
//!
//! - This crate knows nothing of jobs beyond their id: no database, no
//!   GraphQL, no emulators. The job service owns job state.
//! - No `unwrap` on anything read from Redis: a stream entry this crate
//!   cannot read is logged, removed, and skipped.

mod error;
mod events;
mod job_queue;
mod memory;
mod redis_queue;

pub use error::{QueueError, UnavailableReason, redact_url};
pub use events::{EventSubscription, EventsConfig, RedisEvents};
pub use job_queue::{Delivery, JobMessage, JobQueue, QueueConfig, QueueLength};
pub use memory::MemoryQueue;
pub use redis_queue::RedisQueue;
