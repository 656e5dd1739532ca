//! Read jobs: `g`, `p` and `m` through the cache, split to the stub's
//! limit, pipelined, and coalesced with identical reads already in flight.
//!
//! A job belongs to an [`Owner`] (a client, the API or the gateway's own
//! read-ahead) and is a list of parts, each a [`ReadKey`]. A part is
//! answered, in order of preference, by the cache, by a read in flight that
//! covers it (sent in the current cache generation), or by a new upstream
//! read. At most [`WINDOW`] parts of a job are in flight at once. When every
//! part has an answer the job finishes ([`Finish`]).
//!
//! A large `m` from a client is cut into 0x800-byte reads sent back to back:
//! QEMU answers pipelined requests in order without waiting for acks, which
//! is what makes a 64 KiB read several times faster than one request at a
//! time. The reply to the client follows RSP: the bytes up to the first part
//! that failed or came back short, or the first part's error.

use std::collections::{BTreeMap, HashMap};

use virserver_rsp::hex::is_hex;
use virserver_rsp::hex::write_hex_u8;
use virserver_rsp::packets::{QEMU_MAX_READ, split_read};
use virserver_rsp::{StandardReply, checksum};

use super::api::ApiFinish;
use super::cache::ReadKey;
use super::client::ClientWait;
use super::upstream::{Expect, Purpose};
use super::{Action, ClientId, Mux, Owner};
use crate::status::StopEvent;

/// Parts of one job in flight at once.
pub(crate) const WINDOW: usize = 32;

/// Bytes read ahead at the stack pointer when the target stops.
pub(crate) const STACK_READ_AHEAD: u64 = 64;

/// The answer to one part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PartResult {
    /// The hex the stub sent (two digits a byte), kept as is.
    Data(Vec<u8>),
    /// The stub's error (or empty) reply payload.
    Error(Vec<u8>),
    /// Could not be read: the target runs, or the link went away.
    Unavailable,
}

/// What to do with a finished job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Finish {
    /// Reply to a client's `g` or `p` with part 0.
    ClientHex,
    /// Reply to a client's `m` with the parts joined.
    ClientMemory,
    /// Hand the parts to the API's operation.
    Api(ApiFinish),
    /// The read-ahead `g` after a stop: complete the stop event with the pc
    /// and read ahead at the stack pointer.
    StopReadAhead {
        event: Option<StopEvent>,
        generation: u64,
    },
    /// Read-ahead whose only purpose is to fill the cache.
    CacheOnly,
}

#[derive(Debug)]
pub(crate) struct Job {
    /// Tells this job from an earlier one of the same owner.
    serial: u64,
    pub parts: Vec<(ReadKey, Option<PartResult>)>,
    next: usize,
    outstanding: usize,
    pub finish: Finish,
    /// Parts already streamed to the client (see [`Mux::stream_memory`]).
    streamed: usize,
    /// The running checksum of what was streamed.
    stream_checksum: u8,
}

#[derive(Debug)]
struct PendingRead {
    key: ReadKey,
    generation: u64,
    /// (owner, job serial, part index)
    waiters: Vec<(Owner, u64, usize)>,
}

/// Reads in flight and jobs in progress.
#[derive(Debug, Default)]
pub(crate) struct Reads {
    next_read: u64,
    next_serial: u64,
    pending: HashMap<u64, PendingRead>,
    jobs: BTreeMap<Owner, Job>,
}

impl Reads {
    pub fn clear(&mut self) {
        self.pending.clear();
        self.jobs.clear();
    }

    /// Drops a departed owner's job; its reads still in flight are answered
    /// into the void.
    pub fn forget_owner(&mut self, owner: Owner) {
        self.jobs.remove(&owner);
    }
}

impl Mux {
    /// `g` from a client.
    pub(crate) fn client_read_registers(&mut self, client: ClientId) {
        let thread = self.client_thread(client);
        self.set_wait(client, ClientWait::Reply);
        self.start_job(
            Owner::Client(client),
            vec![ReadKey::Registers { thread }],
            Finish::ClientHex,
        );
    }

    /// `p` from a client: from a cached `g` when the description places it
    /// there, else read (and cached) on its own.
    pub(crate) fn client_read_register(&mut self, client: ClientId, regno: u32) {
        let thread = self.client_thread(client);
        let from_g = self.stub.description.as_ref().and_then(|description| {
            let (offset, length) = description.g_range(regno)?;
            let g = self.cache.registers(thread)?;
            g.get(offset * 2..(offset + length) * 2).map(<[u8]>::to_vec)
        });
        if let Some(value) = from_g {
            self.send_client_raw(client, &value);
            return;
        }
        self.set_wait(client, ClientWait::Reply);
        self.start_job(
            Owner::Client(client),
            vec![ReadKey::Register { thread, regno }],
            Finish::ClientHex,
        );
    }

