//! The VMM record a start leaves in RUNTIME/ID/vmm.json, the files beside
//! it, and removing what a VM leaves behind.

use crate::process;
use banger_lib::vmspec::{record_path, run_dir, VmmRecord};
use banger_lib::{state, Error, Result};
use std::path::{Path, PathBuf};

/// QEMU's pid file.
pub fn pid_file(id: &str) -> PathBuf {
    run_dir(id).join("qemu.pid")
}

/// vhost-device-vsock's control socket (QEMU connects to it).
pub fn vhost_socket(id: &str) -> PathBuf {
    run_dir(id).join("vhost-vsock.sock")
}

pub fn load(id: &str) -> Result<Option<VmmRecord>> {
    banger_lib::names::validate("VM", id)?;
    state::load(&record_path(id))
}

/// The record of a VM whose QEMU is alive; exit 3 otherwise.
pub fn load_alive(id: &str) -> Result<VmmRecord> {
    match load(id)? {
        Some(r) if r.is_alive() => Ok(r),
        Some(r) => Err(Error::not_found(format!(
            "VM {id} is not running (its qemu pid {} is gone)",
            r.pid
        ))
        .with_hint(format!("clean up with: banger-qemu stop {id}"))),
        None => Err(Error::not_found(format!(
            "no VM {id} is running under banger-qemu"
        ))),
    }
}

/// Lock a VM's record for a whole operation.
pub fn lock(id: &str) -> Result<state::Lock> {
    banger_lib::paths::ensure_dir(&run_dir(id))?;
    state::lock(&record_path(id))
}

pub fn remove_file(p: &Path) {
    if let Err(e) = std::fs::remove_file(p) {
        if e.kind() != std::io::ErrorKind::NotFound {
            eprintln!("banger-qemu: warning: removing {}: {e}", p.display());
        }
    }
}

/// Whether the record's vhost-device-vsock is still running.
pub fn helper_alive(rec: &VmmRecord) -> Option<bool> {
    match (rec.helper_pid, rec.helper_pid_start_time) {
        (Some(pid), Some(start)) => Some(banger_lib::proc::is_alive(pid, start)),
        _ => None,
    }
}

/// End the helper of a VM whose QEMU is gone (it outlives QEMU).
pub fn end_helper(rec: &VmmRecord) -> Result<()> {
    if let (Some(pid), Some(start)) = (rec.helper_pid, rec.helper_pid_start_time) {
        if process::terminate(pid, start).is_none() {
            return Err(Error::failed(format!(
                "vhost-device-vsock pid {pid} of VM {} survived SIGKILL",
                rec.id
            )));
        }
    }
    Ok(())
}

/// Remove the sockets, pid file and record of a VM whose processes are
/// gone, and its runtime dir when nothing else is left in it.
pub fn remove_leftovers(id: &str, rec: Option<&VmmRecord>) {
    if let Some(r) = rec {
        for p in [&r.qmp_socket, &r.vsock_uds].into_iter().flatten() {
            remove_file(p);
        }
    }
    remove_file(&vhost_socket(id));
    remove_file(&pid_file(id));
    remove_file(&record_path(id));
    remove_run_dir(id);
}

/// The run dir holds the record's lock file; remove both when that is
/// all that is left.
pub fn remove_run_dir(id: &str) {
    let dir = run_dir(id);
    let lock = state::lock_path(&record_path(id));
    let others = std::fs::read_dir(&dir)
        .map(|d| d.flatten().any(|e| e.path() != lock))
        .unwrap_or(true);
    if !others {
        remove_file(&lock);
        let _ = std::fs::remove_dir(&dir);
    }
}
