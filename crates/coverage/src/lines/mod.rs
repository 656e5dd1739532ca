//! Address-to-line mapping from an ELF's DWARF, and line coverage from a set
//! of executed addresses.
//!
//! [`LineMap`] flattens every line-table row of every compile unit into one
//! array sorted by start address (the same idea as addr2line's sorted
//! sequences, without the per-unit indirection), so a lookup is one binary
//! search over a `Vec<u64>`. Building it is a single eager pass over the
//! DWARF in the `dwarf` submodule; paths are spelled by `paths`, and
//! debug info of code the linker removed is recognised by `removed_code`.
//!
//! Coverage is not "one line per executed PC": that misses function-opening
//! lines that share an address with the next statement, and inlined call
//! sites that own no row of their own. Instead a line is covered when ANY row
//! whose range holds an executed instruction belongs to it, and an inlined
//! call line is covered when any executed address is inside the inlined code.
//! Every other row's line is reported with 0 hits, so uncovered lines show.
//!
//! With execution counts ([`HitCounts`], from the TCG plugin) the same rows
//! carry numbers: a row's hits are the highest count of an instruction in it
//! and a line's the highest of its rows and inlined calls (so a loop body
//! line shows the iterations, a `for` line the condition's evaluations, as
//! llvm-cov does); a function's hits are the times its copies ran, added up:
//! the count of the first instruction of its out-of-line body, the busiest
//! instruction of each inlined copy.

mod dwarf;
mod paths;
mod removed_code;
mod symbols;

use std::collections::BTreeMap;
use std::ops::Range;

pub use paths::normalize_path;
pub use symbols::{CodeLocation, SymbolError};

use crate::addresses::ExecutedAddresses;
use crate::counts::HitCounts;
use crate::report::{CoverageReport, FileCoverage, FunctionCoverage};

/// Why an image could not be turned into a [`LineMap`].
#[derive(Debug, thiserror::Error)]
pub enum LineMapError {
    /// The bytes do not start with the ELF magic.
    #[error("not an ELF file")]
    NotElf,
    /// The ELF container is malformed or truncated.
    #[error("malformed ELF: {0}")]
    Object(#[from] object::Error),
    /// No `.debug_line` section, or no line-table rows for real code.
    #[error("no DWARF line information (was the firmware built with -g?)")]
    NoDebugInfo,
    /// A DWARF section is malformed or truncated.
    #[error("malformed DWARF: {0}")]
    Dwarf(#[from] gimli::Error),
}

/// How source paths are spelled in the map and its reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineMapOptions {
    /// A leading directory removed from every path that starts with it
    /// (whole components only), making paths relative to a source root.
    pub strip_prefix: Option<String>,
}

/// End, file and line of the row starting at the same index of `starts`.
#[derive(Debug, Clone, Copy)]
struct RowTail {
    end: u64,
    file: u32,
    line: u32,
}

/// A function with code, attributed to its declaration.
#[derive(Debug, Clone)]
struct Function {
    name: String,
    file: u32,
    line: u32,
    ranges: Vec<Range<u64>>,
    /// The code of each copy (out-of-line body, inlined copies).
    copies: Vec<dwarf::RawCopy>,
}

/// What coverage needs from a collector's output: hits of a piece of code.
trait Executions {
    /// Hits of `start..end`: 0 when none of it ran.
    fn hits_in(&self, start: u64, end: u64) -> u64;

    /// Times a function with this code was entered.
    fn function_hits(&self, function: &Function) -> u64;
}

/// Without counts a piece of code is hit once if any of it ran.
impl Executions for ExecutedAddresses {
    fn hits_in(&self, start: u64, end: u64) -> u64 {
        u64::from(self.any_in_range(start, end))
    }

    fn function_hits(&self, function: &Function) -> u64 {
        let ranges = &function.ranges;
        u64::from(ranges.iter().any(|r| self.any_in_range(r.start, r.end)))
    }
}

impl Executions for HitCounts {
    fn hits_in(&self, start: u64, end: u64) -> u64 {
        self.max_in_range(start, end)
    }

    fn function_hits(&self, function: &Function) -> u64 {
        let entered = function.copies.iter().fold(0u64, |sum, copy| {
            let count = if copy.inlined {
                // Inlined code is scheduled into its caller's: its lowest
                // address may be a hoisted load. Its busiest instruction is
                // the better count of how often the copy ran.
                copy.ranges
                    .iter()
                    .map(|r| self.max_in_range(r.start, r.end))
                    .max()
                    .unwrap_or(0)
            } else {
                // An out-of-line body is entered at its lowest address.
                copy.ranges
                    .iter()
                    .min_by_key(|r| r.start)
                    .map_or(0, |r| self.first_in_range(r.start, r.end))
            };
            sum.saturating_add(count)
        });
        // Code ran without its entry running (a jump into the middle):
        // still hit, as its lines show.
        let ranges = &function.ranges;
        if entered == 0 && ranges.iter().any(|r| self.max_in_range(r.start, r.end) > 0) {
            1
        } else {
            entered
        }
    }
}

/// Every line-table row, function and inlined call site of one ELF image.
#[derive(Debug, Clone)]
pub struct LineMap {
    files: Vec<String>,
    /// Row start addresses, ascending (stable: rows sharing an address keep
    /// line-program order, so the last of them is the one a lookup finds).
    starts: Vec<u64>,
    rows: Vec<RowTail>,
    functions: Vec<Function>,
    /// Inlined call sites and the code inlined there.
    call_sites: Vec<dwarf::RawCallSite>,
}

impl LineMap {
    /// Builds the map from the bytes of an ELF file with DWARF.
    pub fn from_elf(elf: &[u8]) -> Result<Self, LineMapError> {
        Self::from_elf_with(elf, &LineMapOptions::default())
    }

