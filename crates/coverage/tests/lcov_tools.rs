//! The produced LCOV must satisfy the real tools: `lcov --summary` and
//! `genhtml` (both from the `lcov` package, installed on developer machines
//! and in CI). A missing tool fails the test instead of skipping it, so a
//! CI image without them cannot pass silently.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Fixture, fixture_path};

fn run(tool: &str, args: &[&str], current_dir: &Path) -> String {
    let output = Command::new(tool)
        .args(args)
        .current_dir(current_dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {tool} (install the lcov package): {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "{tool} {args:?} failed: {}\n{stdout}\n{stderr}",
        output.status
    );
    format!("{stdout}{stderr}")
}

#[test]
fn lcov_summary_and_genhtml_accept_the_report() {
    for fixture in [Fixture::CortexM3, Fixture::Riscv32] {
        let report = fixture.report();
        let totals = report.totals();
        let scratch = tempfile::tempdir().expect("temp dir");
        let info = scratch.path().join("coverage.info");
        std::fs::write(&info, report.to_lcov_named("fixture")).expect("write tracefile");
        let info = info.to_str().expect("utf-8 temp path");

        let summary = run("lcov", &["--summary", info], scratch.path());
        let expected_lines = format!(
            "lines......: {:.1}% ({} of {} lines)",
            100.0 * totals.line_rate(),
            totals.lines_hit,
            totals.lines_found
        );
        assert!(
            summary.contains(&expected_lines),
            "{fixture:?}: expected {expected_lines:?} in\n{summary}"
        );
        let expected_functions = format!(
            "({} of {} functions)",
            totals.functions_hit, totals.functions_found
        );
        assert!(
            summary.contains(&expected_functions),
            "{fixture:?}: expected {expected_functions:?} in\n{summary}"
        );

        // SF paths are relative to the fixtures directory, where the sources are.
        let html = scratch.path().join("html");
        let html = html.to_str().expect("utf-8 temp path");
        run(
            "genhtml",
            &["--quiet", "--output-directory", html, info],
            &fixture_path(""),
        );
        // genhtml nests pages by directory; find the annotated source page.
        let page = find_file(Path::new(html), "program.c.gcov.html")
            .unwrap_or_else(|| panic!("{fixture:?}: genhtml wrote no program.c.gcov.html"));
        let page = std::fs::read_to_string(page).expect("read genhtml page");
        assert!(
            page.contains("never_called"),
            "{fixture:?}: the page shows the source"
        );
    }
}

fn find_file(dir: &Path, name: &str) -> Option<std::path::PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if let Some(found) = find_file(&path, name) {
                return Some(found);
            }
        } else if path.file_name().is_some_and(|n| n == name) {
            return Some(path);
        }
    }
    None
}
