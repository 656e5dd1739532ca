//! LCOV tracefile output and input for [`CoverageReport`].
//!
//! LCOV is what genhtml, Codecov, Coveralls and most CI coverage viewers
//! read, and what `coverage merge` reads back to add runs together.
//!
//! Records are written and parsed with the `lcov` crate's [`Record`] type
//! (its `Display` is the writer, its `FromStr` the line parser): it covers
//! every record we emit, keeps field order and escaping out of this file,
//! and needs no I/O. Its file-level `Reader`/`Report` are not used: they
//! reject the records of LCOV 2.x (`VER:`, `FNL:`, `FNA:`), which this
//! reader skips or understands, and they keep branch data we have no place
//! for. Two quirks of the crate are handled here: LCOV 2.x writes
//! `FN:<start>,<end>,<name>`, which the crate reads as a name `<end>,<name>`;
//! and unknown records come back as an error, which we treat as "skip".

use std::path::PathBuf;

use lcov::Record;
use lcov::record::ParseRecordError;

use super::{CoverageReport, FileCoverage, ReportError};

impl CoverageReport {
    /// The report as an LCOV tracefile (with an empty test name).
    pub fn to_lcov(&self) -> String {
        self.to_lcov_named("")
    }

    /// The report as an LCOV tracefile whose `TN:` record is `test_name`.
    pub fn to_lcov_named(&self, test_name: &str) -> String {
        let mut out = String::new();
        let mut write = |record: Record| {
            out.push_str(&record.to_string());
            out.push('\n');
        };
        for (path, file) in &self.files {
            let totals = file.totals();
            write(Record::TestName {
                name: test_name.to_owned(),
            });
            write(Record::SourceFile {
                path: PathBuf::from(path),
            });
            for function in &file.functions {
                write(Record::FunctionName {
                    name: function.name.clone(),
                    start_line: function.line,
                });
            }
            for function in &file.functions {
                write(Record::FunctionData {
                    name: function.name.clone(),
                    count: function.hits,
                });
            }
            write(Record::FunctionsFound {
                found: saturate(totals.functions_found),
            });
            write(Record::FunctionsHit {
                hit: saturate(totals.functions_hit),
            });
            for (&line, &count) in &file.lines {
                write(Record::LineData {
                    line,
                    count,
                    checksum: None,
                });
            }
            write(Record::LinesFound {
                found: saturate(totals.lines_found),
            });
            write(Record::LinesHit {
                hit: saturate(totals.lines_hit),
            });
            write(Record::EndOfRecord);
        }
        out
    }

