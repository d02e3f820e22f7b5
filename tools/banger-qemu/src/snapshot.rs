//! `snapshot create ID --dir DIR [--disk DRIVE=DEST]..`: a golden snapshot
//! of a running VM that runs on. The guest is paused (QMP stop), its
//! memory and device state migrated into DIR/state through a descriptor
//! (as suspend does), the asked drives copied while it is still paused,
//! then it continues (cont). A completed migration has flushed and let go
//! of the drives, so the copies hold exactly what the saved memory
//! believes is on disk; cont takes them back.
//!
//! DIR/spec.json is the spec the VM runs with, for whoever restores a
//! clone from DIR/state (its own spec must have the same shape).

use crate::qmp::Qmp;
use crate::record;
use crate::suspend::{create_exclusive, part_path, wait_saved, FD_NAME};
use banger_lib::error::io;
use banger_lib::records::SnapshotLine;
use banger_lib::vmm::snapshot::{self as disks, DiskAsk};
use banger_lib::vmspec::VmSpec;
use banger_lib::{paths, Error, Result};
use serde_json::json;
use std::os::fd::AsFd;
use std::path::Path;
use std::time::{Duration, Instant};

pub fn create(id: &str, dir: &Path, asks: &[DiskAsk], timeout: Duration) -> Result<SnapshotLine> {
    let started = Instant::now();
    let (_lock, rec, sock) = crate::suspend::lock_saveable(id)?;
    let spec_file = record::spec_path(id);
    let spec_text = std::fs::read_to_string(&spec_file).map_err(|e| {
        io(format!("reading {}", spec_file.display()), e).with_hint(format!(
            "VM {id} was started by an older banger-qemu: restart it to snapshot it"
        ))
    })?;
    let spec = VmSpec::parse(&spec_text)?;
    disks::check(&spec.drives, asks)?;
    let state = dir.join("state");
    let spec_copy = dir.join("spec.json");
    for f in [&state, &spec_copy] {
        if std::fs::symlink_metadata(f).is_ok() {
            return Err(Error::conflict(format!("{} already exists", f.display()))
                .with_hint("remove it or choose another --dir"));
        }
    }
    let made_dir = !dir.exists();
    paths::ensure_dir(dir)?;
    let part = part_path(&state);
    let _ = std::fs::remove_file(&part);
    let file = create_exclusive(&part)?;
    let mut q = Qmp::connect(&sock, Duration::from_secs(5))?;
    let was = q.run_state()?;
    let mut paused_at = None;
    let mut copied = Vec::new();
    let saved = (|| -> Result<()> {
        if was == "running" {
            q.execute("stop", None)?;
            paused_at = Some(Instant::now());
        }
        q.execute_with_fd("getfd", Some(json!({"fdname": FD_NAME})), file.as_fd())?;
        q.execute("migrate", Some(json!({"uri": format!("fd:{FD_NAME}")})))?;
        wait_saved(&mut q, Instant::now() + timeout)?;
        file.sync_all()
            .map_err(|e| io(format!("syncing {}", part.display()), e))?;
        copied = disks::copy(&spec.drives, asks)?;
        std::fs::write(&spec_copy, &spec_text)
            .map_err(|e| io(format!("writing {}", spec_copy.display()), e))?;
        std::fs::rename(&part, &state).map_err(|e| {
            io(
                format!("renaming {} to {}", part.display(), state.display()),
                e,
            )
        })
    })();
    if saved.is_err() {
        let _ = q.execute("migrate_cancel", None);
        let _ = q.execute("closefd", Some(json!({"fdname": FD_NAME})));
    }
    // Back to how it was, whatever happened: after a completed migration
    // cont also takes the drives back.
    let resumed = if was == "running" {
        q.execute("cont", None).map(drop)
    } else {
        Ok(())
    };
    let paused_ms = paused_at.map_or(0, |t| t.elapsed().as_millis() as u64);
    if let Err(e) = saved.and(resumed.clone()) {
        disks::remove(&copied);
        for f in [&part, &state, &spec_copy] {
            record::VMM.remove_file(f);
        }
        if made_dir {
            let _ = std::fs::remove_dir(dir);
        }
        if let Err(r) = resumed {
            eprintln!("banger-qemu: warning: VM {id} stays paused: {}", r.message);
        }
        return Err(Error {
            message: format!("snapshotting VM {id}: {}", e.message),
            ..e
        });
    }
    drop(file);
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    let bytes = std::fs::metadata(&state).map(|m| m.len()).unwrap_or(0);
    Ok(SnapshotLine {
        id: id.to_string(),
        state: if was == "running" {
            "running"
        } else {
            "paused"
        }
        .into(),
        dir: dir.to_path_buf(),
        bytes,
        disks: copied,
        paused_ms,
        ms: started.elapsed().as_millis() as u64,
        vmm_version: rec.vmm_version.clone(),
    })
}
