//! The Debug Adapter Protocol side of VirServer, without I/O.
//!
//! VirServer does not implement a debugger: GDB >= 14 speaks DAP itself (`gdb -i dap`).
//! What a session adds sits between the editor and that GDB, and lives here as code that
//! is fed messages and answers with actions, so that every rule is unit-tested with
//! scripted JSON and the tokio loops around it (the server's per-session endpoint and
//! the `virserver dap` stdio adapter) stay thin:
//!
//! - [`codec`]: DAP framing, `Content-Length` headers around JSON, cut from a byte
//!   stream fed in pieces; bounded, and typed errors for garbage.
//! - [`bridge`]: the state machine. It answers `launch`, `attach`, `disconnect` and
//!   `terminate` with session operations (create, upload, power on halted, power off),
//!   points GDB at the session's gateway with the program's symbols loaded before any
//!   breakpoint arrives, renumbers messages so that its own requests and events never
//!   collide with the client's, turns UART output into `output` events, refuses GDB
//!   commands that would reach the host, and passes everything else through unchanged.
//! - [`sources`]: source paths between an editor and a confined GDB that cannot read
//!   the editor's files.

pub mod bridge;
pub mod codec;
pub mod sources;

pub use bridge::{Action, Bridge, BridgeConfig, Input, Op, OpError, Ready, RunNotice};
pub use codec::{DapError, Decoder, MAX_MESSAGE, encode};