    /// `m` from a client, any length up to the advertised packet size.
    pub(crate) fn client_read_memory(&mut self, client: ClientId, addr: u64, length: u64) {
        let length = length.min(self.config.client_packet_size as u64 / 2);
        self.set_wait(client, ClientWait::Reply);
        self.start_job(
            Owner::Client(client),
            memory_parts(addr, length),
            Finish::ClientMemory,
        );
    }

    /// The thread a client's register reads apply to.
    fn client_thread(&self, client: ClientId) -> Option<virserver_rsp::ThreadId> {
        self.clients
            .get(&client)
            .and_then(|state| state.selection.general)
            .or(self.upstream_selection.general)
    }

    /// Starts a job (replacing any job of the same owner).
    pub(crate) fn start_job(&mut self, owner: Owner, parts: Vec<ReadKey>, finish: Finish) {
        self.reads.next_serial += 1;
        let job = Job {
            serial: self.reads.next_serial,
            parts: parts.into_iter().map(|key| (key, None)).collect(),
            next: 0,
            outstanding: 0,
            finish,
            streamed: 0,
            stream_checksum: 0,
        };
        self.reads.jobs.insert(owner, job);
        self.advance_job(owner);
    }

    /// A new gateway-owned job number.
    pub(crate) fn gateway_owner(&mut self) -> Owner {
        self.next_gateway_job += 1;
        Owner::Gateway(self.next_gateway_job)
    }

    /// Issues parts up to the window; finishes the job when all are answered.
    fn advance_job(&mut self, owner: Owner) {
        loop {
            let Some(job) = self.reads.jobs.get_mut(&owner) else {
                return;
            };
            if job.next >= job.parts.len() || job.outstanding >= WINDOW {
                break;
            }
            let index = job.next;
            job.next += 1;
            job.outstanding += 1;
            let key = job.parts[index].0;
            if let Some(result) = self.issue_part(owner, index, key) {
                self.part_answered(owner, index, result);
            }
        }
        if self.stream_memory(owner) {
            return;
        }
        let done = self
            .reads
            .jobs
            .get(&owner)
            .is_some_and(|job| job.outstanding == 0 && job.next >= job.parts.len());
        if done && let Some(job) = self.reads.jobs.remove(&owner) {
            self.finish_job(owner, job);
        }
    }

    /// Answers a part now (cache), or arranges for an answer later.
    fn issue_part(&mut self, owner: Owner, index: usize, key: ReadKey) -> Option<PartResult> {
        let serial = self.reads.jobs.get(&owner).map_or(0, |job| job.serial);
        if self.config.cache
            && let Some(data) = self.cache.lookup(&key)
        {
            self.stats.cache_hits += 1;
            return Some(PartResult::Data(data));
        }
        let generation = self.cache.generation();
        if let Some(pending) = self
            .reads
            .pending
            .values_mut()
            .find(|pending| pending.generation == generation && pending.key.covers(&key))
        {
            pending.waiters.push((owner, serial, index));
            self.stats.cache_misses += 1;
            return None;
        }
        if !self.is_halted() {
            return Some(PartResult::Unavailable);
        }
        self.stats.cache_misses += 1;
        self.sync_thread(true, key.thread());
        self.reads.next_read += 1;
        let read = self.reads.next_read;
        self.reads.pending.insert(
            read,
            PendingRead {
                key,
                generation,
                waiters: vec![(owner, serial, index)],
            },
        );
        self.send_upstream(&key.payload(), Expect::Hex, Purpose::Read { read });
        None
    }

    fn part_answered(&mut self, owner: Owner, index: usize, result: PartResult) {
        if let Some(job) = self.reads.jobs.get_mut(&owner) {
            job.outstanding = job.outstanding.saturating_sub(1);
            if let Some(part) = job.parts.get_mut(index) {
                part.1 = Some(result);
            }
        }
    }

    /// The reply to an upstream read.
    pub(crate) fn read_completed(&mut self, read: u64, payload: &[u8]) {
        let Some(pending) = self.reads.pending.remove(&read) else {
            return;
        };
        let result = match StandardReply::parse(payload) {
            None if payload.len().is_multiple_of(2) && is_hex(payload) => {
                PartResult::Data(payload.to_vec())
            }
            _ => PartResult::Error(payload.to_vec()),
        };
        if let PartResult::Data(data) = &result
            && self.config.cache
            && self.is_halted()
        {
            self.cache.insert(pending.generation, &pending.key, data);
        }
        let mut owners = Vec::new();
        for (owner, serial, index) in pending.waiters {
            let Some(want) = self
                .reads
                .jobs
                .get(&owner)
                .filter(|job| job.serial == serial)
                .and_then(|job| job.parts.get(index))
                .map(|part| part.0)
            else {
                continue;
            };
            let answer = match &result {
                PartResult::Data(data) => pending.key.extract(data, &want).map(PartResult::Data),
                other if want == pending.key => Some(other.clone()),
                _ => None,
            };
            match answer {
                Some(answer) => self.part_answered(owner, index, answer),
                None => {
                    // A read-ahead that did not cover this part: read it alone.
                    if let Some(answer) = self.issue_part(owner, index, want) {
                        self.part_answered(owner, index, answer);
                    }
                }
            }
            if !owners.contains(&owner) {
                owners.push(owner);
            }
        }
        for owner in owners {
            self.advance_job(owner);
        }
    }

