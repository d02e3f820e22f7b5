//! Golden snapshots: `vm snapshot NAME --as SNAP` keeps a running VM's
//! memory, device state and copies of its disks (taken while it is
//! paused, by its driver) in `snapshots/SNAP`, and the VM runs on;
//! `vm snapshots` lists them and `vm snapshots rm` removes them; `vm
//! create --from SNAP` (clone.rs) makes new VMs from one.
//!
//! The record (`snapshot.json`) is written last: a dir without it is a
//! snapshot cut short, which gc removes. A QEMU snapshot's disks are
//! copies of the VM's qcow2 overlays and read the image's files through
//! them, so `banger-image rm` refuses while the snapshot exists.

use crate::lifecycle::lock;
use crate::record::{self, State};
use crate::{plumbing, vmm};
use banger_lib::records::snapshot::{self as rec, SnapshotRecord};
use banger_lib::records::Disks;
use banger_lib::{names, paths, proc, state, Error, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// `vm snapshot NAME --as SNAP`.
pub fn take(name: &str, snap: &str) -> Result<SnapshotRecord> {
    names::validate("VM", name)?;
    names::validate("snapshot", snap)?;
    let _l = lock(name)?;
    let vm = record::reconcile_locked(name)?;
    if vm.state != State::Running {
        return Err(Error::conflict(format!(
            "{name} is {}, not running: a snapshot is taken of a running guest",
            vm.state.word()
        ))
        .with_hint(format!("start it first: banger vm start {name}")));
    }
    let _s = rec::lock(snap)?;
    let dir = rec::dir(snap);
    if rec::path(snap).exists() {
        return Err(
            Error::conflict(format!("a snapshot named {snap} already exists")).with_hint(format!(
                "pick another name, or remove it: banger vm snapshots rm {snap}"
            )),
        );
    }
    // A snapshot cut short (no record) under this name: nobody owns it,
    // we hold its lock.
    paths::refuse_symlink(&dir)?;
    let _ = std::fs::remove_dir_all(&dir);
    paths::ensure_dir(&dir)?;
    let (kernel_size, kernel_mtime) = crate::suspend::kernel_stamp(&vm.kernel)?;
    let name_of = |p: &Path| dir.join(p.file_name().unwrap_or_default());
    let disks = Disks {
        rootfs: name_of(&vm.disks.rootfs),
        work: name_of(&vm.disks.work),
        rootfs_backing: vm.disks.rootfs_backing.clone(),
        work_backing: vm.disks.work_backing.clone(),
    };
    // Killed from here on, the next command on the VM lets its guest run
    // on and removes this dir (pending.rs).
    let mut vm = vm;
    vm.pending = Some(banger_lib::records::Pending::Snapshot {
        snapshot: snap.to_string(),
    });
    record::store(&vm)?;
    let made = (|| -> Result<SnapshotRecord> {
        // What the guest wrote reaches its disks before they are copied.
        if let Some(ep) = &vm.agent {
            let _ =
                banger_lib::agent::request(ep, "POST", "/sync", std::time::Duration::from_secs(10));
        }
        let asks = [
            ("rootfs", disks.rootfs.as_path()),
            ("work", disks.work.as_path()),
        ];
        let line = plumbing::vmm_snapshot(vmm::tool(&vm.vmm), name, &dir, &asks)?;
        let state = match vm.vmm.as_str() {
            "qemu" => dir.join("state"),
            _ => dir.clone(),
        };
        let r = SnapshotRecord {
            schema: state::SCHEMA,
            name: snap.to_string(),
            source: name.to_string(),
            image: vm.image.clone(),
            vmm: vm.vmm.clone(),
            vmm_version: line.vmm_version,
            kernel: vm.kernel.clone(),
            kernel_size,
            kernel_mtime,
            initrd: vm.initrd.clone(),
            vcpus: vm.vcpus,
            memory_mib: vm.memory_mib,
            disk_size: vm.disk_size,
            nat: vm.nat,
            isolated: vm.isolated,
            no_jailer: vm.no_jailer,
            disk_bytes: [&disks.rootfs, &disks.work]
                .iter()
                .map(|p| banger_lib::diskcopy::on_disk(p))
                .sum(),
            disks: disks.clone(),
            state,
            bytes: line.bytes,
            paused_ms: line.paused_ms,
            created_at: proc::now_rfc3339(),
        };
        state::store(&rec::path(snap), &r)?;
        Ok(r)
    })();
    vm.pending = None;
    record::store(&vm)?;
    made.map_err(|e| {
        let _ = std::fs::remove_dir_all(&dir);
        crate::steps::step_error(name, "snapshot", "vmm snapshot", e)
    })
}

/// `vm snapshots`: every snapshot's record.
pub fn list() -> Result<Vec<SnapshotRecord>> {
    let mut out = Vec::new();
    for n in rec::names()? {
        match rec::view(&n) {
            Ok(r) => out.push(r),
            Err(e) if e.kind == banger_lib::Kind::NotFound => {}
            Err(e) => eprintln!("banger-vm: warning: snapshot {n}: {e}"),
        }
    }
    Ok(out)
}

/// What `vm snapshots rm` prints per snapshot.
#[derive(Debug, Serialize)]
pub struct Removed {
    pub removed: PathBuf,
}

/// `vm snapshots rm SNAP`: its dir goes. A clone being made from it holds
/// its lock (shared) from copying its disks until its VMM has loaded its
/// state, and `vm snapshot` while it makes it: rm is refused then (exit 5)
/// rather than pull the files from under them.
pub fn remove(snap: &str) -> Result<Removed> {
    names::validate("snapshot", snap)?;
    let _s = banger_lib::state::Lock::acquire(
        &rec::lock_path(snap),
        std::time::Duration::from_millis(200),
    )
    .map_err(|e| {
        if e.kind != banger_lib::Kind::Conflict {
            return e;
        }
        Error::conflict(format!(
            "snapshot {snap} is in use: a clone is being made from it, or it is being made"
        ))
        .with_hint("try again once that create or snapshot has finished")
    })?;
    let dir = rec::dir(snap);
    paths::refuse_symlink(&dir)?;
    if !dir.exists() {
        return Err(rec::not_found(snap));
    }
    std::fs::remove_dir_all(&dir)
        .map_err(|e| banger_lib::error::io(format!("removing {}", dir.display()), e))?;
    Ok(Removed { removed: dir })
}

/// Snapshot dirs without a record (a `vm snapshot` killed before it
/// finished), unless a command holds their lock.
pub fn unfinished() -> Result<Vec<String>> {
    Ok(rec::entries()?
        .into_iter()
        .filter(|(_, whole)| !whole)
        .map(|(n, _)| n)
        .collect())
}
