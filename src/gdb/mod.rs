//! Which GDB the server runs for its DAP endpoints and its symbolic debug API.
//!
//! VirServer does not implement a debugger: GDB >= 14 with Python speaks the Debug
//! Adapter Protocol itself (`gdb -i dap`) and every GDB speaks GDB/MI. This module finds
//! one and says what it can do, by running it, never by guessing from a file name:
//! Debian 12's `gdb-multiarch` is 13.1 (no DAP), a host `gdb` may lack other
//! architectures, and a GDB built without Python has no DAP at all.
//!
//! The choice: the configured path (`gdb_path`, `VIRSERVER_GDB`, `--gdb`) when set, and
//! an error if it is unusable; else, among `gdb` and `gdb-multiarch` on PATH and the GDB
//! the set-up installs beside the build (`target/tools/gdb-venv`, PyPI's
//! `gdb-for-pwndbg`), the one that serves DAP with the highest version, falling back to
//! the newest multi-architecture GDB (GDB/MI only).

pub mod confine;

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::Command;

/// What to install when no usable GDB is found.
pub const INSTALL_HINT: &str = "install a GDB >= 14 built with Python and all targets, \
     e.g. `python3 -m venv DIR && DIR/bin/pip install gdb-for-pwndbg`, then set \
     VIRSERVER_GDB=DIR/bin/gdb (scripts/install-deps.sh does this into target/tools)";

/// How long one probe of a candidate may take before it counts as broken.
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum GdbError {
    #[error("no usable GDB found (looked at {looked}); {INSTALL_HINT}")]
    Unavailable { looked: String },
    #[error("the configured GDB {path} is unusable: {reason}; {INSTALL_HINT}")]
    Configured { path: PathBuf, reason: String },
    #[error(
        "GDB {path} is {version}, which does not serve DAP (GDB >= 14 with Python does); {INSTALL_HINT}"
    )]
    NoDap { path: PathBuf, version: String },
}

/// One GDB and what it can do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gdb {
    pub path: PathBuf,
    /// The version as GDB prints it (`18.1`).
    pub version: String,
    /// Major and minor, for comparisons.
    pub numeric: (u32, u32),
    /// `gdb -i dap` works: Python and the `gdb.dap` package are there.
    pub dap: bool,
}

impl Gdb {
    /// This GDB, or [`GdbError::NoDap`] when it cannot serve DAP.
    pub fn require_dap(&self) -> Result<&Self, GdbError> {
        if self.dap {
            Ok(self)
        } else {
            Err(GdbError::NoDap {
                path: self.path.clone(),
                version: self.version.clone(),
            })
        }
    }
}

/// The server's GDB, found on first use and then remembered (probing runs each
/// candidate, a few hundred milliseconds apiece).
#[derive(Debug, Default)]
pub struct GdbLocator {
    configured: Option<PathBuf>,
    found: tokio::sync::OnceCell<Result<Gdb, GdbError>>,
}

impl GdbLocator {
    pub fn new(configured: Option<PathBuf>) -> Self {
        Self {
            configured,
            found: tokio::sync::OnceCell::new(),
        }
    }

    /// The GDB to use, see the module doc.
    pub async fn get(&self) -> Result<Gdb, GdbError> {
        self.found
            .get_or_init(|| locate(self.configured.as_deref()))
            .await
            .clone()
    }
}