    /// Like [`LineMap::from_elf`], spelling paths as `options` says.
    pub fn from_elf_with(elf: &[u8], options: &LineMapOptions) -> Result<Self, LineMapError> {
        let tables = dwarf::load(elf, options)?;
        let mut rows = tables.rows;
        rows.sort_by_key(|row| row.start);
        let starts = rows.iter().map(|row| row.start).collect();
        let rows: Vec<RowTail> = rows
            .iter()
            .map(|row| RowTail {
                end: row.end,
                file: row.file,
                line: row.line,
            })
            .collect();
        let mut map = LineMap {
            files: tables.files,
            starts,
            rows,
            functions: Vec::new(),
            call_sites: tables.call_sites,
        };
        // A function without DW_AT_decl_file/line is placed where its code is.
        map.functions = tables
            .functions
            .into_iter()
            .filter_map(|function| {
                let entry = function.ranges.iter().map(|range| range.start).min()?;
                let at_entry = map.lookup_ids(entry);
                let file = function.file.or(at_entry.map(|(file, _)| file))?;
                let line = match function.line {
                    0 => at_entry.map_or(0, |(_, line)| line),
                    line => line,
                };
                Some(Function {
                    name: function.name,
                    file,
                    line,
                    ranges: function.ranges,
                    copies: function.copies,
                })
            })
            .collect();
        Ok(map)
    }

    /// The source file and line of the instruction at `address`, if the line
    /// table has one (the row whose range holds it; rows at the same address
    /// resolve to the last, as addr2line does).
    pub fn lookup(&self, address: u64) -> Option<(&str, u32)> {
        let (file, line) = self.lookup_ids(address)?;
        Some((self.files.get(file as usize)?.as_str(), line))
    }

    fn lookup_ids(&self, address: u64) -> Option<(u32, u32)> {
        let index = self
            .starts
            .partition_point(|&start| start <= address)
            .checked_sub(1)?;
        let row = self.rows.get(index)?;
        (address < row.end && row.line != 0).then_some((row.file, row.line))
    }

    /// Line and function coverage for one set of executed addresses.
    ///
    /// Hits are 1 for covered lines and functions: the in_asm trace gives no
    /// counts. Every line the line table knows, and every inlined call line,
    /// appears; every function with code appears, with 0 hits if none of its
    /// code ran.
    pub fn coverage(&self, executed: &ExecutedAddresses) -> CoverageReport {
        self.coverage_of(executed)
    }

    /// Line and function coverage with real hit counts (from the TCG
    /// plugin's block counts): the same lines and functions as
    /// [`LineMap::coverage`] of [`HitCounts::executed`] reports, hit in the
    /// same places, with the counts described in the module doc.
    pub fn coverage_with_counts(&self, counts: &HitCounts) -> CoverageReport {
        self.coverage_of(counts)
    }

    fn coverage_of<E: Executions>(&self, executed: &E) -> CoverageReport {
        let mut per_file: Vec<FileCoverage> = vec![FileCoverage::default(); self.files.len()];
        let mut mark = |file: u32, line: u32, hits: u64| {
            if let Some(coverage) = per_file.get_mut(file as usize) {
                let entry = coverage.lines.entry(line).or_insert(0);
                *entry = (*entry).max(hits);
            }
        };
        for (&start, row) in self.starts.iter().zip(&self.rows) {
            if row.line == 0 {
                continue;
            }
            // A row of zero length shares its address with the next row: it
            // is that instruction's line too.
            let end = row.end.max(start.saturating_add(1));
            mark(row.file, row.line, executed.hits_in(start, end));
        }
        for site in &self.call_sites {
            let hits = site
                .ranges
                .iter()
                .map(|range| executed.hits_in(range.start, range.end))
                .max()
                .unwrap_or(0);
            mark(site.file, site.line, hits);
        }
        for function in &self.functions {
            let hits = executed.function_hits(function);
            if let Some(coverage) = per_file.get_mut(function.file as usize) {
                coverage.functions.push(FunctionCoverage {
                    name: function.name.clone(),
                    line: function.line,
                    hits,
                });
            }
        }
        let mut files = BTreeMap::new();
        for (path, mut coverage) in self.files.iter().zip(per_file) {
            if coverage.lines.is_empty() && coverage.functions.is_empty() {
                continue;
            }
            coverage.normalize_functions();
            files.insert(path.clone(), coverage);
        }
        CoverageReport { files }
    }

    /// Every source path the line table names (with rows or not).
    pub fn files(&self) -> &[String] {
        &self.files
    }

    /// Number of line-table rows (including rows without a line).
    pub fn row_count(&self) -> usize {
        self.rows.len()
    }

    /// Number of functions with code.
    pub fn function_count(&self) -> usize {
        self.functions.len()
    }
}
