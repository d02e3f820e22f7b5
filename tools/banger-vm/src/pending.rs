//! Finishing a suspend, resume or snapshot that a killed command left
//! (`VmRecord::pending`), under the VM's lock, before anything else looks
//! at the VM, once the driver the killed command called has finished
//! (drivers finish what they started even when their caller is killed).
//! The rule: the guest ends up running, or suspended with a
//! state that was never loaded; never paused, never loaded twice.
//!
//! - suspend: a whole saved state (the driver renames it into place only
//!   once whole) means the guest was saved: its VMM, if the kill came
//!   before the driver ended it, is killed and the VM recorded suspended.
//!   Without one, a VMM still alive was killed mid-save (its guest is
//!   paused, perhaps still saving): it is resumed and the partial state
//!   thrown away; a VMM gone crashed (the usual reconcile).
//! - resume: a VMM the driver started runs the restored guest: it is
//!   adopted (the record says running, the state goes: it is spent).
//!   None: nothing was loaded and the VM stays suspended.
//! - snapshot: a live VMM is resumed (the guest may be paused); the
//!   snapshot's dir, without its record, is removed.

use crate::record::{self, State, VmRecord};
use crate::{plumbing, suspend, vmm};
use banger_lib::records::snapshot as snaprec;
use banger_lib::records::Pending;
use banger_lib::{proc, Result};
use std::time::Duration;

pub fn finish(rec: &mut VmRecord, p: Pending) -> Result<()> {
    let name = rec.name.clone();
    let tool = vmm::tool(&rec.vmm);
    wait_for_driver(&name);
    match p {
        Pending::Suspend { mut info } => {
            // The driver renames the state into place only once it is
            // whole, and ends the VMM after that: a whole state wins.
            let whole = |p: &std::path::Path| std::fs::symlink_metadata(p).is_ok();
            if !whole(&info.path) && rec.vmm_alive() {
                resume_vmm(tool, &name);
            }
            // (A driver that had not taken its lock yet may have finished
            // the save while the resume waited for it.)
            if whole(&info.path) {
                if rec.vmm_alive() {
                    crate::stop::stop_vmm(tool, &name, crate::stop::StopMode::Kill)?;
                }
                info.bytes = banger_lib::diskcopy::on_disk(&info.path);
                return suspend::mark_suspended(rec, info);
            } else {
                suspend::discard(&info.path);
            }
        }
        Pending::Resume => {
            if let Some(v) = driver_record(&name) {
                rec.pid = Some(v.pid);
                rec.pid_start_time = Some(v.pid_start_time);
                rec.agent = v.agent_endpoint();
                rec.vsock_uds = v.vsock_uds;
                rec.state = State::Running;
                rec.started_at = Some(proc::now_rfc3339());
                if let Some(info) = rec.suspend.take() {
                    suspend::discard(&info.path);
                }
                eprintln!("banger-vm: {name}: a killed resume had restored it: it runs");
            }
        }
        Pending::Snapshot { snapshot } => {
            if rec.vmm_alive() {
                resume_vmm(tool, &name);
            }
            if let Ok(_l) =
                banger_lib::state::Lock::acquire(&snaprec::lock_path(&snapshot), Duration::ZERO)
            {
                if !snaprec::path(&snapshot).exists() {
                    let _ = std::fs::remove_dir_all(snaprec::dir(&snapshot));
                }
            }
        }
    }
    rec.pending = None;
    record::store(rec)
}

/// A killed banger-vm leaves the driver it called to finish its own work
/// (plumbing.rs): judge what it left only once it is done, which its lock
/// says. A shared lock, never made here: a VMM long gone has no lock file.
pub fn wait_for_driver(name: &str) {
    let lock = banger_lib::state::lock_path(&banger_lib::vmspec::record_path(name));
    drop(banger_lib::state::Lock::try_shared(
        &lock,
        banger_lib::state::default_lock_timeout(),
    ));
}

/// The guest runs on (the driver cancels a save still under way).
fn resume_vmm(tool: &str, name: &str) {
    if let Err(e) = plumbing::run(tool, &["resume", name]) {
        eprintln!("banger-vm: warning: {name}: its guest may stay paused: {e}");
    }
}

/// The driver's record of a VMM that is alive, if there is one.
pub fn driver_record(name: &str) -> Option<banger_lib::vmspec::VmmRecord> {
    let text = std::fs::read_to_string(banger_lib::vmspec::record_path(name)).ok()?;
    let v: banger_lib::vmspec::VmmRecord = serde_json::from_str(&text).ok()?;
    proc::is_alive(v.pid, v.pid_start_time).then_some(v)
}
