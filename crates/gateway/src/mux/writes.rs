//! Memory writes larger than the stub accepts in one packet, split into
//! pipelined `M` packets (clients may send up to the larger packet size the
//! gateway advertises; QEMU's buffer is 4 KiB). The owner gets `OK` when
//! every chunk is written, or the first error.

use virserver_rsp::Command;

use super::client::ClientWait;
use super::upstream::{Expect, Purpose};
use super::{Mux, Owner};

impl Mux {
    /// Sends the chunks; returns how many replies to expect.
    pub(crate) fn write_memory_chunks(&mut self, owner: Owner, addr: u64, data: &[u8]) -> usize {
        let chunk = (self.stub.packet_size.saturating_sub(32) / 2).max(16);
        let mut count = 0;
        for (index, piece) in data.chunks(chunk).enumerate() {
            let payload = Command::WriteMemory {
                addr: addr.wrapping_add((index * chunk) as u64),
                data: piece.to_vec(),
            }
            .to_payload();
            self.send_upstream(&payload, Expect::Status, Purpose::WriteChunk { owner });
            count += 1;
        }
        count
    }

    /// One chunk's reply.
    pub(crate) fn write_chunk_completed(&mut self, owner: Owner, payload: &[u8]) {
        match owner {
            Owner::Client(client) => {
                let Some(state) = self.clients.get_mut(&client) else {
                    return;
                };
                let ClientWait::Writes { remaining, error } = &mut state.wait else {
                    return;
                };
                *remaining = remaining.saturating_sub(1);
                if payload != b"OK" && error.is_none() {
                    *error = Some(payload.to_vec());
                }
                if *remaining == 0 {
                    let reply = error.take().unwrap_or_else(|| b"OK".to_vec());
                    self.answer_and_continue(client, &reply);
                }
            }
            Owner::Api => self.api_write_chunk(payload),
            Owner::Gateway(_) => {}
        }
    }
}
