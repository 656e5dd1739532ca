//! Confinement of the QEMU process, in one place. Users upload the firmware QEMU runs, and
//! GraphQL clients choose boards whose templates add QEMU arguments: a QEMU bug a guest can
//! trigger, a device that reaches the host, or an argument that opens a host file must not
//! give either of them the host. Three layers, each holding when another is missing
//! (defence in depth):
//!
//! - seccomp: QEMU's own `-sandbox` filter (no obsolete system calls, no privilege
//!   changes, no fork or exec, no scheduler or affinity changes). Builds without seccomp
//!   exist, so each binary is probed once, at start-up, by starting it sandboxed.
//! - Landlock: between fork and exec the child restricts itself to reading what QEMU needs
//!   (its binary and loader, shared libraries, its data files, the program ELF, the trace
//!   plugin) and to writing its session's run dir only; TCP bind and connect are denied,
//!   and signals and abstract unix sockets cannot leave the sandbox. Best effort: an older
//!   kernel enforces what its Landlock ABI has, and the report says what that is.
//! - no_new_privs: set before exec whenever confinement is on, so nothing QEMU could exec
//!   gains privileges (Landlock requires it, and it holds where Landlock is missing).
//!
//! `pre_exec` runs in a forked copy of a multi-threaded process, where allocating or
//! taking a lock can deadlock: the ruleset (path fds, ruleset fd) is built in the parent,
//! and the child only makes two system calls on the prepared fd ([`InChild::apply`]).
//!
//! Two more policies are kept by other layers and only reported from here, as fixed
//! facts: semihosting ([`semihosting_policy`]) and the GDB `monitor` command
//! ([`monitor_policy`]).

use std::ffi::OsStr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, NetPort, PathBeneath, PathFd, Ruleset, RulesetAttr,
    RulesetCreatedAttr, Scope,
};
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use crate::backend::{BackendError, Confinement, EmulatorBinary};

/// How much of the confinement the server applies to emulator processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ConfinementMode {
    /// Apply every confinement this host supports; report the ones it cannot.
    #[default]
    On,
    /// Refuse to launch an emulator unless every confinement is active for it.
    Required,
    /// No confinement at all: for benchmarks and for debugging only.
    Off,
}

impl ConfinementMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ConfinementMode::On => "on",
            ConfinementMode::Required => "required",
            ConfinementMode::Off => "off",
        }
    }
}

impl std::fmt::Display for ConfinementMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an emulator could not be confined as asked.
#[derive(Debug, thiserror::Error)]
pub enum ConfinementError {
    #[error("confinement = required, but {confinement} is not active for {binary}: {reason}")]
    Required {
        confinement: &'static str,
        binary: String,
        reason: String,
    },
    #[error("{path} is written by QEMU but lies outside its run dir {run_dir}")]
    OutsideRunDir { path: PathBuf, run_dir: PathBuf },
    #[error("cannot open {path} for the Landlock ruleset: {error}")]
    Path {
        path: PathBuf,
        error: landlock::PathFdError,
    },
    #[error("cannot build the Landlock ruleset: {0}")]
    Ruleset(#[from] landlock::RulesetError),
}

impl From<ConfinementError> for BackendError {
    /// A host that cannot confine as required has no usable QEMU; the rest are failures of
    /// one launch.
    fn from(error: ConfinementError) -> Self {
        match error {
            ConfinementError::Required { .. } => BackendError::Unavailable {
                backend: "QEMU",
                reason: error.to_string(),
            },
            _ => BackendError::Launch(error.to_string()),
        }
    }
}

/// The names `required` insists on; the others are policies that are always in force.
pub const REQUIRED: [&str; 3] = ["seccomp", "landlock", "no_new_privs"];

/// QEMU's `-sandbox` setting: its seccomp filter with every optional deny-list on.
pub const SANDBOX: &str = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny";

/// How semihosting requests from the guest are served (the gateway's policy).
pub fn semihosting_policy() -> &'static str {
    "answered by the gateway (target=gdb)"
}

/// How the GDB `monitor` command reaches QEMU (the gateway's policy).
pub fn monitor_policy() -> &'static str {
    "allow-list; raw passthrough off"
}

