//! start, stop, restart, delete and set on one VM, under its lock. The
//! fan-out over several names is banger_lib::fanout.

use crate::record::{self, State, VmLine, VmRecord};
use crate::steps::{self, step_error, Mode, Run};
use crate::stop::{self, StopMode};
use crate::{plumbing, vmm};
use banger_lib::records::StopLine;
use banger_lib::{paths, state, Error, Kind, Result};
use serde::Serialize;

/// vCPUs and memory a VM may have: at least one vCPU and 128 MiB, at most
/// the host's CPUs (and 32) and the host's memory. `verb` names the command
/// for the hint (`create`, `set`).
pub fn check_size(vcpus: u32, memory: u32, verb: &str) -> Result<()> {
    let cpus = banger_lib::host::cpus().min(32);
    if vcpus == 0 || vcpus > cpus {
        return Err(Error::usage(format!(
            "--vcpus must be 1-{cpus} on this host, not {vcpus}"
        ))
        .with_hint(format!(
            "this host has {cpus} CPUs for guests: banger vm {verb} --vcpus {}",
            cpus.min(2)
        )));
    }
    if memory < 128 {
        return Err(Error::usage(format!(
            "--memory is in MiB and must be at least 128, not {memory}"
        ))
        .with_hint(format!("for example: banger vm {verb} --memory 1024")));
    }
    if let Some(max) = banger_lib::host::memory_mib() {
        if u64::from(memory) > max {
            return Err(Error::usage(format!(
                "--memory {memory} MiB is more than this host's {max} MiB"
            ))
            .with_hint(format!(
                "give at most {max}: banger vm {verb} --memory {}",
                (max / 2).max(128)
            )));
        }
    }
    Ok(())
}

pub(crate) fn lock(name: &str) -> Result<state::Lock> {
    // A name without a record: say so at once rather than make a lock dir.
    if record::load(name)?.is_none() {
        return Err(record::not_found(name));
    }
    let l = lock_any(name)?;
    if record::load(name)?.is_none() {
        // Deleted while we waited: leave no empty directory behind.
        let _ = std::fs::remove_file(l.path());
        let _ = std::fs::remove_dir(record::vm_dir(name));
        return Err(record::not_found(name));
    }
    Ok(l)
}

/// The VM's lock, whether or not its record is readable.
fn lock_any(name: &str) -> Result<state::Lock> {
    record::lock(name, state::default_lock_timeout())
}

/// Boot a created, stopped or crashed VM. A running one is left as it is.
/// The same boot steps as create; a failure stops what this start
/// started and puts the VM back as it was (its lease and disks stay).
pub fn start(name: &str, no_wait: bool, timeout: u64) -> Result<VmLine> {
    let _l = lock(name)?;
    let rec = record::reconcile_locked(name)?;
    if rec.state == State::Running {
        return Ok(record::line(&rec));
    }
    if rec.state == State::Creating {
        return Err(
            Error::conflict(format!("{name} was never finished: its create was killed")).with_hint(
                format!("remove it and create it again: banger vm delete {name} (or banger gc)"),
            ),
        );
    }
    if rec.state == State::Crashed {
        // Whatever the dead VMM left: sockets, QEMU's vsock helper.
        let _ = stop::stop_vmm(vmm::tool(&rec.vmm), name, StopMode::Kill);
    }
    let agent_port = banger_lib::config::Bundle::load()?.agent_port;
    let (nat, forwards) = (rec.nat, !rec.forwards.is_empty());
    let mut run = Run::new(rec, Mode::Start, timeout, agent_port);
    // The TAP may be gone (host reboot); the lease stays the same.
    run.run(&steps::boot(nat, forwards, !no_wait))?;
    Ok(record::line(&run.rec))
}

/// What stop prints for a VM.
#[derive(Debug, Serialize)]
pub struct Stopped {
    pub state: State,
    /// The guest shut down by itself: what it wrote is on its disks.
    pub clean: bool,
    pub how: String,
}

/// Shut a VM down; disks, lease and TAP stay. The result says whether the
/// guest shut down by itself (`clean`) and how.
pub fn stop(name: &str, timeout: u64) -> Result<Stopped> {
    let _l = lock(name)?;
    let mut rec = record::reconcile_locked(name)?;
    let s = stop_locked(&mut rec, timeout)?;
    Ok(Stopped {
        state: rec.state,
        clean: s.clean,
        how: s.how,
    })
}

