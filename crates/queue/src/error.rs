//! The crate's one error type, [`QueueError`], and the two rules every
//! backend follows when it builds one: a Redis failure is sorted into
//! "Redis is unreachable, try again later" ([`QueueError::Unavailable`])
//! versus "Redis answered and said no" ([`QueueError::Rejected`]), and no
//! message ever carries the password of the URL it was connected with
//! ([`redact_url`]).

use std::time::Duration;

use redis::{ErrorKind, RedisError, ServerErrorKind};

/// Everything that can go wrong in a queue or event operation.
///
/// Only [`QueueError::Unavailable`] is transient (see
/// [`QueueError::is_transient`]): the job service logs it and retries with a
/// back-off. [`QueueError::Full`] is back-pressure to report to whoever
/// submitted the job. [`QueueError::NotHeld`] tells a worker to stop: its job
/// now belongs to another node, or is finished. The rest are configuration or
/// programming errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// The queue already holds its configured maximum of jobs, counting
    /// waiting and in-progress ones; nothing was added.
    #[error(
        "the job queue is full: {length} jobs waiting or in progress, the limit is {max_length}"
    )]
    Full {
        /// Jobs waiting plus in progress when the enqueue was refused.
        length: u64,
        /// [`crate::QueueConfig::max_length`].
        max_length: u64,
    },

    /// Redis could not be reached, dropped the connection, or did not answer
    /// in time. Retry later.
    #[error("Redis at {url} is unavailable ({operation}): {reason}")]
    Unavailable {
        /// The server's URL without user name, password or query.
        url: String,
        /// What the queue was doing, such as `"enqueue"` or `"next"`.
        operation: &'static str,
        /// The underlying failure.
        #[source]
        reason: UnavailableReason,
    },

    /// Redis answered with an error, or with a reply this crate cannot read:
    /// a wrong key type, a missing permission, a failed authentication.
    /// Retrying will not help.
    #[error("Redis at {url} rejected {operation}: {source}")]
    Rejected {
        /// The server's URL without user name, password or query.
        url: String,
        /// What the queue was doing.
        operation: &'static str,
        /// The error Redis or the client library gave.
        #[source]
        source: RedisError,
    },

    /// A heartbeat for a delivery this consumer no longer holds: another
    /// consumer reclaimed it (`owner` is that consumer), or it was acked and
    /// is gone (`owner` is `None`). The worker should stop running the job.
    #[error("job {job_id} (delivery {delivery_id}) is no longer held by {consumer}: {}", describe_owner(.owner))]
    NotHeld {
        /// The job of the delivery.
        job_id: String,
        /// The delivery's entry id.
        delivery_id: String,
        /// The consumer that sent the heartbeat.
        consumer: String,
        /// The consumer that holds it now, if anyone does.
        owner: Option<String>,
    },

    /// The URL given to `connect` is not a Redis URL.
    #[error("invalid Redis URL {url}: {source}")]
    InvalidUrl {
        /// The URL without user name, password or query.
        url: String,
        /// The client library's complaint.
        #[source]
        source: RedisError,
    },
}

impl QueueError {
    /// True when the same call may succeed later without any change:
    /// Redis was unreachable or slow.
    pub fn is_transient(&self) -> bool {
        matches!(self, QueueError::Unavailable { .. })
    }
}

/// Why Redis counts as unavailable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UnavailableReason {
    /// No answer within the operation timeout: a hung server, a black-holed
    /// network path, or a reconnection still retrying.
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
    /// The connection was refused or dropped, or Redis said it cannot serve
    /// now (loading, read-only replica).
    #[error(transparent)]
    Connection(RedisError),
}

fn describe_owner(owner: &Option<String>) -> String {
    match owner {
        Some(owner) => format!("consumer {owner} reclaimed it"),
        None => "it is no longer pending (acked, or removed from the queue)".to_owned(),
    }
}

