//! Source-line coverage for firmware run under QEMU, without instrumenting it:
//! the guest addresses QEMU logs when it translates code, mapped to source
//! lines through the ELF's DWARF, written as LCOV or Cobertura.
//!
//! ```text
//! QEMU -d in_asm log ──trace──▶ ExecutedAddresses ─┐
//! firmware ELF bytes ──lines──▶ LineMap ───────────┴─coverage()─▶ CoverageReport ──▶ LCOV / Cobertura
//! TCG plugin file ──hitcounts──▶ HitCounts ──coverage_with_counts()─▶ CoverageReport (real hit counts)
//!                                                        LCOV text ──from_lcov()──▶ CoverageReport (merge)
//! ```
//!
//! # Layout
//!
//! - [`trace`]: [`InAsmParser`], the streaming parser of QEMU's `-d in_asm`
//!   log (QEMU 7.2 to 10.x, Arm and RISC-V), fed chunks of any size.
//! - `addresses`: [`ExecutedAddresses`], the sorted set of executed
//!   instruction addresses every collector produces (re-exported from
//!   [`trace`]).
//! - [`hitcounts`]: [`BlockCounts`], the parser of the block-count file
//!   written by VirServer's QEMU TCG plugin (`crates/qemu-trace-plugin`),
//!   giving [`HitCounts`]: executions per instruction address (`counts`).
//! - [`lines`]: [`LineMap`], every line-table row, function and inlined call
//!   site of an ELF, with a fast [`LineMap::lookup`] and
//!   [`LineMap::coverage`]; its `dwarf` submodule is the only code that
//!   knows gimli and object, `paths` the only code that spells paths.
//! - [`report`]: [`CoverageReport`] with totals, merge, glob filters, LCOV
//!   output and input, Cobertura output.
//!
//! # Invariants
//!
//! - **No I/O.** Nothing here opens a file, a socket or a process, or reads
//!   the clock or the environment: bytes and strings come in, values come
//!   out. The server reads the log and the ELF and feeds them in; timestamps
//!   are parameters. That keeps every behaviour testable from byte literals.
//! - **Bad input is an error value, never a panic**: truncated ELF, broken
//!   DWARF, malformed LCOV and damaged plugin files give [`LineMapError`],
//!   [`ReportError`] or [`BlockCountsError`];
//!   unrecognised trace lines are skipped and counted in [`InAsmStats`].
//! - This crate knows nothing of GraphQL, sessions or emulator processes.

mod addresses;
mod counts;
pub mod hitcounts;
pub mod lines;
pub mod report;
pub mod trace;

pub use addresses::ExecutedAddresses;
pub use counts::HitCounts;
pub use hitcounts::{BlockCounts, BlockCountsError};
pub use lines::{CodeLocation, LineMap, LineMapError, LineMapOptions, SymbolError};
pub use report::{CoverageReport, FileCoverage, FunctionCoverage, ReportError, Totals};
pub use trace::{InAsmParser, InAsmStats};
