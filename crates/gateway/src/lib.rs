//! The multiplexing GDB-RSP gateway: several GDB clients (gdb-multiarch,
//! VS Code, ...) and the server's own debug API debug the same emulated CPU
//! at once, through the one connection an emulator's GDB stub accepts.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use virserver_gateway::{Gateway, GatewayConfig};
//!
//! let gateway = Gateway::start(GatewayConfig::new("/run/session/gdb.sock")).await?;
//! println!("target extended-remote {}", gateway.address());
//! let api = gateway.client();
//! api.halt().await?;
//! let registers = api.registers().await?;
//! api.resume().await?;
//! let one_time = gateway.create_ticket(Duration::from_secs(30), Some("ann".into())).await?;
//! # let _ = (registers, one_time);
//! gateway.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! - [`mux`]: the sans-IO state machine. Inputs (client connected, client
//!   bytes, stub bytes, API call, ...) in, actions (send upstream, send to a
//!   client, close, connect, ...) out. All protocol decisions live here and
//!   are unit-tested with scripted bytes.
//! - [`semihosting`]: the host side of the guest's semihosting calls, which
//!   QEMU (`target=gdb`) sends as File-I/O requests: console writes to the
//!   session's log, files only in the session's sandbox directory, no
//!   commands. The mux resolves each request (`mux/fileio.rs`); this
//!   module carries it out.
//! - `driver.rs`: the mux behind a lock; whichever task reads bytes (a
//!   client, the stub) or makes a call feeds it and carries out the actions
//!   at once with non-blocking writes, so forwarding costs no task hop.
//!   Every task runs on the gateway's own current-thread runtime and
//!   thread (`gateway.rs` says why).
//!   `connection.rs`: non-blocking socket writers with bounded backlogs,
//!   the reader tasks, the listener and tickets. [`Gateway`] (`gateway.rs`)
//!   wires them with one cancellation token and task tracker.
//! - [`DebugClient`] (`debug_client.rs`) and [`debug_api`]: the API's calls.
//! - [`target_description`]: target.xml parsing (register names, numbers,
//!   `g` layout). [`status`]: stop events and the status snapshot.
//! - [`bench`](mod@bench): `bench_rsp`, the forwarding benchmark (`virserver bench rsp`).
//! - Framing and packet grammar come from the `virserver-rsp` crate.
//!
//! # What the gateway does better than the stub
//!
//! Reads target.xml (following `xi:include`) and `qSupported` once per
//! connection before anything else and serves them from its copy; offers
//! clients `QStartNoAckMode` and a 128 KiB `PacketSize`, splits reads past
//! QEMU's 0x800-byte limit into pipelined requests and streams the reply
//! while the pieces arrive; serves `qXfer:memory-map:read` from
//! [`GatewayConfig::memory_map_xml`]; caches registers and memory (as the
//! stub's hex, never decoded on the way through) while halted, and at each
//! stop reads `g` and the stack ahead of the clients; offers range
//! stepping (`vCont;r`) and runs the step loop itself next to the stub;
//! adds monitor commands (`monitor virserver status`, `monitor halt`,
//! `monitor reset halt`, `monitor reset`) and refuses `monitor cont`.
//!
//! # What a client cannot reach
//!
//! The stub runs inside the emulator, and QEMU's monitor (HMP) behind it
//! acts on the host: `monitor migrate "exec:CMD"` runs CMD, `monitor quit`
//! ends the emulator, others write host files. So `monitor` answers from an
//! allow-list (the commands above and the read-only `info status`, `info
//! version`, `info registers`, `info mtree`, each sent as the gateway's own
//! fixed HMP text) and refuses the rest with a note GDB shows and `E01`.
//! Packets that act on the host in some stubs (`vFile`, `vRun`, `vAttach`,
//! most `qXfer` objects, the process-launch `Q` packets) and every packet
//! the gateway does not know get the empty reply. The tables are in
//! [`mux`]'s doc. [`GatewayConfig::raw_monitor`] passes other `monitor`
//! commands to HMP as typed, for clients trusted with the host.
//!
//! # Resuming while attached
//!
//! QEMU 8.1 and later send a stop reply only after a resume their stub was
//! sent. A VM resumed behind the stub (QMP `cont`) therefore stops at the
//! next breakpoint without a word on those versions, so while the link is
//! up resume through [`DebugClient::resume`]; it tells whether it did
//! ([`Resumed::NotConnected`] means the caller must resume the VM itself).

