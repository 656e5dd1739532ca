//! [`MemoryQueue`]: the job queue of a single node that has no Redis (the
//! server's embedded mode). Same contract as the Redis queue, including
//! reclaim of deliveries whose worker stopped heartbeating (a worker task
//! that hung, or was dropped without acking), so the job service has one
//! code path. It keeps nothing on disk: the embedded mode persists jobs in
//! its database and re-enqueues them at start-up.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::{Delivery, JobMessage, JobQueue, QueueConfig, QueueError, QueueLength};

/// An in-process [`JobQueue`]: a FIFO of waiting messages, a table of held
/// deliveries, and a [`Notify`] that wakes blocked [`JobQueue::next`] calls.
///
/// Delivery ids look like Redis stream ids (`"7-0"`) so logs read the same.
#[derive(Debug)]
pub struct MemoryQueue {
    state: Mutex<State>,
    /// Woken on every enqueue; waiters re-check the state.
    enqueued: Notify,
    reclaim_after: Duration,
    max_length: Option<u64>,
}

#[derive(Debug, Default)]
struct State {
    next_sequence: u64,
    waiting: VecDeque<(u64, JobMessage)>,
    /// Keyed by sequence, so iteration goes oldest first, like Redis's
    /// pending entries list.
    held: BTreeMap<u64, Held>,
}

#[derive(Debug)]
struct Held {
    message: JobMessage,
    consumer: String,
    /// Last delivery or heartbeat.
    last_seen: Instant,
    delivery_count: u64,
}

/// What one look at the state found.
enum Take {
    Delivered(Delivery),
    /// Nothing to do now; the earliest moment a held delivery goes stale.
    Nothing {
        next_stale_at: Option<Instant>,
    },
}

impl MemoryQueue {
    /// An empty queue using `config.reclaim_after` and `config.max_length`
    /// (`stream`, `group` and `operation_timeout` are Redis settings).
    pub fn new(config: &QueueConfig) -> Self {
        MemoryQueue {
            state: Mutex::new(State {
                next_sequence: 1,
                ..State::default()
            }),
            enqueued: Notify::new(),
            reclaim_after: config.reclaim_after,
            max_length: config.max_length,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // No code below panics while holding the lock, so a poisoned lock
        // still guards a consistent state.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn take(&self, consumer: &str, now: Instant) -> Take {
        let mut state = self.state();
        let stale = state
            .held
            .iter_mut()
            .find(|(_, held)| now.duration_since(held.last_seen) >= self.reclaim_after);
        if let Some((&sequence, held)) = stale {
            held.consumer = consumer.to_owned();
            held.last_seen = now;
            held.delivery_count += 1;
            return Take::Delivered(delivery(sequence, held));
        }
        if let Some((sequence, message)) = state.waiting.pop_front() {
            let held = Held {
                message,
                consumer: consumer.to_owned(),
                last_seen: now,
                delivery_count: 1,
            };
            let delivered = delivery(sequence, &held);
            state.held.insert(sequence, held);
            return Take::Delivered(delivered);
        }
        let next_stale_at = state
            .held
            .values()
            .map(|held| held.last_seen + self.reclaim_after)
            .min();
        Take::Nothing { next_stale_at }
    }
}

fn delivery(sequence: u64, held: &Held) -> Delivery {
    Delivery {
        job_id: held.message.job_id.clone(),
        attempt: held.message.attempt,
        delivery_id: format!("{sequence}-0"),
        delivery_count: held.delivery_count,
    }
}

fn parse_delivery_id(delivery_id: &str) -> Option<u64> {
    delivery_id.strip_suffix("-0")?.parse().ok()
}

#[async_trait]
impl JobQueue for MemoryQueue {
    async fn enqueue_message(&self, message: &JobMessage) -> Result<(), QueueError> {
        {
            let mut state = self.state();
            let length = (state.waiting.len() + state.held.len()) as u64;
            if let Some(max_length) = self.max_length
                && length >= max_length
            {
                return Err(QueueError::Full { length, max_length });
            }
            let sequence = state.next_sequence;
            state.next_sequence += 1;
            state.waiting.push_back((sequence, message.clone()));
        }
        self.enqueued.notify_waiters();
        Ok(())
    }

