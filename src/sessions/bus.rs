//! Session events across nodes: with Redis, each node publishes its sessions' events
//! on one channel, and feeds the other nodes' events to its local subscribers.

use std::sync::Arc;

use virserver_queue::RedisEvents;

use super::SessionEvent;

/// The Redis channel of session events; each message names the node it came from.
pub(super) const BUS_CHANNEL: &str = "virserver:sessions";

#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct BusMessage {
    pub node: String,
    pub event: SessionEvent,
}

/// Publishes this node's session events for the other nodes.
pub(super) struct SessionBus {
    pub events: Arc<RedisEvents>,
    pub node: String,
}

impl SessionBus {
    pub async fn publish(&self, event: &SessionEvent) {
        let message = BusMessage {
            node: self.node.clone(),
            event: event.clone(),
        };
        let Ok(text) = serde_json::to_string(&message) else {
            return;
        };
        if let Err(error) = self.events.publish(BUS_CHANNEL, &text).await {
            tracing::warn!(%error, "session event not sent to other nodes");
        }
    }
}
