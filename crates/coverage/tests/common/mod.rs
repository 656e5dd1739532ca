//! Shared helpers of the integration tests: where the committed fixtures
//! are and how a fixture becomes a report (the way the server will do it:
//! ELF bytes into a LineMap, the trace fed in small chunks).
#![allow(dead_code)]

use std::path::PathBuf;

use virserver_coverage::{
    BlockCounts, CoverageReport, ExecutedAddresses, FileCoverage, HitCounts, InAsmParser, LineMap,
    LineMapOptions,
};

/// The prefix `fixtures/build.sh` maps the source directory to in DWARF.
pub const DWARF_PREFIX: &str = "/fixtures";

pub fn fixture_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(relative)
}

/// Compares `actual` with the golden file, or rewrites it when blessing.
pub fn check_golden(name: &str, actual: &str) {
    let path = fixture_path(name);
    if std::env::var_os("VIRSERVER_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, actual).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with VIRSERVER_BLESS=1 to create it)",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "{} differs from the produced output (VIRSERVER_BLESS=1 rewrites it)\n--- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}

pub fn read_fixture(relative: &str) -> Vec<u8> {
    let path = fixture_path(relative);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[derive(Debug, Clone, Copy)]
pub enum Fixture {
    CortexM3,
    Riscv32,
}

impl Fixture {
    pub fn dir(self) -> &'static str {
        match self {
            Fixture::CortexM3 => "cortex-m3",
            Fixture::Riscv32 => "riscv32",
        }
    }

    pub fn elf(self) -> Vec<u8> {
        read_fixture(&format!("{}/fixture.elf", self.dir()))
    }

    /// The map with paths relative to the fixtures directory.
    pub fn line_map(self) -> LineMap {
        let options = LineMapOptions {
            strip_prefix: Some(DWARF_PREFIX.to_owned()),
        };
        LineMap::from_elf_with(&self.elf(), &options).expect("fixture ELF has DWARF")
    }

    /// The trace parsed in 97-byte chunks, so lines are split mid-way.
    pub fn executed(self) -> ExecutedAddresses {
        let log = read_fixture(&format!("{}/trace.log", self.dir()));
        let mut parser = InAsmParser::new();
        for chunk in log.chunks(97) {
            parser.feed(chunk);
        }
        parser.finish()
    }

    pub fn report(self) -> CoverageReport {
        self.line_map().coverage(&self.executed())
    }

    /// The TCG plugin's block-count file of the same run (`plugin.blocks`,
    /// QEMU 7.2) or another committed one, as hit counts.
    pub fn hit_counts(self, file: &str) -> HitCounts {
        let bytes = read_fixture(&format!("{}/{file}", self.dir()));
        BlockCounts::parse(&bytes)
            .unwrap_or_else(|e| panic!("{file}: {e}"))
            .hit_counts()
    }
}

/// The fixture program's own file in a report.
pub fn program(report: &CoverageReport) -> &FileCoverage {
    report
        .files
        .get("program.c")
        .expect("program.c in the report")
}

pub fn hits(file: &FileCoverage, line: u32) -> u64 {
    *file
        .lines
        .get(&line)
        .unwrap_or_else(|| panic!("line {line} not in the report: {:?}", file.lines))
}

pub fn function_hits(file: &FileCoverage, name: &str) -> u64 {
    file.functions
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("function {name} not in the report: {:?}", file.functions))
        .hits
}
