//! status, stop, pause, resume and snapshot create on a running VM.

use crate::api::{Api, SLOW};
use crate::jail::{self, Outbox};
use crate::record;
use banger_lib::records::{SnapshotLine, StopLine, SuspendLine};
use banger_lib::vmm::snapshot::{self, DiskAsk};
use banger_lib::vmm::stop;
use banger_lib::vmspec::{Drive, VmSpec, VmmRecord};
use banger_lib::{paths, proc, Error, Result};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

pub fn status(id: &str, with_config: bool) -> Result<Value> {
    let rec = record::VMM
        .load(id)?
        .ok_or_else(|| record::VMM.not_running(id))?;
    let alive = rec.is_alive();
    let mut out = json!({"id": id, "vmm": "firecracker", "pid": rec.pid, "alive": alive});
    let api = rec.api_socket.as_deref().map(Api::new);
    out["state"] = json!(match (&api, alive) {
        (_, false) => "dead".to_string(),
        (Some(api), true) => match api.state(Duration::from_secs(3)) {
            Ok(s) => s.to_lowercase().replace(' ', "_"),
            Err(_) => "unresponsive".into(),
        },
        (None, true) => "unresponsive".into(),
    });
    if with_config && alive {
        if let Some(api) = &api {
            out["config"] = api.call("GET", "/vm/config", None, Duration::from_secs(3))?;
        }
    }
    Ok(out)
}

/// The agent is asked to reboot, not to power off: on x86 Firecracker has
/// no ACPI power management, so a guest that powers off halts while the
/// firecracker process lives on, whereas a reboot (with `reboot=k`, which
/// banger-vm puts on the command line) resets through the i8042 and
/// Firecracker exits (Firecracker's FAQ, "How can I gracefully reboot the
/// guest? How can I gracefully poweroff the guest?"). SendCtrlAltDel is the
/// same reboot, asked of the guest's keyboard handler instead of the agent.
const AGENT_SHUTDOWN: &str = "/reboot";

/// Firecracker as `stop` drives it.
struct Firecracker<'a> {
    rec: &'a VmmRecord,
}

impl stop::Vmm for Firecracker<'_> {
    fn wake(&mut self) {
        if let Some(s) = self.rec.api_socket.as_deref() {
            if let Err(e) = run_on(self.rec, &Api::new(s), false) {
                eprintln!("banger-fc: warning: VM {}: {}", self.rec.id, e.message);
            }
        }
    }

    fn request_shutdown(&mut self) -> bool {
        self.rec.api_socket.as_deref().is_some_and(|s| {
            Api::new(s)
                .call(
                    "PUT",
                    "/actions",
                    Some(&json!({"action_type": "SendCtrlAltDel"})),
                    Duration::from_secs(3),
                )
                .is_ok()
        })
    }

    fn kill(&mut self) -> Result<()> {
        let (pid, id) = (self.rec.pid, &self.rec.id);
        proc::terminate(pid, self.rec.pid_start_time)
            .map(drop)
            .ok_or_else(|| {
                Error::failed(format!("firecracker pid {pid} of VM {id} survived SIGKILL"))
            })
    }
}

/// The guest agent's reboot, else Ctrl+Alt+Del; past `timeout` the agent's
/// sync and SIGTERM, SIGKILL (at once with `kill`). Always remove the
/// sockets, the spec copy and the record.
pub fn stop(id: &str, timeout: u64, kill: bool) -> Result<StopLine> {
    let requests = stop::Requests {
        agent_path: AGENT_SHUTDOWN,
        vmm_how: "ctrl_alt_del",
    };
    stop::verb(
        &record::VMM,
        id,
        requests,
        Duration::from_secs(timeout),
        kill,
        |rec| Box::new(Firecracker { rec }),
        |rec| {
            record::remove_leftovers(id, rec);
            Ok(())
        },
    )
}

/// The API of a running VM, under its lock.
fn alive_api(id: &str) -> Result<(banger_lib::state::Lock, Api)> {
    let (lock, rec) = record::VMM.lock_alive(id)?;
    let sock = rec
        .api_socket
        .ok_or_else(|| Error::failed(format!("the record of VM {id} has no api_socket")))?;
    Ok((lock, Api::new(&sock)))
}

