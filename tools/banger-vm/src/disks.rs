//! The VM's own disks, made from the image's, in time that does not grow
//! with the image. QEMU VMs get qcow2 overlays whose backing files are the
//! image's rootfs and work seed (`qcow2.rs`: a few KiB written, whatever
//! the filesystem). Firecracker takes raw files only: a reflink (FICLONE)
//! where the filesystem shares blocks, else a sparse copy that reads and
//! writes only the data extents (SEEK_DATA/SEEK_HOLE), with a progress
//! line on a terminal. The image is never written. The work disk is made
//! as big as `--disk` (the overlay's size, or the raw file extended); the
//! guest grows its filesystem to fill it when it mounts /root.

use crate::qcow2;
use banger_lib::records::{Disks, ImageLine};
use banger_lib::{error::io, hosttools, Error, Result};
use std::fs::OpenOptions;
use std::path::Path;
use std::process::Command;

/// The disks of a VM in `dir` for `image` under `vmm`: overlays on the
/// image's files for QEMU, raw files of its own for Firecracker.
pub fn plan(dir: &Path, image: &ImageLine, vmm: &str) -> Disks {
    if vmm == "firecracker" {
        return Disks {
            rootfs: dir.join("rootfs.ext4"),
            work: dir.join("work.ext4"),
            rootfs_backing: None,
            work_backing: None,
        };
    }
    // An image without a work seed gets an empty work disk of its own.
    let work_backing = image.work_seed.clone();
    Disks {
        rootfs: dir.join("rootfs.qcow2"),
        work: dir.join(if work_backing.is_some() {
            "work.qcow2"
        } else {
            "work.ext4"
        }),
        rootfs_backing: Some(image.rootfs.clone()),
        work_backing,
    }
}

/// Make the disks `plan` laid out: the work disk `size` bytes.
pub fn make(image: &ImageLine, d: &Disks, size: u64) -> Result<()> {
    if let Some(dir) = d.rootfs.parent() {
        banger_lib::paths::ensure_dir(dir)?;
    }
    match &d.rootfs_backing {
        Some(b) => overlay(&d.rootfs, b, file_len(b)?)?,
        None => drop(copy(&image.rootfs, &d.rootfs)?),
    }
    match (&d.work_backing, &image.work_seed) {
        (Some(b), _) => overlay(&d.work, b, size)?,
        (None, Some(seed)) => {
            copy(seed, &d.work)?;
            extend(&d.work, size)?;
        }
        (None, None) => make_empty(&d.work, size)?,
    }
    Ok(())
}

/// The image files a VM's disks read through must be there: a clear error
/// naming the file, rather than QEMU's, when one is gone.
pub fn check_backing(vm: &str, d: &Disks) -> Result<()> {
    for b in d.backing_files() {
        if !b.is_file() {
            return Err(Error::prereq(format!(
                "{} is gone; {vm}'s disks are overlays on it and cannot work without it",
                b.display()
            ))
            .with_hint(format!(
                "put the image's file back, or delete the VM: banger vm delete {vm}"
            )));
        }
    }
    Ok(())
}

fn file_len(p: &Path) -> Result<u64> {
    std::fs::metadata(p)
        .map(|m| m.len())
        .map_err(|e| io(format!("reading {}", p.display()), e))
}

fn overlay(path: &Path, backing: &Path, size: u64) -> Result<()> {
    qcow2::create(path, backing, size).map_err(|e| {
        let err = io(
            format!("making {} over {}", path.display(), backing.display()),
            e,
        );
        if err.io_kind() == Some(std::io::ErrorKind::StorageFull) {
            return err.with_hint("free space in the banger state dir");
        }
        err
    })
}

pub use banger_lib::diskcopy::copy;

/// Extend a raw work disk to `size` bytes (sparse: nothing is written).
/// The guest grows the filesystem into it when it mounts /root. A file
/// already that big is left as it is (disks never shrink).
pub fn extend(path: &Path, size: u64) -> Result<()> {
    if file_len(path)? >= size {
        return Ok(());
    }
    OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.set_len(size))
        .map_err(|e| too_big(path, e))
}