fn stop_locked(rec: &mut VmRecord, timeout: u64) -> Result<StopLine> {
    let tool = vmm::tool(&rec.vmm);
    let s = match rec.state {
        State::Running => stop::stop_vmm(tool, &rec.name, StopMode::Clean(timeout))
            .map_err(|e| step_error(&rec.name, "stop", "vmm stop", e))?,
        State::Crashed => {
            let _ = stop::stop_vmm(tool, &rec.name, StopMode::Kill);
            StopLine {
                id: rec.name.clone(),
                stopped: true,
                how: "crashed".into(),
                clean: false,
                synced: false,
            }
        }
        State::Creating | State::Created | State::Stopped => {
            return Ok(StopLine {
                id: rec.name.clone(),
                stopped: true,
                how: "not_running".into(),
                clean: true,
                synced: false,
            })
        }
    };
    if s.how == "killed" {
        let what = if s.synced {
            "its disks were synced first"
        } else {
            "the guest agent did not answer, so writes not yet on disk may be lost"
        };
        eprintln!(
            "banger-vm: warning: {} did not shut down within {timeout} s and was killed; {what}",
            rec.name
        );
        eprintln!(
            "hint: give it longer next time: banger vm stop --timeout {} {}",
            (timeout * 2).max(30),
            rec.name
        );
    }
    rec.state = State::Stopped;
    rec.pid = None;
    rec.pid_start_time = None;
    rec.vsock_uds = None;
    rec.agent = None;
    record::store(rec)?;
    // Its port forwards lead nowhere now; the record keeps them for start.
    if !rec.forwards.is_empty() {
        if let Err(e) = crate::forward::net_remove_all(&rec.name) {
            eprintln!(
                "banger-vm: warning: {}: its port forwards are still in force: {e}",
                rec.name
            );
            eprintln!("hint: banger gc takes them away");
        }
    }
    Ok(s)
}

/// What restart prints: the record after the start, and whether the stop
/// before it was clean.
#[derive(Debug, Serialize)]
pub struct Restarted {
    #[serde(flatten)]
    pub line: VmLine,
    pub clean: bool,
}

/// Stop (the clean path), then start.
pub fn restart(name: &str, no_wait: bool, timeout: u64, stop_timeout: u64) -> Result<Restarted> {
    let stopped = stop(name, stop_timeout)?;
    Ok(Restarted {
        line: start(name, no_wait, timeout)?,
        clean: stopped.clean,
    })
}

/// What delete prints.
#[derive(Debug, Default, Serialize)]
pub struct Deleted {
    pub state: &'static str,
    /// delete --force of a VM without a readable record: what was found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub removed: Option<Vec<String>>,
    /// Cleanup steps that failed (delete --force goes on).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Stop a VM and remove everything it had. Without `force`, a failing
/// cleanup step keeps the record so the delete can be tried again. The
/// VMM is killed at once (its disks are going), unless `graceful`.
pub fn delete(name: &str, force: bool, graceful: bool, timeout: u64) -> Result<Deleted> {
    match record::load(name) {
        Ok(Some(_)) => {}
        Ok(None) if force && record::vm_dir(name).exists() => return delete_by_name(name),
        Ok(None) => {
            let e = record::not_found(name);
            if record::vm_dir(name).exists() {
                return Err(e.with_hint(format!(
                    "{} has files but no record (a create that was killed?); \
                     remove them: banger vm delete --force {name}",
                    record::vm_dir(name).display()
                )));
            }
            return Err(e);
        }
        Err(_) if force => return delete_by_name(name),
        Err(e) => {
            return Err(e.with_hint(format!(
            "remove the VM anyway (VMM, lease, NAT entry, disks): banger vm delete --force {name}"
        )))
        }
    }
    let _l = lock(name)?;
    let mut rec = record::reconcile_locked(name)?;
    let mut failed: Vec<String> = Vec::new();
    let tool = vmm::tool(&rec.vmm);
    let mode = if graceful {
        StopMode::Clean(timeout)
    } else {
        StopMode::Kill
    };
    if let Err(e) = stop::stop_vmm(tool, name, mode) {
        failed.push(format!("vmm stop: {e}"));
    } else if rec.state == State::Running {
        rec.state = State::Stopped;
        rec.pid = None;
        rec.pid_start_time = None;
        let _ = record::store(&rec);
    }
    if rec.nat {
        if let Err(e) = plumbing::nat_disable(name) {
            failed.push(format!("nat disable: {e}"));
        }
    }
    if let Err(e) = plumbing::tap_release(name) {
        failed.push(format!("tap release: {e}"));
    }
    forget_host_key(name);
    if !failed.is_empty() && !force {
        return Err(Error::failed(format!(
            "delete {name}: {}; the record is kept",
            failed.join("; ")
        ))
        .with_hint(format!(
            "fix the cause and delete again, or remove it anyway: banger vm delete --force {name}"
        )));
    }
    let _ = std::fs::remove_dir_all(banger_lib::vmspec::run_dir(name));
    let dir = record::vm_dir(name);
    std::fs::remove_dir_all(&dir)
        .map_err(|e| banger_lib::error::io(format!("removing {}", dir.display()), e))?;
    Ok(Deleted {
        state: "deleted",
        removed: None,
        warnings: failed,
    })
}

/// `delete --force` of a VM whose record is corrupt or missing: find what
/// belongs to the name without the record (a VMM by its id under either
/// driver, the lease, the NAT element, the host key, the dirs) and remove
/// it, printing what was there.
fn delete_by_name(name: &str) -> Result<Deleted> {
    let _l = lock_any(name)?;
    sweep(name)
}

/// Remove everything that belongs to `name`, record or not; the caller
/// holds the VM's lock. Also what `gc` does with a leftover.
pub fn sweep(name: &str) -> Result<Deleted> {
    let mut removed: Vec<String> = Vec::new();
    let mut failed: Vec<String> = Vec::new();
    for tool in ["banger-qemu", "banger-fc"] {
        match stop::stop_vmm(tool, name, StopMode::Kill) {
            Ok(s) if s.how != "not_running" => removed.push(format!("{tool} VMM ({})", s.how)),
            Ok(_) => {}
            // A driver that is not installed cannot have started it.
            Err(e) if e.kind == Kind::Prereq => {}
            Err(e) => failed.push(format!("{tool} stop: {e}")),
        }
    }
    for (what, args) in [
        ("NAT element", ["nat", "disable", "--vm", name]),
        ("TAP and lease", ["tap", "release", "--vm", name]),
    ] {
        match plumbing::run("banger-net", &args) {
            Ok(()) => removed.push(what.into()),
            Err(e) if plumbing::gone(&e) => {}
            Err(e) => failed.push(format!("{}: {e}", args[..2].join(" "))),
        }
    }
    forget_host_key(name);
    let run = banger_lib::vmspec::run_dir(name);
    if run.exists() && std::fs::remove_dir_all(&run).is_ok() {
        removed.push(run.display().to_string());
    }
    let dir = record::vm_dir(name);
    // Never follow a link out of the state dir into a delete.
    if std::fs::symlink_metadata(&dir).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(Error::failed(format!(
            "{} is a symbolic link; not following it",
            dir.display()
        )));
    }
    std::fs::remove_dir_all(&dir)
        .map_err(|e| banger_lib::error::io(format!("removing {}", dir.display()), e))?;
    removed.push(dir.display().to_string());
    Ok(Deleted {
        state: "deleted",
        removed: Some(removed),
        warnings: failed,
    })
}

