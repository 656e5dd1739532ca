//! End to end: the plugin this package just built, loaded by the real QEMU
//! on the committed coverage fixture, must write the counts committed as
//! `crates/coverage/tests/fixtures/cortex-m3/plugin.blocks` (per-instruction
//! counts do not depend on how a QEMU version cuts blocks), and bad
//! arguments must make QEMU refuse to start.
//!
//! A missing `qemu-system-arm` fails the tests (a test that looped over no
//! QEMU would pass having checked nothing). Another QEMU (e.g. an unpacked
//! 10.x) is tried too when `VIRSERVER_QEMU_ARM_EXTRA` names its binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use virserver_coverage::BlockCounts;

/// The shared object cargo built with this test: `cargo test` leaves it
/// beside the test binary in `target/<profile>/deps` (`cargo build` copies
/// it up to `target/<profile>`).
fn plugin_path() -> PathBuf {
    const NAME: &str = "libvirserver_qemu_trace_plugin.so";
    let exe = std::env::current_exe().expect("test binary path");
    let deps = exe.parent().expect("target/<profile>/deps");
    let beside = deps.join(NAME);
    if beside.exists() {
        return beside;
    }
    deps.parent().unwrap_or(deps).join(NAME)
}

fn fixture(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../coverage/tests/fixtures")
        .join(relative)
}

fn qemus() -> Vec<String> {
    let mut qemus = Vec::new();
    let installed = Command::new("qemu-system-arm").arg("--version").output();
    assert!(
        installed.is_ok_and(|output| output.status.success()),
        "qemu-system-arm is not installed (scripts/install-deps.sh installs it)"
    );
    qemus.push("qemu-system-arm".to_owned());
    if let Some(extra) = std::env::var_os("VIRSERVER_QEMU_ARM_EXTRA") {
        qemus.push(extra.to_string_lossy().into_owned());
    }
    qemus
}

fn run(qemu: &str, plugin_argument: &str, elf: &Path) -> Output {
    Command::new("timeout")
        .arg("20")
        .arg(qemu)
        .args(["-M", "mps2-an385", "-nographic", "-monitor", "none"])
        .args(["-semihosting-config", "enable=on,target=native"])
        .arg("-plugin")
        .arg(plugin_argument)
        .arg("-kernel")
        .arg(elf)
        // An unpacked QEMU would otherwise try the installed one's modules.
        .env("QEMU_MODULE_DIR", std::env::temp_dir())
        .output()
        .expect("run QEMU")
}

#[test]
fn counts_of_a_real_run_match_the_committed_fixture() {
    let plugin = plugin_path();
    assert!(plugin.exists(), "{} not built", plugin.display());
    let expected = std::fs::read(fixture("cortex-m3/plugin.blocks")).expect("fixture");
    let expected = BlockCounts::parse(&expected).expect("fixture parses");
    for qemu in qemus() {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = dir.path().join("run.blocks");
        let argument = format!("{},out={}", plugin.display(), out.display());
        let output = run(&qemu, &argument, &fixture("cortex-m3/fixture.elf"));
        assert!(
            output.status.success(),
            "{qemu}: {:?}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&output.stdout), "done\n");
        let bytes = std::fs::read(&out).expect("the plugin wrote its file at exit");
        let counts = BlockCounts::parse(&bytes).expect("valid file");
        assert_eq!(counts.target(), "arm");
        assert!((1..=2).contains(&counts.api_level()));
        assert_eq!(counts.hit_counts(), expected.hit_counts(), "{qemu}");
        assert!(!dir.path().join("run.blocks.tmp").exists());
    }
}

#[test]
fn bad_arguments_stop_qemu_with_a_message() {
    let plugin = plugin_path();
    for qemu in qemus() {
        for (argument, message) in [
            (plugin.display().to_string(), "missing argument out=FILE"),
            (
                format!("{},out=x,verbose=on", plugin.display()),
                "unknown argument \"verbose=on\"",
            ),
        ] {
            let output = run(&qemu, &argument, &fixture("cortex-m3/fixture.elf"));
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(!output.status.success(), "{qemu} {argument}: started");
            assert!(stderr.contains(message), "{qemu} {argument}: {stderr}");
        }
    }
}