    async fn next(&self, consumer: &str, wait: Duration) -> Result<Option<Delivery>, QueueError> {
        let started = Instant::now();
        // A wait too long to represent is as good as forever.
        let deadline = started
            .checked_add(wait)
            .unwrap_or_else(|| started + Duration::from_secs(365 * 24 * 3600));
        loop {
            // Register for the wake-up before looking, so an enqueue between
            // the look and the sleep is not missed.
            let enqueued = self.enqueued.notified();
            tokio::pin!(enqueued);
            enqueued.as_mut().enable();

            let now = Instant::now();
            let next_stale_at = match self.take(consumer, now) {
                Take::Delivered(delivery) => return Ok(Some(delivery)),
                Take::Nothing { next_stale_at } => next_stale_at,
            };
            if now >= deadline {
                return Ok(None);
            }
            let wake_at = next_stale_at.map_or(deadline, |stale_at| stale_at.min(deadline));
            tokio::select! {
                () = &mut enqueued => {}
                () = tokio::time::sleep_until(wake_at) => {}
            }
        }
    }

    async fn ack(&self, delivery: &Delivery) -> Result<(), QueueError> {
        if let Some(sequence) = parse_delivery_id(&delivery.delivery_id) {
            self.state().held.remove(&sequence);
        }
        Ok(())
    }

    async fn heartbeat(&self, consumer: &str, delivery: &Delivery) -> Result<(), QueueError> {
        let mut state = self.state();
        let held = parse_delivery_id(&delivery.delivery_id)
            .and_then(|sequence| state.held.get_mut(&sequence));
        let owner = match held {
            Some(held) if held.consumer == consumer => {
                held.last_seen = Instant::now();
                return Ok(());
            }
            Some(held) => Some(held.consumer.clone()),
            None => None,
        };
        Err(QueueError::NotHeld {
            job_id: delivery.job_id.clone(),
            delivery_id: delivery.delivery_id.clone(),
            consumer: consumer.to_owned(),
            owner,
        })
    }

    async fn len(&self) -> Result<QueueLength, QueueError> {
        let state = self.state();
        Ok(QueueLength {
            waiting: state.waiting.len() as u64,
            in_progress: state.held.len() as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(reclaim_after_ms: u64) -> QueueConfig {
        QueueConfig {
            reclaim_after: Duration::from_millis(reclaim_after_ms),
            ..QueueConfig::default()
        }
    }

    /// Virtual time: the reclaim deadline is exact, not a sleep that may run
    /// late on a loaded machine.
    #[tokio::test(start_paused = true)]
    async fn reclaims_exactly_at_reclaim_after() {
        let queue = MemoryQueue::new(&config(1_000));
        queue.enqueue("job-1").await.unwrap();
        let first = queue.next("a", Duration::ZERO).await.unwrap().unwrap();

        tokio::time::advance(Duration::from_millis(999)).await;
        assert_eq!(queue.next("b", Duration::ZERO).await.unwrap(), None);

        tokio::time::advance(Duration::from_millis(1)).await;
        let second = queue.next("b", Duration::ZERO).await.unwrap().unwrap();
        assert_eq!(second.delivery_id, first.delivery_id);
        assert_eq!(second.delivery_count, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn blocked_next_wakes_when_a_delivery_goes_stale() {
        let queue = MemoryQueue::new(&config(1_000));
        queue.enqueue("job-1").await.unwrap();
        queue.next("a", Duration::ZERO).await.unwrap().unwrap();
        let started = Instant::now();
        let reclaimed = queue.next("b", Duration::from_secs(60)).await.unwrap();
        assert_eq!(reclaimed.map(|d| d.delivery_count), Some(2));
        assert_eq!(started.elapsed(), Duration::from_secs(1));
    }

    #[test]
    fn delivery_ids_round_trip() {
        assert_eq!(parse_delivery_id("42-0"), Some(42));
        assert_eq!(parse_delivery_id("1732550000000-1"), None);
        assert_eq!(parse_delivery_id("x"), None);
    }
}