/// The Landlock ABI whose rights are asked for: filesystem (1-3, 5), TCP (4) and scopes
/// (6). A newer kernel enforces exactly these; rights of later ABIs (such as connecting to
/// unix sockets, ABI 9) are not asked for until they are tested here.
const LANDLOCK_ABI: ABI = ABI::V6;
const LANDLOCK_ABI_NUMBER: i64 = 6;

/// `landlock_create_ruleset` flag asking for the kernel's ABI version.
const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;

/// Shared libraries, read by the dynamic loader (mapping them needs no Landlock right).
const LIBRARY_DIRS: [&str; 9] = [
    "/lib",
    "/lib64",
    "/lib32",
    "/libx32",
    "/usr/lib",
    "/usr/lib64",
    "/usr/lib32",
    "/usr/libx32",
    "/usr/local/lib",
];

/// Firmware and data of distribution packages: BIOS images, option ROMs, device trees.
const DATA_DIRS: [&str; 7] = [
    "/usr/share/qemu",
    "/usr/local/share/qemu",
    "/usr/share/seabios",
    "/usr/share/ipxe",
    "/usr/share/qemu-efi-aarch64",
    "/usr/share/AAVMF",
    "/usr/share/OVMF",
];

/// What QEMU 7.2 and 10.0 read at start-up besides libraries (found with strace): the
/// loader's cache, random bytes, the CPU count (glibc, libnuma) and, in 10.x, the map
/// count limit. Others they try (`/proc/self/status`, `/proc/mounts`, `/sys/devices/system/node`,
/// `/etc/localtime`) are refused: each has a fallback and QEMU boots without them.
const SYSTEM_PATHS: [&str; 4] = [
    "/etc/ld.so.cache",
    "/dev/urandom",
    "/sys/devices/system/cpu",
    "/proc/sys/vm/max_map_count",
];

/// What a Landlock rule allows beneath (or on) its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// Read and execute (a binary or the ELF interpreter).
    Execute,
    /// Read files and list directories.
    Read,
    /// Everything but execute: the run dir.
    ReadWrite,
    /// Read, list and execute: the installation prefix of a helper outside the system
    /// directories (a Python virtual environment holding GDB).
    Install,
}

impl Grant {
    fn access(self) -> BitFlags<AccessFs> {
        match self {
            Grant::Execute => AccessFs::Execute | AccessFs::ReadFile,
            Grant::Read => AccessFs::ReadFile | AccessFs::ReadDir,
            Grant::ReadWrite => AccessFs::from_all(LANDLOCK_ABI) & !AccessFs::Execute,
            Grant::Install => AccessFs::Execute | AccessFs::ReadFile | AccessFs::ReadDir,
        }
    }
}

/// One Landlock rule. A rule that is not `required` is skipped when its path does not
/// exist on this host (library and data dirs differ between distributions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathRule {
    pub path: PathBuf,
    pub grant: Grant,
    pub required: bool,
}

/// What one launch of QEMU reads and writes besides the system paths.
#[derive(Debug, Clone, Copy)]
pub struct LaunchFiles<'a> {
    pub program: &'a Path,
    pub run_dir: &'a Path,
    /// The hit-count TCG plugin, when loaded.
    pub plugin: Option<&'a Path>,
    /// The trace QEMU writes, when recording; it must lie in `run_dir`.
    pub trace: Option<&'a Path>,
}

/// The Landlock rules for one launch: pure, so the list is unit-tested as data.
/// `binary` is the resolved path of the QEMU binary, `interpreter` its ELF interpreter.
pub fn path_rules(
    binary: &Path,
    interpreter: Option<&Path>,
    files: &LaunchFiles<'_>,
) -> Vec<PathRule> {
    let mut rules: Vec<PathRule> = Vec::new();
    let mut add = |path: &Path, grant: Grant, required: bool| {
        if !rules.iter().any(|rule| rule.path == path) {
            rules.push(PathRule {
                path: path.to_owned(),
                grant,
                required,
            });
        }
    };
    add(binary, Grant::Execute, true);
    if let Some(interpreter) = interpreter {
        add(interpreter, Grant::Execute, true);
    }
    add(files.program, Grant::Read, true);
    if let Some(plugin) = files.plugin {
        add(plugin, Grant::Read, true);
    }
    add(files.run_dir, Grant::ReadWrite, true);
    // A QEMU unpacked outside /usr (target/qemu-backports/root/usr/bin) finds its data and
    // modules relative to its binary: PREFIX/share/qemu, PREFIX/lib.
    if let Some(prefix) = binary.parent().and_then(Path::parent) {
        add(&prefix.join("share/qemu"), Grant::Read, false);
        add(&prefix.join("lib"), Grant::Read, false);
    }
    for path in LIBRARY_DIRS.iter().chain(&DATA_DIRS).chain(&SYSTEM_PATHS) {
        add(Path::new(path), Grant::Read, false);
    }
    rules
}

