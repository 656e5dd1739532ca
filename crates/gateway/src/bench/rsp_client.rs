//! [`RspClient`]: a minimal RSP client over any byte stream, used by the
//! benchmark and by the integration tests to talk to QEMU's stub directly,
//! through a relay, or through the gateway.
//!
//! It sends packets and reads replies in order; it never sends acks (QEMU
//! does not wait for them, nor does the gateway) and skips the `+` it
//! receives. Every read has a timeout so a test can never hang.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use virserver_rsp::{Decoder, DecoderConfig, Event, encode_packet};

/// A client over `S` (a `TcpStream`, a `UnixStream`, ...).
#[derive(Debug)]
pub struct RspClient<S> {
    stream: S,
    decoder: Decoder,
    buffer: Vec<u8>,
    /// How long one reply may take.
    pub timeout: Duration,
}

impl<S: AsyncRead + AsyncWrite + Unpin> RspClient<S> {
    /// Wraps a connected stream.
    pub fn new(stream: S) -> RspClient<S> {
        RspClient {
            stream,
            decoder: Decoder::with_config(DecoderConfig {
                max_packet_size: 1 << 20,
                verify_checksums: true,
            }),
            buffer: vec![0; 64 * 1024],
            timeout: Duration::from_secs(10),
        }
    }

    /// Sends one packet (`payload` is escaped and framed).
    pub async fn send(&mut self, payload: &[u8]) -> io::Result<()> {
        let mut frame = Vec::with_capacity(payload.len() + 4);
        encode_packet(payload, &mut frame);
        self.stream.write_all(&frame).await
    }

    /// Sends bytes as they are (junk, half packets, 0x03).
    pub async fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// The next packet's payload (decoded), skipping acks.
    pub async fn recv(&mut self) -> io::Result<Vec<u8>> {
        loop {
            while let Some(event) = self.decoder.next_event() {
                if let Event::Packet(packet) = event {
                    return packet
                        .decoded()
                        .map(|payload| payload.into_owned())
                        .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error));
                }
            }
            let read = tokio::time::timeout(self.timeout, self.stream.read(&mut self.buffer));
            let count = read
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no reply in time"))??;
            if count == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed",
                ));
            }
            self.decoder.feed(&self.buffer[..count]);
        }
    }

    /// Sends a packet and returns its reply.
    pub async fn request(&mut self, payload: &[u8]) -> io::Result<Vec<u8>> {
        self.send(payload).await?;
        self.recv().await
    }

    /// Sends a `qRcmd` and collects its `O` output until the final reply;
    /// returns (output text, final reply).
    pub async fn monitor(&mut self, command: &str) -> io::Result<(String, Vec<u8>)> {
        let mut payload = b"qRcmd,".to_vec();
        virserver_rsp::hex::encode_hex(command.as_bytes(), &mut payload);
        self.send(&payload).await?;
        let mut output = Vec::new();
        loop {
            let reply = self.recv().await?;
            match virserver_rsp::packets::parse_console_output(&reply) {
                Some(text) => output.extend_from_slice(&text),
                None => return Ok((String::from_utf8_lossy(&output).into_owned(), reply)),
            }
        }
    }

    /// Reads target.xml to its end (QEMU 7.2 needs this before `g` has
    /// its real layout).
    pub async fn read_target_xml(&mut self) -> io::Result<Vec<u8>> {
        let mut document = Vec::new();
        loop {
            let request = format!("qXfer:features:read:target.xml:{:x},ffb", document.len());
            let reply = self.request(request.as_bytes()).await?;
            match reply.split_first() {
                Some((b'm', data)) if !data.is_empty() => document.extend_from_slice(data),
                Some((b'l', data)) => {
                    document.extend_from_slice(data);
                    return Ok(document);
                }
                _ => return Err(io::Error::other("target.xml unreadable")),
            }
        }
    }

    /// Reads `length` bytes at `addr`, one request of at most `chunk` bytes
    /// at a time.
    pub async fn read_memory_sequential(
        &mut self,
        addr: u64,
        length: u64,
        chunk: u64,
    ) -> io::Result<Vec<u8>> {
        let mut data = Vec::with_capacity(length as usize);
        for (start, size) in virserver_rsp::packets::split_read(addr, length, chunk) {
            let reply = self
                .request(format!("m{start:x},{size:x}").as_bytes())
                .await?;
            let bytes = virserver_rsp::hex::decode_hex(&reply)
                .map_err(|_| io::Error::other(format!("m{start:x}: {}", reply.escape_ascii())))?;
            data.extend_from_slice(&bytes);
        }
        Ok(data)
    }

    /// The underlying stream.
    pub fn into_inner(self) -> S {
        self.stream
    }
}
