//! The connections the blocking `XREADGROUP` of [`super::RedisQueue`] runs
//! on, apart from the shared one. Redis answers one connection's commands
//! in order, so a read blocked for seconds on the shared connection would
//! hold up every ack and heartbeat of the node behind it, long enough for
//! its running jobs to be reclaimed. Each concurrent read takes a
//! connection of its own; idle ones are kept for reuse, and a kept one
//! found dead (Redis restarted meanwhile) is replaced once, silently.

use std::sync::Mutex;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::streams::{StreamReadOptions, StreamReadReply};
use redis::{AsyncConnectionConfig, AsyncTypedCommands, Client};

use super::lock;
use crate::error::{from_redis, timed_out};
use crate::{QueueError, UnavailableReason};

/// Idle connections kept for reuse; more concurrent reads than this open
/// and close their own.
const MAX_IDLE: usize = 8;

pub(super) struct ReadConnections {
    client: Client,
    idle: Mutex<Vec<MultiplexedConnection>>,
    /// The URL without credentials, for errors.
    url: String,
    operation_timeout: Duration,
}

impl ReadConnections {
    pub(super) fn new(client: Client, url: String, operation_timeout: Duration) -> Self {
        ReadConnections {
            client,
            idle: Mutex::new(Vec::new()),
            url,
            operation_timeout,
        }
    }

    /// `XREADGROUP <options> STREAMS <stream> >`, where `options` blocks for
    /// `block` (or not at all when it is zero). Gives up after `block` plus
    /// the operation timeout.
    pub(super) async fn read(
        &self,
        stream: &str,
        options: &StreamReadOptions,
        block: Duration,
    ) -> Result<Option<StreamReadReply>, QueueError> {
        let idle = lock(&self.idle).pop();
        let Some(idle) = idle else {
            let connection = self.open().await?;
            return self.read_on(connection, stream, options, block).await;
        };
        match self.read_on(idle, stream, options, block).await {
            Err(QueueError::Unavailable {
                reason: UnavailableReason::Connection(error),
                ..
            }) => {
                tracing::debug!(url = %self.url, %error, "an idle read connection had died");
                let connection = self.open().await?;
                self.read_on(connection, stream, options, block).await
            }
            read => read,
        }
    }

    /// One read on `connection`, which goes back to the pool if it is still
    /// usable afterwards.
    async fn read_on(
        &self,
        mut connection: MultiplexedConnection,
        stream: &str,
        options: &StreamReadOptions,
        block: Duration,
    ) -> Result<Option<StreamReadReply>, QueueError> {
        let limit = block + self.operation_timeout;
        let streams = [stream];
        let reading = connection.xread_options(&streams, &[">"], options);
        match tokio::time::timeout(limit, reading).await {
            Ok(Ok(reply)) => {
                self.put_back(connection);
                Ok(reply)
            }
            Ok(Err(error)) => {
                if error.kind() == redis::ErrorKind::Io || error.is_connection_dropped() {
                    // The idle ones most likely share its fate.
                    lock(&self.idle).clear();
                } else {
                    self.put_back(connection);
                }
                Err(from_redis(&self.url, "next", error))
            }
            Err(_) => Err(timed_out(&self.url, "next", limit)),
        }
    }

    async fn open(&self) -> Result<MultiplexedConnection, QueueError> {
        // No response timeout of the library's own: a blocked read answers
        // only when it has an entry or its BLOCK time is over, and
        // `read_on` puts its own limit around that.
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.operation_timeout))
            .set_response_timeout(None);
        let connecting = self
            .client
            .get_multiplexed_async_connection_with_config(&config);
        match tokio::time::timeout(self.operation_timeout, connecting).await {
            Ok(Ok(connection)) => Ok(connection),
            Ok(Err(error)) => Err(from_redis(&self.url, "next (connect)", error)),
            Err(_) => Err(timed_out(
                &self.url,
                "next (connect)",
                self.operation_timeout,
            )),
        }
    }

    fn put_back(&self, connection: MultiplexedConnection) {
        let mut idle = lock(&self.idle);
        if idle.len() < MAX_IDLE {
            idle.push(connection);
        }
    }
}
