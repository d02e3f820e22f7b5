//! start, stop, restart, delete and set on one VM, under its lock. The
//! fan-out over several names is in fanout.rs.

use crate::create::{step_error, Timings};
use crate::record::{self, State, VmRecord};
use crate::{boot, interrupt, tools, vmm};
use banger_lib::{paths, state, Error, Kind, Result};
use serde_json::{json, Value};

pub fn check_size(vcpus: u32, memory: u32) -> Result<()> {
    if vcpus == 0 || vcpus > 32 {
        return Err(Error::usage(format!("--vcpus must be 1-32, not {vcpus}")));
    }
    if memory < 128 {
        return Err(Error::usage(format!(
            "--memory is in MiB and must be at least 128, not {memory}"
        )));
    }
    Ok(())
}

fn lock(name: &str) -> Result<state::Lock> {
    // A name without a record: say so at once rather than make a lock dir.
    if record::load(name)?.is_none() {
        return Err(record::not_found(name));
    }
    let l = record::lock(name, state::default_lock_timeout())?;
    if record::load(name)?.is_none() {
        // Deleted while we waited: leave no empty directory behind.
        let _ = std::fs::remove_file(l.path());
        let _ = std::fs::remove_dir(record::vm_dir(name));
        return Err(record::not_found(name));
    }
    Ok(l)
}

/// Boot a created, stopped or crashed VM. A running one is left as it is.
pub fn start(name: &str, no_wait: bool, timeout: u64) -> Result<Value> {
    let _l = lock(name)?;
    let mut rec = record::reconcile_locked(name)?;
    if rec.state == State::Running {
        return Ok(rec.view());
    }
    let tool = vmm::tool(&rec.vmm);
    if rec.state == State::Crashed {
        // Whatever the dead VMM left: sockets, QEMU's vsock helper.
        let _ = boot::stop_vmm(tool, name, 0);
    }
    let before = rec.state;
    let fail = |rec: &mut VmRecord, step: &str, e: Error| -> Error {
        if matches!(step, "vmm start" | "healthy" | "ssh") {
            boot::show_console_tail(name);
        }
        let _ = boot::stop_vmm(tool, name, 0);
        rec.state = if before == State::Created {
            State::Created
        } else {
            State::Stopped
        };
        rec.pid = None;
        rec.pid_start_time = None;
        let _ = record::store(rec);
        step_error(name, "start", step, e)
    };
    // The TAP may be gone (host reboot); the lease stays the same.
    if let Err(e) = boot::acquire_tap(&mut rec).and_then(|_| record::store(&rec)) {
        return Err(fail(&mut rec, "tap", e));
    }
    if rec.nat {
        match tools::run("banger-net", &["nat", "enable", "--vm", name]) {
            Err(e) if e.kind != Kind::Conflict => return Err(fail(&mut rec, "nat", e)),
            _ => {}
        }
    }
    if let Err(e) = interrupt::check().and_then(|_| boot::start_vmm(&mut rec)) {
        return Err(fail(&mut rec, "vmm start", e));
    }
    boot::dns_ensure(name);
    if !no_wait {
        let mut t = Timings::new();
        let r = boot::wait_ready(&rec, timeout, &mut t)
            .and_then(|_| interrupt::check().map_err(|e| ("done", e)));
        if let Err((step, e)) = r {
            return Err(fail(&mut rec, step, e));
        }
    }
    Ok(rec.view())
}

/// Shut a VM down; disks, lease and TAP stay.
pub fn stop(name: &str, timeout: u64) -> Result<Value> {
    let _l = lock(name)?;
    let mut rec = record::reconcile_locked(name)?;
    stop_locked(&mut rec, timeout)?;
    Ok(json!({"state": rec.state}))
}

fn stop_locked(rec: &mut VmRecord, timeout: u64) -> Result<()> {
    let tool = vmm::tool(&rec.vmm);
    match rec.state {
        State::Running => boot::stop_vmm(tool, &rec.name, timeout)
            .map_err(|e| step_error(&rec.name, "stop", "vmm stop", e))?,
        State::Crashed => {
            let _ = boot::stop_vmm(tool, &rec.name, 0);
        }
        State::Created | State::Stopped => return Ok(()),
    }
    rec.state = State::Stopped;
    rec.pid = None;
    rec.pid_start_time = None;
    rec.vsock_uds = None;
    record::store(rec)
}

pub fn restart(name: &str, no_wait: bool, timeout: u64, stop_timeout: u64) -> Result<Value> {
    stop(name, stop_timeout)?;
    start(name, no_wait, timeout)
}

/// Stop a VM and remove everything it had. Without `force`, a failing
/// cleanup step keeps the record so the delete can be tried again.
pub fn delete(name: &str, force: bool, timeout: u64) -> Result<Value> {
    let _l = lock(name)?;
    let mut rec = record::reconcile_locked(name)?;
    let mut failed: Vec<String> = Vec::new();
    let tool = vmm::tool(&rec.vmm);
    if let Err(e) = boot::stop_vmm(tool, name, timeout) {
        failed.push(format!("vmm stop: {e}"));
    } else if rec.state == State::Running {
        rec.state = State::Stopped;
        rec.pid = None;
        rec.pid_start_time = None;
        let _ = record::store(&rec);
    }
    if rec.nat {
        if let Err(e) = tools::run_gone_ok("banger-net", &["nat", "disable", "--vm", name]) {
            failed.push(format!("nat disable: {e}"));
        }
    }
    if let Err(e) = tools::run_gone_ok("banger-net", &["tap", "release", "--vm", name]) {
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
    let mut out = json!({"state": "deleted"});
    if !failed.is_empty() {
        out["warnings"] = json!(failed);
    }
    Ok(out)
}

/// A re-created VM gets a new host key; drop the old one.
fn forget_host_key(name: &str) {
    let _ = tools::run("banger-ssh", &["forget", name]);
    let _ = std::fs::remove_file(paths::state_dir().join("known_hosts").join(name));
}

pub struct Settings {
    pub nat: Option<bool>,
    pub vcpus: Option<u32>,
    pub memory: Option<u32>,
}

pub fn set(name: &str, s: &Settings) -> Result<Value> {
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
    )?;
    if let Some(nat) = s.nat {
        // Without a lease there is no address to masquerade yet; start
        // applies the setting.
        if rec.ip.is_some() {
            let verb = if nat { "enable" } else { "disable" };
            match tools::run("banger-net", &["nat", verb, "--vm", name]) {
                Err(e) if nat && e.kind == Kind::Conflict => {}
                Err(e) if !nat && e.kind == Kind::NotFound => {}
                Err(e) => return Err(e),
                Ok(()) => {}
            }
        }
        rec.nat = nat;
    }
    if let Some(v) = s.vcpus {
        rec.vcpus = v;
    }
    if let Some(m) = s.memory {
        rec.memory_mib = m;
    }
    record::store(&rec)?;
    Ok(rec.view())
}
