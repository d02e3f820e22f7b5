//! `vm suspend` and `vm resume`: a running VM's memory and device state
//! saved into its dir by its driver (`suspend`), the VMM gone and its RAM
//! freed; later restored in place (`restore`) with the same TAP, lease,
//! disks and CID, then waited on until the agent answers.
//!
//! The state is `vms/NAME/suspended` (QEMU: one file; Firecracker: a
//! directory). The record keeps it with the VMM version, kernel and shape
//! it was saved from (`SuspendInfo`), and a resume refuses a mismatch
//! before starting anything. A resume whose restore fails leaves the VM
//! suspended as it was; once the restored guest runs, the state is removed
//! (it would go back in time). `vm stop` of a suspended VM discards it.

use crate::lifecycle::lock;
use crate::record::{self, State, VmLine, VmRecord};
use crate::steps::{step_error, Mode, Run, Step};
use crate::{plumbing, vmm};
use banger_lib::records::vm::SuspendInfo;
use banger_lib::records::Pending;
use banger_lib::{host, hosttools, proc, Error, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Where a VM's saved state goes.
pub fn state_path(name: &str) -> PathBuf {
    record::vm_dir(name).join("suspended")
}

/// Remove a saved state (a file or a directory), and what a killed
/// suspend left beside it.
pub fn discard(path: &Path) {
    let mut part = path.as_os_str().to_os_string();
    part.push(".part");
    for p in [path.to_path_buf(), PathBuf::from(part)] {
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => {
                let _ = std::fs::remove_dir_all(&p);
            }
            Ok(_) => {
                let _ = std::fs::remove_file(&p);
            }
            Err(_) => {}
        }
    }
}

/// What `vm suspend` prints per VM.
#[derive(Debug, Serialize)]
pub struct Suspended {
    pub state: State,
    /// The saved state's size on disk.
    pub bytes: u64,
    /// How long the save took.
    pub ms: u64,
}

/// The VMM binary's `--version` line now, as the driver would run it.
fn vmm_version(vmm: &str) -> Result<String> {
    let bundle = banger_lib::config::Bundle::load()?;
    let (program, name) = match vmm {
        "qemu" => (host::qemu_program(Some(&bundle)), "QEMU"),
        _ => (host::firecracker_program(&bundle), "firecracker"),
    };
    let bin = hosttools::which(&program).ok_or_else(|| {
        Error::prereq(format!(
            "{} is missing; it is needed to resume VMs with {vmm}",
            program.display()
        ))
    })?;
    hosttools::version(&bin, name)
}

pub fn kernel_stamp(kernel: &Path) -> Result<(u64, i64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(kernel)
        .map_err(|e| banger_lib::error::io(format!("stat {}", kernel.display()), e))?;
    Ok((m.len(), m.mtime()))
}

/// Save one running VM and end its VMM.
pub fn suspend(name: &str) -> Result<Suspended> {
    let _l = lock(name)?;
    let mut rec = record::reconcile_locked(name)?;
    match rec.state {
        State::Running => {}
        State::Suspended => {
            let bytes = rec.suspend.as_ref().map_or(0, |s| s.bytes);
            return Ok(Suspended {
                state: State::Suspended,
                bytes,
                ms: 0,
            });
        }
        other => {
            return Err(Error::conflict(format!(
                "{name} is {}, not running: nothing to suspend",
                other.word()
            ))
            .with_hint(format!("start it first: banger vm start {name}")))
        }
    }
    let (kernel_size, kernel_mtime) = kernel_stamp(&rec.kernel)?;
    // What the guest wrote reaches its disks first: a suspend that is
    // later discarded (`vm stop`) then loses nothing that was written.
    let synced = rec.agent.as_ref().is_some_and(|ep| {
        banger_lib::agent::request(ep, "POST", "/sync", std::time::Duration::from_secs(10))
            .is_ok_and(|r| r.ok())
    });
    let path = state_path(name);
    // What a killed suspend left: no record points at it.
    discard(&path);
    let mut info = SuspendInfo {
        path: path.clone(),
        // As its driver recorded it at start (the running binary's).
        vmm_version: match crate::pending::driver_record(name) {
            Some(v) => v.vmm_version,
            None => vmm_version(&rec.vmm)?,
        },
        kernel_size,
        kernel_mtime,
        vcpus: rec.vcpus,
        memory_mib: rec.memory_mib,
        bytes: 0,
        synced,
        suspended_at: proc::now_rfc3339(),
    };
    // Killed from here on, the next command finds the guest paused or
    // saved (pending.rs).
    rec.pending = Some(Pending::Suspend { info: info.clone() });
    record::store(&rec)?;
    let s = match plumbing::vmm_suspend(vmm::tool(&rec.vmm), name, &path) {
        Ok(s) => s,
        Err(e) => {
            rec.pending = None;
            record::store(&rec)?;
            return Err(step_error(name, "suspend", "vmm suspend", e));
        }
    };
    info.vmm_version = s.vmm_version;
    info.bytes = s.bytes;
    mark_suspended(&mut rec, info)?;
    Ok(Suspended {
        state: State::Suspended,
        bytes: s.bytes,
        ms: s.ms,
    })
}

/// What a saved state (a suspend's or a golden snapshot's) was saved
/// with: loading it under another VMM binary or kernel fails in the VMM
/// or hangs the guest, so it is refused up front.
pub struct Saved<'a> {
    /// `box`, `snapshot base`.
    pub subject: String,
    /// `was suspended`, `was taken`.
    pub event: &'static str,
    pub vmm: &'a str,
    pub vmm_version: &'a str,
    pub kernel: &'a Path,
    pub kernel_size: u64,
    pub kernel_mtime: i64,
}

