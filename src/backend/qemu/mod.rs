//! The QEMU backend: probes the installed `qemu-system-*` binaries (their versions
//! differ between hosts: 7.2 and 10.x behave differently in places, so nothing is
//! assumed), and runs one QEMU process per powered session with QMP and the GDB stub
//! on private unix sockets in the session's run dir, confined (`confine`) so that
//! neither the firmware nor a board's arguments reach the host.

pub mod confine;
mod machine;
mod process;
pub mod qmp;
mod qmp_client;
mod snapshot;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::unavailable::find_on_path;
use super::{
    Availability, Backend, BackendError, BackendKind, Collector, Confinement, EmulatorBinary,
    LaunchRequest, Machine, MachineEvent, Recording, SnapshotCapability, TraceCapability,
};
use crate::boards::BoardTemplate;

/// The binaries the board templates can name.
pub(crate) const BINARIES: [&str; 4] = [
    "qemu-system-arm",
    "qemu-system-aarch64",
    "qemu-system-riscv32",
    "qemu-system-riscv64",
];

pub struct QemuBackend {
    availability: Availability,
    /// The hit-count TCG plugin, or why there is none.
    trace_plugin: Result<PathBuf, String>,
    /// What confinement each binary gets on this host.
    confinement: confine::HostConfinement,
}

/// The plugin's file name as cargo builds it (crates/qemu-trace-plugin).
const TRACE_PLUGIN_FILE: &str = "libvirserver_qemu_trace_plugin.so";

/// Where the plugin is looked for, relative to this executable's folder: beside it (a
/// release archive's `bin/` or a cargo target dir), in `../lib/virserver/` (an install
/// under a prefix: `$PREFIX/bin/virserver`, `$PREFIX/lib/virserver/`), and one folder up
/// (cargo's test binaries run from `target/debug/deps/`).
const TRACE_PLUGIN_DIRS: [&str; 3] = [".", "../lib/virserver", ".."];

/// The configured plugin, else the first of [`TRACE_PLUGIN_DIRS`] that holds one.
fn find_trace_plugin(configured: Option<PathBuf>) -> Result<PathBuf, String> {
    if let Some(path) = configured {
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!(
                "the configured trace plugin {} does not exist",
                path.display()
            ))
        };
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = exe.parent().unwrap_or(Path::new("/"));
    TRACE_PLUGIN_DIRS
        .iter()
        .map(|relative| dir.join(relative).join(TRACE_PLUGIN_FILE))
        .find(|candidate| candidate.is_file())
        .map(|found| found.canonicalize().unwrap_or(found))
        .ok_or_else(|| {
            format!(
                "{TRACE_PLUGIN_FILE} not found beside {} or in {}: build it with `cargo build --release -p virserver-qemu-trace-plugin` and copy it there, or set VIRSERVER_TRACE_PLUGIN",
                exe.display(),
                dir.parent().unwrap_or(dir).join("lib/virserver").display()
            )
        })
}

impl QemuBackend {
    pub async fn probe(
        trace_plugin: Option<PathBuf>,
        confinement: confine::ConfinementMode,
    ) -> Self {
        let mut binaries = Vec::new();
        for name in BINARIES {
            let Some(path) = find_on_path(name) else {
                continue;
            };
            match version_of(&path).await {
                Some(version) => binaries.push(EmulatorBinary {
                    name: name.to_owned(),
                    path,
                    version,
                }),
                None => tracing::warn!(binary = %path.display(), "does not answer --version"),
            }
        }
        let missing: Vec<&str> = BINARIES
            .into_iter()
            .filter(|name| !binaries.iter().any(|b: &EmulatorBinary| b.name == *name))
            .collect();
        let reason = match (binaries.is_empty(), missing.is_empty()) {
            (true, _) => Some("no qemu-system-* binary found on PATH".to_owned()),
            (false, false) => Some(format!("not installed: {}", missing.join(", "))),
            (false, true) => None,
        };
        let confinement = confine::HostConfinement::probe(confinement, &binaries).await;
        Self {
            availability: Availability {
                available: !binaries.is_empty(),
                reason,
                binaries,
            },
            trace_plugin: find_trace_plugin(trace_plugin),
            confinement,
        }
    }