fn run(cmd: &mut Command) -> Result<(bool, String)> {
    let out = cmd
        .output()
        .map_err(|e| Error::failed(format!("running {:?}: {e}", cmd.get_program())))?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into(),
    ))
}

/// Make an empty ext4 work disk of `size` bytes (an image without a work seed).
pub fn make_empty(path: &Path, size: u64) -> Result<()> {
    let mkfs = hosttools::require("mkfs.ext4", "making a VM's work disk", "e2fsprogs")?;
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| io(format!("creating {}", path.display()), e))?
        .set_len(size)
        .map_err(|e| {
            let _ = std::fs::remove_file(path);
            too_big(path, e)
        })?;
    let out = run(Command::new(mkfs)
        .args(["-q", "-F", "-L", "work"])
        .arg(path))?;
    if !out.0 {
        let _ = std::fs::remove_file(path);
        return Err(Error::failed(format!(
            "mkfs.ext4 {}: {}",
            path.display(),
            out.1.trim()
        )));
    }
    Ok(())
}

/// The largest work disk: ext4 on the host stores files up to 16 TiB
/// (4 KiB blocks), and a bigger sparse file fails with EFBIG.
pub const MAX_DISK: u64 = 16 << 40;

/// Parse a size: bytes, or with K, M, G, T (powers of 1024; `iB`/`B` optional).
pub fn parse_size(s: &str) -> Result<u64> {
    let bad = || {
        Error::usage(format!("bad size {s:?}"))
            .with_hint("give --disk a size like 8G, 512M or 20GiB (at least 1M, less than 16T)")
    };
    let t = s.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (num, mult) = match t.chars().last() {
        Some(c) if c.is_ascii_alphabetic() => {
            let m: u64 = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => return Err(bad()),
            };
            (&t[..t.len() - 1], m)
        }
        _ => (t, 1),
    };
    let n: u64 = num.trim().parse().map_err(|_| bad())?;
    let size = n.checked_mul(mult).ok_or_else(bad)?;
    if !(1 << 20..MAX_DISK).contains(&size) {
        return Err(bad());
    }
    Ok(size)
}

/// A work disk is made from the image's work seed and never shrinks: a
/// `--disk` smaller than the seed is refused, naming the minimum.
pub fn check_room(seed: &Path, size: u64) -> Result<()> {
    let len = std::fs::metadata(seed)
        .map_err(|e| io(format!("reading {}", seed.display()), e))?
        .len();
    if size < len {
        let min = len.div_ceil(1 << 20);
        return Err(Error::usage(format!(
            "--disk {} is smaller than the image's work disk ({min}M)",
            human(size)
        ))
        .with_hint(format!("give --disk at least {min}M")));
    }
    Ok(())
}

/// A size as the user would write it (the largest exact unit).
fn human(n: u64) -> String {
    for (unit, shift) in [("T", 40), ("G", 30), ("M", 20), ("K", 10)] {
        if n >= 1 << shift && n.is_multiple_of(1 << shift) {
            return format!("{}{unit}", n >> shift);
        }
    }
    n.to_string()
}

