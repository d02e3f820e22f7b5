//! The VM record (vm.json), its lock, and reconciliation of records whose
//! VMM process died behind our back.

use banger_lib::{paths, proc, state, Error, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Created,
    Running,
    Stopped,
    Crashed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Disks {
    pub rootfs: PathBuf,
    pub work: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VmRecord {
    pub schema: u64,
    pub name: String,
    pub image: String,
    pub vmm: String,
    pub state: State,
    pub ip: Option<String>,
    pub prefix: Option<u8>,
    pub gateway: Option<String>,
    pub dns: Option<String>,
    pub mac: Option<String>,
    pub tap: Option<String>,
    pub nat: bool,
    pub vsock_cid: Option<u32>,
    pub vsock_uds: Option<PathBuf>,
    pub pid: Option<u32>,
    pub pid_start_time: Option<u64>,
    pub vcpus: u32,
    pub memory_mib: u32,
    pub disk_size: u64,
    pub disks: Disks,
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    pub cmdline: String,
    pub created_at: String,
    pub started_at: Option<String>,
}

impl VmRecord {
    /// Whether the recorded VMM process is this very process still.
    pub fn vmm_alive(&self) -> bool {
        match (self.pid, self.pid_start_time) {
            (Some(pid), Some(st)) => proc::is_alive(pid, st),
            _ => false,
        }
    }

    /// The record as printed by list/show: with `uptime_s` while running.
    pub fn view(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).expect("records serialize");
        let uptime = match (self.state, self.pid) {
            (State::Running, Some(pid)) => uptime_s(pid),
            _ => None,
        };
        v["uptime_s"] = uptime.into();
        v
    }
}

/// Seconds since `pid` started, from /proc.
fn uptime_s(pid: u32) -> Option<u64> {
    let start_ticks = proc::start_time(pid)?;
    let up = std::fs::read_to_string("/proc/uptime").ok()?;
    let up: f64 = up.split_whitespace().next()?.parse().ok()?;
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some((up - start_ticks as f64 / hz).max(0.0) as u64)
}

pub fn vm_dir(name: &str) -> PathBuf {
    paths::vms_dir().join(name)
}

pub fn record_path(name: &str) -> PathBuf {
    vm_dir(name).join("vm.json")
}

pub fn load(name: &str) -> Result<Option<VmRecord>> {
    state::load(&record_path(name))
}

/// Load a record that must exist: exit 3 otherwise.
pub fn load_existing(name: &str) -> Result<VmRecord> {
    load(name)?.ok_or_else(|| not_found(name))
}

pub fn not_found(name: &str) -> Error {
    Error::not_found(format!("no VM named {name}")).with_hint("list the VMs with: banger vm list")
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
    let dir = paths::vms_dir();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => {
            return Err(banger_lib::error::io(
                format!("reading {}", dir.display()),
                e,
            ))
        }
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter(|e| e.path().join("vm.json").is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    Ok(names)
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
        Some(r) if r.state == State::Running && !r.vmm_alive() => {}
        _ => return Ok(()),
    }
    let _lock = lock(name, timeout)?;
    reconcile_locked(name)?;
    Ok(())
}

/// Reconcile with the VM's lock already held; returns the current record.
pub fn reconcile_locked(name: &str) -> Result<VmRecord> {
    let mut rec = load_existing(name)?;
    if rec.state == State::Running && !rec.vmm_alive() {
        rec.state = State::Crashed;
        store(&rec)?;
    }
    Ok(rec)
}
