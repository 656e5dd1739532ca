//! `load` onto flash: GDB's flash commands, carried out as memory writes.
//!
//! When the memory map ([`super::MuxConfig::memory_map_xml`]) names flash,
//! GDB writes it with `vFlashErase`, `vFlashWrite` and `vFlashDone` rather
//! than `X`/`M`. QEMU's stub has no flash commands, but its memory writes go
//! through `cpu_memory_rw_debug`, which writes ROM and flash regions too
//! (QEMU's own stub offers no memory map, so GDB's `load` writes flash with
//! `X` there). So the gateway carries them out as pipelined `M` writes split
//! to the stub's packet size (`writes.rs`):
//!
//! - `vFlashErase:addr,length` writes `0xff` over the range, what erased
//!   flash reads as (GDB erases whole blocks, of the map's `blocksize`);
//! - `vFlashWrite:addr:data` (binary, escapes undone by the codec) writes
//!   the data;
//! - `vFlashDone` has nothing left to do: `OK`.
//!
//! Each empties the read cache. Like every write they need a halted target
//! (`E01` while it runs, `running.rs`).

use super::client::ClientWait;
use super::{ClientId, Mux, Owner};

/// The most a `vFlashErase` may cover (the filler is built in memory).
const MAX_ERASE: u64 = 64 << 20;

/// `E16` (EINVAL) for a flash command that cannot be parsed.
const MALFORMED: &[u8] = b"E16";

/// True for `vFlashErase`, `vFlashWrite` and `vFlashDone` payloads.
pub(crate) fn is_flash(payload: &[u8]) -> bool {
    payload.starts_with(b"vFlashErase:")
        || payload.starts_with(b"vFlashWrite:")
        || payload == b"vFlashDone"
}

/// One parsed flash command.
#[derive(Debug, PartialEq, Eq)]
enum Flash<'a> {
    Erase { addr: u64, length: u64 },
    Write { addr: u64, data: &'a [u8] },
    Done,
}

fn parse(payload: &[u8]) -> Option<Flash<'_>> {
    let hex = |digits: &[u8]| {
        std::str::from_utf8(digits)
            .ok()
            .and_then(|text| u64::from_str_radix(text, 16).ok())
    };
    if let Some(args) = payload.strip_prefix(b"vFlashErase:") {
        let comma = args.iter().position(|&byte| byte == b',')?;
        return Some(Flash::Erase {
            addr: hex(&args[..comma])?,
            length: hex(&args[comma + 1..])?,
        });
    }
    if let Some(args) = payload.strip_prefix(b"vFlashWrite:") {
        let colon = args.iter().position(|&byte| byte == b':')?;
        return Some(Flash::Write {
            addr: hex(&args[..colon])?,
            data: &args[colon + 1..],
        });
    }
    (payload == b"vFlashDone").then_some(Flash::Done)
}

impl Mux {
    /// A flash command from a client, the target halted.
    pub(crate) fn client_flash(&mut self, client: ClientId, payload: &[u8]) {
        self.cache.invalidate();
        let (addr, data) = match parse(payload) {
            Some(Flash::Erase { length, .. }) if length > MAX_ERASE => {
                return self.send_client(client, MALFORMED);
            }
            Some(Flash::Erase { addr, length }) => (addr, vec![0xff; length as usize]),
            Some(Flash::Write { addr, data }) => (addr, data.to_vec()),
            Some(Flash::Done) => return self.send_client(client, b"OK"),
            None => return self.send_client(client, MALFORMED),
        };
        if data.is_empty() {
            return self.send_client(client, b"OK");
        }
        let remaining = self.write_memory_chunks(Owner::Client(client), addr, &data);
        self.set_wait(
            client,
            ClientWait::Writes {
                remaining,
                error: None,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_commands() {
        assert_eq!(
            parse(b"vFlashErase:0,400"),
            Some(Flash::Erase {
                addr: 0,
                length: 0x400
            })
        );
        assert_eq!(
            parse(b"vFlashWrite:100:\x00#$"),
            Some(Flash::Write {
                addr: 0x100,
                data: b"\x00#$"
            })
        );
        assert_eq!(parse(b"vFlashDone"), Some(Flash::Done));
        for bad in [
            &b"vFlashErase:0"[..],
            b"vFlashErase:x,1",
            b"vFlashWrite:10",
            b"vFlashDone:",
        ] {
            assert_eq!(parse(bad), None, "{}", bad.escape_ascii());
        }
    }
}
