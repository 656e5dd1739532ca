//! VirServer: a debug gateway for processor emulators.
//!
//! # Layout
//! The modules follow the data flow, from the edge inwards:
//! - [`api`]: the GraphQL edge (queries, mutations, subscriptions) and its HTTP/WebSocket
//!   wiring. The only module that knows GraphQL.
//! - [`auth`]: API keys, roles and ownership: who asks, and the one table of what each
//!   root field needs, applied to every request.
//! - [`audit`]: the append-only record of every mutation (`auditLog`, `virserver audit`).
//! - [`sessions`]: the session service: lifecycle, power, programs, console ring buffer
//!   and broadcast, supervision of emulator processes, reconciliation at start-up.
//! - [`catalog`]: board templates (built-in files plus user ones in the database) and the
//!   processor / peripheral / bus catalogues derived from them.
//! - [`boards`]: the board template format: parsing and validation, no I/O beyond
//!   reading a folder.
//! - [`programs`]: ELF validation against a board (pure) and content-addressed storage.
//! - [`backend`]: one trait for every emulator kind; `backend::qemu` runs QEMU with QMP
//!   (a sans-IO codec plus a thin client) and its GDB stub on unix sockets.
//! - [`store`]: sea-orm entities and migrations; the only module that knows SQL.
//! - [`config`]: one `Config` from defaults, a TOML file, `VIRSERVER_*` and flags.
//! - [`app`] and [`server`]: building the services, serving HTTP, graceful shutdown.
//! - [`tls`]: HTTPS and WSS with rustls (`--tls-cert`, `--tls-key`).
//! - [`metrics`]: Prometheus instruments and what `/metrics` reads when scraped.
//! - [`bench`]: `virserver bench`, side-by-side measurements against the bare tools.
//! - [`doctor`]: `virserver doctor`, what the host gives `run` and `serve` and what is
//!   missing.
//! - [`dap`]: Debug Adapter Protocol endpoints (per session, and `virserver dap` on
//!   stdio), bridging editors to GDB's own DAP.
//! - [`ide_config`]: `virserver ide-config`, launch.json entries and a .gdbinit.
//! - [`gdb`]: finding the GDB (>= 14, Python) behind DAP and GDB/MI.
//! - [`symbolic`]: backtraces, locals and expressions for the API from one GDB/MI
//!   process per debugged session.
//!
//! Separate crates hold the protocol and coverage code that does no I/O:
//! `virserver-rsp` (GDB remote serial protocol), `virserver-mi` (GDB/MI output and
//! commands), `virserver-dap` (DAP framing and the
//! bridge's state machine) and `virserver-coverage` (traces, DWARF
//! lines, LCOV). docs/ARCHITECTURE.md has the map and its invariants.

pub mod api;
pub mod app;
pub mod audit;
pub mod auth;
pub mod backend;
pub mod bench;
pub mod boards;
pub mod catalog;
pub mod config;
pub mod coverage;
pub mod dap;
pub mod debugger;
pub mod doctor;
pub mod gdb;
pub mod ide_config;
pub mod jobs;
pub mod metrics;
pub mod programs;
pub mod server;
pub mod sessions;
pub mod store;
pub mod symbolic;
pub mod time_bench;
pub mod tls;
