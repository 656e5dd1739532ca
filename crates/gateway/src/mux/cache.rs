//! The register and memory cache, valid while the target is halted.
//!
//! Filled by every read reply (clients', the API's and the gateway's own
//! read-ahead) and emptied on anything that may change the target: a resume
//! or step, a write (`G`, `P`, `M`, `X`), a monitor command (it may be
//! `system_reset` or `loadvm`), and [`crate::Gateway::invalidate`]. Each
//! emptying bumps a generation number; a read sent before it does not fill
//! the cache when its reply comes after.
//!
//! Everything is kept as the hex the stub sent (two digits a byte), so a
//! hit is answered without decoding or encoding anything. Memory is kept as
//! the ranges read; a read is a hit when one cached range holds it
//! entirely. The cache is bounded ([`MAX_MEMORY_BYTES`], in hex digits).

use std::collections::{BTreeMap, HashMap};

use virserver_rsp::ThreadId;
use virserver_rsp::hex::write_hex_u64;

/// Memory kept at most, in bytes; past it the memory cache starts over.
pub(crate) const MAX_MEMORY_BYTES: usize = 4 << 20;

/// What one read asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ReadKey {
    /// `g` with the stub's `Hg` selection on `thread` (`None`: unknown).
    Registers { thread: Option<ThreadId> },
    /// `p regno`.
    Register {
        thread: Option<ThreadId>,
        regno: u32,
    },
    /// `m addr,length`.
    Memory { addr: u64, length: u64 },
}

impl ReadKey {
    /// The request payload.
    pub fn payload(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(24);
        match self {
            ReadKey::Registers { .. } => out.push(b'g'),
            ReadKey::Register { regno, .. } => {
                out.push(b'p');
                write_hex_u64(u64::from(*regno), &mut out);
            }
            ReadKey::Memory { addr, length } => {
                out.push(b'm');
                write_hex_u64(*addr, &mut out);
                out.push(b',');
                write_hex_u64(*length, &mut out);
            }
        }
        out
    }

    /// The thread the stub must have selected (`Hg`) for this read.
    pub fn thread(&self) -> Option<ThreadId> {
        match self {
            ReadKey::Registers { thread } | ReadKey::Register { thread, .. } => *thread,
            ReadKey::Memory { .. } => None,
        }
    }

    /// The part of this read's reply `hex` (two digits a byte) that answers
    /// `want`, if this read covers it and the reply is long enough.
    pub fn extract(&self, hex: &[u8], want: &ReadKey) -> Option<Vec<u8>> {
        if self == want {
            return Some(hex.to_vec());
        }
        match (self, want) {
            (
                ReadKey::Memory { addr, .. },
                ReadKey::Memory {
                    addr: want_addr,
                    length: want_length,
                },
            ) if want_addr >= addr => {
                let start = usize::try_from(want_addr - addr).ok()?.checked_mul(2)?;
                let length = usize::try_from(*want_length).ok()?.checked_mul(2)?;
                hex.get(start..start.checked_add(length)?)
                    .map(<[u8]>::to_vec)
            }
            _ => None,
        }
    }

    /// True when a successful read of `self` holds all of `want`.
    pub fn covers(&self, want: &ReadKey) -> bool {
        match (self, want) {
            (
                ReadKey::Memory { addr, length },
                ReadKey::Memory {
                    addr: want_addr,
                    length: want_length,
                },
            ) => {
                *want_addr >= *addr
                    && want_addr.saturating_add(*want_length) <= addr.saturating_add(*length)
            }
            _ => self == want,
        }
    }
}

/// The cache. See the [module doc](self).
#[derive(Debug, Default)]
pub(crate) struct Cache {
    generation: u64,
    registers: HashMap<Option<ThreadId>, Vec<u8>>,
    register: HashMap<(Option<ThreadId>, u32), Vec<u8>>,
    memory: BTreeMap<u64, Vec<u8>>,
    memory_bytes: usize,
}