/// A trace QEMU writes outside its run dir would need a rule of its own: refused, so that
/// the run dir stays the one place QEMU writes.
fn check_outputs(files: &LaunchFiles<'_>) -> Result<(), ConfinementError> {
    match files.trace {
        Some(trace) if !trace.starts_with(files.run_dir) => Err(ConfinementError::OutsideRunDir {
            path: trace.to_owned(),
            run_dir: files.run_dir.to_owned(),
        }),
        _ => Ok(()),
    }
}

/// Opens the rules' paths and builds the ruleset in this (the parent) process. `None` when
/// the kernel has no Landlock.
fn landlock_ruleset(
    rules: &[PathRule],
    connect_ports: &[u16],
) -> Result<Option<OwnedFd>, ConfinementError> {
    let mut ruleset = Ruleset::default()
        .handle_access(AccessFs::from_all(LANDLOCK_ABI))?
        .handle_access(AccessNet::from_all(LANDLOCK_ABI))?
        .scope(Scope::from_all(LANDLOCK_ABI))?
        .create()?;
    for rule in rules {
        if !rule.required && !rule.path.exists() {
            continue;
        }
        let fd = PathFd::new(&rule.path).map_err(|error| ConfinementError::Path {
            path: rule.path.clone(),
            error,
        })?;
        ruleset = ruleset.add_rule(PathBeneath::new(fd, rule.grant.access()))?;
    }
    for port in connect_ports {
        ruleset = ruleset.add_rule(NetPort::new(*port, AccessNet::ConnectTcp))?;
    }
    Ok(ruleset.into())
}

/// The confinement of a helper process the server starts for an untrusted client (the
/// GDB behind a session's DAP endpoint): Landlock with `rules` plus the system's
/// libraries and loader files, TCP connect to `connect_ports` only, and no_new_privs.
/// Without Landlock on this kernel only no_new_privs holds; the answer says so.
pub fn prepare_helper(
    rules: &[PathRule],
    connect_ports: &[u16],
) -> Result<(Prepared, Option<String>), ConfinementError> {
    let mut all = rules.to_vec();
    for path in LIBRARY_DIRS.iter().chain(&SYSTEM_PATHS) {
        if !all.iter().any(|rule| rule.path == Path::new(path)) {
            all.push(PathRule {
                path: PathBuf::from(path),
                grant: Grant::Read,
                required: false,
            });
        }
    }
    let (ruleset, missing) = match landlock_abi() {
        Ok(_) => (landlock_ruleset(&all, connect_ports)?, None),
        Err(reason) => (None, Some(reason)),
    };
    Ok((
        Prepared {
            sandbox: false,
            no_new_privs: true,
            ruleset,
        },
        missing,
    ))
}

/// Landlock on this kernel: its ABI version, or why there is none.
pub fn landlock_abi() -> Result<i64, String> {
    // SAFETY: the version query reads no memory (NULL attributes of size 0).
    let version = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if version > 0 {
        return Ok(version);
    }
    let error = std::io::Error::last_os_error();
    Err(match error.raw_os_error() {
        Some(libc::EOPNOTSUPP) => {
            "this kernel has Landlock but it is disabled (add landlock to the lsm= boot parameter)"
                .to_owned()
        }
        Some(libc::ENOSYS) => {
            "this kernel has no Landlock (Linux 5.13 or later with CONFIG_SECURITY_LANDLOCK)"
                .to_owned()
        }
        _ => format!("the Landlock version query failed: {error}"),
    })
}

