//! `virserver run` as CI uses it: real QEMU, exit statuses per verdict, LCOV and JUnit
//! written (the JUnit read back by a JUnit parser), and `virserver submit` against a
//! real server.

mod common;

use std::process::{Command, Output};

fn virserver(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_virserver"))
        .current_dir(common::repo())
        .args(args)
        .output()
        .unwrap()
}

fn firmware(name: &str) -> String {
    common::firmware(name).display().to_string()
}

#[test]
fn run_passes_and_writes_lcov_and_junit() {
    let dir = tempfile::tempdir().unwrap();
    let lcov = dir.path().join("lcov.info");
    let junit = dir.path().join("report.xml");
    let output = virserver(&[
        "run",
        &firmware("hello-mps2-an385.elf"),
        "--board",
        "mps2-an385",
        "--expect",
        "Hello from VirServer",
        "--expect",
        "counting: 1 2 3",
        "--coverage",
        lcov.to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
    ]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("counting: 1 2 3"),
        "UART streamed"
    );
    assert!(
        std::fs::read_to_string(&lcov)
            .unwrap()
            .contains("programs/hello.c")
    );
    let report = junit_parser::from_reader(std::io::BufReader::new(
        std::fs::File::open(&junit).unwrap(),
    ))
    .unwrap();
    let suite = &report.suites[0];
    // Both patterns seen and no exit code asked for: passed as soon as the output showed them.
    assert_eq!(suite.tests, 2, "one case per pattern");
    assert_eq!(suite.failures, 0);
}

/// `--collector hit-counts` records how often each line ran: the counting loop's lines
/// run more than once (the default in_asm log says only whether a line ran).
#[test]
fn run_records_hit_counts_with_the_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let mut highest = Vec::new();
    for collector in ["in-asm", "hit-counts"] {
        let lcov = dir.path().join(format!("{collector}.info"));
        let output = virserver(&[
            "run",
            &firmware("hello-mps2-an385.elf"),
            "--board",
            "mps2-an385",
            "--expect-exit",
            "0",
            "--coverage",
            lcov.to_str().unwrap(),
            "--collector",
            collector,
        ]);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let counts = std::fs::read_to_string(&lcov)
            .unwrap()
            .lines()
            .filter_map(|line| line.strip_prefix("DA:"))
            .filter_map(|da| da.split(',').nth(1)?.parse::<u64>().ok())
            .max()
            .unwrap_or(0);
        highest.push(counts);
    }
    assert_eq!(highest[0], 1, "in_asm: ran or not");
    assert!(highest[1] > 1, "hit counts: {}", highest[1]);
}

#[test]
fn run_fails_by_uart_rule_and_by_exit_code_and_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("report.xml");
    let forbidden = virserver(&[
        "run",
        &firmware("hello-mps2-an385.elf"),
        "--board",
        "mps2-an385",
        "--forbid",
        "counting",
        "--junit",
        junit.to_str().unwrap(),
    ]);
    assert_eq!(forbidden.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&forbidden.stderr).contains("FAILED"));
    let report = junit_parser::from_reader(std::io::BufReader::new(
        std::fs::File::open(&junit).unwrap(),
    ))
    .unwrap();
    assert_eq!(report.suites[0].failures, 1);

    let exit = virserver(&[
        "run",
        &firmware("exit3-riscv32-virt.elf"),
        "--board",
        "riscv32-virt",
    ]);
    assert_eq!(exit.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&exit.stderr).contains("exit code 3, expected 0"));
    let expected = virserver(&[
        "run",
        &firmware("exit3-riscv32-virt.elf"),
        "--board",
        "riscv32-virt",
        "--expect-exit",
        "3",
    ]);
    assert_eq!(expected.status.code(), Some(0));

    let timeout = virserver(&[
        "run",
        &firmware("ticker-mps2-an385.elf"),
        "--board",
        "mps2-an385",
        "--timeout",
        "1",
    ]);
    assert_eq!(timeout.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&timeout.stderr).contains("TIMED_OUT"));
}

#[test]
fn run_reports_bad_input_as_errors() {
    let missing = virserver(&["run", "/no/such.elf", "--board", "mps2-an385"]);
    assert_eq!(missing.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read /no/such.elf"));
    let wrong = virserver(&[
        "run",
        &firmware("hello-riscv32-virt.elf"),
        "--board",
        "mps2-an385",
    ]);
    assert_eq!(wrong.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("ERROR"),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );
    let regex = virserver(&[
        "run",
        &firmware("hello-mps2-an385.elf"),
        "--board",
        "mps2-an385",
        "--expect",
        "(",
    ]);
    assert_eq!(regex.status.code(), Some(3));
}

#[tokio::test]
async fn submit_runs_the_job_on_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::Server::start(&dir.path().join("data"), &[]).await;
    let junit = dir.path().join("remote.xml");
    let base = server.base.clone();
    let junit_path = junit.clone();
    let output = tokio::task::spawn_blocking(move || {
        virserver(&[
            "submit",
            &firmware("echo-mps2-an385.elf"),
            "--server",
            &base,
            "--board",
            "mps2-an385",
            "--input",
            "abc\nq",
            "--expect-exit",
            "4",
            "--junit",
            junit_path.to_str().unwrap(),
        ])
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("PASSED"), "{stderr}");
    assert!(
        std::fs::read_to_string(&junit)
            .unwrap()
            .contains("exit code is 4")
    );
}