impl Cache {
    /// The current generation; reads record it when sent.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Forgets everything.
    pub fn invalidate(&mut self) {
        self.generation += 1;
        self.registers.clear();
        self.register.clear();
        self.memory.clear();
        self.memory_bytes = 0;
    }

    /// The cached answer to `key`.
    pub fn lookup(&self, key: &ReadKey) -> Option<Vec<u8>> {
        match key {
            ReadKey::Registers { thread } => self.registers.get(thread).cloned(),
            ReadKey::Register { thread, regno } => self.register.get(&(*thread, *regno)).cloned(),
            ReadKey::Memory { addr, length } => {
                let (start, data) = self.memory.range(..=*addr).next_back()?;
                let cached = ReadKey::Memory {
                    addr: *start,
                    length: data.len() as u64 / 2,
                };
                cached.extract(
                    data,
                    &ReadKey::Memory {
                        addr: *addr,
                        length: *length,
                    },
                )
            }
        }
    }

    /// The cached `g` reply (hex) for `thread`, if any.
    pub fn registers(&self, thread: Option<ThreadId>) -> Option<&[u8]> {
        self.registers.get(&thread).map(Vec::as_slice)
    }

    /// Every cached `g` reply, by thread.
    pub fn all_registers(&self) -> HashMap<Option<ThreadId>, Vec<u8>> {
        self.registers.clone()
    }

    /// Stores a successful read (hex) made in generation `generation`.
    pub fn insert(&mut self, generation: u64, key: &ReadKey, data: &[u8]) {
        if generation != self.generation {
            return;
        }
        match key {
            ReadKey::Registers { thread } => {
                self.registers.insert(*thread, data.to_vec());
            }
            ReadKey::Register { thread, regno } => {
                self.register.insert((*thread, *regno), data.to_vec());
            }
            ReadKey::Memory { addr, .. } => {
                if self.memory_bytes + data.len() > MAX_MEMORY_BYTES {
                    self.memory.clear();
                    self.memory_bytes = 0;
                }
                let longer = self
                    .memory
                    .get(addr)
                    .is_some_and(|cached| cached.len() >= data.len());
                if !longer && !data.is_empty() {
                    self.memory_bytes += data.len();
                    self.memory.insert(*addr, data.to_vec());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory(addr: u64, length: u64) -> ReadKey {
        ReadKey::Memory { addr, length }
    }

    #[test]
    fn memory_hits_inside_a_cached_range_only() {
        let mut cache = Cache::default();
        let generation = cache.generation();
        cache.insert(generation, &memory(0x100, 8), b"0001020304050607");
        for (key, expected) in [
            (memory(0x100, 8), Some(b"0001020304050607".to_vec())),
            (memory(0x102, 2), Some(b"0203".to_vec())),
            (memory(0x104, 5), None),
            (memory(0xff, 2), None),
            (memory(0x108, 1), None),
        ] {
            assert_eq!(cache.lookup(&key), expected, "{key:?}");
        }
        cache.invalidate();
        assert_eq!(cache.lookup(&memory(0x100, 1)), None);
        // A read sent before the invalidation does not fill the cache.
        cache.insert(generation, &memory(0x100, 1), b"09");
        assert_eq!(cache.lookup(&memory(0x100, 1)), None);
    }

    #[test]
    fn payloads_and_coverage() {
        assert_eq!(memory(0x2000_0000, 0x40).payload(), b"m20000000,40");
        assert_eq!(ReadKey::Registers { thread: None }.payload(), b"g");
        assert_eq!(
            ReadKey::Register {
                thread: None,
                regno: 25
            }
            .payload(),
            b"p19"
        );
        assert!(memory(0x100, 0x40).covers(&memory(0x120, 0x20)));
        assert!(!memory(0x100, 0x40).covers(&memory(0x120, 0x21)));
        assert_eq!(
            memory(0x100, 4).extract(b"0102", &memory(0x101, 2)),
            None,
            "a short reply does not cover the end"
        );
    }
}
