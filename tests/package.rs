//! The release archive as a user gets it: `scripts/package` packs the built binary and
//! plugin, the archive is unpacked into an empty directory, and `virserver doctor`,
//! `virserver run` and `virserver serve` work from a directory of the user's own with
//! nothing configured: the boards are compiled in, the plugin is found from `bin/`, the
//! data goes to `./var` of the working directory.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Server;
use serde_json::json;

/// `scripts/package` on the debug build the tests run; the archive's path.
fn package(out: &Path) -> PathBuf {
    let output = Command::new(common::repo().join("scripts/package"))
        .args(["--profile", "debug", "--no-build", "--out"])
        .arg(out)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let archive = PathBuf::from(stdout.lines().last().expect("a path on the last line"));
    assert!(
        archive.is_file() && archive.to_string_lossy().ends_with(".tar.gz"),
        "{stdout}"
    );
    archive
}

/// The packed `virserver`, run in `cwd` with no VIRSERVER_* setting of the test's.
fn virserver(root: &Path, cwd: &Path) -> Command {
    let mut command = Command::new(root.join("bin/virserver"));
    command.current_dir(cwd);
    for (name, _) in std::env::vars() {
        if name.starts_with("VIRSERVER_") {
            command.env_remove(name);
        }
    }
    command
}

#[tokio::test]
async fn the_unpacked_archive_runs_and_serves_from_another_directory() {
    let scratch = tempfile::tempdir().unwrap();
    let archive = package(scratch.path());
    let install = tempfile::tempdir().unwrap();
    let unpacked = Command::new("tar")
        .arg("-xzf")
        .arg(&archive)
        .arg("-C")
        .arg(install.path())
        .status()
        .unwrap();
    assert!(unpacked.success());
    let entries: Vec<PathBuf> = std::fs::read_dir(install.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let [root] = &entries[..] else {
        panic!("one top folder expected: {entries:?}")
    };
    for file in [
        "bin/virserver",
        "lib/virserver/libvirserver_qemu_trace_plugin.so",
        "lib/virserver/LICENSE",
        "share/virserver/boards/mps2-an385.yaml",
        "README.md",
        "LICENSE-MIT",
        "LICENSE-APACHE",
    ] {
        assert!(root.join(file).is_file(), "{file} not in the archive");
    }

    let work = tempfile::tempdir().unwrap();
    for name in ["hello-mps2-an385.elf", "echo-mps2-an385.elf"] {
        std::fs::copy(common::firmware(name), work.path().join(name)).unwrap();
    }

    let doctor = virserver(root, work.path()).arg("doctor").output().unwrap();
    let report = String::from_utf8_lossy(&doctor.stdout);
    assert_eq!(doctor.status.code(), Some(0), "{report}");
    let plugin = root
        .join("lib/virserver/libvirserver_qemu_trace_plugin.so")
        .canonicalize()
        .unwrap();
    assert!(
        report.contains(&format!("hit-count plugin: {}", plugin.display())),
        "{report}"
    );
    assert!(report.contains("qemu-system-arm"), "{report}");

    let run = virserver(root, work.path())
        .args(["run", "hello-mps2-an385.elf", "--board", "mps2-an385"])
        .args(["--expect", "counting: 1 2 3", "--coverage", "hello.info"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("virserver: PASSED"), "{stderr}");
    let lcov = std::fs::read_to_string(work.path().join("hello.info")).unwrap();
    assert!(lcov.contains("hello.c") && lcov.contains("DA:"), "{lcov}");

    // A console whose last line is open still ends with a newline before the verdict.
    let open_line = virserver(root, work.path())
        .args(["run", "echo-mps2-an385.elf", "--board", "mps2-an385"])
        .args(["--input", "abc", "--timeout", "2"])
        .output()
        .unwrap();
    assert_eq!(open_line.status.code(), Some(2), "{open_line:?}");
    assert_eq!(
        String::from_utf8_lossy(&open_line.stdout),
        "echo ready\nabc\n"
    );

    let mut serve = virserver(root, work.path());
    serve.args(["serve", "--listen", "127.0.0.1:0"]);
    let server = Server::spawn(serve.into(), &work.path().join("var")).await;
    let data = server
        .query(
            "{ boardTemplates { id } capabilities { backend available hitCounts } }",
            json!({}),
        )
        .await;
    let boards = data["boardTemplates"].to_string();
    for id in ["mps2-an385", "riscv32-virt", "lm3s6965evb", "aarch64-virt"] {
        assert!(boards.contains(id), "{id} missing from {boards}");
    }
    let qemu = data["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["backend"] == "QEMU")
        .unwrap();
    assert_eq!(qemu["available"], true, "{qemu}");
    assert_eq!(qemu["hitCounts"], true, "{qemu}");
    let session = server.create_session("mps2-an385").await;
    server.upload(&session, "hello-mps2-an385.elf").await;
    server.power(&session, "ON", false).await;
    let done = server.wait_state(&session, "EXITED").await;
    assert_eq!(done["exitCode"], 0, "{done}");
    assert_eq!(server.terminate().await, Some(0));
    assert!(work.path().join("var/virserver.db").is_file());
}
