//! Breakpoints and watchpoints shared by every client and the API.
//!
//! The stub has one table for the whole target, so the gateway counts
//! holders per (type, address, kind): the first holder's `Z` goes upstream,
//! later holders are answered `OK` at once; a `z` goes upstream only when
//! the last holder lets go (by `z`, or by leaving). While a `Z` is in flight
//! further inserters of the same key wait for its answer instead of sending
//! a second one. QEMU removes every breakpoint itself on `D`, so the table
//! is emptied whenever the link goes down.

use std::collections::{BTreeMap, BTreeSet};

use virserver_rsp::Packet;
use virserver_rsp::packets::{Breakpoint, BreakpointType};

use super::client::ClientWait;
use super::upstream::{Expect, Purpose};
use super::{Mux, Owner};

/// What identifies a breakpoint in the stub: type, address, kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct BreakpointKey {
    pub breakpoint_type: BreakpointType,
    pub addr: u64,
    pub kind: u64,
}

impl BreakpointKey {
    pub fn of(breakpoint: &Breakpoint) -> BreakpointKey {
        BreakpointKey {
            breakpoint_type: breakpoint.breakpoint_type,
            addr: breakpoint.addr,
            kind: breakpoint.kind,
        }
    }

    pub fn to_breakpoint(self) -> Breakpoint {
        Breakpoint::new(self.breakpoint_type, self.addr, self.kind)
    }
}

#[derive(Debug)]
enum EntryState {
    /// `Z` sent; these owners wait for its answer.
    Pending(Vec<Owner>),
    /// In the stub.
    Inserted,
}

#[derive(Debug)]
struct Entry {
    state: EntryState,
    holders: BTreeSet<Owner>,
}

/// What an insertion needs.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum InsertOutcome {
    /// Already in the stub: answer `OK`.
    Held,
    /// First holder: send `Z`.
    Send,
    /// A `Z` is in flight: wait for it.
    Wait,
}

/// What a removal needs.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RemoveOutcome {
    /// The owner did not hold it; `exists` says whether others do.
    NotHeld { exists: bool },
    /// Others still hold it: answer `OK`.
    StillHeld,
    /// Last holder gone: send `z`.
    Send,
}

/// The reference counts. See the [module doc](self).
#[derive(Debug, Default)]
pub(crate) struct BreakpointTable {
    entries: BTreeMap<BreakpointKey, Entry>,
}

impl BreakpointTable {
    pub fn insert(&mut self, key: BreakpointKey, owner: Owner) -> InsertOutcome {
        match self.entries.get_mut(&key) {
            Some(entry) => match &mut entry.state {
                EntryState::Inserted => {
                    entry.holders.insert(owner);
                    InsertOutcome::Held
                }
                EntryState::Pending(waiters) => {
                    if !waiters.contains(&owner) {
                        waiters.push(owner);
                    }
                    InsertOutcome::Wait
                }
            },
            None => {
                self.entries.insert(
                    key,
                    Entry {
                        state: EntryState::Pending(vec![owner]),
                        holders: BTreeSet::new(),
                    },
                );
                InsertOutcome::Send
            }
        }
    }

    /// The stub answered a `Z`: the waiters to answer. An insertion whose
    /// waiters all left meanwhile is dropped from the table (`orphaned`).
    pub fn inserted(&mut self, key: BreakpointKey, ok: bool) -> Vec<Owner> {
        let Some(entry) = self.entries.get_mut(&key) else {
            return Vec::new();
        };
        let EntryState::Pending(waiters) =
            std::mem::replace(&mut entry.state, EntryState::Inserted)
        else {
            return Vec::new();
        };
        if ok && !waiters.is_empty() {
            entry.holders.extend(waiters.iter().copied());
        } else {
            self.entries.remove(&key);
        }
        waiters
    }

    pub fn remove(&mut self, key: BreakpointKey, owner: Owner) -> RemoveOutcome {
        let Some(entry) = self.entries.get_mut(&key) else {
            return RemoveOutcome::NotHeld { exists: false };
        };
        if !entry.holders.remove(&owner) {
            return RemoveOutcome::NotHeld { exists: true };
        }
        if !entry.holders.is_empty() || matches!(entry.state, EntryState::Pending(_)) {
            return RemoveOutcome::StillHeld;
        }
        self.entries.remove(&key);
        RemoveOutcome::Send
    }

    /// Drops every holding of `owner`; the keys nobody holds any more.
    pub fn release_all(&mut self, owner: Owner) -> Vec<BreakpointKey> {
        let mut orphans = Vec::new();
        for (key, entry) in &mut self.entries {
            if let EntryState::Pending(waiters) = &mut entry.state {
                waiters.retain(|waiter| *waiter != owner);
            }
            if entry.holders.remove(&owner)
                && entry.holders.is_empty()
                && matches!(entry.state, EntryState::Inserted)
            {
                orphans.push(*key);
            }
        }
        for key in &orphans {
            self.entries.remove(key);
        }
        orphans
    }

