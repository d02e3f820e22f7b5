//! `rm`: refuse while a VM uses the image; delete only files banger made.

use crate::record::{self, Image};
use banger_lib::records::vm;
use banger_lib::{error::io, Error, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// What `rm` adds to its fan-out line: the files it deleted.
#[derive(Debug, Serialize)]
pub struct Removed {
    pub removed: Vec<PathBuf>,
}

/// A VM that uses an image: its record names it, or its disks are qcow2
/// overlays reading the image's files (QEMU VMs); or a golden snapshot
/// whose disks are.
pub struct User {
    pub label: String,
    /// Its disks read the image's files: deleting them breaks the VM.
    pub reads_files: bool,
}

/// The VMs that use `img`, read through banger_lib's view of banger-vm's
/// records. A record that cannot be read might: it counts, and as one
/// reading the files, so an image is never removed from under a VM by
/// accident.
pub fn users(img: &Image) -> Result<Vec<User>> {
    let files: Vec<&Path> = std::iter::once(img.rootfs.as_path())
        .chain(img.work_seed.as_deref())
        .collect();
    let mut vms = Vec::new();
    for name in vm::names()? {
        match vm::view(&name) {
            Ok(rec) => {
                let reads_files = rec.disks.backing_files().iter().any(|b| files.contains(b));
                if rec.image == img.name || reads_files {
                    vms.push(User {
                        label: name,
                        reads_files,
                    });
                }
            }
            Err(e) if e.kind == banger_lib::Kind::NotFound => {}
            Err(_) => vms.push(User {
                label: format!("{name} (its record is unreadable)"),
                reads_files: true,
            }),
        }
    }
    // A golden snapshot's disks are overlays on the image too, and its
    // clones get copies of them.
    let mut seen = Vec::new();
    for f in &files {
        for snap in banger_lib::records::snapshot::reading(f)? {
            if !seen.contains(&snap) {
                seen.push(snap.clone());
                vms.push(User {
                    label: format!("snapshot {snap}"),
                    reads_files: true,
                });
            }
        }
    }
    Ok(vms)
}

pub fn remove(name: &str, force: bool) -> Result<Vec<PathBuf>> {
    let img = record::load(name)?;
    let _lock = record::lock(name)?;
    let vms = users(&img)?;
    let labels = |only_readers: bool| {
        vms.iter()
            .filter(|u| u.reads_files || !only_readers)
            .map(|u| u.label.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !vms.is_empty() && !force {
        let hint = if !img.managed {
            "delete those VMs first, or pass --force (a registered image's files stay, so \
             their disks keep working)"
        } else if vms.iter().any(|u| u.reads_files) {
            "delete those VMs (banger vm delete NAME) and snapshots (banger vm snapshots rm \
             NAME) first: their disks are overlays on the image's files"
        } else {
            "delete those VMs first, or pass --force (their disks are copies and keep working)"
        };
        return Err(
            Error::conflict(format!("image {name:?} is used by VM {}", labels(false)))
                .with_hint(hint),
        );
    }
    // --force still never deletes files a VM's disks read through.
    if img.managed && vms.iter().any(|u| u.reads_files) {
        return Err(Error::conflict(format!(
            "image {name:?} backs the disks of VM {}: they are qcow2 overlays on its files",
            labels(true)
        ))
        .with_hint(
            "delete those VMs (banger vm delete NAME) and snapshots (banger vm snapshots rm \
             NAME) first; --force cannot help here",
        ));
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
