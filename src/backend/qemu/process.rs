//! The QEMU command line for a board, built as pure data (unit-tested), and the spawn
//! that makes sure the process dies with the server: kill on drop, and
//! PR_SET_PDEATHSIG so that even a SIGKILLed server leaves no orphan emulator.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::{Child, Command};

use super::confine::Prepared;
use crate::backend::{BackendError, Recording};
use crate::boards::{ExitMechanism, QemuSection};

/// Unix socket paths are limited to 108 bytes (including the terminating NUL).
const MAX_SOCKET_PATH: usize = 107;

/// Deterministic runs: virtual time advances 2^4 ns per instruction (a 62.5 MHz
/// core, near the microcontrollers the boards model), and never by the host clock
/// (`sleep=off`: an idle CPU jumps to its next timer). `shift=auto` would adapt to the
/// host's speed and not repeat.
pub const DETERMINISTIC_ICOUNT: &str = "shift=4,sleep=off";
/// ... and the real-time clock starts at a fixed date, on virtual time.
pub const DETERMINISTIC_RTC: &str = "base=2000-01-01T00:00:00,clock=vm";

/// A recording's input log and its snapshot image, in the recording's directory.
pub const RR_LOG: &str = "replay.bin";
pub const RR_IMAGE: &str = "rr.qcow2";
/// The snapshot a replay starts from (QEMU takes it when recording starts).
const RR_START: &str = "start";

/// Semihosting answered by the GDB gateway, never by QEMU on the host.
pub const SEMIHOSTING_CONFIG: &str = "enable=on,target=gdb,arg=firmware";

/// True when the board's guest calls semihosting, which then needs the gateway
/// attached from the first instruction on.
pub fn uses_semihosting(qemu: &QemuSection) -> bool {
    qemu.exit == ExitMechanism::Semihosting
}

/// How QEMU records execution for coverage.
#[derive(Debug, Clone)]
pub enum Trace {
    /// `-d in_asm -D FILE`: each translated block once; no run-time cost.
    InAsm(PathBuf),
    /// The hit-count TCG plugin writing its counts to `out` when QEMU exits.
    Plugin { plugin: PathBuf, out: PathBuf },
}

/// The sockets a machine's run dir holds.
#[derive(Debug, Clone)]
pub struct RunPaths {
    pub qmp: PathBuf,
    pub gdb: PathBuf,
}

impl RunPaths {
    pub fn new(run_dir: &Path) -> Result<Self, BackendError> {
        let paths = Self {
            qmp: run_dir.join("qmp.sock"),
            gdb: run_dir.join("gdb.sock"),
        };
        for path in [&paths.qmp, &paths.gdb] {
            if path.as_os_str().len() > MAX_SOCKET_PATH {
                return Err(BackendError::Launch(format!(
                    "socket path {} is longer than {MAX_SOCKET_PATH} bytes: use a shorter data dir",
                    path.display()
                )));
            }
        }
        Ok(paths)
    }
}