    pub fn held_by(&self, owner: Owner) -> bool {
        self.entries
            .values()
            .any(|entry| entry.holders.contains(&owner))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when a software or hardware breakpoint sits at `addr`.
    pub fn code_breakpoint_at(&self, addr: u64) -> bool {
        self.entries.keys().any(|key| {
            key.addr == addr
                && matches!(
                    key.breakpoint_type,
                    BreakpointType::Software | BreakpointType::Hardware
                )
        })
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

impl Mux {
    /// `Z` from a client or the API.
    pub(crate) fn insert_breakpoint(&mut self, owner: Owner, breakpoint: Breakpoint) {
        let key = BreakpointKey::of(&breakpoint);
        match self.breakpoints.insert(key, owner) {
            InsertOutcome::Held => self.breakpoint_reply(owner, "Z", b"OK"),
            InsertOutcome::Wait => self.wait_for_breakpoint(owner),
            InsertOutcome::Send => {
                self.wait_for_breakpoint(owner);
                let payload = virserver_rsp::Command::InsertBreakpoint(breakpoint).to_payload();
                self.send_upstream(&payload, Expect::Status, Purpose::InsertBreakpoint { key });
            }
        }
    }

    /// `z` from a client (`packet`) or the API.
    pub(crate) fn remove_breakpoint(
        &mut self,
        owner: Owner,
        breakpoint: Breakpoint,
        packet: Option<&Packet>,
    ) {
        let key = BreakpointKey::of(&breakpoint);
        match self.breakpoints.remove(key, owner) {
            RemoveOutcome::StillHeld | RemoveOutcome::NotHeld { exists: true } => {
                self.breakpoint_reply(owner, "z", b"OK")
            }
            RemoveOutcome::NotHeld { exists: false } => {
                // Nobody holds it here: let the stub answer as it would.
                self.wait_for_breakpoint(owner);
                let purpose = Purpose::RemoveBreakpoint {
                    reply_to: Some(owner),
                };
                match packet {
                    Some(packet) => self.forward_upstream(packet, Expect::Status, purpose),
                    None => {
                        let payload =
                            virserver_rsp::Command::RemoveBreakpoint(breakpoint).to_payload();
                        self.send_upstream(&payload, Expect::Status, purpose);
                    }
                }
            }
            RemoveOutcome::Send => {
                self.wait_for_breakpoint(owner);
                self.remove_breakpoint_upstream(breakpoint, Some(owner));
            }
        }
    }

    /// The stub answered a `Z`.
    pub(crate) fn breakpoint_inserted(&mut self, key: BreakpointKey, payload: &[u8], raw: &[u8]) {
        let ok = payload == b"OK";
        let waiters = self.breakpoints.inserted(key, ok);
        if ok && waiters.is_empty() {
            // Everyone who wanted it left while the `Z` was in flight.
            self.remove_breakpoint_upstream(key.to_breakpoint(), None);
        }
        for owner in waiters {
            match owner {
                super::Owner::Client(client) => self.reply_and_continue(client, raw),
                _ => self.breakpoint_reply(owner, "Z", payload),
            }
        }
    }

    fn wait_for_breakpoint(&mut self, owner: Owner) {
        if let Owner::Client(client) = owner {
            self.set_wait(client, ClientWait::Reply);
        }
    }

    fn breakpoint_reply(&mut self, owner: Owner, what: &'static str, payload: &[u8]) {
        match owner {
            Owner::Client(client) => self.answer_and_continue(client, payload),
            Owner::Api => self.api_status_reply(what, payload),
            Owner::Gateway(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mux::ClientId;

    #[test]
    fn counts_holders_per_key() {
        let key = BreakpointKey {
            breakpoint_type: BreakpointType::Software,
            addr: 0x100,
            kind: 2,
        };
        let (a, b) = (Owner::Client(ClientId(1)), Owner::Client(ClientId(2)));
        let mut table = BreakpointTable::default();
        assert_eq!(table.insert(key, a), InsertOutcome::Send);
        assert_eq!(table.insert(key, b), InsertOutcome::Wait);
        assert_eq!(table.inserted(key, true), vec![a, b]);
        assert_eq!(table.insert(key, Owner::Api), InsertOutcome::Held);
        assert_eq!(table.remove(key, a), RemoveOutcome::StillHeld);
        assert_eq!(
            table.remove(key, a),
            RemoveOutcome::NotHeld { exists: true }
        );
        assert!(table.release_all(b).is_empty());
        assert!(table.held_by(Owner::Api));
        assert_eq!(table.release_all(Owner::Api), vec![key]);
        assert_eq!(table.len(), 0);
        assert_eq!(
            table.remove(key, a),
            RemoveOutcome::NotHeld { exists: false }
        );
        assert_eq!(table.insert(key, a), InsertOutcome::Send);
        assert_eq!(table.inserted(key, false), vec![a]);
        assert_eq!(table.len(), 0);
    }
}