    /// Parses an LCOV tracefile. Sections of several tests, and several
    /// sections for one file, are merged (hits add up). Branch records and
    /// the summary records (`LF`, `LH`, `FNF`, `FNH`) are ignored: they are
    /// recomputed from the data. Unknown record kinds are skipped.
    pub fn from_lcov(text: &str) -> Result<CoverageReport, ReportError> {
        let mut report = CoverageReport::default();
        let mut current: Option<(String, FileCoverage)> = None;
        // LCOV 2.x FNL:<index>,<line> numbering, per section.
        let mut function_lines: Vec<(u64, u32)> = Vec::new();

        for (index, raw_line) in text.lines().enumerate() {
            let line_number = index + 1;
            let error = |reason: String| ReportError::Lcov {
                line: line_number,
                reason,
            };
            let line = raw_line.trim();
            if line.is_empty() {
                continue;
            }
            if let Some(body) = line.strip_prefix("FNL:") {
                let (function, start) =
                    parse_fnl(body).ok_or_else(|| error(format!("bad FNL record {line:?}")))?;
                function_lines.push((function, start));
                continue;
            }
            if let Some(body) = line.strip_prefix("FNA:") {
                let (function, count, name) =
                    parse_fna(body).ok_or_else(|| error(format!("bad FNA record {line:?}")))?;
                let start = function_lines
                    .iter()
                    .find(|(i, _)| *i == function)
                    .map_or(0, |&(_, l)| l);
                let (_, file) = current
                    .as_mut()
                    .ok_or_else(|| error("FNA outside SF".to_owned()))?;
                let entry = file.function_mut(name, start);
                entry.hits = entry.hits.saturating_add(count);
                continue;
            }
            let record = match line.parse::<Record>() {
                Ok(record) => record,
                Err(ParseRecordError::UnknownRecord) => continue,
                Err(other) => return Err(error(format!("{other} in {line:?}"))),
            };
            match record {
                Record::SourceFile { path } => {
                    if let Some((path, file)) = current.take() {
                        add_file(&mut report, path, file);
                    }
                    function_lines.clear();
                    current = Some((path.to_string_lossy().into_owned(), FileCoverage::default()));
                }
                Record::EndOfRecord => {
                    if let Some((path, file)) = current.take() {
                        add_file(&mut report, path, file);
                    }
                    function_lines.clear();
                }
                Record::FunctionName { name, start_line } => {
                    let (_, file) = current
                        .as_mut()
                        .ok_or_else(|| error("FN outside SF".to_owned()))?;
                    file.function_mut(strip_end_line(&name), start_line);
                }
                Record::FunctionData { name, count } => {
                    let (_, file) = current
                        .as_mut()
                        .ok_or_else(|| error("FNDA outside SF".to_owned()))?;
                    let entry = file.function_mut(&name, 0);
                    entry.hits = entry.hits.saturating_add(count);
                }
                Record::LineData { line, count, .. } => {
                    let (_, file) = current
                        .as_mut()
                        .ok_or_else(|| error("DA outside SF".to_owned()))?;
                    let hits = file.lines.entry(line).or_insert(0);
                    *hits = hits.saturating_add(count);
                }
                Record::TestName { .. }
                | Record::FunctionsFound { .. }
                | Record::FunctionsHit { .. }
                | Record::BranchData { .. }
                | Record::BranchesFound { .. }
                | Record::BranchesHit { .. }
                | Record::LinesFound { .. }
                | Record::LinesHit { .. } => {}
            }
        }
        if let Some((path, file)) = current.take() {
            add_file(&mut report, path, file);
        }
        Ok(report)
    }
}

fn add_file(report: &mut CoverageReport, path: String, mut file: FileCoverage) {
    file.normalize_functions();
    report.files.entry(path).or_default().merge(&file);
}

fn saturate(count: usize) -> u32 {
    u32::try_from(count).unwrap_or(u32::MAX)
}

/// `20,main` (from LCOV 2.x `FN:10,20,main`) becomes `main`; function names
/// never start with a digit, so a leading number and comma is the end line.
fn strip_end_line(name: &str) -> &str {
    match name.split_once(',') {
        Some((end, rest)) if !end.is_empty() && end.bytes().all(|b| b.is_ascii_digit()) => rest,
        _ => name,
    }
}

/// `FNL:<index>,<line>[,<end line>]`.
fn parse_fnl(body: &str) -> Option<(u64, u32)> {
    let mut fields = body.split(',');
    let index = fields.next()?.trim().parse().ok()?;
    let line = fields.next()?.trim().parse().ok()?;
    Some((index, line))
}

/// `FNA:<index>,<count>,<name>`.
fn parse_fna(body: &str) -> Option<(u64, u64, &str)> {
    let mut fields = body.splitn(3, ',');
    let index = fields.next()?.trim().parse().ok()?;
    let count = fields.next()?.trim().parse().ok()?;
    let name = fields.next()?;
    Some((index, count, name))
}

#[cfg(test)]
mod tests {
    use super::super::tests::file;
    use super::*;

