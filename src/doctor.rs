//! `virserver doctor`: what this host gives the server, checked the way the server
//! itself would check it at start-up (the same probes, no server started): the QEMU
//! binaries and their versions, the hit-count plugin, the GDB behind DAP and the
//! symbolic API, the database, the board templates, and each confinement of emulator
//! processes by name, active or not and why. Whatever is missing comes with the command
//! that installs it.
//!
//! Exit status 0 when what `run` and `serve` need is there: a QEMU binary, a usable
//! database, and every confinement `confinement = required` insists on (untrusted
//! firmware does not run unconfined on a host that claims to be ready). The plugin and
//! GDB are optional: without them coverage counts only visits and there is no DAP, so
//! they are reported, not required.

use std::path::Path;
use std::time::Duration;

use crate::backend::qemu::confine::REQUIRED;
use crate::backend::{BackendKind, Backends, Confinement};
use crate::config::Config;

/// What installs QEMU where it is missing.
const QEMU_HINT: &str = "install it: apt-get install qemu-system-arm qemu-system-misc";

/// Probes and prints; returns the exit status.
pub async fn doctor(config: &Config) -> u8 {
    let mut missing: Vec<String> = Vec::new();
    let backends = Backends::probe(config.trace_plugin.clone(), config.confinement).await;
    let Some(qemu) = backends.get(BackendKind::Qemu) else {
        println!("QEMU: not built into this server");
        return 1;
    };
    let availability = qemu.availability();
    println!("QEMU binaries:");
    if availability.binaries.is_empty() {
        println!("  none found on PATH; {QEMU_HINT}");
        missing.push("QEMU".into());
    }
    for binary in &availability.binaries {
        println!(
            "  {:<22} {:<10} {}",
            binary.name,
            binary.version,
            binary.path.display()
        );
    }
    if let Some(reason) = &availability.reason {
        println!("  ({reason})");
    }

    let plugin = qemu
        .trace()
        .map_or(Err("no execution trace".to_owned()), |t| t.hit_counts());
    match plugin {
        Ok(path) => println!("hit-count plugin: {path}"),
        Err(reason) => println!(
            "hit-count plugin: missing (optional: coverage then counts visits only): {reason}"
        ),
    }

    match crate::gdb::locate(config.gdb_path.as_deref()).await {
        Ok(gdb) => println!(
            "GDB: {} {} ({})",
            gdb.path.display(),
            gdb.version,
            if gdb.dap {
                "serves DAP and GDB/MI".to_owned()
            } else {
                format!(
                    "GDB/MI only, no DAP: editors cannot attach over DAP; {}",
                    crate::gdb::INSTALL_HINT
                )
            }
        ),
        Err(error) => println!("GDB: missing (optional: no DAP, no symbolic debug API): {error}"),
    }

    match database(config).await {
        Ok(line) => println!("database: {line}"),
        Err(line) => {
            println!("database: {line}");
            missing.push("database".into());
        }
    }

    let boards = crate::boards::load(config.boards_dir.as_deref());
    println!(
        "board templates: {}{}",
        boards
            .boards
            .iter()
            .map(|b| b.id.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        config
            .boards_dir
            .as_deref()
            .map_or(String::new(), |dir| format!(
                " (built in, and from {})",
                dir.display()
            ))
    );
    for error in &boards.errors {
        println!("  not loaded: {error}");
    }

    println!("confinement = {}:", config.confinement);
    let confinements = report(qemu.confinements(), config.allow_raw_monitor);
    for confinement in &confinements {
        println!(
            "  {:<13} {:<9} {}",
            confinement.name,
            if confinement.active {
                "active"
            } else {
                "INACTIVE"
            },
            confinement.detail.as_deref().unwrap_or("")
        );
    }
    let unconfined: Vec<&str> = confinements
        .iter()
        .filter(|c| !c.active && REQUIRED.contains(&c.name))
        .map(|c| c.name)
        .collect();
    if !unconfined.is_empty() {
        missing.push(format!("confinement ({})", unconfined.join(", ")));
    }
    if missing.is_empty() {
        println!("ready: `virserver run` and `virserver serve` have what they need");
        0
    } else {
        println!("not ready, missing: {}", missing.join("; "));
        1
    }
}

/// Whether the configured database can be used: a PostgreSQL (or other) URL is
/// connected to and pinged; the default SQLite file is not created by asking, so its
/// folder is checked instead.
async fn database(config: &Config) -> Result<String, String> {
    if config.database.is_none() {
        let file = config.data_dir.join("virserver.db");
        if file.is_file() {
            return Ok(format!("SQLite {} (exists)", file.display()));
        }
        let folder = config
            .data_dir
            .ancestors()
            .find(|dir| dir.is_dir())
            .unwrap_or(Path::new("."));
        return if writable(folder) {
            Ok(format!(
                "SQLite {} (created on first start)",
                file.display()
            ))
        } else {
            Err(format!(
                "SQLite {}: {} is not writable; choose another --data-dir",
                file.display(),
                folder.display()
            ))
        };
    }
    let url = config.database_url();
    // No password on the screen: `postgres://user:secret@host/db` shows as `postgres://host/db`.
    let shown = match (url.split_once("://"), url.rsplit_once('@')) {
        (Some((scheme, _)), Some((_, place))) => format!("{scheme}://{place}"),
        _ => url.clone(),
    };
    let connect = async {
        let connection = sea_orm::Database::connect(&url).await?;
        connection.ping().await?;
        connection.close().await
    };
    match tokio::time::timeout(Duration::from_secs(10), connect).await {
        Ok(Ok(())) => Ok(format!("{shown} (connected)")),
        Ok(Err(error)) => Err(format!("{shown}: {error}")),
        Err(_) => Err(format!("{shown}: no answer within 10 s")),
    }
}

/// `access(W_OK)`: whether this process may create files in `dir`.
fn writable(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: a valid NUL-terminated path; access() only reads it.
    unsafe { libc::access(path.as_ptr(), libc::W_OK) == 0 }
}

/// The backend's report, with the monitor line as this configuration has it.
pub fn report(mut confinements: Vec<Confinement>, allow_raw_monitor: bool) -> Vec<Confinement> {
    if allow_raw_monitor {
        for confinement in &mut confinements {
            if confinement.name == "monitor" {
                confinement.active = false;
                confinement.detail = Some(
                    "allow_raw_monitor is on: GDB `monitor` commands reach QEMU's monitor"
                        .to_owned(),
                );
            }
        }
    }
    confinements
}
