//! The confinement of a GDB the server runs for an untrusted client (a session's DAP
//! endpoint, the symbolic debug API). The DAP bridge and the symbolic API refuse the
//! requests that reach the host (`shell`, `python`, `$_shell`, ...); this is the layer
//! below them, for whatever those checks miss: GDB may execute only its own files,
//! read its own files, the session's program and the system's libraries, write nowhere
//! but /dev/null, and connect only to the session's gateway; no_new_privs, and it dies
//! with the server.
//!
//! A GDB is either a binary (Debian's `/usr/bin/gdb-multiarch`) or, like PyPI's
//! `gdb-for-pwndbg`, a Python script in a virtual environment that starts the real
//! binary from its package. Executing is granted on exactly the files that chain
//! needs, and beneath an installation prefix only when that prefix is not a system
//! one (beneath /usr it would grant /usr/bin/sh).

use std::path::{Path, PathBuf};

use crate::backend::qemu::confine::{
    ConfinementError, Grant, PathRule, Prepared, elf_interpreter, prepare_helper,
};

/// Confines `command` (a GDB at `gdb` about to be spawned) to debugging `program`
/// through the gateway on `gateway_port`. The answer must live until the spawn returns
/// (it holds the ruleset the child applies).
pub fn confine(
    command: &mut tokio::process::Command,
    gdb: &Path,
    program: &Path,
    gateway_port: u16,
) -> Result<Prepared, ConfinementError> {
    let (prepared, missing) = prepare_helper(&gdb_rules(gdb, program), &[gateway_port])?;
    if let Some(reason) = missing {
        tracing::warn!(%reason, "the server's GDB runs without Landlock");
    }
    command.current_dir("/");
    prepared.in_child().install(command);
    Ok(prepared)
}

/// Prefixes beneath which execute is never granted wholesale.
const SYSTEM_PREFIXES: [&str; 4] = ["/", "/usr", "/usr/local", "/opt"];

/// The rules for running `gdb` on `program`.
pub fn gdb_rules(gdb: &Path, program: &Path) -> Vec<PathRule> {
    let mut rules = Vec::new();
    let mut add = |path: PathBuf, grant: Grant| {
        if !rules.iter().any(|rule: &PathRule| rule.path == path) {
            rules.push(PathRule {
                path,
                grant,
                required: false,
            });
        }
    };
    add(program.to_owned(), Grant::Read);
    add(PathBuf::from("/dev/null"), Grant::ReadWrite);
    add(PathBuf::from("/usr/share/gdb"), Grant::Read);
    let mut executables = vec![gdb.to_owned()];
    if let Some(interpreter) = script_interpreter(gdb) {
        executables.push(interpreter);
    }
    for executable in executables {
        for path in [executable.clone(), canonical(&executable)] {
            add(path.clone(), Grant::Execute);
            if let Some(prefix) = prefix_of(&path) {
                add(prefix, Grant::Install);
            }
            if let Ok(Some(loader)) = elf_interpreter(&canonical(&path)) {
                add(loader, Grant::Execute);
            }
        }
    }
    // The real binary a script starts has the system's loader too.
    add(PathBuf::from("/lib64/ld-linux-x86-64.so.2"), Grant::Execute);
    add(PathBuf::from("/lib/ld-linux-aarch64.so.1"), Grant::Execute);
    rules
}

/// The installation prefix of a file in `PREFIX/bin/`, when that prefix is not a
/// system one.
fn prefix_of(path: &Path) -> Option<PathBuf> {
    let bin = path.parent()?;
    if bin.file_name()? != "bin" {
        return None;
    }
    let prefix = bin.parent()?;
    (!SYSTEM_PREFIXES
        .iter()
        .any(|system| prefix == Path::new(system)))
    .then(|| prefix.to_owned())
}

fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned())
}

/// The interpreter of a `#!` script.
fn script_interpreter(path: &Path) -> Option<PathBuf> {
    use std::io::Read;
    let mut head = [0u8; 256];
    let n = std::fs::File::open(path).ok()?.read(&mut head).ok()?;
    let text = std::str::from_utf8(head[..n].strip_prefix(b"#!")?).ok()?;
    let line = text.lines().next()?.trim();
    Some(PathBuf::from(line.split_whitespace().next()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant_of(rules: &[PathRule], path: &str) -> Option<Grant> {
        rules
            .iter()
            .find(|rule| rule.path == Path::new(path))
            .map(|rule| rule.grant)
    }

    #[test]
    fn a_system_gdb_may_execute_itself_but_nothing_else_in_usr() {
        let rules = gdb_rules(
            Path::new("/usr/bin/gdb-multiarch"),
            Path::new("/data/p.elf"),
        );
        assert_eq!(
            grant_of(&rules, "/usr/bin/gdb-multiarch"),
            Some(Grant::Execute)
        );
        assert_eq!(grant_of(&rules, "/data/p.elf"), Some(Grant::Read));
        assert_eq!(grant_of(&rules, "/usr"), None);
        assert_eq!(grant_of(&rules, "/usr/bin"), None);
        assert!(
            rules
                .iter()
                .all(|rule| rule.grant != Grant::ReadWrite || rule.path == Path::new("/dev/null"))
        );
    }

    #[test]
    fn a_venv_gdb_may_execute_beneath_its_own_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("venv/bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::write(bin.join("gdb"), "#!/opt/py/bin/python3\nimport x\n").unwrap();
        let rules = gdb_rules(&bin.join("gdb"), Path::new("/data/p.elf"));
        assert_eq!(
            grant_of(&rules, dir.path().join("venv").to_str().unwrap()),
            Some(Grant::Install)
        );
        assert_eq!(
            grant_of(&rules, "/opt/py/bin/python3"),
            Some(Grant::Execute)
        );
        assert_eq!(grant_of(&rules, "/opt/py"), Some(Grant::Install));
        assert_eq!(grant_of(&rules, "/opt"), None);
    }
}