    fn binary(&self, name: &str) -> Option<PathBuf> {
        self.availability
            .binaries
            .iter()
            .find(|b| b.name == name)
            .map(|b| b.path.clone())
    }
}

/// `QEMU emulator version 7.2.22 (Debian ...)` -> `7.2.22`.
async fn version_of(path: &std::path::Path) -> Option<String> {
    let output = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::process::Command::new(path).arg("--version").output(),
    )
    .await
    .ok()?
    .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    parse_version(&text)
}

fn parse_version(text: &str) -> Option<String> {
    let rest = text.lines().next()?.split("version ").nth(1)?;
    Some(rest.split_whitespace().next()?.to_owned())
}

#[async_trait]
impl Backend for QemuBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Qemu
    }

    fn availability(&self) -> &Availability {
        &self.availability
    }

    fn has_gdb_stub(&self) -> bool {
        true
    }

    fn trace(&self) -> Option<&dyn TraceCapability> {
        Some(self)
    }

    fn snapshots(&self) -> Option<&dyn SnapshotCapability> {
        Some(self)
    }

    fn confinements(&self) -> Vec<Confinement> {
        self.confinement.report()
    }

    fn supports_board(&self, board: &BoardTemplate) -> Result<(), BackendError> {
        let qemu = board
            .backends
            .qemu
            .as_ref()
            .ok_or_else(|| BackendError::BoardNotSupported {
                board: board.id.clone(),
                backend: "QEMU",
            })?;
        if self.binary(&qemu.binary).is_none() {
            return Err(BackendError::Unavailable {
                backend: "QEMU",
                reason: format!("{} is not installed (board '{}')", qemu.binary, board.id),
            });
        }
        Ok(())
    }

    async fn launch(
        &self,
        request: LaunchRequest,
    ) -> Result<(Box<dyn Machine>, mpsc::Receiver<MachineEvent>), BackendError> {
        self.supports_board(&request.board)?;
        let qemu = request
            .board
            .backends
            .qemu
            .clone()
            .ok_or(BackendError::Gone)?;
        let binary = self.binary(&qemu.binary).ok_or(BackendError::Gone)?;
        tokio::fs::create_dir_all(&request.run_dir).await?;
        // QMP and the raw GDB stub live here: only the server's user may reach them
        // (GDB clients come through the gateway's allow-list).
        tokio::fs::set_permissions(&request.run_dir, std::fs::Permissions::from_mode(0o700))
            .await?;
        let paths = process::RunPaths::new(&request.run_dir)?;
        for stale in [&paths.qmp, &paths.gdb] {
            let _ = tokio::fs::remove_file(stale).await;
        }
        let trace = match &request.trace {
            Some(trace) if trace.collector == Collector::HitCounts => {
                let plugin =
                    self.trace_plugin
                        .clone()
                        .map_err(|reason| BackendError::Unavailable {
                            backend: "QEMU hit counts",
                            reason,
                        })?;
                Some(process::Trace::Plugin {
                    plugin,
                    out: trace.path.clone(),
                })
            }
            Some(trace) => Some(process::Trace::InAsm(trace.path.clone())),
            None => None,
        };
        let started = Instant::now();
        if let Some(Recording::Record(dir)) = &request.recording {
            self.empty_rr_image(&binary, &qemu.binary, &request, dir)
                .await?;
        }
        let (plugin, trace_out) = match &trace {
            Some(process::Trace::InAsm(log)) => (None, Some(log.as_path())),
            Some(process::Trace::Plugin { plugin, out }) => {
                (Some(plugin.as_path()), Some(out.as_path()))
            }
            None => (None, None),
        };
        let confinement = self.confinement.prepare(
            &qemu.binary,
            &confine::LaunchFiles {
                program: &request.program,
                run_dir: &request.run_dir,
                plugin,
                trace: trace_out,
            },
        )?;
        let args = process::arguments(
            &qemu,
            &request.program,
            &paths,
            trace.as_ref(),
            request.deterministic,
            request.recording.as_ref(),
            &confinement,
        );
        tracing::debug!(binary = %binary.display(), ?args, "starting QEMU");
        let child = process::spawn(&binary, &args, &request.run_dir, confinement)?;
        let (machine, events) = machine::QemuMachine::start(
            child,
            paths,
            machine::Start {
                halted: request.halted,
                gdb_file_io: process::uses_semihosting(&qemu),
                restore: request.restore.clone(),
                run_dir: request.run_dir.clone(),
                recording: request.recording.is_some(),
            },
        )
        .await?;
        tracing::info!(
            board = %request.board.id,
            pid = ?machine.pid(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "QEMU started"
        );
        Ok((Box::new(machine), events))
    }
}