fn set_state(api: &Api, state: &str) -> Result<()> {
    api.call(
        "PATCH",
        "/vm",
        Some(&json!({ "state": state })),
        Duration::from_secs(10),
    )
    .map(drop)
}

pub fn pause(id: &str) -> Result<Value> {
    let (_lock, api) = alive_api(id)?;
    set_state(&api, "Paused")?;
    Ok(json!({"id": id, "state": "paused"}))
}

/// Resumed; a paused VM's drives are first put back on the spec's files:
/// a `snapshot create` killed between its PATCHes leaves them on the
/// snapshot's copies, which the guest must never write. A jailed VM's
/// drives are never moved (and the spec's host paths are not in its
/// chroot).
pub fn resume(id: &str) -> Result<Value> {
    let (_lock, rec) = record::VMM.lock_alive(id)?;
    let sock = rec
        .api_socket
        .as_deref()
        .ok_or_else(|| Error::failed(format!("the record of VM {id} has no api_socket")))?;
    run_on(&rec, &Api::new(sock), true)?;
    Ok(json!({"id": id, "state": "running"}))
}

/// Let a paused guest run (`always`: send Resumed whatever the state).
/// An unjailed paused VM's drives are first put back on the spec's files:
/// a `snapshot create` killed between its PATCHes leaves them on the
/// snapshot's copies, which the guest must never write.
fn run_on(rec: &VmmRecord, api: &Api, always: bool) -> Result<()> {
    let paused = api.state(Duration::from_secs(5))? == "Paused";
    if rec.jail.is_none() && paused {
        if let Ok(text) = std::fs::read_to_string(record::spec_path(&rec.id)) {
            let spec = banger_lib::vmspec::VmSpec::parse(&text)?;
            for d in &spec.drives {
                patch_drive(api, &d.id, &d.path)?;
            }
        }
    }
    if paused || always {
        set_state(api, "Resumed")?;
    }
    Ok(())
}

/// What `snapshot create` is asked for beyond the VM and its dir.
#[derive(Debug, Default)]
pub struct SnapshotAsk {
    /// `--disk ID=DEST`: drives copied while the guest is paused.
    pub disks: Vec<DiskAsk>,
    /// `--diff`: only the pages dirtied since the last snapshot.
    pub diff: bool,
}

fn patch_drive(api: &Api, id: &str, path: &Path) -> Result<()> {
    api.call(
        "PATCH",
        &format!("/drives/{id}"),
        Some(&json!({"drive_id": id, "path_on_host": path})),
        Duration::from_secs(10),
    )
    .map(drop)
}

