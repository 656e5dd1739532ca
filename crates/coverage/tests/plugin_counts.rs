//! Golden and by-construction tests of coverage with real hit counts: the
//! block-count files VirServer's TCG plugin wrote for the committed fixtures
//! (`plugin.blocks`: QEMU 7.2, plugin API 1; `plugin-qemu10.blocks`: QEMU
//! 10.0.2, API 2), against the `-d in_asm` traces of the same runs.
//!
//! `fixtures/build.sh` rewrites the block files (it needs the plugin built
//! in release); `VIRSERVER_BLESS=1` rewrites the LCOV goldens.

mod common;

use common::{Fixture, check_golden, function_hits, hits, program};
use virserver_coverage::{BlockCounts, CoverageReport};

fn executed_lines(report: &CoverageReport) -> Vec<(String, u32)> {
    report
        .files
        .iter()
        .flat_map(|(path, file)| {
            file.lines
                .iter()
                .filter(|&(_, &hits)| hits > 0)
                .map(move |(&line, _)| (path.clone(), line))
        })
        .collect()
}

#[test]
fn counted_lcov_matches_golden() {
    for (fixture, golden) in [
        (Fixture::CortexM3, "cortex-m3/expected-counts.lcov"),
        (Fixture::Riscv32, "riscv32/expected-counts.lcov"),
    ] {
        let counts = fixture.hit_counts("plugin.blocks");
        let report = fixture.line_map().coverage_with_counts(&counts);
        check_golden(golden, &report.to_lcov());
    }
}

/// `checksum(message, 8)`: "coverage" has 8 bytes, so the loop body runs 8
/// times; everything else in `program.c` runs once or never.
#[test]
fn loop_lines_show_the_iteration_count() {
    for fixture in [Fixture::CortexM3, Fixture::Riscv32] {
        let counts = fixture.hit_counts("plugin.blocks");
        let report = fixture.line_map().coverage_with_counts(&counts);
        let program = program(&report);
        assert_eq!(
            hits(program, 31),
            8,
            "{fixture:?}: loop body h = mix(h, p[i])"
        );
        assert!(
            (8..=9).contains(&hits(program, 30)),
            "{fixture:?}: the for line runs its test 8 or 9 times"
        );
        // mix's body: the copy inlined in the loop ran 8 times (a line shows
        // the highest count of its code, as llvm-cov does).
        assert_eq!(hits(program, 21), 8, "{fixture:?}");
        // mix was entered 8 times in checksum's loop and once in finalize.
        assert_eq!(function_hits(program, "mix"), 9, "{fixture:?}");
        for name in ["main", "checksum", "classify", "finalize"] {
            assert_eq!(function_hits(program, name), 1, "{fixture:?}: {name}");
        }
        assert_eq!(function_hits(program, "never_called"), 0);
        assert_eq!(hits(program, 39), 0, "board_puts(\"zero\") never ran");
        assert_eq!(hits(program, 42), 1, "return 0 ran once");
        assert_eq!(hits(program, 47), 1, "finalize's inlined mix call");
    }
}

/// The plugin counts the instructions that ran; the in_asm trace names the
/// instructions of every block that started. They agree except after an
/// instruction that ends the run midway through a block: the riscv32
/// `sifive_test` store exits QEMU, and in_asm (and the committed in_asm
/// golden) counts the `for (;;) { }` after it (one `j .` instruction
/// whose rows are startup.c:30 and 31), the plugin does not. On Cortex-M
/// the semihosting BKPT ends its block, so both agree.
#[test]
fn executed_lines_equal_the_in_asm_trace_but_its_over_count() {
    let startup = "riscv32/startup.c".to_owned();
    for (fixture, over_counted, extra_instructions) in [
        (Fixture::CortexM3, vec![], 0),
        (
            Fixture::Riscv32,
            vec![(startup.clone(), 30), (startup, 31)],
            1,
        ),
    ] {
        let counts = fixture.hit_counts("plugin.blocks");
        let in_asm = fixture.executed();
        assert!(
            counts.executed().iter().all(|a| in_asm.contains(a)),
            "{fixture:?}: the plugin saw nothing in_asm did not log"
        );
        let map = fixture.line_map();
        let plugin_lines = executed_lines(&map.coverage_with_counts(&counts));
        let mut in_asm_lines = executed_lines(&map.coverage(&in_asm));
        in_asm_lines.retain(|line| !over_counted.contains(line));
        assert_eq!(plugin_lines, in_asm_lines, "{fixture:?}");
        assert_eq!(
            counts.executed().count() + extra_instructions,
            in_asm.count(),
            "{fixture:?}: instructions in_asm over-counts"
        );
    }
}

/// QEMU 10.0.2 cuts blocks differently (and the plugin declares API level 2
/// there, counting in scoreboards), but every instruction's count is the
/// same as under QEMU 7.2.
#[test]
fn qemu_10_run_gives_the_same_counts() {
    let bytes = common::read_fixture("cortex-m3/plugin-qemu10.blocks");
    let qemu10 = BlockCounts::parse(&bytes).expect("valid");
    let bytes = common::read_fixture("cortex-m3/plugin.blocks");
    let qemu7 = BlockCounts::parse(&bytes).expect("valid");
    assert_eq!((qemu7.api_level(), qemu10.api_level()), (1, 2));
    assert_eq!(qemu7.target(), "arm");
    assert_ne!(qemu7.blocks().len(), qemu10.blocks().len());
    assert_eq!(qemu7.hit_counts(), qemu10.hit_counts());
    assert_eq!(
        qemu7.instructions_executed(),
        qemu10.instructions_executed()
    );
}

#[test]
fn counted_reports_merge_by_adding() {
    let fixture = Fixture::CortexM3;
    let counts = fixture.hit_counts("plugin.blocks");
    let mut twice_counts = counts.clone();
    twice_counts.merge(&counts);
    let map = fixture.line_map();
    let mut merged = map.coverage_with_counts(&counts);
    merged.merge(&map.coverage_with_counts(&counts));
    let doubled = map.coverage_with_counts(&twice_counts);
    assert_eq!(program(&merged).lines, program(&doubled).lines);
    assert_eq!(hits(program(&doubled), 31), 16);
}
