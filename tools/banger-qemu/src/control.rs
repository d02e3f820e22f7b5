//! status, stop, pause and resume of a running VM, over QMP.

use crate::qmp::Qmp;
use crate::record;
use banger_lib::records::StopLine;
use banger_lib::vmm::stop;
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

/// QEMU as `stop` drives it. The agent is asked to power off: QEMU's
/// microvm has ACPI, so a guest that powers off ends QEMU.
struct Qemu<'a> {
    rec: &'a VmmRecord,
}

impl stop::Vmm for Qemu<'_> {
    fn wake(&mut self) {
        if let Ok(mut q) = qmp(self.rec) {
            if let Err(e) = run_on(&mut q, &self.rec.id) {
                eprintln!("banger-qemu: warning: VM {}: {}", self.rec.id, e.message);
            }
        }
    }

    fn request_shutdown(&mut self) -> bool {
        qmp(self.rec)
            .and_then(|mut q| q.execute("system_powerdown", None))
            .is_ok()
    }

    /// QMP quit, wait; SIGTERM, wait; SIGKILL.
    fn kill(&mut self) -> Result<()> {
        let (pid, start) = (self.rec.pid, self.rec.pid_start_time);
        // QEMU answers `quit` and then exits; the reply may race the exit.
        if let Ok(mut q) = qmp(self.rec) {
            let _ = q.execute("quit", None);
            if proc::wait_gone(pid, start, Duration::from_secs(5)) {
                return Ok(());
            }
        }
        proc::terminate(pid, start).map(drop).ok_or_else(|| {
            Error::failed(format!(
                "qemu pid {pid} of VM {} survived SIGKILL",
                self.rec.id
            ))
        })
    }
}

/// The guest agent's poweroff, else the ACPI power button; past `timeout`
/// the agent's sync, then QMP quit and signals (at once with `kill`).
/// Then the helper, which outlives QEMU. Always remove the sockets and the
/// record.
pub fn stop(id: &str, timeout: u64, kill: bool) -> Result<StopLine> {
    let requests = stop::Requests {
        agent_path: "/shutdown",
        vmm_how: "acpi",
    };
    stop::verb(
        &record::VMM,
        id,
        requests,
        Duration::from_secs(timeout),
        kill,
        |rec| Box::new(Qemu { rec }),
        |rec| {
            if let Some(r) = rec {
                record::end_helper(r)?;
            }
            record::remove_leftovers(id, rec);
            Ok(())
        },
    )
}

/// QMP on a running VM, under its lock.
fn alive_qmp(id: &str) -> Result<(banger_lib::state::Lock, Qmp)> {
    let (lock, rec) = record::VMM.lock_alive(id)?;
    Ok((lock, qmp(&rec)?))
}

pub fn pause(id: &str) -> Result<Value> {
    let (_lock, mut q) = alive_qmp(id)?;
    q.execute("stop", None)?;
    Ok(json!({"id": id, "state": "paused"}))
}

/// `cont`, after cancelling a save still under way (`run_on`).
pub fn resume(id: &str) -> Result<Value> {
    let (_lock, mut q) = alive_qmp(id)?;
    run_on(&mut q, id)?;
    Ok(json!({"id": id, "state": "running"}))
}

/// Let a paused guest run: a suspend or snapshot killed mid-save leaves
/// QEMU paused and migrating into its file, and QEMU refuses `cont` until
/// the migration has ended, so it is cancelled first. A guest in any
/// other state (running, shut down) is left alone.
fn run_on(q: &mut Qmp, id: &str) -> Result<()> {
    if !matches!(
        q.run_state()?.as_str(),
        "paused" | "postmigrate" | "finish-migrate"
    ) {
        return Ok(());
    }
    let migrating = |q: &mut crate::qmp::Qmp| -> Result<bool> {
        let r = q.execute("query-migrate", None)?;
        let status = r.get("status").and_then(Value::as_str).unwrap_or("");
        Ok(matches!(
            status,
            "setup" | "active" | "pre-switchover" | "device" | "cancelling"
        ))
    };
    if migrating(q)? {
        q.execute("migrate_cancel", None)?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let ended =
            banger_lib::wait::Backoff::DEFAULT.poll_until(Some(deadline), || match migrating(q) {
                Ok(true) => None,
                Ok(false) => Some(Ok(())),
                Err(e) => Some(Err(e)),
            });
        ended.unwrap_or_else(|| {
            Err(Error::failed(format!(
                "VM {id}'s save did not stop within 30 s of migrate_cancel"
            )))
        })?;
    }
    q.execute("cont", None).map(drop)
}
