//! The VM record (vm.json), its lock, and reconciliation of records whose
//! VMM process died behind our back.

use banger_lib::records::vm;
use banger_lib::{state, Error, Result};
use std::path::PathBuf;
use std::time::Duration;

/// The record's type is banger_lib's: this tool writes it, the others
/// read it through `banger_lib::records::vm::view`.
pub use banger_lib::records::vm::{VmLine, VmRecord, VmState as State};

/// The record as printed by list/show: with `uptime_s` while running.
pub fn line(rec: &VmRecord) -> VmLine {
    VmLine {
        uptime_s: rec.uptime_s(),
        record: rec.clone(),
    }
}

pub fn vm_dir(name: &str) -> PathBuf {
    vm::dir(name)
}

pub fn record_path(name: &str) -> PathBuf {
    vm::path(name)
}

pub fn load(name: &str) -> Result<Option<VmRecord>> {
    // A VM dir that is a link is refused: a delete must never follow it.
    banger_lib::paths::refuse_symlink(&vm_dir(name))?;
    state::load(&record_path(name))
}

/// Load a record that must exist: exit 3 otherwise.
pub fn load_existing(name: &str) -> Result<VmRecord> {
    load(name)?.ok_or_else(|| not_found(name))
}

pub fn not_found(name: &str) -> Error {
    vm::not_found(name)
}

pub fn store(rec: &VmRecord) -> Result<()> {
    state::store(&record_path(&rec.name), rec)
}

/// The VM's lock. A delete removes the VM's directory, lock file included,
/// while a waiter may hold the old file open; that waiter then holds a lock
/// nobody else sees, so it goes round again on the file now at the path.
pub fn lock(name: &str, timeout: Duration) -> Result<state::Lock> {
    let path = state::lock_path(&record_path(name));
    loop {
        let lock = state::Lock::acquire(&path, timeout)?;
        if lock_is_current(&lock) {
            return Ok(lock);
        }
    }
}

fn lock_is_current(lock: &state::Lock) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(at_path) = std::fs::metadata(lock.path()) else {
        return false;
    };
    // The lock's own open file is /proc/self/fd/N; find it by inode.
    let Ok(fds) = std::fs::read_dir("/proc/self/fd") else {
        return true;
    };
    fds.flatten().any(|fd| {
        std::fs::metadata(fd.path())
            .map(|m| m.ino() == at_path.ino() && m.dev() == at_path.dev())
            .unwrap_or(false)
    })
}

/// Every VM name with a record, sorted.
pub fn names() -> Result<Vec<String>> {
    vm::names()
}

/// Mark running VMs whose VMM process is gone as crashed. A VM whose lock
/// is held is being worked on and is left to that command. The lease and
/// TAP stay so `start` can boot it again.
pub fn reconcile_all() {
    for name in names().unwrap_or_default() {
        let _ = reconcile(&name, Duration::ZERO);
    }
}

/// Reconcile one VM, waiting up to `timeout` for its lock.
pub fn reconcile(name: &str, timeout: Duration) -> Result<()> {
    match load(name)? {
        Some(r) if r.pending.is_some() => {}
        Some(r) if r.state == State::Running && !r.vmm_alive() => {}
        _ => return Ok(()),
    }
    let _lock = lock(name, timeout)?;
    reconcile_locked(name)?;
    Ok(())
}

/// Reconcile with the VM's lock already held; returns the current record.
/// A VMM that runs while the record says the VM does not (a start killed
/// between the driver's start and the record's store) is killed: the
/// record is what the user was told, and the next start makes a new one.
pub fn reconcile_locked(name: &str) -> Result<VmRecord> {
    let mut rec = load_existing(name)?;
    if let Some(p) = rec.pending.clone() {
        crate::pending::finish(&mut rec, p)?;
    }
    if rec.state == State::Running && !rec.vmm_alive() {
        rec.state = State::Crashed;
        store(&rec)?;
    }
    if !matches!(rec.state, State::Running | State::Creating) {
        // A start killed while its driver was starting the VMM: that
        // driver finishes, so what runs for the VM is judged once it has.
        crate::pending::wait_for_driver(name);
    }
    if let Some(pid) = stray_vmm(&rec) {
        eprintln!(
            "banger-vm: {name}: killing VMM pid {pid} left by a killed command (the record says {})",
            rec.state.word()
        );
        crate::stop::stop_vmm(
            crate::vmm::tool(&rec.vmm),
            name,
            crate::stop::StopMode::Kill,
        )?;
    }
    Ok(rec)
}

/// The pid of a VMM the driver's record (`RUNTIME/NAME/vmm.json`) says
/// runs for a VM whose record says it does not run. A creating VM's VMM
/// goes with the unfinished create (gc).
pub fn stray_vmm(rec: &VmRecord) -> Option<u32> {
    if matches!(rec.state, State::Running | State::Creating) {
        return None;
    }
    let text = std::fs::read_to_string(banger_lib::vmspec::record_path(&rec.name)).ok()?;
    let v: banger_lib::vmspec::VmmRecord = serde_json::from_str(&text).ok()?;
    banger_lib::proc::is_alive(v.pid, v.pid_start_time).then_some(v.pid)
}
