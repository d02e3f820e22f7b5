//! What a VMM driver (banger-fc, banger-qemu) keeps in RUNTIME/ID: loading
//! and locking the record a start leaves, and removing what a VM leaves
//! behind (`stop` is how both stop a VM). The files only one driver makes
//! stay in that driver.

pub mod snapshot;
pub mod stop;

use crate::vmspec::{record_path, run_dir, VmmRecord};
use crate::{state, Error, Result};
use std::path::{Path, PathBuf};

/// One driver, named for its messages.
#[derive(Debug, Clone, Copy)]
pub struct Driver {
    /// The tool: `banger-fc`.
    pub tool: &'static str,
    /// The VMM process it runs: `firecracker`.
    pub process: &'static str,
}

impl Driver {
    pub fn load(&self, id: &str) -> Result<Option<VmmRecord>> {
        crate::names::validate("VM", id)?;
        // Cleanups remove files in the run dir: never through a link.
        crate::paths::refuse_symlink(&run_dir(id))?;
        state::load(&record_path(id))
    }

    /// The exit-3 error for an id with no record.
    pub fn not_running(&self, id: &str) -> Error {
        Error::not_found(format!("no VM {id} is running under {}", self.tool))
    }

    /// The exit-5 error for starting a VM whose VMM process is alive.
    pub fn already_running(&self, id: &str, pid: u32) -> Error {
        Error::conflict(format!(
            "VM {id} is already running ({} pid {pid})",
            self.process
        ))
        .with_hint(format!("stop it first: {} stop {id}", self.tool))
    }

    /// The record of a VM whose VMM process is alive; exit 3 otherwise.
    pub fn load_alive(&self, id: &str) -> Result<VmmRecord> {
        match self.load(id)? {
            Some(r) if r.is_alive() => Ok(r),
            Some(r) => Err(Error::not_found(format!(
                "VM {id} is not running (its {} pid {} is gone)",
                self.process, r.pid
            ))
            .with_hint(format!("clean up with: {} stop {id}", self.tool))),
            None => Err(self.not_running(id)),
        }
    }

    /// The lock and record of a VM whose VMM process is alive, for a verb
    /// on a running VM (pause, resume, snapshot). The record is checked
    /// before locking too, so a typo does not leave a run dir behind.
    pub fn lock_alive(&self, id: &str) -> Result<(state::Lock, VmmRecord)> {
        self.load_alive(id)?;
        let lock = self.lock(id)?;
        Ok((lock, self.load_alive(id)?))
    }

    /// Lock a VM's record for a whole operation.
    pub fn lock(&self, id: &str) -> Result<state::Lock> {
        crate::paths::ensure_dir(&run_dir(id))?;
        state::lock(&record_path(id))
    }

    /// Remove a file that may already be gone; other failures are worth a
    /// warning but must not stop a cleanup.
    pub fn remove_file(&self, p: &Path) {
        if let Err(e) = std::fs::remove_file(p) {
            if e.kind() != std::io::ErrorKind::NotFound {
                eprintln!("{}: warning: removing {}: {e}", self.tool, p.display());
            }
        }
    }

    /// Remove the sockets of `rec`, the driver's own `files`, and the
    /// record of a VM whose processes are gone, and its runtime dir when
    /// nothing else is left in it.
    pub fn remove_leftovers(&self, id: &str, rec: Option<&VmmRecord>, files: &[PathBuf]) {
        if let Some(r) = rec {
            let agent = r.agent.as_ref().map(|a| a.uds().to_path_buf());
            for p in [&r.api_socket, &r.qmp_socket, &r.vsock_uds, &agent]
                .into_iter()
                .flatten()
            {
                self.remove_file(p);
            }
        }
        for f in files {
            self.remove_file(f);
        }
        crate::console::end_logger(id);
        self.remove_file(&crate::console::fifo_path(id));
        self.remove_file(&record_path(id));
        self.remove_run_dir(id);
    }

    /// The run dir holds the record's lock file; remove both when that is
    /// all that is left.
    pub fn remove_run_dir(&self, id: &str) {
        let dir = run_dir(id);
        let lock = state::lock_path(&record_path(id));
        let others = std::fs::read_dir(&dir)
            .map(|d| d.flatten().any(|e| e.path() != lock))
            .unwrap_or(true);
        if !others {
            self.remove_file(&lock);
            let _ = std::fs::remove_dir(&dir);
        }
    }
}