/// The arguments after the binary name. The CPU always starts stopped (`-S`) so that QMP
/// is connected before the first instruction runs; the machine is then continued unless
/// the caller asked for a halted start.
pub fn arguments(
    qemu: &QemuSection,
    program: &Path,
    paths: &RunPaths,
    trace: Option<&Trace>,
    deterministic: bool,
    recording: Option<&Recording>,
    confinement: &Prepared,
) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    let mut push = |items: &[&str]| args.extend(items.iter().map(OsString::from));
    push(&confinement.arguments());
    push(&["-M", &qemu.machine]);
    if let Some(cpu) = &qemu.cpu {
        push(&["-cpu", cpu]);
    }
    if let Some(memory) = &qemu.memory {
        push(&["-m", memory]);
    }
    push(&["-nodefaults", "-display", "none", "-S"]);
    // Record and replay count instructions like a deterministic run; the same icount
    // settings must be given to both.
    let icount = match deterministic {
        true => DETERMINISTIC_ICOUNT,
        false => "shift=auto",
    };
    match recording {
        Some(Recording::Record(dir) | Recording::Replay(dir)) => {
            let mode = match recording {
                Some(Recording::Record(_)) => "record",
                _ => "replay",
            };
            push(&[
                "-icount",
                &format!(
                    "{icount},rr={mode},rrfile={},rrsnapshot={RR_START}",
                    dir.join(RR_LOG).display()
                ),
                "-drive",
                &format!("file={},if=none,id=rr", dir.join(RR_IMAGE).display()),
            ]);
        }
        None if deterministic => push(&["-icount", icount]),
        None => {}
    }
    if deterministic {
        push(&["-rtc", DETERMINISTIC_RTC]);
    }
    // One console stream, read through a pipe. QEMU records no input of a multiplexed
    // chardev, so a recorded run's console is a plain one (semihosting output goes to
    // the gateway, never to this chardev).
    let console = match recording {
        Some(_) => "stdio,id=console,signal=off",
        None => "stdio,id=console,mux=on,signal=off",
    };
    push(&["-chardev", console, "-serial", "chardev:console"]);
    if uses_semihosting(qemu) {
        // Never `target=native`: QEMU would run the guest's file and system calls on
        // this host. With `target=gdb` they come to the gateway as File-I/O requests
        // (crates/gateway/src/semihosting.rs); exit, clock, heap info and the command
        // line stay QEMU's own, and `arg=` keeps the command line from naming the
        // program's host path.
        push(&["-semihosting-config", SEMIHOSTING_CONFIG]);
    }
    push(&[
        "-qmp",
        &format!("unix:{},server=on,wait=off", paths.qmp.display()),
    ]);
    push(&[
        "-chardev",
        &format!(
            "socket,id=gdb,path={},server=on,wait=off",
            paths.gdb.display()
        ),
        "-gdb",
        "chardev:gdb",
    ]);
    match trace {
        Some(Trace::InAsm(log)) => {
            args.extend([
                "-d".into(),
                "in_asm".into(),
                "-D".into(),
                log.as_os_str().to_owned(),
            ]);
        }
        Some(Trace::Plugin { plugin, out }) => {
            args.push("-plugin".into());
            args.push(format!("{},out={}", plugin.display(), out.display()).into());
        }
        None => {}
    }
    args.push("-kernel".into());
    args.push(program.as_os_str().to_owned());
    args.extend(qemu.extra_args.iter().map(OsString::from));
    args
}