impl Saved<'_> {
    /// Exit 5 naming what changed.
    pub fn check(&self) -> Result<()> {
        let now = vmm_version(self.vmm)?;
        if now != self.vmm_version {
            return Err(Error::conflict(format!(
                "{} {} under {:?}, but the VMM is now {now:?}",
                self.subject, self.event, self.vmm_version
            )));
        }
        if kernel_stamp(self.kernel)? != (self.kernel_size, self.kernel_mtime) {
            return Err(Error::conflict(format!(
                "{}'s kernel {} changed since it {}",
                self.subject,
                self.kernel.display(),
                self.event
            )));
        }
        Ok(())
    }
}

/// Record a VM whose guest is saved in `info.path` and whose VMM is gone
/// as suspended. Its port forwards lead nowhere while suspended; resume
/// puts them back.
pub fn mark_suspended(rec: &mut VmRecord, info: SuspendInfo) -> Result<()> {
    rec.state = State::Suspended;
    rec.pid = None;
    rec.pid_start_time = None;
    rec.agent = None;
    rec.vsock_uds = None;
    rec.suspend = Some(info);
    rec.pending = None;
    record::store(rec)?;
    if !rec.forwards.is_empty() {
        if let Err(e) = crate::forward::net_remove_all(&rec.name) {
            let name = &rec.name;
            eprintln!("banger-vm: warning: {name}: its port forwards are still in force: {e}");
            eprintln!("hint: banger gc takes them away");
        }
    }
    Ok(())
}

/// Why a suspended VM's state cannot be loaded here and now, if it cannot.
fn check_resumable(rec: &VmRecord, info: &SuspendInfo) -> Result<()> {
    let name = &rec.name;
    let discard_hint = format!(
        "put back what it was saved with, or discard the saved state and boot afresh: \
         banger vm stop {name} && banger vm start {name}"
    );
    if std::fs::symlink_metadata(&info.path).is_err() {
        return Err(Error::not_found(format!(
            "{name}'s saved state {} is missing",
            info.path.display()
        ))
        .with_hint(format!(
            "discard the suspend and boot it afresh: banger vm stop {name} && banger vm start {name}"
        )));
    }
    let saved = Saved {
        subject: name.to_string(),
        event: "was suspended",
        vmm: &rec.vmm,
        vmm_version: &info.vmm_version,
        kernel: &rec.kernel,
        kernel_size: info.kernel_size,
        kernel_mtime: info.kernel_mtime,
    };
    saved
        .check()
        .map_err(|e| e.with_hint(discard_hint.clone()))?;
    if (rec.vcpus, rec.memory_mib) != (info.vcpus, info.memory_mib) {
        return Err(Error::conflict(format!(
            "{name} was suspended with {} vCPUs and {} MiB, its record now says {} and {}",
            info.vcpus, info.memory_mib, rec.vcpus, rec.memory_mib
        ))
        .with_hint(discard_hint));
    }
    Ok(())
}

/// Restore one suspended VM in place and wait for its agent. A running VM
/// is left as it is.
pub fn resume(name: &str, timeout: u64) -> Result<VmLine> {
    let _l = lock(name)?;
    let rec = record::reconcile_locked(name)?;
    resume_locked(rec, timeout)
}

/// `resume` with the VM's lock held (also `vm start` of a suspended VM).
pub fn resume_locked(rec: VmRecord, timeout: u64) -> Result<VmLine> {
    let name = rec.name.clone();
    match rec.state {
        State::Running => return Ok(record::line(&rec)),
        State::Suspended => {}
        other => {
            return Err(
                Error::conflict(format!("{name} is {}, not suspended", other.word()))
                    .with_hint(format!("start it: banger vm start {name}")),
            )
        }
    }
    let info = rec.suspend.clone().ok_or_else(|| {
        Error::failed(format!(
            "{name} is suspended but its record has no saved state"
        ))
        .with_hint(format!(
            "boot it afresh: banger vm stop {name} && banger vm start {name}"
        ))
    })?;
    check_resumable(&rec, &info).map_err(|e| step_error(&name, "resume", "check", e))?;
    let agent_port = banger_lib::config::Bundle::load()?.agent_port;
    let mut rec = rec;
    // Killed from here on, the next command adopts a VMM that restored it
    // or leaves it suspended (pending.rs); the VMM step clears this.
    rec.pending = Some(Pending::Resume);
    record::store(&rec)?;
    let nat = rec.nat;
    let forwards = !rec.forwards.is_empty();
    let mut run = Run::new(rec, Mode::Start, timeout, agent_port);
    run.restore = Some(info.path.clone());
    // The boot steps, the VMM restoring instead of booting, and no pin or
    // ssh wait: the guest's sshd and keys are the ones pinned at boot.
    let mut steps = crate::steps::boot(nat, forwards, false);
    steps.push(Step::Healthy);
    if let Err(e) = run.run(&steps) {
        if let Ok(Some(mut r)) = record::load(&name) {
            if r.pending.take().is_some() {
                record::store(&r)?;
            }
        }
        let m = e.message.replacen("start ", "resume ", 1);
        return Err(e.reword(m));
    }
    Ok(record::line(&run.rec))
}

/// `vm stop` of a suspended VM: the saved state goes, the VM is stopped
/// (its disks hold what the guest had written when it was suspended).
pub fn discard_locked(rec: &mut VmRecord) -> Result<()> {
    if let Some(info) = rec.suspend.take() {
        discard(&info.path);
    }
    discard(&state_path(&rec.name));
    rec.state = State::Stopped;
    record::store(rec)
}
