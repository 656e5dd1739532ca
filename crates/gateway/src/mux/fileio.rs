//! GDB File-I/O requests of the stub (`F...`): how the guest's semihosting
//! calls are answered by the gateway instead of by QEMU on its host.
//!
//! QEMU run with `-semihosting-config target=gdb` stops the VM at each
//! semihosting call and sends an `F` request where a stop reply would come.
//! A GDB client would answer it on *its* host; the gateway answers it
//! itself, under the server's policy, and no client ever sees it:
//!
//! 1. the guest memory the call names (a path, the bytes to write) is read
//!    with the gateway's own `m` requests;
//! 2. [`Action::HostCall`] asks the I/O layer to carry out the call
//!    (`crate::semihosting`: console writes to the session's log, files in
//!    the session's sandbox directory, `system` refused) and it answers with
//!    [`Input::HostCallDone`](super::Input::HostCallDone);
//! 3. what the call returns into guest memory (bytes read, a `struct stat`)
//!    is written with `M`, and the `F` reply goes upstream: QEMU completes
//!    the call and the VM runs on. The stub sends nothing back for it.
//!
//! While a call is served the VM is stopped but the gateway keeps its run
//! state as running: clients waiting on a resume go on waiting, and their
//! requests wait as they would for any run. The only upstream traffic is
//! the call's own, so its replies are matched here, before the usual FIFO.
//! An interrupt (Ctrl-C, `monitor halt`, the API's halt) that comes
//! meanwhile is not sent as 0x03: it rides on the reply as the protocol's
//! `C` flag, and QEMU answers it with the `T02` the interrupter waits for.

use virserver_rsp::Command;
use virserver_rsp::packets::{
    FileIoRequest, GuestBuffer, QEMU_MAX_READ, errno, parse_read_memory_reply, split_read,
    write_file_io_reply,
};

use super::{Action, Mux, Run};
use crate::hexdump;

/// The most guest memory one call may make the gateway read: a longer
/// write is cut (a short write is allowed by the call's contract) and a
/// longer path is refused.
pub const MAX_GUEST_READ: u64 = 0x10000;

/// Longest path the gateway reads from the guest, NUL included.
const MAX_PATH: u64 = 1024;

/// One File-I/O call with its guest data resolved, for the I/O layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostCall {
    /// `open(path, flags, mode)`.
    Open {
        /// The path as the guest wrote it (no NUL).
        path: Vec<u8>,
        /// Protocol flags (`virserver_rsp::packets::open_flags`).
        flags: u32,
        /// Protocol mode bits.
        mode: u32,
    },
    /// `close(fd)`.
    Close {
        /// The descriptor.
        fd: u32,
    },
    /// `read(fd, count)`.
    Read {
        /// The descriptor.
        fd: u32,
        /// At most this many bytes.
        count: u64,
    },
    /// `write(fd, data)`.
    Write {
        /// The descriptor.
        fd: u32,
        /// The bytes.
        data: Vec<u8>,
    },
    /// `lseek(fd, offset, whence)`.
    Lseek {
        /// The descriptor.
        fd: u32,
        /// The offset.
        offset: i64,
        /// 0 set, 1 current, 2 end.
        whence: u32,
    },
    /// `rename(old, new)`.
    Rename {
        /// The old path.
        old: Vec<u8>,
        /// The new path.
        new: Vec<u8>,
    },
    /// `unlink(path)`.
    Unlink {
        /// The path.
        path: Vec<u8>,
    },
    /// `stat(path)`.
    Stat {
        /// The path.
        path: Vec<u8>,
    },
    /// `fstat(fd)`.
    Fstat {
        /// The descriptor.
        fd: u32,
    },
    /// `gettimeofday()`.
    Gettimeofday,
    /// `isatty(fd)`.
    Isatty {
        /// The descriptor.
        fd: u32,
    },
    /// `system(command)`.
    System {
        /// The command.
        command: Vec<u8>,
    },
}

/// What the I/O layer answers to a [`HostCall`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostReply {
    /// The return value, or the protocol errno it failed with.
    pub result: Result<u64, u32>,
    /// Bytes for the guest: what `read` read, the `struct stat`, the
    /// `struct timeval`. Empty for the other calls.
    pub data: Vec<u8>,
}

impl HostReply {
    /// A failure with `errno`.
    pub fn error(errno: u32) -> HostReply {
        HostReply {
            result: Err(errno),
            data: Vec::new(),
        }
    }