/// What the Landlock rules enforce on a kernel of this ABI.
fn landlock_detail(abi: i64) -> String {
    let used = abi.min(LANDLOCK_ABI_NUMBER);
    let mut parts = vec![
        "files: read-only libraries, QEMU data, program and plugin; read-write run dir only"
            .to_owned(),
    ];
    if used < 3 {
        parts.push("truncation not restricted (needs ABI 3)".to_owned());
    }
    parts.push(if used >= 4 {
        "TCP bind and connect denied".to_owned()
    } else {
        "TCP not restricted (needs ABI 4)".to_owned()
    });
    parts.push(if used >= 6 {
        "signals and abstract unix sockets scoped to QEMU".to_owned()
    } else {
        "signals and abstract unix sockets not scoped (needs ABI 6)".to_owned()
    });
    format!(
        "kernel ABI {abi}, rights of ABI {used}: {}",
        parts.join("; ")
    )
}

/// The ELF interpreter (`PT_INTERP`) a binary names, `None` for a static binary.
pub fn elf_interpreter(binary: &Path) -> Result<Option<PathBuf>, String> {
    use std::io::Read;
    // The program headers and the interpreter's name sit at the start of the file.
    let mut head = Vec::new();
    std::fs::File::open(binary)
        .and_then(|file| file.take(64 * 1024).read_to_end(&mut head))
        .map_err(|error| format!("cannot read {}: {error}", binary.display()))?;
    let not_elf = |error: object::Error| {
        format!(
            "{} is not an ELF executable ({error}); a wrapper script?",
            binary.display()
        )
    };
    match object::FileKind::parse(head.as_slice()).map_err(not_elf)? {
        object::FileKind::Elf64 => {
            interpreter_in::<object::elf::FileHeader64<object::Endianness>>(&head).map_err(not_elf)
        }
        object::FileKind::Elf32 => {
            interpreter_in::<object::elf::FileHeader32<object::Endianness>>(&head).map_err(not_elf)
        }
        _ => Err(format!("{} is not an ELF executable", binary.display())),
    }
}

fn interpreter_in<H>(data: &[u8]) -> object::Result<Option<PathBuf>>
where
    H: object::read::elf::FileHeader<Endian = object::Endianness>,
{
    use object::read::elf::ProgramHeader;
    let header = H::parse(data)?;
    let endian = header.endian()?;
    for segment in header.program_headers(endian, data)? {
        if let Some(name) = segment.interpreter(endian, data)? {
            return Ok(Some(PathBuf::from(OsStr::from_bytes(name))));
        }
    }
    Ok(None)
}