    fn sample() -> CoverageReport {
        let mut report = CoverageReport::default();
        report.files.insert(
            "src/a.c".into(),
            file(&[(3, 1), (4, 0), (9, 2)], &[("main", 3, 1), ("dead", 9, 0)]),
        );
        report.files.insert("src/b.c".into(), file(&[(1, 0)], &[]));
        report
    }

    const SAMPLE_LCOV: &str = "TN:\nSF:src/a.c\nFN:3,main\nFN:9,dead\nFNDA:1,main\nFNDA:0,dead\nFNF:2\nFNH:1\n\
DA:3,1\nDA:4,0\nDA:9,2\nLF:3\nLH:2\nend_of_record\n\
TN:\nSF:src/b.c\nFNF:0\nFNH:0\nDA:1,0\nLF:1\nLH:0\nend_of_record\n";

    #[test]
    fn writes_records_in_lcov_order() {
        assert_eq!(sample().to_lcov(), SAMPLE_LCOV);
        assert!(
            sample()
                .to_lcov_named("run1")
                .starts_with("TN:run1\nSF:src/a.c\n")
        );
        assert_eq!(CoverageReport::default().to_lcov(), "");
    }

    #[test]
    fn round_trips() {
        assert_eq!(CoverageReport::from_lcov(SAMPLE_LCOV).unwrap(), sample());
        assert_eq!(
            CoverageReport::from_lcov(&sample().to_lcov()).unwrap(),
            sample()
        );
    }

    #[test]
    fn sections_of_the_same_file_add_up() {
        let twice = format!(
            "{SAMPLE_LCOV}{}",
            SAMPLE_LCOV.replace("TN:\n", "TN:second\n")
        );
        let parsed = CoverageReport::from_lcov(&twice).unwrap();
        let a = &parsed.files["src/a.c"];
        assert_eq!(a.lines[&9], 4);
        assert_eq!(
            a.functions.iter().find(|f| f.name == "main").unwrap().hits,
            2
        );
        assert_eq!(parsed.totals(), sample().totals());
    }

    #[test]
    fn lcov2_records_and_unknown_kinds() {
        let text = "VER:2.0\nTN:\nSF:x.c\nFNL:0,5,9\nFNA:0,3,f\nFN:12,14,g\nFNDA:0,g\nDA:5,3,abcdef\n\
BRDA:5,0,0,1\nBRF:1\nBRH:1\nMCDC:5,2,t,1,0,x\nDA:6,0\nend_of_record\n";
        let parsed = CoverageReport::from_lcov(text).unwrap();
        assert_eq!(
            parsed.files["x.c"],
            file(&[(5, 3), (6, 0)], &[("f", 5, 3), ("g", 12, 0)])
        );
    }

    #[test]
    fn missing_end_of_record_and_crlf() {
        let parsed = CoverageReport::from_lcov("SF:y.c\r\nDA:1,1\r\n").unwrap();
        assert_eq!(parsed.files["y.c"], file(&[(1, 1)], &[]));
    }

    #[test]
    fn errors_name_the_line() {
        let cases = [
            ("DA:1,1\n", 1, "DA outside SF"),
            ("SF:a.c\nDA:x,1\n", 2, "invalid value"),
            ("SF:a.c\nDA:1,-1\n", 2, "invalid value"),
            ("SF:a.c\nFNDA:1\n", 2, "not found"),
            ("TN:\nFN:1,f\n", 2, "FN outside SF"),
            ("SF:a.c\nFNL:x\n", 2, "bad FNL"),
            ("SF:a.c\n\nFNA:0,1\n", 3, "bad FNA"),
        ];
        for (text, expected_line, expected_reason) in cases {
            match CoverageReport::from_lcov(text) {
                Err(ReportError::Lcov { line, reason }) => {
                    assert_eq!(line, expected_line, "{text:?}");
                    assert!(reason.contains(expected_reason), "{text:?}: {reason}");
                }
                other => panic!("{text:?}: expected an LCOV error, got {other:?}"),
            }
        }
    }
}
