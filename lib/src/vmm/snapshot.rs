//! What both drivers' `snapshot create` share: the `--disk ID=DEST` asks,
//! and copying those drives while the VM is paused (a reflink where the
//! filesystem has it, else a sparse copy). A failed copy removes the
//! copies already made, so a failed snapshot leaves none.

use crate::diskcopy::{self, Method};
use crate::records::vmm::SnapshotDisk;
use crate::vmspec::Drive;
use crate::{Error, Result};
use std::path::{Path, PathBuf};

/// One `--disk ID=DEST`: the drive `id` of the VM's spec, copied to `dest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskAsk {
    pub id: String,
    pub dest: PathBuf,
}

impl std::str::FromStr for DiskAsk {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<DiskAsk, String> {
        let (id, dest) = s
            .split_once('=')
            .ok_or_else(|| format!("{s:?} is not ID=DEST (a drive id and where its copy goes)"))?;
        if id.is_empty() || dest.is_empty() {
            return Err(format!("{s:?}: both the drive id and DEST are needed"));
        }
        if !Path::new(dest).is_absolute() {
            return Err(format!("{dest:?} is not an absolute path"));
        }
        Ok(DiskAsk {
            id: id.into(),
            dest: dest.into(),
        })
    }
}

/// Check every ask names a drive of `drives` and a DEST that does not
/// exist yet, before anything is paused.
pub fn check(drives: &[Drive], asks: &[DiskAsk]) -> Result<()> {
    for a in asks {
        if !drives.iter().any(|d| d.id == a.id) {
            let ids: Vec<&str> = drives.iter().map(|d| d.id.as_str()).collect();
            return Err(Error::usage(format!(
                "the VM has no drive {:?} (its drives: {})",
                a.id,
                ids.join(", ")
            )));
        }
        if std::fs::symlink_metadata(&a.dest).is_ok() {
            return Err(
                Error::conflict(format!("{} already exists", a.dest.display()))
                    .with_hint("remove it or copy the disk elsewhere"),
            );
        }
    }
    Ok(())
}

/// Copy each asked drive's file (the guest paused, its writes flushed).
/// All or nothing: on failure the copies made so far are removed.
pub fn copy(drives: &[Drive], asks: &[DiskAsk]) -> Result<Vec<SnapshotDisk>> {
    let mut done: Vec<SnapshotDisk> = Vec::new();
    for a in asks {
        let Some(d) = drives.iter().find(|d| d.id == a.id) else {
            remove(&done);
            return Err(Error::usage(format!("the VM has no drive {:?}", a.id)));
        };
        match diskcopy::copy(&d.path, &a.dest) {
            Ok(m) => done.push(SnapshotDisk {
                id: a.id.clone(),
                path: a.dest.clone(),
                method: match m {
                    Method::Reflink => "reflink",
                    Method::Sparse => "sparse",
                }
                .into(),
            }),
            Err(e) => {
                remove(&done);
                return Err(e);
            }
        }
    }
    Ok(done)
}

/// Remove the copies `copy` made (a snapshot that failed later).
pub fn remove(disks: &[SnapshotDisk]) {
    for d in disks {
        let _ = std::fs::remove_file(&d.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_asks_parse_and_refuse_nonsense() {
        let a: DiskAsk = "rootfs=/s/rootfs.qcow2".parse().unwrap();
        assert_eq!(a.id, "rootfs");
        assert_eq!(a.dest, PathBuf::from("/s/rootfs.qcow2"));
        for bad in ["rootfs", "=/x", "rootfs=", "rootfs=rel/x"] {
            assert!(bad.parse::<DiskAsk>().is_err(), "{bad}");
        }
    }

    #[test]
    fn copies_are_all_or_nothing() {
        let t = tempfile::tempdir().unwrap();
        let a = t.path().join("a");
        std::fs::write(&a, b"disk a").unwrap();
        let drive = |id: &str, path: &Path| -> Drive {
            serde_json::from_value(serde_json::json!({"id": id, "path": path})).unwrap()
        };
        let drives = vec![drive("a", &a), drive("b", &t.path().join("gone"))];
        let asks: Vec<DiskAsk> = [("a", "ca"), ("b", "cb")]
            .iter()
            .map(|(id, d)| DiskAsk {
                id: (*id).into(),
                dest: t.path().join(d),
            })
            .collect();
        check(&drives, &asks).unwrap();
        assert!(copy(&drives, &asks).is_err());
        assert!(!t.path().join("ca").exists(), "the first copy stays behind");
        let one = copy(&drives, &asks[..1]).unwrap();
        assert_eq!(std::fs::read(&one[0].path).unwrap(), b"disk a");
        assert_eq!(check(&drives, &asks[..1]).unwrap_err().exit_code(), 5);
        let bad = [DiskAsk {
            id: "nope".into(),
            dest: t.path().join("x"),
        }];
        assert_eq!(check(&drives, &bad).unwrap_err().exit_code(), 2);
    }
}