/// Whether this binary's `-sandbox` works on this host: it is started sandboxed with no
/// machine and told to quit over QMP (~30 ms). A build without seccomp, or a kernel that
/// refuses the filter, makes it exit with its reason on stderr.
pub async fn probe_sandbox(binary: &Path) -> Result<(), String> {
    let mut child = tokio::process::Command::new(binary)
        .args(["-sandbox", SANDBOX, "-no-user-config", "-machine", "none"])
        .args(["-nodefaults", "-display", "none", "-S", "-qmp", "stdio"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|error| format!("cannot run {}: {error}", binary.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A QEMU that already exited has closed the pipe: its status says why.
        let _ = stdin
            .write_all(b"{\"execute\":\"qmp_capabilities\"}\n{\"execute\":\"quit\"}\n")
            .await;
    }
    let output = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .map_err(|_| "a sandboxed start did not quit within 10 s".to_owned())?
        .map_err(|error| error.to_string())?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    Err(stderr
        .lines()
        .find(|line| !line.trim().is_empty())
        .map_or_else(
            || format!("-sandbox failed: {}", output.status),
            str::to_owned,
        ))
}

/// What one QEMU binary supports, probed once.
#[derive(Debug, Clone)]
struct BinarySupport {
    name: String,
    /// The binary with symlinks resolved: what Landlock sees executed.
    resolved: PathBuf,
    sandbox: Result<(), String>,
    interpreter: Result<Option<PathBuf>, String>,
}

/// The mode and what this host and each QEMU binary support, probed at start-up.
#[derive(Debug, Clone)]
pub struct HostConfinement {
    mode: ConfinementMode,
    landlock: Result<i64, String>,
    binaries: Vec<BinarySupport>,
}

impl HostConfinement {
    /// Probes every binary at once (each sandboxed start takes ~30 ms).
    pub async fn probe(mode: ConfinementMode, binaries: &[EmulatorBinary]) -> Self {
        let probes = binaries.iter().map(|binary| async move {
            BinarySupport {
                name: binary.name.clone(),
                resolved: std::fs::canonicalize(&binary.path).unwrap_or(binary.path.clone()),
                sandbox: probe_sandbox(&binary.path).await,
                interpreter: elf_interpreter(&binary.path),
            }
        });
        let host = Self {
            mode,
            landlock: landlock_abi(),
            binaries: futures_util::future::join_all(probes).await,
        };
        match mode {
            ConfinementMode::Off => tracing::warn!(
                "confinement = off: QEMU runs without seccomp, Landlock or no_new_privs (for benchmarks and debugging only)"
            ),
            ConfinementMode::Required => {
                for confinement in host.report() {
                    if REQUIRED.contains(&confinement.name) && !confinement.active {
                        tracing::error!(
                            confinement = confinement.name,
                            detail = confinement.detail.as_deref().unwrap_or(""),
                            "confinement = required: QEMU launches will be refused"
                        );
                    }
                }
            }
            ConfinementMode::On => {}
        }
        host
    }

    pub fn mode(&self) -> ConfinementMode {
        self.mode
    }

    /// Each confinement by name: whether it is active for every binary, and the detail.
    pub fn report(&self) -> Vec<Confinement> {
        let off = || Some("confinement = off".to_owned());
        let no_binary = || Some("no qemu-system-* binary found".to_owned());
        let seccomp = if self.mode == ConfinementMode::Off {
            inactive("seccomp", off())
        } else if self.binaries.is_empty() {
            inactive("seccomp", no_binary())
        } else {
            per_binary(
                "seccomp",
                &self.binaries,
                |binary| binary.sandbox.clone(),
                format!("QEMU -sandbox {SANDBOX}"),
            )
        };
        let landlock = match (&self.landlock, self.mode) {
            (_, ConfinementMode::Off) => inactive("landlock", off()),
            (Err(reason), _) => inactive("landlock", Some(reason.clone())),
            (Ok(_), _) if self.binaries.is_empty() => inactive("landlock", no_binary()),
            (Ok(abi), _) => per_binary(
                "landlock",
                &self.binaries,
                |binary| binary.interpreter.clone().map(drop),
                landlock_detail(*abi),
            ),
        };
        let no_new_privs = if self.mode == ConfinementMode::Off {
            inactive("no_new_privs", off())
        } else {
            Confinement {
                name: "no_new_privs",
                active: true,
                detail: Some("set before exec: no set-uid or file-capability gain".to_owned()),
            }
        };
        vec![
            seccomp,
            landlock,
            no_new_privs,
            Confinement {
                name: "semihosting",
                active: true,
                detail: Some(semihosting_policy().to_owned()),
            },
            Confinement {
                name: "monitor",
                active: true,
                detail: Some(monitor_policy().to_owned()),
            },
        ]
    }

    /// The confinement of one launch of `binary` (a probed binary's name), built in the
    /// parent before spawning. With `required`, a missing confinement is an error.
    pub fn prepare(
        &self,
        binary: &str,
        files: &LaunchFiles<'_>,
    ) -> Result<Prepared, ConfinementError> {
        if self.mode == ConfinementMode::Off {
            return Ok(Prepared::unconfined());
        }
        let support = self.binaries.iter().find(|b| b.name == binary);
        let required = |confinement: &'static str, reason: String| {
            if self.mode == ConfinementMode::Required {
                Err(ConfinementError::Required {
                    confinement,
                    binary: binary.to_owned(),
                    reason,
                })
            } else {
                Ok(())
            }
        };
        let sandbox = match support.map(|s| &s.sandbox) {
            Some(Ok(())) => true,
            Some(Err(reason)) => {
                required("seccomp", reason.clone())?;
                false
            }
            None => {
                required("seccomp", "the binary was not probed".to_owned())?;
                false
            }
        };
        check_outputs(files)?;
        let ruleset = match (&self.landlock, support) {
            (Ok(_), Some(support)) => match &support.interpreter {
                Ok(interpreter) => {
                    let rules = path_rules(&support.resolved, interpreter.as_deref(), files);
                    landlock_ruleset(&rules, &[])?
                }
                Err(reason) => {
                    required("landlock", reason.clone())?;
                    None
                }
            },
            (Err(reason), _) => {
                required("landlock", reason.clone())?;
                None
            }
            (Ok(_), None) => {
                required("landlock", "the binary was not probed".to_owned())?;
                None
            }
        };
        Ok(Prepared {
            sandbox,
            no_new_privs: true,
            ruleset,
        })
    }
}

fn inactive(name: &'static str, detail: Option<String>) -> Confinement {
    Confinement {
        name,
        active: false,
        detail,
    }
}

/// Active when every binary has it; otherwise the detail names those that do not.
fn per_binary(
    name: &'static str,
    binaries: &[BinarySupport],
    supports: impl Fn(&BinarySupport) -> Result<(), String>,
    detail: String,
) -> Confinement {
    let missing: Vec<String> = binaries
        .iter()
        .filter_map(|binary| {
            supports(binary)
                .err()
                .map(|reason| format!("{}: {reason}", binary.name))
        })
        .collect();
    if missing.is_empty() {
        Confinement {
            name,
            active: true,
            detail: Some(detail),
        }
    } else {
        inactive(
            name,
            Some(format!("not applied for {}", missing.join("; "))),
        )
    }
}

/// The confinement of one launch: QEMU arguments, and what the child does before exec.
/// Dropping it closes the ruleset fd; the spawn does so once the child has exec'd.
#[derive(Debug)]
pub struct Prepared {
    pub(super) sandbox: bool,
    pub(super) no_new_privs: bool,
    pub(super) ruleset: Option<OwnedFd>,
}

impl Prepared {
    pub fn unconfined() -> Self {
        Self {
            sandbox: false,
            no_new_privs: false,
            ruleset: None,
        }
    }

    /// QEMU's own part. `-no-user-config` whenever confined: a host's /etc/qemu must not
    /// change a session, and under Landlock an existing one would be unreadable, which
    /// QEMU treats as fatal.
    pub fn arguments(&self) -> Vec<&'static str> {
        let mut args = Vec::new();
        if self.no_new_privs {
            args.push("-no-user-config");
        }
        if self.sandbox {
            args.extend(["-sandbox", SANDBOX]);
        }
        args
    }

    /// What the child applies between fork and exec.
    pub fn in_child(&self) -> InChild {
        InChild {
            no_new_privs: self.no_new_privs,
            ruleset: self.ruleset.as_ref().map(AsRawFd::as_raw_fd),
        }
    }
}

