//! A small DAP client: requests with their responses, events collected in arrival
//! order, over any byte stream (a TCP endpoint, an adapter's or GDB's stdio). Used by
//! `virserver bench dap` and by the tests.

use std::collections::VecDeque;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use virserver_dap::{Decoder, encode};

/// How long a message may take: long enough for a QEMU boot and a GDB attach on a
/// loaded 2-core machine; a "did not hang" bound, never a speed limit.
pub const WAIT: Duration = Duration::from_secs(60);

pub struct DapClient {
    reader: Box<dyn AsyncRead + Unpin + Send>,
    writer: Box<dyn AsyncWrite + Unpin + Send>,
    decoder: Decoder,
    seq: u64,
    /// Messages read but not yet asked for.
    inbox: VecDeque<Value>,
    /// Every event seen, for checks at the end.
    pub events: Vec<Value>,
}

impl DapClient {
    pub fn new(
        reader: impl AsyncRead + Unpin + Send + 'static,
        writer: impl AsyncWrite + Unpin + Send + 'static,
    ) -> Self {
        Self {
            reader: Box::new(reader),
            writer: Box::new(writer),
            decoder: Decoder::new(),
            seq: 0,
            inbox: VecDeque::new(),
            events: Vec::new(),
        }
    }

    pub async fn tcp(address: &str) -> anyhow::Result<Self> {
        let socket = tokio::net::TcpStream::connect(address)
            .await
            .with_context(|| format!("connecting to the DAP endpoint {address}"))?;
        socket.set_nodelay(true)?;
        let (read, write) = socket.into_split();
        Ok(Self::new(read, write))
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.writer.write_all(bytes).await?;
        self.writer.flush().await?;
        Ok(())
    }

    /// Sends a request; returns its seq.
    pub async fn send(&mut self, command: &str, arguments: Value) -> anyhow::Result<u64> {
        self.seq += 1;
        let message =
            json!({"seq": self.seq, "type": "request", "command": command, "arguments": arguments});
        self.send_raw(&encode(&message)).await?;
        Ok(self.seq)
    }

    /// The next message, `None` at the end of the stream.
    async fn read(&mut self) -> anyhow::Result<Option<Value>> {
        let mut buffer = [0u8; 16384];
        loop {
            if let Some(message) = self.decoder.next_message() {
                let message = message.context("the adapter sent bad DAP")?;
                if message["type"] == "event" {
                    self.events.push(message.clone());
                }
                return Ok(Some(message));
            }
            let n = tokio::time::timeout(WAIT, self.reader.read(&mut buffer))
                .await
                .with_context(|| format!("the adapter answered nothing in {WAIT:?}"))?
                .unwrap_or(0);
            if n == 0 {
                return Ok(None);
            }
            self.decoder.feed(&buffer[..n]);
        }
    }

    /// The first message matching `wanted`, from the inbox or the stream.
    pub async fn wait_for(&mut self, wanted: impl Fn(&Value) -> bool) -> anyhow::Result<Value> {
        if let Some(index) = self.inbox.iter().position(&wanted) {
            return Ok(self.inbox.remove(index).expect("found"));
        }
        loop {
            let Some(message) = self.read().await? else {
                bail!("the adapter closed the stream while waited on");
            };
            if wanted(&message) {
                return Ok(message);
            }
            self.inbox.push_back(message);
        }
    }

    pub async fn response(&mut self, seq: u64) -> anyhow::Result<Value> {
        self.wait_for(|m| m["type"] == "response" && m["request_seq"] == seq)
            .await
    }

    pub async fn event(&mut self, name: &str) -> anyhow::Result<Value> {
        self.wait_for(|m| m["type"] == "event" && m["event"] == name)
            .await
    }

    /// A request that must succeed; returns its body.
    pub async fn call(&mut self, command: &str, arguments: Value) -> anyhow::Result<Value> {
        let seq = self.send(command, arguments).await?;
        let response = self.response(seq).await?;
        if response["success"] != true {
            bail!("{command} failed: {response}");
        }
        Ok(response["body"].clone())
    }

    /// A request that must fail; returns its message.
    pub async fn refused(&mut self, command: &str, arguments: Value) -> anyhow::Result<String> {
        let seq = self.send(command, arguments).await?;
        let response = self.response(seq).await?;
        if response["success"] != false {
            bail!("{command} succeeded: {response}");
        }
        Ok(response["message"].as_str().unwrap_or_default().to_owned())
    }

    /// Waits until the stream ends (the adapter closed it).
    pub async fn closed(&mut self) -> anyhow::Result<()> {
        while self.read().await?.is_some() {}
        Ok(())
    }

    /// The text of every `output` event of `category` seen so far.
    pub fn output(&self, category: &str) -> String {
        self.events
            .iter()
            .filter(|e| e["event"] == "output" && e["body"]["category"] == category)
            .filter_map(|e| e["body"]["output"].as_str())
            .collect()
    }
}