    /// Streams a client's memory reply while its parts arrive: `$` once the
    /// first part is in, then each part's hex as soon as every part before
    /// it is in, and `#cs` after the last. A short or failed part ends the
    /// reply there (a partial read, as RSP allows); the parts still in
    /// flight are then ignored. The client's transfer overlaps the stub's
    /// work instead of following it. True when the reply is complete.
    fn stream_memory(&mut self, owner: Owner) -> bool {
        let Owner::Client(client) = owner else {
            return false;
        };
        let Some(job) = self.reads.jobs.get_mut(&owner) else {
            return false;
        };
        if job.finish != Finish::ClientMemory {
            return false;
        }
        let mut out = Vec::new();
        let mut ended = false;
        while let Some((key, result)) = job.parts.get(job.streamed) {
            let wanted = match key {
                ReadKey::Memory { length, .. } => *length as usize * 2,
                _ => 0,
            };
            match result {
                Some(PartResult::Data(hex)) => {
                    if job.streamed == 0 {
                        out.push(b'$');
                    }
                    out.extend_from_slice(hex);
                    job.stream_checksum = job.stream_checksum.wrapping_add(checksum(hex));
                    job.streamed += 1;
                    if hex.len() < wanted {
                        ended = true;
                        break;
                    }
                }
                // Part 0 failed: an ordinary error reply, at the end.
                Some(_) if job.streamed > 0 => {
                    ended = true;
                    break;
                }
                _ => break,
            }
        }
        let streaming = job.streamed > 0;
        let complete = streaming && (ended || job.streamed == job.parts.len());
        if complete {
            out.push(b'#');
            write_hex_u8(job.stream_checksum, &mut out);
            self.reads.jobs.remove(&owner);
        }
        if !out.is_empty() {
            self.push(Action::SendClient { client, bytes: out });
            self.request_answered(client);
        }
        if let Some(state) = self.clients.get_mut(&client) {
            state.streaming = streaming && !complete;
        }
        if complete {
            self.end_stream(client);
        }
        complete
    }

    fn finish_job(&mut self, owner: Owner, job: Job) {
        match (owner, job.finish.clone()) {
            (Owner::Client(client), Finish::ClientHex) => {
                match job.parts.into_iter().next().and_then(|part| part.1) {
                    Some(PartResult::Data(hex)) => self.reply_and_continue(client, &hex),
                    Some(PartResult::Error(error)) => self.answer_and_continue(client, &error),
                    _ => self.answer_and_continue(client, b"E01"),
                }
            }
            (Owner::Client(client), Finish::ClientMemory) => match joined_memory(job) {
                // Hex digits need no escaping: sent as they came.
                Ok(hex) => self.reply_and_continue(client, &hex),
                Err(error) => self.answer_and_continue(client, &error),
            },
            (Owner::Api, Finish::Api(finish)) => self.api_read_finished(finish, job),
            (_, Finish::StopReadAhead { event, generation }) => {
                self.stop_read_ahead_done(event, generation, job)
            }
            _ => {}
        }
    }
}

/// The parts of a memory read of any length.
pub(crate) fn memory_parts(addr: u64, length: u64) -> Vec<ReadKey> {
    split_read(addr, length, QEMU_MAX_READ)
        .map(|(addr, length)| ReadKey::Memory { addr, length })
        .collect()
}

/// The hex of a memory job up to the first failed or short part; `Err`
/// with the first part's error when nothing could be read.
pub(crate) fn joined_memory(job: Job) -> Result<Vec<u8>, Vec<u8>> {
    let total: usize = job
        .parts
        .iter()
        .map(|part| match &part.1 {
            Some(PartResult::Data(hex)) => hex.len(),
            _ => 0,
        })
        .sum();
    let mut data = Vec::with_capacity(total);
    for (index, (key, result)) in job.parts.into_iter().enumerate() {
        let wanted = match key {
            ReadKey::Memory { length, .. } => length as usize * 2,
            _ => 0,
        };
        match result {
            Some(PartResult::Data(hex)) => {
                let short = hex.len() < wanted;
                data.extend_from_slice(&hex);
                if short {
                    break;
                }
            }
            Some(PartResult::Error(error)) if index == 0 => return Err(error),
            None | Some(PartResult::Unavailable) if index == 0 => return Err(b"E01".to_vec()),
            _ => break,
        }
    }
    Ok(data)
}
