//! The coverage report: per source file, hits per line and per function.
//!
//! This is the value every output and input format goes through:
//! [`crate::lines::LineMap::coverage`] produces it, the `lcov` submodule writes and reads
//! it, `cobertura` writes it. Hits are counts (`u64`) even though the
//! in_asm collector can only say 0 or 1, so a future counting collector (a
//! TCG plugin) and merged reports (hits add up) need no new type.

mod cobertura;
mod lcov;

/// Escapes text for XML 1.0 content and attribute values, the one rule of every XML
/// report (Cobertura here, JUnit in the server): the five markup characters become
/// entities, and the control characters XML 1.0 cannot carry at all (not even as
/// `&#1;`) become U+FFFD, so a console or a path with one still gives a document strict
/// parsers read.
pub fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

use std::collections::BTreeMap;

use globset::{Glob, GlobSet, GlobSetBuilder};

/// Why a report could not be read or filtered.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// An LCOV tracefile line could not be understood.
    #[error("LCOV line {line}: {reason}")]
    Lcov {
        /// 1-based line number in the tracefile.
        line: usize,
        /// What was wrong with it.
        reason: String,
    },
    /// A path filter pattern is not a valid glob.
    #[error("invalid glob pattern {pattern:?}: {source}")]
    Glob {
        /// The pattern as given.
        pattern: String,
        /// globset's complaint.
        #[source]
        source: globset::Error,
    },
}

/// Coverage of a set of source files, keyed by normalized path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CoverageReport {
    /// Per-file coverage, ordered by path.
    pub files: BTreeMap<String, FileCoverage>,
}

/// Coverage of one source file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileCoverage {
    /// Line number to hit count; a line with 0 hits was found but not run.
    pub lines: BTreeMap<u32, u64>,
    /// Functions declared in this file, ordered by line then name; names are
    /// unique within a file (LCOV keys function data by name).
    pub functions: Vec<FunctionCoverage>,
}

/// One function's coverage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FunctionCoverage {
    /// Linkage name when there is one (C++), else the source name.
    pub name: String,
    /// Declaration line (0 if unknown).
    pub line: u32,
    /// Times entered, or 1/0 for "any of its code ran" from in_asm traces.
    pub hits: u64,
}

/// Found/hit counts, as LCOV's LF/LH/FNF/FNH report them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Lines with line-table rows (or inlined calls).
    pub lines_found: usize,
    /// Of those, lines with hits.
    pub lines_hit: usize,
    /// Functions with code.
    pub functions_found: usize,
    /// Of those, functions with hits.
    pub functions_hit: usize,
}

impl Totals {
    /// Hit lines over found lines, 0 when nothing was found.
    pub fn line_rate(&self) -> f64 {
        ratio(self.lines_hit, self.lines_found)
    }

    /// Hit functions over found functions, 0 when nothing was found.
    pub fn function_rate(&self) -> f64 {
        ratio(self.functions_hit, self.functions_found)
    }

    fn add(&mut self, other: Totals) {
        self.lines_found += other.lines_found;
        self.lines_hit += other.lines_hit;
        self.functions_found += other.functions_found;
        self.functions_hit += other.functions_hit;
    }
}

