//! The two queue steps that must check and act in one atomic step, which
//! no stream command does on its own, as Lua run by Redis (sent with
//! [`redis::Script`]: `EVALSHA`, falling back to `EVAL` on `NOSCRIPT`):
//!
//! - enqueue with a length limit: `XADD` has `MAXLEN`, but that trims the
//!   *oldest* entries, which would silently drop queued jobs; we want to
//!   refuse the *new* one. `XLEN` then `XADD` from the client would let two
//!   nodes both see room for the last slot.
//! - heartbeat: `XCLAIM ... JUSTID` resets a delivery's idle time, but it
//!   also takes the delivery from whoever holds it. A node that stalled past
//!   `reclaim_after` would steal its job back from the node that reclaimed
//!   it, and both would run it. The script first checks with `XPENDING` that
//!   the caller still holds the entry.
//!
//! Everything else is plain stream commands from the redis crate. The
//! replies are decoded here, as pure functions, next to the scripts that
//! produce them.

use redis::Script;

/// `KEYS[1]` the stream; `ARGV[1]` the length limit, negative for none;
/// `ARGV[2..]` the entry's field/value pairs. Returns `{1, new length}` when
/// added, `{0, length}` when full.
const ENQUEUE: &str = r"
local max_length = tonumber(ARGV[1])
local length = redis.call('XLEN', KEYS[1])
if max_length >= 0 and length >= max_length then
  return {0, length}
end
redis.call('XADD', KEYS[1], '*', unpack(ARGV, 2))
return {1, length + 1}
";

/// `KEYS[1]` the stream; `ARGV` group, consumer, entry id. Returns
/// `{1, consumer}` when the caller held it (its idle time is now 0),
/// `{0, owner}` when another consumer holds it, `{0, ''}` when it is no
/// longer pending.
const HEARTBEAT: &str = r"
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
local entry = pending[1]
if not entry then
  return {0, ''}
end
if entry[2] ~= ARGV[2] then
  return {0, entry[2]}
end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
return {1, ARGV[2]}
";

/// The compiled scripts (their SHA1 digests), made once per queue.
#[derive(Debug)]
pub(crate) struct Scripts {
    pub(crate) enqueue: Script,
    pub(crate) heartbeat: Script,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Scripts {
            enqueue: Script::new(ENQUEUE),
            heartbeat: Script::new(HEARTBEAT),
        }
    }
}

/// The enqueue script's answer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum EnqueueOutcome {
    Added,
    Full { length: u64 },
}

pub(crate) fn enqueue_outcome((added, length): (i64, u64)) -> EnqueueOutcome {
    if added == 1 {
        EnqueueOutcome::Added
    } else {
        EnqueueOutcome::Full { length }
    }
}

/// The heartbeat script's answer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HeartbeatOutcome {
    Held,
    HeldBy(String),
    NotPending,
}

pub(crate) fn heartbeat_outcome((held, owner): (i64, String)) -> HeartbeatOutcome {
    match (held, owner.is_empty()) {
        (1, _) => HeartbeatOutcome::Held,
        (_, true) => HeartbeatOutcome::NotPending,
        (_, false) => HeartbeatOutcome::HeldBy(owner),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_enqueue_replies() {
        assert_eq!(enqueue_outcome((1, 4)), EnqueueOutcome::Added);
        assert_eq!(enqueue_outcome((0, 3)), EnqueueOutcome::Full { length: 3 });
    }

    #[test]
    fn decodes_heartbeat_replies() {
        assert_eq!(heartbeat_outcome((1, "a".into())), HeartbeatOutcome::Held);
        assert_eq!(
            heartbeat_outcome((0, "b".into())),
            HeartbeatOutcome::HeldBy("b".into())
        );
        assert_eq!(
            heartbeat_outcome((0, String::new())),
            HeartbeatOutcome::NotPending
        );
    }

    #[test]
    fn scripts_are_distinct() {
        let scripts = Scripts::new();
        assert_ne!(scripts.enqueue.get_hash(), scripts.heartbeat.get_hash());
    }
}
