//! suspend and restore: the VM's memory and device state saved to one
//! file with QMP `migrate` to a descriptor (the sandbox denies `exec:`),
//! QEMU ended; later a new QEMU started with `-incoming defer` loads it
//! with `migrate-incoming` from a descriptor and runs on.
//!
//! The file is written as FILE.part and renamed once QEMU says the
//! migration completed, so FILE is whole or absent; a failed suspend
//! removes the part file and lets the VM run on.

use crate::qmp::Qmp;
use crate::record;
use banger_lib::error::io;
use banger_lib::records::SuspendLine;
use banger_lib::wait::Backoff;
use banger_lib::{proc, Error, Result};
use serde_json::{json, Value};
use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The name the state file's descriptor has inside QEMU.
pub(crate) const FD_NAME: &str = "banger-state";
/// Loading a saved VM: reading its memory back from a local file.
const RESTORE_TIMEOUT: Duration = Duration::from_secs(300);

/// The saved state of `restore`, opened read-only (never through a link).
pub fn open_state(p: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(p)
        .map_err(|e| {
            let err = io(format!("opening the saved state {}", p.display()), e);
            match err.io_kind() {
                Some(std::io::ErrorKind::NotFound) => Error::not_found(err.message)
                    .with_hint("a suspended VM's state is written by `banger-qemu suspend`"),
                _ => err,
            }
        })?;
    let m = f
        .metadata()
        .map_err(|e| io(format!("stat {}", p.display()), e))?;
    if !m.is_file() || m.len() == 0 {
        return Err(Error::failed(format!(
            "{} is not a saved VM state (not a file, or empty)",
            p.display()
        )));
    }
    Ok(f)
}

/// In a QEMU started with `-incoming defer`: load `file`, run the VM.
/// Its run state after. A state QEMU cannot load ends QEMU (its error
/// is in vmm.log).
pub fn load_state(q: &mut Qmp, file: &File) -> Result<String> {
    q.execute_with_fd("getfd", Some(json!({"fdname": FD_NAME})), file.as_fd())?;
    q.execute(
        "migrate-incoming",
        Some(json!({"uri": format!("fd:{FD_NAME}")})),
    )?;
    let deadline = Instant::now() + RESTORE_TIMEOUT;
    let mut last = String::new();
    let done = Backoff::DEFAULT.poll_until(Some(deadline), || match q.run_state() {
        Ok(s) if s == "inmigrate" => {
            last = s;
            None
        }
        Ok(s) => Some(Ok(s)),
        Err(e) => Some(Err(e)),
    });
    let state = match done {
        Some(r) => r?,
        None => {
            return Err(Error::failed(format!(
                "the state did not load within {} s (QEMU is {last})",
                RESTORE_TIMEOUT.as_secs()
            )))
        }
    };
    // Without -S QEMU runs the VM once loaded; a paused one is asked to.
    if state == "paused" || state == "postmigrate" || state == "prelaunch" {
        q.execute("cont", None)?;
        return q.run_state();
    }
    Ok(state)
}

