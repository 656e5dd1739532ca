//! The table of translated blocks and the counters generated code bumps.
//!
//! Each instruction of each translation gets one `u64` counter that an
//! inline op adds 1 to right before the instruction runs: no callback, no
//! call into the plugin, one add per executed instruction. Counters live in
//! fixed-size chunks that never move (the generated code holds their
//! addresses): plain memory for API level 1, per-vCPU scoreboards for level
//! 2 and later.
//!
//! Why per instruction and not one counter per block (fewer adds): a block
//! does not always run to its end. A fault stops it midway, and in recent
//! QEMU (seen in 10.0.2, not in 7.2) a device (MMIO) access in the middle of
//! a block makes QEMU re-run that one instruction alone and continue in a
//! new block starting after it, so a block-start counter counts the block's
//! tail twice (the UART loop of the coverage fixture showed 10, not 5).
//! Counters in front of each instruction stay exact in both cases (QEMU does
//! not instrument the re-run instruction again).
//!
//! A block is recorded as its start address and its instruction sizes, which
//! is all a reader needs to recover every instruction address. QEMU may
//! translate the same code more than once (after a TB flush, or with other
//! CPU flags); each translation is its own record and the reader adds them.

use std::ffi::c_void;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::api::{Api, Counting, INLINE_ADD_U64, Insn, Scoreboard, ScoreboardU64, Tb};

/// Counters per chunk: 8 KiB of memory (per vCPU with scoreboards).
const CHUNK: usize = 1024;

/// One translation: where it starts, how long its instructions are, which
/// counters hold their executions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockRecord {
    /// Guest virtual address of the first instruction.
    pub start: u64,
    /// Size in bytes of each instruction, in order (each 1..=255).
    pub sizes: Vec<u8>,
    /// Index of the first instruction's counter; the others follow.
    first_counter: usize,
}

/// Where a chunk of counters lives.
enum Chunk {
    /// API level 1: the inline op adds to these addresses directly.
    Shared(Box<[AtomicU64]>),
    /// API level 2+: one scoreboard whose per-vCPU element holds `CHUNK` u64.
    PerVcpu(*mut Scoreboard),
}

/// Every translation seen so far and its counter.
pub struct BlockTable {
    api: Api,
    records: Vec<BlockRecord>,
    chunks: Vec<Chunk>,
    counters_used: usize,
}

// SAFETY: the raw scoreboard pointers are handles owned by QEMU for the whole
// run; the table is only ever used behind the plugin's mutex.
unsafe impl Send for BlockTable {}

/// The counter a new translation's inline op must target.
enum CounterSlot {
    Shared(*mut c_void),
    PerVcpu(ScoreboardU64),
}

impl BlockTable {
    /// An empty table using `api` to allocate and read counters.
    pub fn new(api: Api) -> Self {
        Self {
            api,
            records: Vec::new(),
            chunks: Vec::new(),
            counters_used: 0,
        }
    }

    /// Records the block QEMU is translating and puts an inline counter in
    /// front of each instruction. Instructions whose addresses do not follow
    /// on from the previous one (never seen on Arm or RISC-V) start a new
    /// record, so every recorded address is exact.
    ///
    /// # Safety
    /// `tb` must be the handle QEMU passed to the translation callback that
    /// is running now.
    pub unsafe fn translate(&mut self, tb: *mut Tb) {
        let common = self.api.common;
        // SAFETY: `tb` is live for the duration of the callback (caller).
        let n_insns = unsafe { (common.tb_n_insns)(tb) };
        // (start, sizes, first counter, next address) of the open record.
        let mut current: Option<(u64, Vec<u8>, usize, u64)> = None;
        for index in 0..n_insns {
            // SAFETY: index < n_insns; the handles live as long as `tb`.
            let (insn, vaddr, size) = unsafe {
                let insn = (common.tb_get_insn)(tb, index);
                if insn.is_null() {
                    break;
                }
                (insn, (common.insn_vaddr)(insn), (common.insn_size)(insn))
            };
            let Ok(size) = u8::try_from(size) else { break };
            if size == 0 {
                break;
            }
            let Some((counter, slot)) = self.allocate_counter() else {
                break;
            };
            // SAFETY: `insn` belongs to the block being translated; the
            // counter outlives the run.
            unsafe { self.instrument(insn, slot) };
            let next = vaddr.wrapping_add(u64::from(size));
            match &mut current {
                Some((_, sizes, _, expected)) if *expected == vaddr => {
                    sizes.push(size);
                    *expected = next;
                }
                _ => {
                    if let Some((start, sizes, first_counter, _)) = current.take() {
                        self.records.push(BlockRecord {
                            start,
                            sizes,
                            first_counter,
                        });
                    }
                    current = Some((vaddr, vec![size], counter, next));
                }
            }
        }
        if let Some((start, sizes, first_counter, _)) = current {
            self.records.push(BlockRecord {
                start,
                sizes,
                first_counter,
            });
        }
    }