/// Pause, copy the asked disks, write a Full (or Diff) snapshot and the
/// spec to load it with, resume when it was running. A failure removes
/// the files and copies it made.
pub fn snapshot_create(id: &str, dir: &Path, ask: &SnapshotAsk) -> Result<SnapshotLine> {
    let started = Instant::now();
    let (_lock, rec) = record::VMM.lock_alive(id)?;
    let api = Api::new(
        rec.api_socket
            .as_deref()
            .ok_or_else(|| Error::failed(format!("the record of VM {id} has no api_socket")))?,
    );
    let spec_text = std::fs::read_to_string(record::spec_path(id)).map_err(|e| {
        banger_lib::error::io(format!("reading {}", record::spec_path(id).display()), e)
    })?;
    let drives = VmSpec::parse(&spec_text)?.drives;
    // Everything that can be refused is refused before the guest pauses.
    snapshot::check(&drives, &ask.disks)?;
    if ask.diff {
        let m = api.call("GET", "/machine-config", None, Duration::from_secs(5))?;
        if m["track_dirty_pages"] != true {
            return Err(Error::usage(format!(
                "VM {id} does not track dirty pages; a Diff snapshot needs it"
            ))
            .with_hint(
                "start (or restore) the VM with --track-dirty-pages, or drop --diff for a Full \
                 snapshot",
            ));
        }
    }
    let jail = rec.jail.as_deref();
    let files = ["vmstate", "memory", "spec.json", jail::JAILED_MARK].map(|f| dir.join(f));
    if let Some(f) = files.iter().find(|f| f.exists()) {
        return Err(Error::conflict(format!("{} already exists", f.display()))
            .with_hint("remove it or choose another --dir"));
    }
    let made_dir = !dir.exists();
    paths::ensure_dir(dir)?;
    let dir = dir
        .canonicalize()
        .map_err(|e| banger_lib::error::io(format!("resolving {}", dir.display()), e))?;
    let files = files.map(|f| dir.join(f.file_name().unwrap()));
    let was = api.state(Duration::from_secs(5))?;
    let paused_at = Instant::now();
    let mut disks = Vec::new();
    // The drives pointed at their copies so far, to point back.
    let mut moved: Vec<&Drive> = Vec::new();
    let result = (|| -> Result<()> {
        if was == "Running" {
            set_state(&api, "Paused")?;
        }
        disks = snapshot::copy(&drives, &ask.disks)?;
        // The vmstate records each drive's path and a load opens it:
        // pointed at the copies while it is written, a clone of this
        // snapshot never opens this VM's own disks. A jailed VM's vmstate
        // names its chroot's /drive-ID, which is what every jail links its
        // own VM's drive as: the clone's jail holds the clone's disks
        // there, so its drives stay where they are.
        if jail.is_none() {
            for d in &disks {
                let drive = drives.iter().find(|x| x.id == d.id).expect("checked");
                patch_drive(&api, &d.id, &d.path)?;
                moved.push(drive);
            }
        }
        let kind = if ask.diff { "Diff" } else { "Full" };
        write_snapshot(&api, jail, kind, &files[0], &files[1])?;
        std::fs::copy(record::spec_path(id), &files[2])
            .map_err(|e| banger_lib::error::io(format!("writing {}", files[2].display()), e))?;
        if jail.is_some() {
            jail::mark_jailed(&dir)?;
        }
        Ok(())
    })();
    // Each drive back on the VM's own file, whatever happened: a guest
    // resumed on a copy would write into the snapshot.
    let mut stuck = Vec::new();
    for d in &moved {
        if let Err(e) = patch_drive(&api, &d.id, &d.path) {
            stuck.push(format!("{} ({})", d.id, e.message));
        }
    }
    if !stuck.is_empty() {
        // Resumed, the guest would write into the copies (which are the
        // snapshot's), or into deleted files: it stays paused, and the
        // files stay for whoever sorts it out.
        return Err(Error::failed(format!(
            "VM {id} stays paused: drive {} could not be pointed back at its own file",
            stuck.join(", ")
        ))
        .with_hint(format!(
            "stop it; its snapshot files and disk copies are left in {}",
            dir.display()
        )));
    }
    let resumed = if was == "Running" {
        set_state(&api, "Resumed")
    } else {
        Ok(())
    };
    let paused_ms = paused_at.elapsed().as_millis() as u64;
    if let Err(e) = result.and(resumed) {
        for f in &files {
            record::VMM.remove_file(f);
        }
        snapshot::remove(&disks);
        if made_dir {
            let _ = std::fs::remove_dir(&dir);
        }
        return Err(Error {
            message: format!("snapshot of VM {id}: {}", e.message),
            ..e
        });
    }
    let state = if was == "Running" {
        "running"
    } else {
        "paused"
    };
    Ok(SnapshotLine {
        id: id.to_string(),
        state: state.into(),
        bytes: files[..2]
            .iter()
            .map(|f| banger_lib::diskcopy::on_disk(f))
            .sum(),
        dir,
        disks,
        paused_ms,
        ms: started.elapsed().as_millis() as u64,
        vmm_version: rec.vmm_version.clone(),
    })
}

