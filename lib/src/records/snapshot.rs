//! Golden snapshot records (`snapshots/NAME/snapshot.json`): written only
//! by banger-vm (`vm snapshot`), read by the others through [`view`].
//! A snapshot dir without its record is one whose making was cut short:
//! `banger-vm gc` removes it.

use super::vm::Disks;
use crate::{paths, state, Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotRecord {
    pub schema: u64,
    pub name: String,
    /// The VM it was taken of (which may be gone since).
    pub source: String,
    /// The image the source was made from; the snapshot's QEMU disks are
    /// overlays on its files, so `banger-image rm` refuses while it exists.
    pub image: String,
    pub vmm: String,
    /// The VMM's `--version` line it was saved with: a clone needs the same.
    pub vmm_version: String,
    pub kernel: PathBuf,
    /// The kernel file's size and modification time (seconds) when saved.
    pub kernel_size: u64,
    pub kernel_mtime: i64,
    pub initrd: Option<PathBuf>,
    pub vcpus: u32,
    pub memory_mib: u32,
    /// The work disk's size: a clone's is the same (its filesystem is the
    /// one in the saved memory).
    pub disk_size: u64,
    /// The source's NAT and isolation when saved (a clone's defaults).
    pub nat: bool,
    pub isolated: bool,
    /// The source ran Firecracker without its jailer: its state names host
    /// paths, so clones run without it too. Left out when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_jailer: bool,
    /// The disks copied while the source was paused: a clone gets its own
    /// copies of these.
    pub disks: Disks,
    /// The saved memory and device state: QEMU's file, Firecracker's dir.
    pub state: PathBuf,
    /// The saved state's size on disk, and the disk copies'.
    pub bytes: u64,
    pub disk_bytes: u64,
    /// How long the source was paused.
    pub paused_ms: u64,
    pub created_at: String,
}

pub fn dir(name: &str) -> PathBuf {
    paths::snapshots_dir().join(name)
}

pub fn path(name: &str) -> PathBuf {
    dir(name).join("snapshot.json")
}

/// The lock of snapshot `name`: held by `vm snapshot` while it makes it,
/// by `vm create --from` while it copies its disks, and by `rm`.
pub fn lock(name: &str) -> Result<state::Lock> {
    crate::names::validate("snapshot", name)?;
    state::Lock::acquire(&lock_path(name), state::default_lock_timeout())
}

/// Where snapshot `name`'s lock file is (outside its dir, which rm removes).
pub fn lock_path(name: &str) -> PathBuf {
    paths::snapshots_dir()
        .join(".locks")
        .join(format!("{name}.lock"))
}

pub fn not_found(name: &str) -> Error {
    Error::not_found(format!("no snapshot named {name}"))
        .with_hint("list the snapshots with: banger vm snapshots")
}

/// A snapshot's record; exit 3 when there is none.
pub fn view(name: &str) -> Result<SnapshotRecord> {
    crate::names::validate("snapshot", name)?;
    paths::refuse_symlink(&dir(name))?;
    state::load(&path(name))?.ok_or_else(|| not_found(name))
}

/// Every snapshot name with a record, sorted.
pub fn names() -> Result<Vec<String>> {
    Ok(entries()?
        .into_iter()
        .filter(|(_, whole)| *whole)
        .map(|(n, _)| n)
        .collect())
}

/// Every snapshot dir, and whether it has its record.
pub fn entries() -> Result<Vec<(String, bool)>> {
    let dir = paths::snapshots_dir();
    let list = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(crate::error::io(format!("reading {}", dir.display()), e)),
    };
    let mut out: Vec<(String, bool)> = list
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !n.starts_with('.'))
        .map(|n| {
            let whole = path(&n).is_file();
            (n, whole)
        })
        .collect();
    out.sort();
    Ok(out)
}

/// The snapshots whose disks read `file` (an image's rootfs or work seed).
pub fn reading(file: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for n in names()? {
        match view(&n) {
            Ok(s) if s.disks.backing_files().contains(&file) => out.push(n),
            Ok(_) => {}
            Err(e) if e.kind == crate::Kind::NotFound => {}
            // Unreadable: it might; an image is never removed by accident.
            Err(_) => out.push(format!("{n} (its record is unreadable)")),
        }
    }
    Ok(out)
}
