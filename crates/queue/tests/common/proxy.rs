//! TCP middlemen between the code under test and Redis, for the failures a
//! healthy local Redis never shows: [`TcpProxy`] forwards until told to cut
//! its connections or stop listening (a Redis restart, a dropped network),
//! and [`SilentServer`] accepts connections and never answers (a hung
//! server, a black-holed path). Cutting only our own connections keeps the
//! other tests that share the Redis server undisturbed.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Forwards 127.0.0.1:`port` to an upstream address.
pub struct TcpProxy {
    address: SocketAddr,
    upstream: SocketAddr,
    accept_loop: Option<JoinHandle<()>>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl TcpProxy {
    /// Listens on a free port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let mut proxy = TcpProxy {
            address: listener.local_addr().expect("proxy address"),
            upstream,
            accept_loop: None,
            connections: Arc::default(),
        };
        proxy.serve(listener);
        proxy
    }

    /// `redis://` URL of the proxy, with `credentials` (`user:password@`)
    /// if given.
    pub fn url(&self, credentials: &str) -> String {
        format!("redis://{credentials}{}", self.address)
    }

    /// Closes every forwarded connection (both ends see it drop); new
    /// connections are still accepted.
    pub fn cut_connections(&self) {
        let connections = std::mem::take(&mut *self.connections.lock().expect("lock"));
        for connection in connections {
            connection.abort();
        }
    }

    /// Cuts every connection and stops listening: new connections are
    /// refused, as by a Redis that went down.
    pub fn stop(&mut self) {
        if let Some(accept_loop) = self.accept_loop.take() {
            accept_loop.abort();
        }
        self.cut_connections();
    }

    /// Listens again on the same port after [`TcpProxy::stop`], as a Redis
    /// that came back.
    pub async fn restart(&mut self) {
        let mut attempts = 0;
        let listener = loop {
            match TcpListener::bind(self.address).await {
                Ok(listener) => break listener,
                Err(error) if attempts < 50 => {
                    attempts += 1;
                    eprintln!("proxy rebind {}: {error}; retrying", self.address);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(error) => panic!("cannot listen on {} again: {error}", self.address),
            }
        };
        self.serve(listener);
    }

    fn serve(&mut self, listener: TcpListener) {
        let upstream = self.upstream;
        let connections = Arc::clone(&self.connections);
        self.accept_loop = Some(tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let forward = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                connections.lock().expect("lock").push(forward);
            }
        }));
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Accepts TCP connections and never sends a byte.
pub struct SilentServer {
    pub address: SocketAddr,
    accept_loop: JoinHandle<()>,
}

impl SilentServer {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let accept_loop = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        SilentServer {
            address,
            accept_loop,
        }
    }
}

impl Drop for SilentServer {
    fn drop(&mut self) {
        self.accept_loop.abort();
    }
}
