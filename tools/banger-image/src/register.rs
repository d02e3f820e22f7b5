//! `register`: record files that live elsewhere as an unmanaged image.

use crate::cli::RegisterArgs;
use crate::record::{self, Image};
use banger_lib::{error::io, Error, Result};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

pub fn register(a: &RegisterArgs) -> Result<Image> {
    banger_lib::names::validate("image", &a.name)?;
    let rootfs = file_arg("--rootfs", &a.rootfs)?;
    check_ext4(&rootfs)?;
    let work_seed = a
        .work_seed
        .as_deref()
        .map(|p| file_arg("--work-seed", p))
        .transpose()?;
    if let Some(w) = &work_seed {
        check_ext4(w)?;
    }
    let kernel = a
        .kernel
        .as_deref()
        .map(|p| file_arg("--kernel", p))
        .transpose()?;
    let initrd = a
        .initrd
        .as_deref()
        .map(|p| file_arg("--initrd", p))
        .transpose()?;

    let _lock = record::lock(&a.name)?;
    if let Some(old) = banger_lib::state::load::<Image>(&record::record_path(&a.name))? {
        if old.managed {
            return Err(Error::conflict(format!(
                "{:?} is a built image; register would orphan its files",
                a.name
            ))
            .with_hint("choose another name, or `banger-image rm` it first"));
        }
    }
    let size = std::fs::metadata(&rootfs)
        .map_err(|e| io(format!("reading {}", rootfs.display()), e))?
        .len();
    let img = Image {
        schema: banger_lib::state::SCHEMA,
        name: a.name.clone(),
        managed: false,
        sha256: crate::checksum::file(&rootfs)?,
        rootfs,
        work_seed,
        kernel,
        initrd,
        size,
        created_at: banger_lib::proc::now_rfc3339(),
        from: None,
        profile: None,
        packages: vec![],
    };
    record::store(&img)?;
    Ok(img)
}

/// An absolute path to an existing regular file.
fn file_arg(flag: &str, p: &Path) -> Result<PathBuf> {
    if !p.is_absolute() {
        return Err(Error::usage(format!("{flag} {} is a relative path", p.display()))
            .with_hint("give an absolute path (e.g. \"$PWD/rootfs.ext4\"): the record must work from any directory"));
    }
    match std::fs::metadata(p) {
        Ok(m) if m.is_file() => Ok(p.to_path_buf()),
        Ok(_) => Err(Error::usage(format!(
            "{flag} {} is not a regular file",
            p.display()
        ))),
        Err(e) => Err(io(format!("{flag} {}", p.display()), e)),
    }
}

/// The ext2/3/4 superblock magic (0xEF53 at byte 1080).
pub fn check_ext4(p: &Path) -> Result<()> {
    let mut f = std::fs::File::open(p).map_err(|e| io(format!("opening {}", p.display()), e))?;
    let mut magic = [0u8; 2];
    let ok = f.seek(SeekFrom::Start(1080)).is_ok() && f.read_exact(&mut magic).is_ok();
    if ok && magic == [0x53, 0xEF] {
        return Ok(());
    }
    Err(
        Error::usage(format!("{} is not an ext4 filesystem", p.display()))
            .with_hint("an image is a raw ext4 file, as `mkfs.ext4 -d DIR FILE SIZE` makes"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ext4_magic() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("x");
        std::fs::write(&p, b"short").unwrap();
        assert_eq!(check_ext4(&p).unwrap_err().exit_code(), 2);
        let mut b = vec![0u8; 2048];
        b[1080] = 0x53;
        b[1081] = 0xEF;
        std::fs::write(&p, &b).unwrap();
        check_ext4(&p).unwrap();
    }

    #[test]
    fn relative_and_missing_paths() {
        assert_eq!(
            file_arg("--rootfs", Path::new("r.ext4"))
                .unwrap_err()
                .exit_code(),
            2
        );
        assert_eq!(
            file_arg("--rootfs", Path::new("/nonexistent/r"))
                .unwrap_err()
                .exit_code(),
            3
        );
        assert_eq!(
            file_arg("--rootfs", Path::new("/"))
                .unwrap_err()
                .exit_code(),
            2
        );
    }
}