/// `suspend ID --to FILE`: pause, save, end QEMU, remove the run dir.
/// A failure before the save completed leaves the VM running and no file.
pub fn suspend(id: &str, to: &Path, timeout: Duration) -> Result<SuspendLine> {
    let started = Instant::now();
    let (_lock, rec, sock) = lock_saveable(id)?;
    if to.exists() {
        return Err(Error::conflict(format!("{} already exists", to.display()))
            .with_hint("remove it, or resume the VM it belongs to"));
    }
    let part = part_path(to);
    let _ = std::fs::remove_file(&part);
    let file = create_exclusive(&part)?;
    let mut q = Qmp::connect(&sock, Duration::from_secs(5))?;
    let was = q.run_state()?;
    let saved = (|| -> Result<()> {
        if was == "running" {
            q.execute("stop", None)?;
        }
        q.execute_with_fd("getfd", Some(json!({"fdname": FD_NAME})), file.as_fd())?;
        q.execute("migrate", Some(json!({"uri": format!("fd:{FD_NAME}")})))?;
        wait_saved(&mut q, Instant::now() + timeout)?;
        file.sync_all()
            .map_err(|e| io(format!("syncing {}", part.display()), e))?;
        Ok(())
    })();
    if let Err(e) = saved {
        let _ = q.execute("migrate_cancel", None);
        let _ = q.execute("closefd", Some(json!({"fdname": FD_NAME})));
        record::VMM.remove_file(&part);
        if was == "running" {
            if let Err(c) = q.execute("cont", None) {
                eprintln!("banger-qemu: warning: VM {id} stays paused: {}", c.message);
            }
        }
        return Err(Error {
            message: format!("saving VM {id}: {}", e.message),
            ..e
        });
    }
    drop(file);
    std::fs::rename(&part, to).map_err(|e| {
        record::VMM.remove_file(&part);
        io(
            format!("renaming {} to {}", part.display(), to.display()),
            e,
        )
    })?;
    if let Some(dir) = to.parent() {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    // Saved: QEMU goes, and with it what its start made.
    let _ = q.execute("quit", None);
    drop(q);
    if !proc::wait_gone(rec.pid, rec.pid_start_time, Duration::from_secs(10))
        && proc::terminate(rec.pid, rec.pid_start_time).is_none()
    {
        return Err(Error::failed(format!(
            "qemu pid {} of VM {id} survived SIGKILL (its state is saved in {})",
            rec.pid,
            to.display()
        )));
    }
    record::end_helper(&rec)?;
    record::remove_leftovers(id, Some(&rec));
    let bytes = std::fs::metadata(to).map(|m| m.len()).unwrap_or(0);
    Ok(SuspendLine {
        id: id.to_string(),
        state: "suspended".into(),
        file: to.to_path_buf(),
        bytes,
        ms: started.elapsed().as_millis() as u64,
        vmm_version: rec.vmm_version.clone(),
    })
}

/// A running VM QEMU can save, under its lock: its record and QMP socket.
pub(crate) fn lock_saveable(
    id: &str,
) -> Result<(
    banger_lib::state::Lock,
    banger_lib::vmspec::VmmRecord,
    PathBuf,
)> {
    let (lock, rec) = record::VMM.lock_alive(id)?;
    let sock = rec
        .qmp_socket
        .clone()
        .ok_or_else(|| Error::failed(format!("the record of VM {id} has no qmp_socket")))?;
    if rec.helper_pid.is_some() {
        return Err(Error::failed(format!(
            "VM {id} runs with vhost-device-vsock, which QEMU cannot save"
        ))
        .with_hint(format!(
            "restart it to move it to the serial agent channel: banger vm restart {id}"
        )));
    }
    Ok((lock, rec, sock))
}

pub(crate) fn part_path(to: &Path) -> PathBuf {
    let mut name = to.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    to.with_file_name(name)
}

pub(crate) fn create_exclusive(p: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(p)
        .map_err(|e| io(format!("creating {}", p.display()), e))
}

/// Poll `query-migrate` until the save completed, failed, or the deadline.
pub(crate) fn wait_saved(q: &mut Qmp, deadline: Instant) -> Result<()> {
    let mut last = Value::Null;
    let done = Backoff::DEFAULT.poll_until(Some(deadline), || {
        let r = match q.execute("query-migrate", None) {
            Ok(r) => r,
            Err(e) => return Some(Err(e)),
        };
        let status = r.get("status").and_then(Value::as_str).unwrap_or("");
        match status {
            "completed" => Some(Ok(())),
            "failed" | "cancelled" => {
                let why = r
                    .get("error-desc")
                    .and_then(Value::as_str)
                    .unwrap_or(status)
                    .to_string();
                Some(Err(Error::failed(format!(
                    "QEMU's migration {status}: {why}"
                ))))
            }
            _ => {
                last = r;
                None
            }
        }
    });
    match done {
        Some(r) => r,
        None => Err(
            Error::failed(format!("the save did not complete in time (last: {last})"))
                .with_hint("give it longer with --timeout"),
        ),
    }
}
