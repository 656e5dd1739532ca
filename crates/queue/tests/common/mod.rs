//! What the integration tests share: where the real Redis is, key names no
//! other test uses, a guard that deletes them even when a test panics, the
//! two queue backends behind one [`Backend`] trait so the contract tests run
//! unchanged on both, and (in `proxy`) TCP middlemen that cut or swallow
//! connections.
//!
//! The Redis tests need a server: `VIRSERVER_TEST_REDIS_URL`, by default
//! `redis://127.0.0.1:6379` (CI's `.ci/run` starts one). They fail, rather
//! than skip, when it is not there.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

pub mod proxy;

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use virserver_queue::{JobQueue, MemoryQueue, QueueConfig, RedisQueue};

/// The test Redis server's URL.
pub fn redis_url() -> String {
    std::env::var("VIRSERVER_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// The test Redis server's address, for proxies to forward to.
pub fn redis_address() -> SocketAddr {
    let url = redis_url();
    let authority = url
        .split_once("://")
        .map_or(url.as_str(), |(_, rest)| rest)
        .split('/')
        .next()
        .unwrap_or_default();
    let host_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    host_port
        .to_socket_addrs()
        .ok()
        .and_then(|mut addresses| addresses.next())
        .unwrap_or_else(|| panic!("cannot resolve the test Redis address in {url}"))
}

/// A Redis key (or channel) name unique to this test run.
pub fn unique_name(purpose: &str) -> String {
    format!(
        "virserver-queue-test:{purpose}:{}",
        uuid::Uuid::new_v4().simple()
    )
}

/// Deletes its keys when dropped, also when the test panicked, so parallel
/// and failed runs leave nothing behind in the shared Redis.
pub struct RedisKeys {
    keys: Vec<String>,
}

impl RedisKeys {
    pub fn new(keys: impl IntoIterator<Item = String>) -> Self {
        RedisKeys {
            keys: keys.into_iter().collect(),
        }
    }
}

impl Drop for RedisKeys {
    fn drop(&mut self) {
        let deleted = redis::Client::open(redis_url())
            .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(2)))
            .and_then(|mut connection| redis::cmd("DEL").arg(&self.keys).exec(&mut connection));
        if let Err(error) = deleted {
            eprintln!("could not delete test keys {:?}: {error}", self.keys);
        }
    }
}

/// A raw connection for a test to look at or tamper with Redis directly.
pub async fn raw_connection() -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis_url())
        .expect("test Redis URL")
        .get_multiplexed_async_connection()
        .await
        .expect("the test Redis server at VIRSERVER_TEST_REDIS_URL (default redis://127.0.0.1:6379) must be running")
}

/// A port on 127.0.0.1 that nothing listens on (it did a moment ago).
pub fn refused_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("local address").port()
}

/// A queue backend under test: hands out handles on one shared queue, one
/// per node.
#[async_trait]
pub trait Backend: Send + Sync {
    /// `nodes` handles on one fresh queue, as that many server processes
    /// would have.
    async fn nodes(
        &self,
        reclaim_after: Duration,
        max_length: Option<u64>,
        nodes: usize,
    ) -> Vec<Arc<dyn JobQueue>>;
}

/// [`MemoryQueue`]: every node shares the one in-process queue.
pub struct MemoryBackend;

#[async_trait]
impl Backend for MemoryBackend {
    async fn nodes(
        &self,
        reclaim_after: Duration,
        max_length: Option<u64>,
        nodes: usize,
    ) -> Vec<Arc<dyn JobQueue>> {
        let config = QueueConfig {
            reclaim_after,
            max_length,
            ..QueueConfig::default()
        };
        let queue: Arc<dyn JobQueue> = Arc::new(MemoryQueue::new(&config));
        vec![queue; nodes]
    }
}

/// [`RedisQueue`]: each node its own connections to the real Redis, on a
/// stream and group unique to this test.
pub struct RedisBackend {
    pub stream: String,
    pub group: String,
    _keys: RedisKeys,
}

impl RedisBackend {
    pub fn new() -> Self {
        let stream = unique_name("jobs");
        RedisBackend {
            group: format!("{stream}:nodes"),
            _keys: RedisKeys::new([stream.clone()]),
            stream,
        }
    }

    pub fn config(&self, reclaim_after: Duration, max_length: Option<u64>) -> QueueConfig {
        QueueConfig {
            stream: self.stream.clone(),
            group: self.group.clone(),
            reclaim_after,
            max_length,
            operation_timeout: Duration::from_secs(5),
        }
    }

    pub async fn connect(&self, reclaim_after: Duration, max_length: Option<u64>) -> RedisQueue {
        RedisQueue::connect(&redis_url(), self.config(reclaim_after, max_length))
            .await
            .expect("the test Redis server at VIRSERVER_TEST_REDIS_URL (default redis://127.0.0.1:6379) must be running")
    }
}

#[async_trait]
impl Backend for RedisBackend {
    async fn nodes(
        &self,
        reclaim_after: Duration,
        max_length: Option<u64>,
        nodes: usize,
    ) -> Vec<Arc<dyn JobQueue>> {
        let mut handles: Vec<Arc<dyn JobQueue>> = Vec::new();
        for _ in 0..nodes {
            handles.push(Arc::new(self.connect(reclaim_after, max_length).await));
        }
        handles
    }
}