    /// A success with `value` and no data.
    pub fn value(value: u64) -> HostReply {
        HostReply {
            result: Ok(value),
            data: Vec::new(),
        }
    }
}

/// The call being served.
#[derive(Debug)]
pub(crate) struct FileIo {
    request: FileIoRequest,
    /// Guest memory still to read: (buffer, bytes so far) per argument.
    reads: Vec<(GuestBuffer, Vec<u8>)>,
    /// Upstream requests of this call not answered yet.
    outstanding: usize,
    /// A chunk failed: the guest named memory that is not there.
    fault: bool,
    /// The reply, once the host call is done and guest memory is written.
    reply: Option<Result<u64, u32>>,
    /// Someone asked for an interrupt meanwhile.
    pub(crate) interrupted: bool,
}

impl Mux {
    /// True when `payload` is a File-I/O request that arrives where a stop
    /// reply could: the gateway takes it.
    pub(crate) fn take_file_io(&mut self, payload: &[u8]) -> bool {
        if !matches!(self.run, Run::Running { .. }) || self.file_io.is_some() {
            return false;
        }
        let Some(parsed) = FileIoRequest::parse(payload) else {
            return false;
        };
        let request = match parsed {
            Ok(request) => request,
            Err(error) => {
                tracing::warn!(%error, payload = %hexdump(payload), "malformed File-I/O request");
                self.send_file_io_reply(Err(errno::EINVAL), false);
                return true;
            }
        };
        tracing::debug!(call = request.name(), "File-I/O request from the stub");
        let strings = |buffers: &[GuestBuffer]| -> Option<Vec<(GuestBuffer, Vec<u8>)>> {
            buffers
                .iter()
                .map(|buffer| (buffer.len <= MAX_PATH).then(|| (*buffer, Vec::new())))
                .collect()
        };
        let reads = match &request {
            FileIoRequest::Open { path, .. }
            | FileIoRequest::Unlink { path }
            | FileIoRequest::Stat { path, .. } => strings(&[*path]),
            FileIoRequest::Rename { old, new } => strings(&[*old, *new]),
            // The command is never run: do not even read it.
            FileIoRequest::System { .. } => Some(Vec::new()),
            FileIoRequest::Write { buffer, .. } => Some(vec![(
                GuestBuffer {
                    addr: buffer.addr,
                    len: buffer.len.min(MAX_GUEST_READ),
                },
                Vec::new(),
            )]),
            _ => Some(Vec::new()),
        };
        let Some(reads) = reads else {
            self.send_file_io_reply(Err(errno::ENAMETOOLONG), false);
            return true;
        };
        self.file_io = Some(FileIo {
            request,
            reads,
            outstanding: 0,
            fault: false,
            reply: None,
            interrupted: false,
        });
        let mut requests = Vec::new();
        if let Some(call) = &self.file_io {
            for (buffer, _) in &call.reads {
                requests.extend(split_read(buffer.addr, buffer.len, QEMU_MAX_READ));
            }
        }
        if requests.is_empty() {
            self.file_io_host_call();
            return true;
        }
        for (addr, length) in requests {
            self.send_file_io_packet(&Command::ReadMemory { addr, length }.to_payload());
        }
        true
    }

    /// A packet from the stub while a call is served: one of its replies.
    /// True when taken.
    pub(crate) fn file_io_reply(&mut self, payload: &[u8]) -> bool {
        let Some(call) = &mut self.file_io else {
            return false;
        };
        if call.outstanding == 0 {
            return false;
        }
        call.outstanding -= 1;
        if call.reply.is_none() {
            // A read of guest memory, answered in order: append to the first
            // argument that still misses bytes.
            match parse_read_memory_reply(payload) {
                Ok(bytes) if !bytes.is_empty() => {
                    if let Some((buffer, data)) = call
                        .reads
                        .iter_mut()
                        .find(|(buffer, data)| (data.len() as u64) < buffer.len)
                    {
                        let room = (buffer.len as usize).saturating_sub(data.len());
                        data.extend_from_slice(&bytes[..bytes.len().min(room)]);
                    }
                }
                _ => call.fault = true,
            }
            if call.outstanding == 0 {
                if call.fault {
                    self.finish_file_io(Err(errno::EFAULT));
                } else {
                    self.file_io_host_call();
                }
            }
        } else {
            // A write of the call's result into guest memory.
            if payload != b"OK" {
                call.fault = true;
            }
            if call.outstanding == 0 {
                let result = if call.fault {
                    Err(errno::EFAULT)
                } else {
                    call.reply.unwrap_or(Err(errno::EFAULT))
                };
                self.finish_file_io(result);
            }
        }
        true
    }