/// A re-created VM gets a new host key; drop the old one.
fn forget_host_key(name: &str) {
    let _ = plumbing::run("banger-ssh", &["forget", name]);
    let _ = std::fs::remove_file(paths::state_dir().join("known_hosts").join(name));
}

pub struct Settings {
    pub nat: Option<bool>,
    pub isolated: Option<bool>,
    pub vcpus: Option<u32>,
    pub memory: Option<u32>,
}

pub fn set(name: &str, s: &Settings) -> Result<VmLine> {
    let _l = lock(name)?;
    let mut rec = record::reconcile_locked(name)?;
    if (s.vcpus.is_some() || s.memory.is_some()) && rec.state == State::Running {
        return Err(Error::conflict(format!(
            "{name} is running; vCPUs and memory change only while it is stopped"
        ))
        .with_hint(format!("stop it first: banger vm stop {name}")));
    }
    check_size(
        s.vcpus.unwrap_or(rec.vcpus),
        s.memory.unwrap_or(rec.memory_mib),
        "set",
    )?;
    if let Some(nat) = s.nat {
        // Without a lease there is no address to masquerade yet; start
        // applies the setting.
        if rec.ip.is_some() {
            let r = if nat {
                plumbing::nat_enable(name)
            } else {
                plumbing::run("banger-net", &["nat", "disable", "--vm", name])
            };
            match r {
                Err(e) if nat && e.kind == Kind::Conflict => {}
                Err(e) if !nat && e.kind == Kind::NotFound => {}
                Err(e) => return Err(e),
                Ok(()) => {}
            }
        }
        rec.nat = nat;
    }
    if let Some(isolated) = s.isolated {
        // Without a lease, the next tap acquire (start) applies it.
        if rec.ip.is_some() {
            match plumbing::tap_isolate(name, isolated) {
                Err(e) if e.kind == Kind::NotFound => {}
                r => r?,
            }
        }
        rec.isolated = isolated;
    }
    if let Some(v) = s.vcpus {
        rec.vcpus = v;
    }
    if let Some(m) = s.memory {
        rec.memory_mib = m;
    }
    record::store(&rec)?;
    Ok(record::line(&rec))
}
