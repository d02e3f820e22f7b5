//! `rm`: refuse while a VM uses the image; delete only files banger made.

use crate::record::{self, Image};
use banger_lib::records::vm;
use banger_lib::{error::io, Error, Result};
use serde::Serialize;
use std::path::PathBuf;

/// What `rm` adds to its fan-out line: the files it deleted.
#[derive(Debug, Serialize)]
pub struct Removed {
    pub removed: Vec<PathBuf>,
}

/// The VMs whose record names this image, read through banger_lib's view
/// of banger-vm's records. A record that cannot be read might name it:
/// it counts, so an image is never removed from under a VM by accident.
pub fn users(image: &str) -> Result<Vec<String>> {
    let mut vms = Vec::new();
    for name in vm::names()? {
        match vm::view(&name) {
            Ok(rec) if rec.image != image => {}
            Ok(_) => vms.push(name),
            Err(e) if e.kind == banger_lib::Kind::NotFound => {}
            Err(_) => vms.push(format!("{name} (its record is unreadable)")),
        }
    }
    Ok(vms)
}

pub fn remove(name: &str, force: bool) -> Result<Vec<PathBuf>> {
    let img = record::load(name)?;
    let _lock = record::lock(name)?;
    let vms = users(name)?;
    if !vms.is_empty() && !force {
        return Err(
            Error::conflict(format!("image {name:?} is used by VM {}", vms.join(", "))).with_hint(
                "delete those VMs first, or pass --force (their disks are copies and keep working)",
            ),
        );
    }
    delete_files(&img)
}

/// A managed image's own files (only those inside its folder), then the
/// record, then the folder if nothing else is in it.
fn delete_files(img: &Image) -> Result<Vec<PathBuf>> {
    let dir = record::dir(&img.name);
    let mut files: Vec<PathBuf> = Vec::new();
    if img.managed {
        files.push(img.rootfs.clone());
        files.extend(img.work_seed.clone());
        files.push(dir.join("build.log"));
        files.retain(|f| record::inside(f, &dir));
    }
    files.push(record::record_path(&img.name));
    let mut removed = Vec::new();
    for f in files {
        match std::fs::remove_file(&f) {
            Ok(()) => removed.push(f),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(format!("removing {}", f.display()), e)),
        }
    }
    if std::fs::remove_dir(&dir).is_err() && dir.exists() {
        eprintln!(
            "banger-image: kept {}: it holds files banger did not make",
            dir.display()
        );
    }
    Ok(removed)
}
