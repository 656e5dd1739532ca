//! Session events across nodes: with Redis, each node publishes its sessions' events
//! on one channel, and feeds the other nodes' events to its local subscribers.
//! Publishing never waits for Redis (see [`SessionBus`]): a stopped Redis must not
//! stall power, debugging or resume on this node.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use virserver_queue::RedisEvents;

use super::SessionEvent;

/// The Redis channel of session events; each message names the node it came from.
pub(super) const BUS_CHANNEL: &str = "virserver:sessions";

#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct BusMessage {
    pub node: String,
    pub event: SessionEvent,
}

/// Events waiting for Redis before new ones are dropped (with a warning): a slow or
/// stopped Redis costs other nodes events, never this node's state changes their time.
const OUTBOX: usize = 4096;

/// How long a closing bus still tries to send what it holds.
const FLUSH_AT_CLOSE: Duration = Duration::from_secs(2);

/// Publishes this node's session events for the other nodes. Publishing only queues:
/// a state change is announced under its session's state lock, and no lock may wait on
/// the network; one task sends the queue in order.
pub(super) struct SessionBus {
    pub events: Arc<RedisEvents>,
    node: String,
    outbox: mpsc::Sender<String>,
    closing: CancellationToken,
}

impl SessionBus {
    /// The bus, with its sender on `tracker`; it runs until [`SessionBus::close`].
    pub fn start(events: Arc<RedisEvents>, node: String, tracker: &TaskTracker) -> Self {
        let (outbox, queued) = mpsc::channel(OUTBOX);
        let closing = CancellationToken::new();
        tracker.spawn(send_in_order(events.clone(), queued, closing.clone()));
        Self {
            events,
            node,
            outbox,
            closing,
        }
    }

    /// Queues `event` for the other nodes; never waits.
    pub fn publish(&self, event: &SessionEvent) {
        let message = BusMessage {
            node: self.node.clone(),
            event: event.clone(),
        };
        let Ok(text) = serde_json::to_string(&message) else {
            return;
        };
        if let Err(mpsc::error::TrySendError::Full(_)) = self.outbox.try_send(text) {
            tracing::warn!(
                session = %event.session_id,
                "{OUTBOX} session events wait for Redis: this one is not sent to other nodes"
            );
        }
    }

    /// Ends the sender once it has sent what it holds (for at most [`FLUSH_AT_CLOSE`]).
    pub fn close(&self) {
        self.closing.cancel();
    }
}

async fn send_in_order(
    events: Arc<RedisEvents>,
    mut queued: mpsc::Receiver<String>,
    closing: CancellationToken,
) {
    let send = |text: String| {
        let events = events.clone();
        async move {
            if let Err(error) = events.publish(BUS_CHANNEL, &text).await {
                tracing::warn!(%error, "session event not sent to other nodes");
            }
        }
    };
    loop {
        let text = tokio::select! {
            biased;
            text = queued.recv() => text,
            () = closing.cancelled() => break,
        };
        let Some(text) = text else { return };
        send(text).await;
    }
    let flush = async {
        while let Ok(text) = queued.try_recv() {
            send(text).await;
        }
    };
    let _ = tokio::time::timeout(FLUSH_AT_CLOSE, flush).await;
}