/// Finds the GDB to use, see the module doc.
pub async fn locate(configured: Option<&Path>) -> Result<Gdb, GdbError> {
    if let Some(path) = configured {
        return probe(path).await.map_err(|reason| GdbError::Configured {
            path: path.to_owned(),
            reason,
        });
    }
    let candidates = candidates();
    let mut found = Vec::new();
    for path in &candidates {
        if let Ok(gdb) = probe(path).await {
            found.push(gdb);
        }
    }
    found
        .into_iter()
        .max_by_key(|gdb| (gdb.dap, gdb.numeric))
        .ok_or_else(|| GdbError::Unavailable {
            looked: candidates
                .iter()
                .map(|path| path.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// The places looked at without configuration, existing files only.
fn candidates() -> Vec<PathBuf> {
    let mut paths = Vec::new();
    // The set-up's GDB sits beside the build: target/{debug,release}/virserver ->
    // target/tools/gdb-venv/bin/gdb.
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(3) {
            paths.push(dir.join("tools/gdb-venv/bin/gdb"));
        }
    }
    if let Some(path_var) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path_var) {
            for name in ["gdb", "gdb-multiarch"] {
                paths.push(dir.join(name));
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    paths.retain(|path| path.is_file() && seen.insert(path.clone()));
    paths
}

/// Runs one candidate: its version, whether it knows Arm (a host-only GDB does not) and
/// whether it has Python with the DAP package.
async fn probe(path: &Path) -> Result<Gdb, String> {
    let run = Command::new(path)
        .args(["-nx", "-batch", "-ex", "set architecture arm", "-ex"])
        .arg("python print('virserver-version=' + gdb.VERSION)")
        // Last, so that the exit status says whether it worked.
        .args(["-ex", "python import gdb.dap"])
        .env("TERM", "dumb")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = match tokio::time::timeout(PROBE_TIMEOUT, run).await {
        Ok(Ok(output)) => output,
        Ok(Err(error)) => return Err(format!("cannot run it: {error}")),
        Err(_) => return Err(format!("it did not answer within {PROBE_TIMEOUT:?}")),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.contains("Undefined item: \"arm\"") || stderr.contains("Undefined item: arm") {
        return Err("it was built without the Arm target".into());
    }
    if let Some(version) = stdout
        .lines()
        .find_map(|line| line.strip_prefix("virserver-version="))
    {
        let version = version.trim().to_owned();
        let numeric = parse_version(&version).ok_or_else(|| format!("odd version {version}"))?;
        return Ok(Gdb {
            path: path.to_owned(),
            dap: output.status.success() && numeric.0 >= 14,
            numeric,
            version,
        });
    }
    // No Python (or no gdb.dap): the version from `--version`, for GDB/MI only.
    let version_output = Command::new(path)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let version_output = match tokio::time::timeout(PROBE_TIMEOUT, version_output).await {
        Ok(Ok(output)) if output.status.success() => output,
        _ => return Err("`--version` failed".into()),
    };
    let first = String::from_utf8_lossy(&version_output.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    let version = first
        .split_whitespace()
        .last()
        .unwrap_or_default()
        .to_owned();
    let numeric = parse_version(&version).ok_or_else(|| format!("odd version line {first:?}"))?;
    Ok(Gdb {
        path: path.to_owned(),
        version,
        numeric,
        dap: false,
    })
}

/// `18.1`, `13.1.90.20230220`, `16.2-debian` -> (major, minor).
fn parse_version(text: &str) -> Option<(u32, u32)> {
    let mut parts = text.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().and_then(|part| part.parse().ok()).unwrap_or(0);
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_as_gdb_prints_them() {
        assert_eq!(parse_version("18.1"), Some((18, 1)));
        assert_eq!(parse_version("13.1.90.20230220"), Some((13, 1)));
        assert_eq!(parse_version("16"), Some((16, 0)));
        assert_eq!(parse_version("(GDB)"), None);
    }

    #[tokio::test]
    async fn a_configured_path_that_is_no_gdb_is_a_clear_error() {
        let error = locate(Some(Path::new("/bin/false"))).await.unwrap_err();
        assert!(matches!(error, GdbError::Configured { .. }), "{error}");
        assert!(error.to_string().contains("gdb-for-pwndbg"), "{error}");
    }

    #[tokio::test]
    async fn gdb_multiarch_is_found_with_its_version_and_dap_flag() {
        let gdb = probe(Path::new("/usr/bin/gdb-multiarch"))
            .await
            .expect("scripts/install-deps.sh installs gdb-multiarch");
        assert!(gdb.numeric.0 >= 12, "{gdb:?}");
        assert_eq!(gdb.dap, gdb.numeric.0 >= 14, "{gdb:?}");
    }
}