/// The URL as it may appear in logs and errors: scheme, host, port and path,
/// without user name, password, query or fragment.
///
/// ```
/// assert_eq!(
///     virserver_queue::redact_url("redis://ci:s3cret@cache.internal:6380/2?protocol=resp3"),
///     "redis://cache.internal:6380/2"
/// );
/// ```
pub fn redact_url(url: &str) -> String {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    let without_query = &url[..end];
    let (scheme, rest) = match without_query.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, without_query),
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_credentials, host)| host);
    match scheme {
        Some(scheme) => format!("{scheme}://{host}{path}"),
        None => format!("{host}{path}"),
    }
}

/// Sorts a client-library error into [`QueueError::Unavailable`] (the
/// connection or the server's state; retry later) or
/// [`QueueError::Rejected`] (an answer that will not change).
pub(crate) fn from_redis(url: &str, operation: &'static str, error: RedisError) -> QueueError {
    let server_cannot_serve_now = matches!(
        error.kind(),
        ErrorKind::Server(
            ServerErrorKind::BusyLoading
                | ServerErrorKind::MasterDown
                | ServerErrorKind::TryAgain
                | ServerErrorKind::ClusterDown
                | ServerErrorKind::ReadOnly
        )
    );
    if error.kind() == ErrorKind::Io || error.is_connection_dropped() || server_cannot_serve_now {
        QueueError::Unavailable {
            url: url.to_owned(),
            operation,
            reason: UnavailableReason::Connection(error),
        }
    } else {
        QueueError::Rejected {
            url: url.to_owned(),
            operation,
            source: error,
        }
    }
}

/// The error for an operation that got no answer within `after`.
pub(crate) fn timed_out(url: &str, operation: &'static str, after: Duration) -> QueueError {
    QueueError::Unavailable {
        url: url.to_owned(),
        operation,
        reason: UnavailableReason::TimedOut(after),
    }
}

/// True for Redis's `NOGROUP` reply: the stream or its consumer group is
/// gone (the key was deleted or expired), so the group must be created again.
pub(crate) fn is_no_group(error: &RedisError) -> bool {
    error.code() == Some("NOGROUP") || error.to_string().contains("NOGROUP")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: &str) {
        assert_eq!(redact_url(input), expected, "redact_url({input:?})");
    }

    #[test]
    fn redacts_credentials_query_and_fragment() {
        check("redis://127.0.0.1:6379", "redis://127.0.0.1:6379");
        check("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0");
        check("redis://:pw@127.0.0.1:6379/0", "redis://127.0.0.1:6379/0");
        check("redis://user:p%40ss@host/", "redis://host/");
        check("redis://user:p@ss@host:1/3", "redis://host:1/3");
        check("rediss://u:p@host?password=x#frag", "rediss://host");
        check(
            "redis+unix:///run/redis.sock?pass=x",
            "redis+unix:///run/redis.sock",
        );
        check("user:secret@host:6379", "host:6379");
        check("", "");
    }

    #[test]
    fn classifies_refused_connection_as_unavailable() {
        let refused = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        let error = from_redis("redis://h", "enqueue", refused);
        assert!(error.is_transient(), "{error:?}");
        assert!(error.to_string().contains("redis://h"), "{error}");
    }

    #[test]
    fn classifies_type_error_as_rejected() {
        let wrong = RedisError::from((ErrorKind::UnexpectedReturnType, "wrong type"));
        let error = from_redis("redis://h", "len", wrong);
        assert!(matches!(error, QueueError::Rejected { .. }), "{error:?}");
        assert!(!error.is_transient());
    }

    #[test]
    fn not_held_says_who_holds_it() {
        let error = QueueError::NotHeld {
            job_id: "j".into(),
            delivery_id: "1-0".into(),
            consumer: "a".into(),
            owner: Some("b".into()),
        };
        assert_eq!(
            error.to_string(),
            "job j (delivery 1-0) is no longer held by a: consumer b reclaimed it"
        );
    }
}