/// Starts the emulator with piped stdio, confined before exec as `confinement` says.
/// Dropping `confinement` once spawned closes the Landlock ruleset fd in this process.
pub fn spawn(
    binary: &Path,
    args: &[OsString],
    run_dir: &Path,
    confinement: Prepared,
) -> Result<Child, BackendError> {
    let in_child = confinement.in_child();
    let mut command = Command::new(binary);
    command
        .args(args)
        .current_dir(run_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    in_child.install(&mut command);
    let child = command
        .spawn()
        .map_err(|error| BackendError::Launch(format!("cannot run {}: {error}", binary.display())));
    drop(confinement);
    child
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boards::BoardTemplate;

    #[test]
    fn semihosting_board_gets_console_and_sockets() {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("boards/mps2-an385.yaml"),
        )
        .unwrap();
        let board = BoardTemplate::parse("mps2", &text).unwrap();
        let paths = RunPaths::new(Path::new("/run/x")).unwrap();
        let qemu = board.backends.qemu.clone().unwrap();
        let args: Vec<String> = arguments(
            &qemu,
            Path::new("/p/fw.elf"),
            &paths,
            Some(&Trace::InAsm(PathBuf::from("/run/x/t.log"))),
            false,
            None,
            &Prepared::unconfined(),
        )
        .into_iter()
        .map(|a| a.into_string().unwrap())
        .collect();
        let joined = args.join(" ");
        assert!(joined.starts_with("-M mps2-an385 -nodefaults"), "{joined}");
        assert!(joined.contains("-semihosting-config enable=on,target=gdb,arg=firmware"));
        assert!(!joined.contains("target=native"));
        assert!(joined.contains("-qmp unix:/run/x/qmp.sock,server=on,wait=off"));
        assert!(joined.contains("path=/run/x/gdb.sock"));
        assert!(
            joined.ends_with("-d in_asm -D /run/x/t.log -kernel /p/fw.elf"),
            "{joined}"
        );
    }

    /// Landlock applied to a real QEMU: with the rules of a launch it boots the program and
    /// writes in its run dir, but cannot create a file elsewhere or read a firmware that is
    /// not the program (each refusal is QEMU failing to start; unconfined, both work).
    #[tokio::test]
    async fn a_confined_qemu_reads_and_writes_only_what_its_rules_grant() {
        use crate::backend::EmulatorBinary;
        use crate::backend::qemu::confine::{ConfinementMode, HostConfinement, LaunchFiles};
        if let Err(reason) = crate::backend::qemu::confine::landlock_abi() {
            eprintln!("skipped: {reason}");
            return;
        }
        let path = crate::backend::unavailable::find_on_path("qemu-system-arm")
            .expect("qemu-system-arm on PATH");
        let binary = EmulatorBinary {
            name: "qemu-system-arm".into(),
            path: path.clone(),
            version: String::new(),
        };
        let host = HostConfinement::probe(ConfinementMode::On, &[binary]).await;
        let program = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples/firmware/bin/hello-mps2-an385.elf");
        let run_dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let copy = outside.path().join("copy.elf");
        std::fs::copy(&program, &copy).unwrap();
        let run = |log: PathBuf, kernel: PathBuf| {
            let files = LaunchFiles {
                program: &program,
                run_dir: run_dir.path(),
                plugin: None,
                trace: None,
            };
            let confinement = host.prepare("qemu-system-arm", &files).unwrap();
            let mut args: Vec<OsString> = confinement
                .arguments()
                .into_iter()
                .map(OsString::from)
                .collect();
            for arg in [
                "-M",
                "mps2-an385",
                "-nodefaults",
                "-display",
                "none",
                "-chardev",
                "stdio,id=c,mux=on,signal=off",
                "-serial",
                "chardev:c",
                "-semihosting-config",
                "enable=on,target=native,chardev=c",
                "-d",
                "guest_errors",
            ] {
                args.push(arg.into());
            }
            args.extend(["-D".into(), log.into_os_string()]);
            args.extend(["-kernel".into(), kernel.into_os_string()]);
            let child = spawn(&path, &args, run_dir.path(), confinement).unwrap();
            async move {
                let output = tokio::time::timeout(
                    std::time::Duration::from_secs(30),
                    child.wait_with_output(),
                )
                .await
                .expect("QEMU did not end within 30 s")
                .unwrap();
                let text = String::from_utf8_lossy(&output.stdout).into_owned()
                    + &String::from_utf8_lossy(&output.stderr);
                (output.status.success(), text)
            }
        };

        let inside = run_dir.path().join("qemu.log");
        let (ok, text) = run(inside.clone(), program.clone()).await;
        assert!(ok && text.contains("counting: 1 2 3"), "{text}");
        assert!(inside.exists());

        let escaped = outside.path().join("escaped.log");
        let (ok, text) = run(escaped.clone(), program.clone()).await;
        assert!(!ok && text.contains("Permission denied"), "{text}");
        assert!(!escaped.exists(), "a confined QEMU created {escaped:?}");

        let (ok, text) = run(run_dir.path().join("second.log"), copy.clone()).await;
        assert!(
            !ok && !text.contains("counting"),
            "a confined QEMU booted {copy:?}: {text}"
        );
    }

    #[test]
    fn long_run_dir_is_refused_clearly() {
        let long = PathBuf::from(format!("/{}", "d".repeat(120)));
        let error = RunPaths::new(&long).unwrap_err().to_string();
        assert!(error.contains("shorter data dir"), "{error}");
    }
}
