//! `virserver doctor`: what this host gives the server, checked the way the server
//! itself would check it at start-up (the same probes, no server started): the QEMU
//! binaries and their versions, and each confinement of emulator processes by name,
//! active or not and why. Exit status 0 when every confinement `confinement = required`
//! insists on is active, 1 otherwise, so a deployment script can gate on it.

use crate::backend::qemu::confine::REQUIRED;
use crate::backend::{BackendKind, Backends, Confinement};
use crate::config::Config;

/// Probes and prints; returns the exit status.
pub async fn doctor(config: &Config) -> u8 {
    let backends = Backends::probe(config.trace_plugin.clone(), config.confinement).await;
    let Some(qemu) = backends.get(BackendKind::Qemu) else {
        println!("QEMU: not built into this server");
        return 1;
    };
    let availability = qemu.availability();
    println!("QEMU binaries:");
    if availability.binaries.is_empty() {
        println!("  none found on PATH");
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
    let missing: Vec<&str> = confinements
        .iter()
        .filter(|c| !c.active && REQUIRED.contains(&c.name))
        .map(|c| c.name)
        .collect();
    if availability.binaries.is_empty() || !missing.is_empty() {
        println!(
            "not every confinement is active{}",
            if missing.is_empty() {
                String::new()
            } else {
                format!(": {}", missing.join(", "))
            }
        );
        return 1;
    }
    println!("every confinement is active");
    0
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
