//! A session's console: output chunks numbered by `seq`, a bounded replay of recent
//! output for late subscribers, and a broadcast for live ones. Pushing never waits for
//! a subscriber: a slow one falls behind, and the next chunk it gets says how many it
//! missed (`dropped`), so the emulator is never blocked by a reader.
//!
//! Chunks are text: bytes are cut at UTF-8 character boundaries, so a multi-byte
//! character split across two reads is not mangled.

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::broadcast;

/// How many chunks a live subscriber may fall behind before it starts to miss some.
const LIVE_CAPACITY: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UartChunk {
    pub seq: u64,
    pub data: String,
    /// How many chunks this subscriber missed just before this one.
    pub dropped: u64,
    /// The CPU's instruction count when the chunk was shown, where known (a replay's
    /// console follows the CPU by it).
    pub instructions: Option<u64>,
}

pub struct UartLog {
    inner: Mutex<Inner>,
    live: broadcast::Sender<UartChunk>,
}

struct Inner {
    next_seq: u64,
    recent: VecDeque<UartChunk>,
    recent_bytes: usize,
    replay_limit: usize,
    /// The start of a UTF-8 character whose remaining bytes have not arrived yet.
    partial: Vec<u8>,
}

impl UartLog {
    pub fn new(replay_limit: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                next_seq: 1,
                recent: VecDeque::new(),
                recent_bytes: 0,
                replay_limit,
                partial: Vec::new(),
            }),
            live: broadcast::channel(LIVE_CAPACITY).0,
        }
    }

    /// Appends output; returns the chunk made, if the bytes completed any character.
    pub fn push(&self, bytes: &[u8]) -> Option<UartChunk> {
        self.push_at(bytes, None)
    }

    /// [`UartLog::push`], the CPU at instruction `instructions`.
    pub fn push_at(&self, bytes: &[u8], instructions: Option<u64>) -> Option<UartChunk> {
        crate::metrics::metrics().count_uart("out", bytes.len());
        let mut inner = self.lock();
        let mut pending = std::mem::take(&mut inner.partial);
        pending.extend_from_slice(bytes);
        let complete = complete_prefix(&pending);
        inner.partial = pending.split_off(complete);
        if pending.is_empty() {
            return None;
        }
        let chunk = UartChunk {
            seq: inner.next_seq,
            data: String::from_utf8_lossy(&pending).into_owned(),
            dropped: 0,
            instructions,
        };
        inner.next_seq += 1;
        inner.recent_bytes += chunk.data.len();
        inner.recent.push_back(chunk.clone());
        while inner.recent_bytes > inner.replay_limit && inner.recent.len() > 1 {
            if let Some(old) = inner.recent.pop_front() {
                inner.recent_bytes -= old.data.len();
            }
        }
        // No receivers is fine: output is still kept for replay.
        let _ = self.live.send(chunk.clone());
        Some(chunk)
    }

    /// The replay and a live receiver, taken together so that nothing falls between them.
    pub fn subscribe(&self) -> (Vec<UartChunk>, broadcast::Receiver<UartChunk>) {
        let inner = self.lock();
        (
            inner.recent.iter().cloned().collect(),
            self.live.subscribe(),
        )
    }

    /// All output still held for replay, as one string.
    pub fn recent_text(&self) -> String {
        self.lock().recent.iter().map(|c| c.data.as_str()).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The length of the longest prefix that does not end inside a UTF-8 character that may
/// still be completed. Invalid bytes count as complete (they become U+FFFD).
fn complete_prefix(bytes: &[u8]) -> usize {
    let mut done = 0;
    loop {
        match std::str::from_utf8(&bytes[done..]) {
            Ok(_) => return bytes.len(),
            Err(error) => match error.error_len() {
                None => return done + error.valid_up_to(),
                Some(invalid) => done += error.valid_up_to() + invalid,
            },
        }
    }
}

/// A subscriber's whole view: the replay, then the live chunks that follow it (none
/// twice), each marked with what this subscriber missed before it. Ends with the log.
pub fn follow(
    replay: Vec<UartChunk>,
    mut live: broadcast::Receiver<UartChunk>,
) -> impl futures_util::Stream<Item = UartChunk> {
    async_stream::stream! {
        let mut last = 0;
        for chunk in replay {
            last = chunk.seq;
            yield chunk;
        }
        while let Some(chunk) = next_live(&mut live).await {
            if chunk.seq > last {
                last = chunk.seq;
                yield chunk;
            }
        }
    }
}

/// Turns the live receiver into chunks, marking what a lagging subscriber missed.
/// `None` means the log is gone.
pub async fn next_live(receiver: &mut broadcast::Receiver<UartChunk>) -> Option<UartChunk> {
    let mut missed = 0;
    loop {
        match receiver.recv().await {
            Ok(mut chunk) => {
                chunk.dropped = missed;
                return Some(chunk);
            }
            Err(broadcast::error::RecvError::Lagged(n)) => missed += n,
            Err(broadcast::error::RecvError::Closed) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_numbered_and_replayed_within_the_limit() {
        let log = UartLog::new(8);
        log.push(b"hello ");
        log.push(b"world");
        log.push(b"!!");
        let (replay, _) = log.subscribe();
        let seqs: Vec<u64> = replay.iter().map(|c| c.seq).collect();
        assert_eq!(seqs, [2, 3], "oldest chunk dropped past 8 bytes");
        assert_eq!(log.recent_text(), "world!!");
    }

    #[test]
    fn utf8_split_across_reads_is_kept_whole() {
        let log = UartLog::new(1024);
        let text = "temp 25\u{b0}C \u{1f600}".as_bytes();
        for split in 0..text.len() {
            let log2 = UartLog::new(1024);
            log2.push(&text[..split]);
            log2.push(&text[split..]);
            assert_eq!(
                log2.recent_text(),
                "temp 25\u{b0}C \u{1f600}",
                "split {split}"
            );
        }
        log.push(b"bad \xff byte");
        assert_eq!(log.recent_text(), "bad \u{fffd} byte");
        let garbage = UartLog::new(1 << 20);
        garbage.push(&[0xff; 100_000]);
        assert_eq!(garbage.recent_text().chars().count(), 100_000);
    }

    #[tokio::test]
    async fn a_slow_subscriber_is_told_what_it_missed() {
        let log = UartLog::new(1024);
        let (_, mut receiver) = log.subscribe();
        for i in 0..(LIVE_CAPACITY + 10) {
            log.push(format!("{i}\n").as_bytes());
        }
        let chunk = next_live(&mut receiver).await.unwrap();
        assert_eq!(chunk.dropped, 10);
        assert_eq!(chunk.seq, 11);
    }
}