impl QemuBackend {
    /// A recording needs an empty qcow2 image before QEMU starts (its `rrsnapshot`),
    /// and `qemu-img` is not a dependency: a QEMU with no machine makes it through QMP,
    /// confined like every launch.
    async fn empty_rr_image(
        &self,
        binary: &std::path::Path,
        name: &str,
        request: &LaunchRequest,
        dir: &std::path::Path,
    ) -> Result<(), BackendError> {
        tokio::fs::create_dir_all(dir).await?;
        let paths = process::RunPaths {
            qmp: request.run_dir.join("image.sock"),
            gdb: request.run_dir.join("image-gdb.sock"),
        };
        let _ = tokio::fs::remove_file(&paths.qmp).await;
        let confinement = self.confinement.prepare(
            name,
            &confine::LaunchFiles {
                program: &request.program,
                run_dir: &request.run_dir,
                plugin: None,
                trace: None,
            },
        )?;
        let mut args: Vec<std::ffi::OsString> = confinement
            .arguments()
            .into_iter()
            .map(Into::into)
            .collect();
        for arg in [
            "-M",
            "none",
            "-nodefaults",
            "-display",
            "none",
            "-S",
            "-qmp",
        ] {
            args.push(arg.into());
        }
        args.push(format!("unix:{},server=on,wait=off", paths.qmp.display()).into());
        let child = process::spawn(binary, &args, &request.run_dir, confinement)?;
        let (maker, _events) = machine::QemuMachine::start(
            child,
            paths,
            machine::Start {
                halted: true,
                gdb_file_io: false,
                restore: None,
                run_dir: request.run_dir.clone(),
                recording: false,
            },
        )
        .await?;
        let made = maker.empty_image(&dir.join(process::RR_IMAGE)).await;
        let _ = maker.power_off().await;
        made
    }
}

/// Every board: the QMP jobs exist from QEMU 6.0 on, and a board whose devices block
/// migration says so when a save is tried (`snapshot::job_error`).
impl SnapshotCapability for QemuBackend {}

impl TraceCapability for QemuBackend {
    /// One plugin build loads in every QEMU from 6.0 to 10.x (it declares its API level
    /// when loaded), so only its presence is checked.
    fn hit_counts(&self) -> Result<String, String> {
        self.trace_plugin
            .as_ref()
            .map(|path| path.display().to_string())
            .map_err(Clone::clone)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn versions_parse() {
        assert_eq!(
            super::parse_version(
                "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\nCopyright"
            ),
            Some("7.2.22".into())
        );
        assert_eq!(
            super::parse_version("QEMU emulator version 10.0.2\n"),
            Some("10.0.2".into())
        );
        assert_eq!(super::parse_version("garbage"), None);
    }
}