/// PUT /snapshot/create into `vmstate` and `memory`. A jailed Firecracker
/// can write only inside its chroot, as the VMM user: it writes into an
/// Outbox there, whence the files move out as root's.
fn write_snapshot(
    api: &Api,
    jail: Option<&Path>,
    kind: &str,
    vmstate: &Path,
    memory: &Path,
) -> Result<()> {
    let outbox = jail.map(Outbox::make).transpose()?;
    let (s, m) = match &outbox {
        Some(o) => (o.inside("vmstate"), o.inside("memory")),
        None => (vmstate.to_path_buf(), memory.to_path_buf()),
    };
    api.call(
        "PUT",
        "/snapshot/create",
        Some(&json!({"snapshot_type": kind, "snapshot_path": s, "mem_file_path": m})),
        SLOW,
    )?;
    if let Some(o) = &outbox {
        o.take("vmstate", vmstate)?;
        o.take("memory", memory)?;
    }
    Ok(())
}

/// `suspend ID --to DIR`: pause, a Full snapshot into DIR.part (vmstate,
/// memory, spec.json), renamed to DIR once whole, then Firecracker ends
/// and its run dir goes as after a stop. A failure before the snapshot is
/// whole removes DIR.part and resumes the VM.
pub fn suspend(id: &str, to: &Path) -> Result<SuspendLine> {
    let started = std::time::Instant::now();
    let (_lock, rec) = record::VMM.lock_alive(id)?;
    let api = Api::new(
        rec.api_socket
            .as_deref()
            .ok_or_else(|| Error::failed(format!("the record of VM {id} has no api_socket")))?,
    );
    if to.exists() {
        return Err(Error::conflict(format!("{} already exists", to.display()))
            .with_hint("remove it, or resume the VM it belongs to"));
    }
    let part = {
        let mut n = to.file_name().unwrap_or_default().to_os_string();
        n.push(".part");
        to.with_file_name(n)
    };
    let _ = std::fs::remove_dir_all(&part);
    paths::ensure_dir(&part)?;
    let part = part
        .canonicalize()
        .map_err(|e| banger_lib::error::io(format!("resolving {}", part.display()), e))?;
    let was = api.state(Duration::from_secs(5))?;
    let saved = (|| -> Result<()> {
        if was == "Running" {
            set_state(&api, "Paused")?;
        }
        let jail = rec.jail.as_deref();
        write_snapshot(
            &api,
            jail,
            "Full",
            &part.join("vmstate"),
            &part.join("memory"),
        )?;
        std::fs::copy(record::spec_path(id), part.join("spec.json")).map_err(|e| {
            banger_lib::error::io(format!("writing {}", part.join("spec.json").display()), e)
        })?;
        if jail.is_some() {
            jail::mark_jailed(&part)?;
        }
        for f in ["vmstate", "memory", "spec.json"] {
            if let Ok(file) = std::fs::File::open(part.join(f)) {
                let _ = file.sync_all();
            }
        }
        std::fs::rename(&part, to).map_err(|e| {
            banger_lib::error::io(
                format!("renaming {} to {}", part.display(), to.display()),
                e,
            )
        })
    })();
    if let Err(e) = saved {
        let _ = std::fs::remove_dir_all(&part);
        if was == "Running" {
            if let Err(r) = set_state(&api, "Resumed") {
                eprintln!("banger-fc: warning: VM {id} stays paused: {}", r.message);
            }
        }
        return Err(Error {
            message: format!("saving VM {id}: {}", e.message),
            ..e
        });
    }
    // Saved: Firecracker goes (it has nothing to flush: the guest is paused).
    if proc::terminate(rec.pid, rec.pid_start_time).is_none() {
        return Err(Error::failed(format!(
            "firecracker pid {} of VM {id} survived SIGKILL (its state is saved in {})",
            rec.pid,
            to.display()
        )));
    }
    record::remove_leftovers(id, Some(&rec));
    let bytes = ["vmstate", "memory", "spec.json"]
        .iter()
        .map(|f| banger_lib::diskcopy::on_disk(&to.join(f)))
        .sum();
    Ok(SuspendLine {
        id: id.to_string(),
        state: "suspended".into(),
        file: to.to_path_buf(),
        bytes,
        ms: started.elapsed().as_millis() as u64,
        vmm_version: rec.vmm_version.clone(),
    })
}