//! # Detach policy
//!
//! - When one of several clients detaches (`D`) or disconnects, the target
//!   stays exactly as it is for the others; that client's breakpoints are
//!   released (removed from the stub unless another client or the API holds
//!   them).
//! - When the last client leaves and the API holds neither a halt nor a
//!   breakpoint, the gateway does what `D` means: `D` upstream (QEMU resumes
//!   the VM) and the upstream connection is closed. If the target is running
//!   then, nothing is sent (a byte would pause it) unless breakpoints must be
//!   removed first (interrupt, `z`, `D`). If it is stepping (or range
//!   stepping), the gateway detaches at the stop that ends the step, since a
//!   link closed then would leave the VM paused.
//! - `k` and `vKill` end the client that sent them, never the session.
//! - `bs`/`bc` get an empty reply unless the stub advertised
//!   `ReverseStep+`/`ReverseContinue+` (QEMU aborts on them otherwise).
//! - A client's requests made while the target runs (it did not resume it
//!   itself) are answered at once, or within 500 ms when a step or an
//!   interrupt makes the stop imminent: what holds while running, the last
//!   stop for an all-stop client's `?` and registers, `E01` for memory and
//!   writes (`mux/running.rs`). A resume joins the run and gets the next
//!   stop reply; non-stop clients get every stop as a `%Stop`
//!   notification; a 0x03 reaches the stub only while it runs, once.
//! - The API: [`DebugClient::halt`] holds the target halted across client
//!   departures until [`DebugClient::resume`]; every other call needs a
//!   halted target and fails with [`DebugError::NotHalted`] rather than
//!   touch a running VM's stub.
//!
//! # Architecture invariants
//!
//! - The mux does no I/O and reads no clock; tokio lives in `driver.rs`,
//!   `connection.rs`, `gateway.rs` and `bench.rs` only.
//! - Only complete, well-formed client packets reach the stub, re-framed;
//!   junk, half packets and bad checksums never do. The gateway never sends
//!   `+`/`-` upstream.
//! - Only packets on the mux's allow-list reach the stub, and a client's
//!   `monitor` text reaches it only with [`GatewayConfig::raw_monitor`].
//! - The stub is contacted only when a client packet or an API call needs
//!   it (connecting pauses QEMU's VM). With semihosting
//!   ([`GatewayConfig::semihosting`]) the server attaches before the guest
//!   runs and the link is held for the emulator's life: where the detach
//!   policy says `D`, the gateway resumes with `c` and stays attached, and a
//!   client that attaches while the run is nobody's halts the target, as a
//!   stub's connect would.
//! - A slow client never blocks the stub or another client: per-client
//!   queues are bounded and a client that cannot keep up is disconnected.
//! - No panic on peer input: every length and digit is checked by the codec.

mod audit;
pub mod bench;
mod config;
mod connection;
pub mod debug_api;
mod debug_client;
mod driver;
mod error;
mod gateway;
pub mod mux;
mod round_trips;
pub mod semihosting;
pub mod status;
pub mod target_description;

pub use audit::{AuditSink, GatewayOperation};
pub use config::GatewayConfig;
pub use debug_api::{ApiCall, ApiResult, BreakpointKind, Register, Resumed, WatchpointKind};
pub use debug_client::DebugClient;
pub use error::{DebugError, GatewayError};
pub use gateway::Gateway;
pub use round_trips::RoundTripSink;
pub use semihosting::{ConsoleSink, SemihostingConfig};
pub use status::{
    ClientStatus, GatewayStatus, ResumeEvent, ResumedBy, RunEvent, RunState, StopEvent, StopReason,
};

/// Bytes for a log line: printable ASCII kept, the rest escaped, long
/// packets cut.
pub(crate) fn hexdump(bytes: &[u8]) -> String {
    const LIMIT: usize = 160;
    let shown = &bytes[..bytes.len().min(LIMIT)];
    let mut text = shown.escape_ascii().to_string();
    if bytes.len() > LIMIT {
        text.push_str(&format!("... ({} bytes)", bytes.len()));
    }
    text
}