    /// The I/O layer carried out the call.
    pub(crate) fn host_call_done(&mut self, reply: HostReply) {
        let Some(call) = &mut self.file_io else {
            return;
        };
        let target = match &call.request {
            FileIoRequest::Read { buffer, .. } => Some(buffer.addr),
            FileIoRequest::Stat { buf, .. } | FileIoRequest::Fstat { buf, .. } => Some(*buf),
            FileIoRequest::Gettimeofday { tv } => Some(*tv),
            _ => None,
        };
        call.reply = Some(reply.result);
        match target {
            Some(addr) if reply.result.is_ok() && !reply.data.is_empty() => {
                let chunk = (self.stub.packet_size.saturating_sub(32) / 2).max(16);
                for (index, piece) in reply.data.chunks(chunk).enumerate() {
                    let payload = Command::WriteMemory {
                        addr: addr.wrapping_add((index * chunk) as u64),
                        data: piece.to_vec(),
                    }
                    .to_payload();
                    self.send_file_io_packet(&payload);
                }
            }
            _ => self.finish_file_io(reply.result),
        }
    }

    /// Builds the [`HostCall`] from the request and the guest data read.
    fn file_io_host_call(&mut self) {
        let Some(call) = &mut self.file_io else {
            return;
        };
        let mut data: std::collections::VecDeque<Vec<u8>> =
            call.reads.drain(..).map(|(_, bytes)| bytes).collect();
        let host_call = match call.request.clone() {
            FileIoRequest::Open { flags, mode, .. } => HostCall::Open {
                path: string(&mut data),
                flags,
                mode,
            },
            FileIoRequest::Close { fd } => HostCall::Close { fd },
            FileIoRequest::Read { fd, buffer } => HostCall::Read {
                fd,
                count: buffer.len.min(MAX_GUEST_READ),
            },
            // A write's data keeps its NULs.
            FileIoRequest::Write { fd, .. } => HostCall::Write {
                fd,
                data: data.pop_front().unwrap_or_default(),
            },
            FileIoRequest::Lseek { fd, offset, whence } => HostCall::Lseek { fd, offset, whence },
            FileIoRequest::Rename { .. } => {
                let old = string(&mut data);
                let new = string(&mut data);
                HostCall::Rename { old, new }
            }
            FileIoRequest::Unlink { .. } => HostCall::Unlink {
                path: string(&mut data),
            },
            FileIoRequest::Stat { .. } => HostCall::Stat {
                path: string(&mut data),
            },
            FileIoRequest::Fstat { fd, .. } => HostCall::Fstat { fd },
            FileIoRequest::Gettimeofday { .. } => HostCall::Gettimeofday,
            FileIoRequest::Isatty { fd } => HostCall::Isatty { fd },
            FileIoRequest::System { .. } => HostCall::System {
                command: Vec::new(),
            },
            FileIoRequest::Unknown(name) => {
                tracing::debug!(call = %name, "unknown File-I/O call refused");
                self.finish_file_io(Err(errno::EINVAL));
                return;
            }
        };
        self.push(Action::HostCall(host_call));
    }

    /// Sends the reply; the stub resumes the VM (or, interrupted, reports `T02`).
    fn finish_file_io(&mut self, result: Result<u64, u32>) {
        let interrupted = self.file_io.take().is_some_and(|call| call.interrupted);
        self.send_file_io_reply(result, interrupted);
    }

    fn send_file_io_reply(&mut self, result: Result<u64, u32>, interrupted: bool) {
        let mut payload = Vec::new();
        write_file_io_reply(result, &mut payload);
        if interrupted {
            if result.is_ok() {
                payload.extend_from_slice(b",0");
            }
            payload.extend_from_slice(b",C");
        }
        let mut frame = Vec::new();
        virserver_rsp::encode_packet(&payload, &mut frame);
        self.push(Action::SendUpstream(frame));
    }

    fn send_file_io_packet(&mut self, payload: &[u8]) {
        if let Some(call) = &mut self.file_io {
            call.outstanding += 1;
        }
        let mut frame = Vec::new();
        virserver_rsp::encode_packet(payload, &mut frame);
        self.push(Action::SendUpstream(frame));
    }
}

/// The next argument read from the guest, as a string without its NUL.
fn string(data: &mut std::collections::VecDeque<Vec<u8>>) -> Vec<u8> {
    let mut bytes = data.pop_front().unwrap_or_default();
    if bytes.last() == Some(&0) {
        bytes.pop();
    }
    bytes
}
