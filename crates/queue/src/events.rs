//! [`RedisEvents`]: job progress and session events from whichever node
//! produces them to subscribers on every node, over Redis pub/sub. A GraphQL
//! subscription served by node A can follow a job that node B runs.
//!
//! Pub/sub is fire-and-forget: an event reaches the subscribers connected at
//! that moment, and none that reconnect later. That fits live progress; the
//! durable state (a job's verdict, its artifacts) lives in the database, and
//! a subscriber that must not miss a transition re-reads it there after
//! subscribing.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use redis::aio::{ConnectionManager, PubSubSink, PubSubStream};
use redis::{AsyncTypedCommands, Client, Msg};

use crate::QueueError;
use crate::error::{from_redis, timed_out};
use crate::redis_queue::connect_manager;

/// Timing of [`RedisEvents`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsConfig {
    /// Longest wait for Redis in any one call (connect, publish, subscribe,
    /// ping) before it counts as unavailable.
    pub operation_timeout: Duration,
    /// A subscription that has carried no event for this long pings Redis,
    /// so a connection that died silently (no FIN, say a dropped network
    /// path) is noticed and replaced.
    pub ping_interval: Duration,
    /// Longest pause between attempts to subscribe again after a connection
    /// was lost (the pause starts at 100 ms and doubles).
    pub max_reconnect_delay: Duration,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            operation_timeout: Duration::from_secs(5),
            ping_interval: Duration::from_secs(15),
            max_reconnect_delay: Duration::from_secs(5),
        }
    }
}

/// Publishes and subscribes to text payloads (JSON, by convention) on named
/// channels. Publishing shares one reconnecting connection; each
/// subscription has a connection of its own.
pub struct RedisEvents {
    client: Client,
    publisher: ConnectionManager,
    /// The URL without credentials.
    url: String,
    config: EventsConfig,
}

impl std::fmt::Debug for RedisEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisEvents")
            .field("url", &self.url)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl RedisEvents {
    /// Connects the publishing connection to `url`.
    pub async fn connect(url: &str, config: EventsConfig) -> Result<Self, QueueError> {
        let (client, publisher, url) = connect_manager(url, config.operation_timeout).await?;
        Ok(RedisEvents {
            client,
            publisher,
            url,
            config,
        })
    }

    /// `PUBLISH <channel> <payload>`. Returns how many subscriptions, on all
    /// nodes, received it (0 is not an error: nobody was listening).
    pub async fn publish(&self, channel: &str, payload: &str) -> Result<u64, QueueError> {
        let mut connection = self.publisher.clone();
        let timeout = self.config.operation_timeout;
        match tokio::time::timeout(timeout, connection.publish(channel, payload)).await {
            Ok(Ok(receivers)) => Ok(receivers as u64),
            Ok(Err(error)) => Err(from_redis(&self.url, "publish", error)),
            Err(_) => Err(timed_out(&self.url, "publish", timeout)),
        }
    }

    /// `SUBSCRIBE <channel>` on a new connection. Returns once Redis has
    /// confirmed the subscription, so every event published after this
    /// returns is delivered unless the connection drops; fails
    /// [`QueueError::Unavailable`] if Redis cannot be reached now.
    ///
    /// The stream never ends by itself: when its connection drops it logs a
    /// warning and subscribes again, with back-off, for as long as it is
    /// kept. Events published while it was disconnected are lost. Dropping
    /// it unsubscribes.
    pub async fn subscribe(&self, channel: &str) -> Result<EventSubscription, QueueError> {
        let mut subscriber = Subscriber {
            client: self.client.clone(),
            url: self.url.clone(),
            channel: channel.to_owned(),
            config: self.config.clone(),
            connection: None,
        };
        subscriber.connection = Some(subscriber.open().await?);
        let events = futures_util::stream::unfold(subscriber, |mut subscriber| async move {
            let payload = subscriber.next_payload().await;
            Some((payload, subscriber))
        });
        Ok(EventSubscription {
            channel: channel.to_owned(),
            events: Box::pin(events),
        })
    }
}

