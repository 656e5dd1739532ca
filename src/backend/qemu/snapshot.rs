//! Snapshots of a running QEMU: the whole machine (CPU, memory, devices) saved into a
//! qcow2 image of its own, made and opened through QMP alone (`qemu-img` is not a
//! dependency), with QEMU's `snapshot-save` and `snapshot-load` jobs (both in 7.2 and
//! 10.x).
//!
//! Why one image per snapshot: once its nodes are closed (`blockdev-del`) the image is
//! complete and nothing writes it again, so the server can copy it to a fork, keep it
//! across power cycles and restarts, count it against a quota and delete it alone. QEMU
//! writes to an image it loads from, so a load opens a copy.
//!
//! Why jobs and not HMP `savevm`: a job's outcome is structured (`query-jobs`), while
//! the command that starts it returns `{}` even when the job then fails.
//!
//! This file holds the QMP arguments and the reading of job outcomes (pure, tested);
//! `machine.rs` sends them.

use std::path::Path;

use serde_json::{Value, json};

use crate::backend::BackendError;

/// The one snapshot name inside each image.
pub const TAG: &str = "virserver";

/// The image's virtual disk size. Nothing is ever written to the disk itself (the
/// boards have no drive on it), only the snapshot's VM state; qcow2 stores no zeros.
const IMAGE_SIZE: u64 = 64 * 1024 * 1024;

/// `blockdev-create` of the empty host file.
pub fn create_file(job: &str, path: &Path) -> Value {
    json!({
        "job-id": job,
        "options": {"driver": "file", "filename": path, "size": 0},
    })
}

/// `blockdev-add` of the host file as a node.
pub fn add_file(node: &str, path: &Path) -> Value {
    json!({"driver": "file", "node-name": node, "filename": path})
}

/// `blockdev-create` of the qcow2 format on the file node.
pub fn create_qcow2(job: &str, file_node: &str) -> Value {
    json!({
        "job-id": job,
        "options": {"driver": "qcow2", "file": file_node, "size": IMAGE_SIZE},
    })
}

/// `blockdev-add` of the qcow2 node, on a file node added before, or on `path`.
pub fn add_qcow2(node: &str, file: FileOf<'_>) -> Value {
    let file = match file {
        FileOf::Node(name) => json!(name),
        FileOf::Path(path) => json!({"driver": "file", "filename": path}),
    };
    json!({"driver": "qcow2", "node-name": node, "file": file})
}

/// Where a qcow2 node's bytes are.
pub enum FileOf<'a> {
    Node(&'a str),
    Path(&'a Path),
}

/// `snapshot-save` or `snapshot-load` on one node: the VM state and the only device.
pub fn snapshot_job(job: &str, node: &str) -> Value {
    json!({"job-id": job, "tag": TAG, "vmstate": node, "devices": [node]})
}

/// How the job `id` stands in a `query-jobs` reply: `None` while it runs, its result
/// once it has concluded.
pub fn job_outcome(jobs: &Value, id: &str) -> Option<Result<(), String>> {
    let Some(job) = jobs
        .as_array()
        .and_then(|jobs| jobs.iter().find(|job| job["id"] == id))
    else {
        return Some(Err(format!("QEMU job '{id}' disappeared")));
    };
    if job["status"] != "concluded" {
        return None;
    }
    match job["error"].as_str() {
        Some(error) => Some(Err(error.to_owned())),
        None => Some(Ok(())),
    }
}

/// A failed snapshot job as the error the API reports: a device that blocks migration
/// (QEMU says "non-migratable device 'X'" or "... is not migratable") makes the board's
/// snapshots unsupported; anything else is an emulator failure.
pub fn job_error(command: &str, error: String) -> BackendError {
    if error.contains("migratab") || error.contains("blocked") {
        BackendError::SnapshotUnsupported(error)
    } else {
        BackendError::Control(format!("{command}: {error}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_outcomes_are_read_from_query_jobs() {
        let running = json!([{"id": "s1", "status": "running", "type": "snapshot-save"}]);
        assert_eq!(job_outcome(&running, "s1"), None);
        let done = json!([{"id": "s1", "status": "concluded"}]);
        assert_eq!(job_outcome(&done, "s1"), Some(Ok(())));
        let failed = json!([
            {"id": "other", "status": "running"},
            {"id": "s1", "status": "concluded", "error": "No block device node 'x'"},
        ]);
        assert_eq!(
            job_outcome(&failed, "s1"),
            Some(Err("No block device node 'x'".into()))
        );
        assert!(matches!(job_outcome(&json!([]), "s1"), Some(Err(_))));
    }

    #[test]
    fn migration_blockers_are_unsupported_snapshots() {
        let blocked = job_error(
            "snapshot-save",
            "State blocked by non-migratable device 'usb-host'".into(),
        );
        assert!(
            matches!(blocked, BackendError::SnapshotUnsupported(ref m) if m.contains("usb-host"))
        );
        assert!(matches!(
            job_error("snapshot-save", "disk full".into()),
            BackendError::Control(_)
        ));
    }

    #[test]
    fn a_loaded_image_is_opened_by_path() {
        let args = add_qcow2("n1", FileOf::Path(Path::new("/run/x/restore.qcow2")));
        assert_eq!(args["file"]["filename"], "/run/x/restore.qcow2");
        assert_eq!(add_qcow2("n1", FileOf::Node("f1"))["file"], "f1");
        assert_eq!(snapshot_job("j", "n1")["devices"], json!(["n1"]));
    }
}
