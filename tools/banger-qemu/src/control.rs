//! status, stop, pause and resume of a running VM, over QMP.

use crate::qmp::Qmp;
use crate::record;
use banger_lib::vmspec::VmmRecord;
use banger_lib::{proc, Error, Result};
use serde_json::{json, Value};
use std::time::Duration;

const QMP_TIMEOUT: Duration = Duration::from_secs(5);

fn qmp(rec: &VmmRecord) -> Result<Qmp> {
    let sock = rec
        .qmp_socket
        .as_deref()
        .ok_or_else(|| Error::failed(format!("the record of VM {} has no qmp_socket", rec.id)))?;
    Qmp::connect(sock, QMP_TIMEOUT)
}

pub fn status(id: &str) -> Result<Value> {
    let rec = record::VMM
        .load(id)?
        .ok_or_else(|| record::VMM.not_running(id))?;
    let alive = rec.is_alive();
    let state = if !alive {
        "dead".to_string()
    } else {
        qmp(&rec)
            .and_then(|mut q| q.run_state())
            .unwrap_or_else(|_| "unresponsive".into())
    };
    Ok(
        json!({"id": id, "vmm": "qemu", "pid": rec.pid, "alive": alive, "state": state,
              "helper_alive": record::helper_alive(&rec)}),
    )
}

/// ACPI power button, wait; QMP quit; SIGTERM; SIGKILL. Then the helper.
/// Always remove the sockets and the record.
pub fn stop(id: &str, timeout: u64) -> Result<Value> {
    banger_lib::names::validate("VM", id)?;
    let _lock = record::VMM.lock(id)?;
    let Some(rec) = record::VMM.load(id)? else {
        record::remove_leftovers(id, None);
        return Ok(json!({"id": id, "stopped": true, "how": "not_running"}));
    };
    let how = end_qemu(&rec, Duration::from_secs(timeout))?;
    record::end_helper(&rec)?;
    record::remove_leftovers(id, Some(&rec));
    Ok(json!({"id": id, "stopped": true, "how": how}))
}

fn end_qemu(rec: &VmmRecord, timeout: Duration) -> Result<&'static str> {
    let (pid, start) = (rec.pid, rec.pid_start_time);
    if !rec.is_alive() {
        return Ok("already_dead");
    }
    let mut q = qmp(rec).ok();
    let asked = q
        .as_mut()
        .is_some_and(|q| q.execute("system_powerdown", None).is_ok());
    if asked && proc::wait_gone(pid, start, timeout) {
        return Ok("powerdown");
    }
    // QEMU answers `quit` and then exits; the reply may race the exit.
    if let Some(q) = q.as_mut() {
        let _ = q.execute("quit", None);
        if proc::wait_gone(pid, start, Duration::from_secs(5)) {
            return Ok("quit");
        }
    }
    proc::terminate(pid, start)
        .ok_or_else(|| Error::failed(format!("qemu pid {pid} of VM {} survived SIGKILL", rec.id)))
}

/// QMP on a running VM, under its lock. The record is checked before
/// locking so a typo does not leave a run dir behind.
fn alive_qmp(id: &str) -> Result<(banger_lib::state::Lock, Qmp)> {
    record::VMM.load_alive(id)?;
    let lock = record::VMM.lock(id)?;
    let rec = record::VMM.load_alive(id)?;
    Ok((lock, qmp(&rec)?))
}

pub fn pause(id: &str) -> Result<Value> {
    let (_lock, mut q) = alive_qmp(id)?;
    q.execute("stop", None)?;
    Ok(json!({"id": id, "state": "paused"}))
}

pub fn resume(id: &str) -> Result<Value> {
    let (_lock, mut q) = alive_qmp(id)?;
    q.execute("cont", None)?;
    Ok(json!({"id": id, "state": "running"}))
}