/// The payloads published on one channel; see [`RedisEvents::subscribe`].
pub struct EventSubscription {
    channel: String,
    events: Pin<Box<dyn Stream<Item = String> + Send>>,
}

impl EventSubscription {
    /// The channel this subscription listens to.
    pub fn channel(&self) -> &str {
        &self.channel
    }
}

impl std::fmt::Debug for EventSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSubscription")
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

impl Stream for EventSubscription {
    type Item = String;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<String>> {
        self.events.as_mut().poll_next(cx)
    }
}

/// The state behind an [`EventSubscription`]: its connection, when it has
/// one, and what it needs to make a new one.
struct Subscriber {
    client: Client,
    url: String,
    channel: String,
    config: EventsConfig,
    connection: Option<(PubSubSink, PubSubStream)>,
}

/// What woke a waiting subscriber.
enum Wake {
    Message(Option<Msg>),
    PingDue,
}

impl Subscriber {
    async fn open(&self) -> Result<(PubSubSink, PubSubStream), QueueError> {
        let timeout = self.config.operation_timeout;
        let subscribing = async {
            let mut pubsub = self.client.get_async_pubsub().await?;
            pubsub.subscribe(&self.channel).await?;
            Ok(pubsub.split())
        };
        match tokio::time::timeout(timeout, subscribing).await {
            Ok(Ok(connection)) => Ok(connection),
            Ok(Err(error)) => Err(from_redis(&self.url, "subscribe", error)),
            Err(_) => Err(timed_out(&self.url, "subscribe", timeout)),
        }
    }

    /// The next payload, however many reconnections it takes.
    async fn next_payload(&mut self) -> String {
        loop {
            let Some((_, messages)) = self.connection.as_mut() else {
                self.resubscribe().await;
                continue;
            };
            let wake = tokio::select! {
                message = messages.next() => Wake::Message(message),
                () = tokio::time::sleep(self.config.ping_interval) => Wake::PingDue,
            };
            match wake {
                Wake::Message(Some(message)) => match message.get_payload::<String>() {
                    Ok(payload) => return payload,
                    Err(error) => tracing::warn!(
                        url = %self.url,
                        channel = self.channel,
                        %error,
                        "skipping an event whose payload is not text"
                    ),
                },
                Wake::Message(None) => {
                    tracing::warn!(
                        url = %self.url,
                        channel = self.channel,
                        "event subscription lost its Redis connection; subscribing again"
                    );
                    self.connection = None;
                }
                Wake::PingDue => {
                    if let Err(error) = self.ping().await {
                        tracing::warn!(
                            url = %self.url,
                            channel = self.channel,
                            %error,
                            "event subscription's connection does not answer; subscribing again"
                        );
                        self.connection = None;
                    }
                }
            }
        }
    }

    async fn ping(&mut self) -> Result<(), QueueError> {
        let timeout = self.config.operation_timeout;
        let Some((sink, _)) = self.connection.as_mut() else {
            return Ok(());
        };
        match tokio::time::timeout(timeout, sink.ping::<redis::Value>()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(from_redis(&self.url, "ping", error)),
            Err(_) => Err(timed_out(&self.url, "ping", timeout)),
        }
    }

    async fn resubscribe(&mut self) {
        let mut delay = Duration::from_millis(100);
        loop {
            match self.open().await {
                Ok(connection) => {
                    tracing::info!(url = %self.url, channel = self.channel, "event subscription restored");
                    self.connection = Some(connection);
                    return;
                }
                Err(error) => {
                    tracing::warn!(
                        url = %self.url,
                        channel = self.channel,
                        %error,
                        retry_in = ?delay,
                        "cannot subscribe to events yet"
                    );
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(self.config.max_reconnect_delay);
                }
            }
        }
    }
}