/// The child's part, `Copy` so the `pre_exec` closure owns nothing to free.
#[derive(Debug, Clone, Copy)]
pub struct InChild {
    no_new_privs: bool,
    ruleset: Option<RawFd>,
}

impl InChild {
    /// Makes `command`'s child die with the server and confine itself before exec.
    pub fn install(self, command: &mut tokio::process::Command) {
        // SAFETY: the closure only calls async-signal-safe libc functions between fork
        // and exec.
        unsafe {
            command.pre_exec(move || {
                // Die with the server thread that started us. Tokio spawns from its
                // long-lived worker threads, so "thread" and "server" coincide here.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The server may have died between fork and prctl.
                if libc::getppid() == 1 {
                    libc::_exit(1);
                }
                self.apply()
            });
        }
    }

    /// Async-signal-safe: two system calls, no allocation (`last_os_error` only reads errno).
    pub fn apply(self) -> std::io::Result<()> {
        // SAFETY: prctl and landlock_restrict_self take plain integers; the ruleset fd is
        // owned by the parent's `Prepared`, alive until the spawn returns.
        unsafe {
            if self.no_new_privs && libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(fd) = self.ruleset
                && libc::syscall(libc::SYS_landlock_restrict_self, fd, 0u32) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files<'a>(trace: Option<&'a Path>) -> LaunchFiles<'a> {
        LaunchFiles {
            program: Path::new("/data/programs/ab12.elf"),
            run_dir: Path::new("/data/run/s1"),
            plugin: Some(Path::new("/opt/v/libplugin.so")),
            trace,
        }
    }

    fn grant_of(rules: &[PathRule], path: &str) -> Option<(Grant, bool)> {
        rules
            .iter()
            .find(|rule| rule.path == Path::new(path))
            .map(|rule| (rule.grant, rule.required))
    }