    /// Emits `counter += 1` in front of `insn`.
    ///
    /// # Safety
    /// `insn` must be an instruction of the block being translated.
    unsafe fn instrument(&self, insn: *mut Insn, slot: CounterSlot) {
        // SAFETY: forwarded from the caller; the slot matches the API.
        unsafe {
            match (slot, self.api.counting) {
                (CounterSlot::Shared(address), Counting::Shared { insn_exec_inline }) => {
                    insn_exec_inline(insn, INLINE_ADD_U64, address, 1);
                }
                (
                    CounterSlot::PerVcpu(entry),
                    Counting::PerVcpu {
                        insn_exec_inline_per_vcpu,
                        ..
                    },
                ) => insn_exec_inline_per_vcpu(insn, INLINE_ADD_U64, entry, 1),
                _ => {}
            }
        }
    }

    /// The next unused counter and its index, allocating a chunk when
    /// needed (`None` if QEMU could not allocate a scoreboard).
    fn allocate_counter(&mut self) -> Option<(usize, CounterSlot)> {
        let index_in_chunk = self.counters_used % CHUNK;
        if index_in_chunk == 0 {
            let chunk = match self.api.counting {
                Counting::Shared { .. } => {
                    Chunk::Shared((0..CHUNK).map(|_| AtomicU64::new(0)).collect())
                }
                Counting::PerVcpu { scoreboard_new, .. } => {
                    // SAFETY: plain allocation call; QEMU zeroes the entries.
                    let score = unsafe { scoreboard_new(CHUNK * size_of::<u64>()) };
                    if score.is_null() {
                        return None;
                    }
                    Chunk::PerVcpu(score)
                }
            };
            self.chunks.push(chunk);
        }
        let slot = match self.chunks.last()? {
            Chunk::Shared(counters) => {
                CounterSlot::Shared(counters.get(index_in_chunk)?.as_ptr().cast::<c_void>())
            }
            Chunk::PerVcpu(score) => CounterSlot::PerVcpu(ScoreboardU64 {
                score: *score,
                offset: index_in_chunk * size_of::<u64>(),
            }),
        };
        self.counters_used += 1;
        Some((self.counters_used - 1, slot))
    }

    /// The executions of counter `counter` so far (summed over vCPUs).
    fn count(&self, counter: usize) -> u64 {
        let Some(chunk) = self.chunks.get(counter / CHUNK) else {
            return 0;
        };
        let index_in_chunk = counter % CHUNK;
        match (chunk, self.api.counting) {
            (Chunk::Shared(counters), _) => counters
                .get(index_in_chunk)
                .map_or(0, |c| c.load(Ordering::Relaxed)),
            (Chunk::PerVcpu(score), Counting::PerVcpu { u64_sum, .. }) => {
                let entry = ScoreboardU64 {
                    score: *score,
                    offset: index_in_chunk * size_of::<u64>(),
                };
                // SAFETY: the scoreboard is live and the offset inside it.
                unsafe { u64_sum(entry) }
            }
            (Chunk::PerVcpu(_), Counting::Shared { .. }) => 0,
        }
    }

    /// Every record with its instructions' execution counts, in
    /// translation order.
    pub fn counted(&self) -> impl Iterator<Item = (&BlockRecord, Vec<u64>)> + '_ {
        self.records.iter().map(|record| {
            let counts = (0..record.sizes.len())
                .map(|index| self.count(record.first_counter + index))
                .collect();
            (record, counts)
        })
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.records.len()
    }
}
