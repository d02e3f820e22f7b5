//! The VMM record a start leaves in RUNTIME/ID/vmm.json, and removing what
//! a VM leaves behind.

use banger_lib::vmspec::{record_path, run_dir, VmmRecord};
use banger_lib::{state, Error, Result};
use std::path::{Path, PathBuf};

pub fn load(id: &str) -> Result<Option<VmmRecord>> {
    banger_lib::names::validate("VM", id)?;
    state::load(&record_path(id))
}

/// The record of a VM whose process is alive; exit 3 otherwise.
pub fn load_alive(id: &str) -> Result<VmmRecord> {
    match load(id)? {
        Some(r) if r.is_alive() => Ok(r),
        Some(r) => Err(Error::not_found(format!(
            "VM {id} is not running (its firecracker pid {} is gone)",
            r.pid
        ))
        .with_hint(format!("clean up with: banger-fc stop {id}"))),
        None => Err(Error::not_found(format!(
            "no VM {id} is running under banger-fc"
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
            eprintln!("banger-fc: warning: removing {}: {e}", p.display());
        }
    }
}

/// Remove the sockets and the record of a VM whose process is gone, and
/// its runtime dir when nothing else is left in it.
pub fn remove_leftovers(id: &str, rec: Option<&VmmRecord>) {
    if let Some(r) = rec {
        for p in [&r.api_socket, &r.vsock_uds].into_iter().flatten() {
            remove_file(p);
        }
    }
    remove_file(&record_path(id));
    remove_file(&spec_path(id));
    remove_run_dir(id);
}

/// The resolved spec a VM was started with, kept for `snapshot create`.
pub fn spec_path(id: &str) -> PathBuf {
    run_dir(id).join("spec.json")
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