fn ratio(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

impl FileCoverage {
    /// Found/hit counts of this file.
    pub fn totals(&self) -> Totals {
        Totals {
            lines_found: self.lines.len(),
            lines_hit: self.lines.values().filter(|&&hits| hits > 0).count(),
            functions_found: self.functions.len(),
            functions_hit: self.functions.iter().filter(|f| f.hits > 0).count(),
        }
    }

    /// Adds `other`'s hits to this file's (a line or function missing on one
    /// side is taken from the other).
    pub fn merge(&mut self, other: &FileCoverage) {
        for (&line, &hits) in &other.lines {
            let entry = self.lines.entry(line).or_insert(0);
            *entry = entry.saturating_add(hits);
        }
        for function in &other.functions {
            match self.functions.iter_mut().find(|f| f.name == function.name) {
                Some(existing) => {
                    existing.hits = existing.hits.saturating_add(function.hits);
                    if existing.line == 0 {
                        existing.line = function.line;
                    }
                }
                None => self.functions.push(function.clone()),
            }
        }
        self.sort_functions();
    }

    /// Makes names unique (keeping the highest hits and the first nonzero
    /// line of each name) and orders functions by line, then name.
    pub(crate) fn normalize_functions(&mut self) {
        self.functions
            .sort_by(|a, b| (&a.name, a.line == 0, a.line).cmp(&(&b.name, b.line == 0, b.line)));
        self.functions.dedup_by(|later, kept| {
            if later.name != kept.name {
                return false;
            }
            kept.hits = kept.hits.max(later.hits);
            true
        });
        self.sort_functions();
    }

    fn sort_functions(&mut self) {
        self.functions
            .sort_by(|a, b| (a.line, &a.name).cmp(&(b.line, &b.name)));
    }

    /// The entry for function `name`, created with 0 hits at `line` if new.
    pub(crate) fn function_mut(&mut self, name: &str, line: u32) -> &mut FunctionCoverage {
        let index = match self.functions.iter().position(|f| f.name == name) {
            Some(index) => index,
            None => {
                self.functions.push(FunctionCoverage {
                    name: name.to_owned(),
                    line,
                    hits: 0,
                });
                self.functions.len() - 1
            }
        };
        let function = &mut self.functions[index];
        if function.line == 0 {
            function.line = line;
        }
        function
    }
}

impl CoverageReport {
    /// An empty report.
    pub fn new() -> Self {
        Self::default()
    }

    /// Found/hit counts over all files.
    pub fn totals(&self) -> Totals {
        let mut totals = Totals::default();
        for file in self.files.values() {
            totals.add(file.totals());
        }
        totals
    }

    /// Adds `other` into this report: hits of the same file, line or function
    /// add up; files, lines and functions only one side has are kept.
    pub fn merge(&mut self, other: &CoverageReport) {
        for (path, coverage) in &other.files {
            self.files.entry(path.clone()).or_default().merge(coverage);
        }
    }

    /// The files whose path matches an `include` glob (all files when
    /// `include` is empty) and no `exclude` glob.
    ///
    /// Patterns match the whole path as spelled in the report; `*` also
    /// matches `/` (as in `lcov --extract` / `--remove`), so `*/test/*` drops
    /// every file under any `test` directory.
    pub fn filter<S: AsRef<str>>(
        &self,
        include: &[S],
        exclude: &[S],
    ) -> Result<CoverageReport, ReportError> {
        let include = glob_set(include)?;
        let exclude = glob_set(exclude)?;
        let files = self
            .files
            .iter()
            .filter(|(path, _)| {
                include
                    .as_ref()
                    .is_none_or(|set| set.is_match(path.as_str()))
            })
            .filter(|(path, _)| {
                exclude
                    .as_ref()
                    .is_none_or(|set| !set.is_match(path.as_str()))
            })
            .map(|(path, coverage)| (path.clone(), coverage.clone()))
            .collect();
        Ok(CoverageReport { files })
    }
}

/// A glob set, or `None` for an empty pattern list.
fn glob_set<S: AsRef<str>>(patterns: &[S]) -> Result<Option<GlobSet>, ReportError> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut builder = GlobSetBuilder::new();
    for pattern in patterns {
        let pattern = pattern.as_ref();
        let glob = Glob::new(pattern).map_err(|source| ReportError::Glob {
            pattern: pattern.to_owned(),
            source,
        })?;
        builder.add(glob);
    }
    let set = builder.build().map_err(|source| ReportError::Glob {
        pattern: String::new(),
        source,
    })?;
    Ok(Some(set))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn file(lines: &[(u32, u64)], functions: &[(&str, u32, u64)]) -> FileCoverage {
        FileCoverage {
            lines: lines.iter().copied().collect(),
            functions: functions
                .iter()
                .map(|&(name, line, hits)| FunctionCoverage {
                    name: name.to_owned(),
                    line,
                    hits,
                })
                .collect(),
        }
    }

    fn report(files: &[(&str, FileCoverage)]) -> CoverageReport {
        CoverageReport {
            files: files
                .iter()
                .map(|(p, f)| (p.to_string(), f.clone()))
                .collect(),
        }
    }

    #[test]
    fn totals_count_found_and_hit() {
        let r = report(&[
            (
                "a.c",
                file(&[(1, 1), (2, 0), (3, 5)], &[("f", 1, 1), ("g", 3, 0)]),
            ),
            ("b.c", file(&[(9, 0)], &[])),
        ]);
        let totals = r.totals();
        assert_eq!(
            totals,
            Totals {
                lines_found: 4,
                lines_hit: 2,
                functions_found: 2,
                functions_hit: 1
            }
        );
        assert_eq!(totals.line_rate(), 0.5);
        assert_eq!(totals.function_rate(), 0.5);
        assert_eq!(Totals::default().line_rate(), 0.0);
    }

    #[test]
    fn merge_adds_hits_and_keeps_both_sides() {
        let mut left = report(&[("a.c", file(&[(1, 1), (2, 0)], &[("f", 1, 1)]))]);
        let right = report(&[
            ("a.c", file(&[(2, 3), (4, 0)], &[("f", 1, 2), ("g", 4, 0)])),
            ("b.c", file(&[(7, 1)], &[])),
        ]);
        left.merge(&right);
        let expected = report(&[
            (
                "a.c",
                file(&[(1, 1), (2, 3), (4, 0)], &[("f", 1, 3), ("g", 4, 0)]),
            ),
            ("b.c", file(&[(7, 1)], &[])),
        ]);
        assert_eq!(left, expected);
        let mut saturating = report(&[("a.c", file(&[(1, u64::MAX)], &[]))]);
        saturating.merge(&report(&[("a.c", file(&[(1, 1)], &[]))]));
        assert_eq!(saturating.files["a.c"].lines[&1], u64::MAX);
    }

    #[test]
    fn normalize_functions_dedups_by_name() {
        let mut f = file(&[], &[("g", 9, 0), ("f", 0, 1), ("f", 4, 0)]);
        f.normalize_functions();
        assert_eq!(f, file(&[], &[("f", 4, 1), ("g", 9, 0)]));
    }

    #[test]
    fn filter_by_globs() {
        let r = report(&[
            ("src/main.c", file(&[(1, 1)], &[])),
            ("src/test/t.c", file(&[(1, 1)], &[])),
            ("/usr/include/x.h", file(&[(1, 1)], &[])),
        ]);
        let paths = |r: CoverageReport| r.files.into_keys().collect::<Vec<_>>();
        let none: [&str; 0] = [];
        assert_eq!(paths(r.filter(&none, &none).unwrap()).len(), 3);
        assert_eq!(
            paths(r.filter(&["src/*"], &["*/test/*"]).unwrap()),
            ["src/main.c"]
        );
        assert_eq!(
            paths(r.filter(&none, &["/usr/**"]).unwrap()),
            ["src/main.c", "src/test/t.c"]
        );
        assert_eq!(
            paths(r.filter(&["*.h"], &none).unwrap()),
            ["/usr/include/x.h"]
        );
        let error = r.filter(&["src/[*"], &none).unwrap_err();
        assert!(matches!(error, ReportError::Glob { ref pattern, .. } if pattern == "src/[*"));
    }
}
