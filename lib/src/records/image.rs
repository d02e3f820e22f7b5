//! Images: the record banger-image stores (`images/NAME/image.json`) and
//! the line it prints (`list`, `show`, `default`), which banger-vm reads.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The lock of image NAME (`images/.locks/NAME.lock`): banger-image holds
/// it while it changes or removes the image, banger-vm while it makes a
/// VM's disks from the image's files, so `rm` either sees the VM's record
/// or finishes before the disks are made.
pub fn lock(name: &str) -> crate::Result<crate::state::Lock> {
    let p = crate::paths::images_dir()
        .join(".locks")
        .join(format!("{name}.lock"));
    crate::state::Lock::acquire(&p, crate::state::default_lock_timeout())
}

/// `images/NAME/image.json`, written only by banger-image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageRecord {
    pub schema: u64,
    pub name: String,
    /// Built by banger-image (its files are removed with it), or registered.
    pub managed: bool,
    pub rootfs: PathBuf,
    pub work_seed: Option<PathBuf>,
    /// None: the bundle's kernel at the time of use.
    pub kernel: Option<PathBuf>,
    pub initrd: Option<PathBuf>,
    /// Bytes of the rootfs.
    pub size: u64,
    pub sha256: String,
    pub created_at: String,
    /// What it was built from (`debian:bookworm`); None when registered.
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<String>,
}

/// What `banger-image list/show/default` print: the record with the
/// bundle's kernel and initrd filled in where it has none, and whether it
/// is the default image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageLine {
    pub schema: u64,
    pub name: String,
    pub managed: bool,
    pub rootfs: PathBuf,
    pub work_seed: Option<PathBuf>,
    pub kernel: Option<PathBuf>,
    pub initrd: Option<PathBuf>,
    pub size: u64,
    pub sha256: String,
    pub created_at: String,
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<String>,
    pub default: bool,
}

impl ImageLine {
    /// `rec` as printed; `kernel`/`initrd` are the bundle's, used where the
    /// record has none.
    pub fn new(
        rec: ImageRecord,
        kernel: Option<PathBuf>,
        initrd: Option<PathBuf>,
        default: bool,
    ) -> ImageLine {
        ImageLine {
            schema: rec.schema,
            name: rec.name,
            managed: rec.managed,
            rootfs: rec.rootfs,
            work_seed: rec.work_seed,
            kernel: rec.kernel.or(kernel),
            initrd: rec.initrd.or(initrd),
            size: rec.size,
            sha256: rec.sha256,
            created_at: rec.created_at,
            from: rec.from,
            profile: rec.profile,
            packages: rec.packages,
            default,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_is_the_record_plus_default() {
        let rec = fields::<ImageRecord>();
        let line = fields::<ImageLine>();
        assert_eq!(&line[..line.len() - 1], &rec[..]);
        assert_eq!(line.last(), Some(&"default"));
    }

    use crate::records::fields;
}
