//! Packet families: what the payloads mean, for the packets a proxy must
//! understand; everything else stays bytes.
//!
//! [`Command`] is what a client sends, parsed from a decoded payload by
//! [`Command::parse`] (or from a framed [`Packet`](crate::frame::Packet) by
//! [`Command::from_packet`]). Unknown packets become [`Command::Other`],
//! keeping the original bytes, and a known mnemonic with malformed
//! arguments is a [`ParseError`](crate::error::ParseError): whether either
//! may reach a stub is the proxy's policy, not the codec's (the gateway
//! forwards only an allow-list). Every command can also be written back
//! ([`Command::to_payload`], [`Command::encode`]), which
//! is how the proxy builds the requests it makes on its own behalf.
//!
//! Replies have no common type, since their grammar depends on the command
//! that was sent: check [`StandardReply`] first, then the family's parser.
//!
//! One file per family, named after its main RSP mnemonic as in gdbstub's
//! `protocol/commands/`:
//!
//! | file | packets |
//! | --- | --- |
//! | `_g.rs` | `g` `G` `p` `P` (registers) |
//! | `_m.rs` | `m` `M` `X` (memory) |
//! | `_c.rs` | `c` `s` `C` `S` `bc` `bs` (legacy and reverse resume) |
//! | `_vCont.rs` | `vCont?`, its reply, `vCont;...` |
//! | `_H.rs` | `H` `T` (thread selection) |
//! | `_qfThreadInfo.rs` | `qfThreadInfo` `qsThreadInfo` `qC` replies |
//! | `_Z.rs` | `Z` `z` (breakpoints, watchpoints) |
//! | `_D.rs` | `D` `k` `vKill` `qAttached` |
//! | `_qSupported.rs` | `qSupported` request and reply features |
//! | `_qXfer.rs` | `qXfer:object:read` and its `m`/`l` replies |
//! | `_qRcmd.rs` | `qRcmd` and `O` console output |
//! | `_F.rs` | `F` File-I/O requests of the stub (semihosting) and their reply |
//! | `stop_reply.rs` | `S` `T` `W` `X` `O` `N` stop replies |
//! | `reply.rs` | `OK`, `Exx`, `E.text`, empty |
//! | `thread_id.rs` | thread ids, shared by several families |
//! | `command.rs` | [`Command`] and the dispatch to the files above |
//!
//! The argument-less commands `?`, `g`, `k`, `QStartNoAckMode`, `qC`,
//! `qfThreadInfo`, `qsThreadInfo`, `vMustReplyEmpty` and `qTStatus` are
//! parsed in `command.rs` directly.

#![allow(non_snake_case)]

mod _D;
mod _F;
mod _H;
mod _Z;
mod _c;
mod _g;
mod _m;
mod _qRcmd;
mod _qSupported;
mod _qXfer;
mod _qfThreadInfo;
mod _vCont;
mod command;
mod reply;
mod stop_reply;
mod thread_id;

pub use _D::{parse_attached_reply, write_attached_reply};
pub use _F::{
    FileIoRequest, FileStat, GuestBuffer, STAT_SIZE, TIMEVAL_SIZE, errno, open_flags,
    timeval_bytes, write_file_io_reply,
};
pub use _H::ThreadOperation;
pub use _Z::{Breakpoint, BreakpointType};
pub use _g::parse_register_reply;
pub use _m::{QEMU_MAX_READ, parse_read_memory_reply, split_read};
pub use _qRcmd::{MonitorReply, parse_console_output, write_console_output};
pub use _qSupported::{Feature, FeatureSupport, Features};
pub use _qXfer::{XferRead, XferReply};
pub use _qfThreadInfo::{ThreadInfoReply, parse_current_thread_reply, write_current_thread_reply};
pub use _vCont::{ResumeAction, VContAction, VContSupported};
pub use command::Command;
pub use reply::{ErrorReply, StandardReply, error_code, write_error, write_error_text, write_ok};
pub use stop_reply::{StopInfo, StopReply, WatchKind};
pub use thread_id::{Id, ThreadId};

/// Splits `bytes` at the first `separator`, dropping it.
pub(crate) fn split_once(bytes: &[u8], separator: u8) -> Option<(&[u8], &[u8])> {
    let index = bytes.iter().position(|&byte| byte == separator)?;
    Some((&bytes[..index], &bytes[index + 1..]))
}