/// EFBIG from the host filesystem is the size's fault: exit 2, not 1.
fn too_big(path: &Path, e: std::io::Error) -> Error {
    if e.raw_os_error() == Some(nix::errno::Errno::EFBIG as i32) {
        return Error::usage(format!(
            "bad size: {} cannot hold a file that big",
            path.parent().unwrap_or(path).display()
        ))
        .with_hint("give --disk a smaller size");
    }
    io(format!("growing {}", path.display()), e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("8G").unwrap(), 8 << 30);
        assert_eq!(parse_size("512M").unwrap(), 512 << 20);
        assert_eq!(parse_size("20GiB").unwrap(), 20 << 30);
        assert_eq!(parse_size("1048576").unwrap(), 1 << 20);
        assert_eq!(parse_size("2g").unwrap(), 2 << 30);
        assert_eq!(parse_size("15T").unwrap(), 15 << 40);
        for bad in [
            "",
            "G",
            "8X",
            "-1G",
            "1K",
            "10",
            "99999999999T",
            "1.5G",
            "18446744073709551615",
            "9223372036854775807",
            "4096T",
            "16T",
        ] {
            assert_eq!(parse_size(bad).unwrap_err().exit_code(), 2, "{bad}");
        }
    }

    #[test]
    fn extend_makes_a_sparse_file_bigger_and_never_smaller() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("work.ext4");
        std::fs::write(&p, b"seed").unwrap();
        extend(&p, 16 << 30).unwrap();
        let m = std::fs::metadata(&p).unwrap();
        assert_eq!(m.len(), 16 << 30);
        assert!(m.blocks() * 512 < 1 << 20, "extending wrote data");
        extend(&p, 1 << 20).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 16 << 30);
        assert_eq!(&std::fs::read(&p).unwrap()[..4], b"seed");
    }

    fn image(dir: &Path, seed: bool) -> ImageLine {
        let rootfs = dir.join("rootfs.ext4");
        std::fs::write(&rootfs, vec![1u8; 8192]).unwrap();
        let work_seed = seed.then(|| {
            let w = dir.join("work-seed.ext4");
            std::fs::write(&w, vec![2u8; 4096]).unwrap();
            w
        });
        ImageLine {
            schema: 1,
            name: "img".into(),
            managed: true,
            rootfs,
            work_seed,
            kernel: None,
            initrd: None,
            size: 8192,
            sha256: String::new(),
            created_at: String::new(),
            from: None,
            profile: None,
            packages: vec![],
            default: false,
        }
    }

    #[test]
    fn qemu_vms_get_overlays_and_firecracker_vms_raw_copies() {
        let t = tempfile::tempdir().unwrap();
        let img = image(t.path(), true);

        let d = plan(&t.path().join("vm"), &img, "qemu");
        assert_eq!(d.rootfs_backing.as_deref(), Some(img.rootfs.as_path()));
        assert_eq!(d.work_backing, img.work_seed);
        make(&img, &d, 8 << 30).unwrap();
        for (disk, want) in [(&d.rootfs, 8192u64), (&d.work, 8 << 30)] {
            let h = std::fs::read(disk).unwrap();
            assert_eq!(&h[..4], b"QFI\xfb", "{}", disk.display());
            assert_eq!(u64::from_be_bytes(h[24..32].try_into().unwrap()), want);
            // The same few KiB whatever the disk's size.
            assert!(h.len() < 1 << 20);
        }
        check_backing("vm", &d).unwrap();

        let d = plan(&t.path().join("vm2"), &img, "firecracker");
        assert!(d.backing_files().is_empty());
        make(&img, &d, 1 << 30).unwrap();
        assert_eq!(std::fs::read(&d.rootfs).unwrap(), vec![1u8; 8192]);
        assert_eq!(std::fs::metadata(&d.work).unwrap().len(), 1 << 30);
        assert_eq!(&std::fs::read(&d.work).unwrap()[..4096], &[2u8; 4096][..]);
    }

    #[test]
    fn a_missing_backing_file_is_a_clear_error() {
        let t = tempfile::tempdir().unwrap();
        let img = image(t.path(), true);
        let d = plan(&t.path().join("vm"), &img, "qemu");
        make(&img, &d, 1 << 30).unwrap();
        std::fs::remove_file(img.work_seed.as_ref().unwrap()).unwrap();
        let e = check_backing("box", &d).unwrap_err();
        assert_eq!(e.exit_code(), 4);
        assert!(
            e.message.contains("work-seed.ext4 is gone"),
            "{}",
            e.message
        );
        assert!(e.hint.unwrap().contains("banger vm delete box"));
    }

    #[test]
    fn an_image_without_a_work_seed_gets_an_empty_raw_work_disk() {
        let t = "an_image_without_a_work_seed_gets_an_empty_raw_work_disk";
        if !banger_testkit::require_tool(t, "mkfs.ext4") {
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let img = image(t.path(), false);
        let d = plan(&t.path().join("vm"), &img, "qemu");
        assert_eq!(d.work_backing, None);
        assert!(d.work.ends_with("work.ext4"));
        make(&img, &d, 64 << 20).unwrap();
        assert_eq!(std::fs::metadata(&d.work).unwrap().len(), 64 << 20);
    }
}