    #[test]
    fn landlock_rules_grant_what_qemu_needs_and_no_more() {
        let rules = path_rules(
            Path::new("/opt/q/root/usr/bin/qemu-system-arm"),
            Some(Path::new("/lib64/ld-linux-x86-64.so.2")),
            &files(None),
        );
        let check = |path: &str, expected: Option<(Grant, bool)>| {
            assert_eq!(grant_of(&rules, path), expected, "{path} in {rules:#?}");
        };
        check(
            "/opt/q/root/usr/bin/qemu-system-arm",
            Some((Grant::Execute, true)),
        );
        check("/lib64/ld-linux-x86-64.so.2", Some((Grant::Execute, true)));
        check("/data/programs/ab12.elf", Some((Grant::Read, true)));
        check("/opt/v/libplugin.so", Some((Grant::Read, true)));
        check("/data/run/s1", Some((Grant::ReadWrite, true)));
        check("/opt/q/root/usr/share/qemu", Some((Grant::Read, false)));
        check("/opt/q/root/usr/lib", Some((Grant::Read, false)));
        check("/usr/lib", Some((Grant::Read, false)));
        check("/usr/share/qemu", Some((Grant::Read, false)));
        check("/etc/ld.so.cache", Some((Grant::Read, false)));
        check("/dev/urandom", Some((Grant::Read, false)));
        // Nothing of the data dir but the program and the run dir; no home, /etc or /tmp.
        for path in [
            "/data",
            "/data/programs",
            "/data/run",
            "/",
            "/etc",
            "/tmp",
            "/root",
        ] {
            check(path, None);
        }
        let executable: Vec<_> = rules.iter().filter(|r| r.grant == Grant::Execute).collect();
        assert_eq!(executable.len(), 2, "{executable:#?}");
        let writable: Vec<_> = rules
            .iter()
            .filter(|r| r.grant == Grant::ReadWrite)
            .collect();
        assert_eq!(writable.len(), 1, "{writable:#?}");
    }

    #[test]
    fn a_qemu_in_usr_adds_no_second_rule_for_usr_lib() {
        let rules = path_rules(Path::new("/usr/bin/qemu-system-arm"), None, &files(None));
        let usr_lib = rules
            .iter()
            .filter(|r| r.path == Path::new("/usr/lib"))
            .count();
        assert_eq!(usr_lib, 1);
        assert_eq!(
            rules.iter().filter(|r| r.grant == Grant::Execute).count(),
            1
        );
    }

    #[test]
    fn a_trace_outside_the_run_dir_is_refused() {
        assert!(check_outputs(&files(Some(Path::new("/data/run/s1/trace.log")))).is_ok());
        let error = check_outputs(&files(Some(Path::new("/tmp/trace.log"))))
            .unwrap_err()
            .to_string();
        assert!(error.contains("outside its run dir"), "{error}");
    }

    #[test]
    fn arguments_follow_what_is_prepared() {
        assert!(Prepared::unconfined().arguments().is_empty());
        let confined = Prepared {
            sandbox: true,
            no_new_privs: true,
            ruleset: None,
        };
        assert_eq!(
            confined.arguments(),
            ["-no-user-config", "-sandbox", SANDBOX]
        );
        let no_seccomp = Prepared {
            sandbox: false,
            ..confined
        };
        assert_eq!(no_seccomp.arguments(), ["-no-user-config"]);
    }

    #[test]
    fn the_interpreter_of_a_real_binary_is_found() {
        let exe = std::env::current_exe().unwrap();
        let interpreter = elf_interpreter(&exe)
            .unwrap()
            .expect("a dynamic executable");
        assert!(
            interpreter.is_absolute() && interpreter.exists(),
            "{interpreter:?}"
        );
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
        let error = elf_interpreter(&manifest).unwrap_err();
        assert!(error.contains("not an ELF"), "{error}");
    }

    #[test]
    fn landlock_details_name_what_an_older_abi_lacks() {
        assert!(landlock_detail(7).contains("rights of ABI 6"));
        assert!(landlock_detail(7).contains("TCP bind and connect denied"));
        assert!(landlock_detail(3).contains("TCP not restricted (needs ABI 4)"));
        assert!(landlock_detail(1).contains("truncation not restricted"));
    }
}
