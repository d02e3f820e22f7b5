//! The VM's own disks, made from the image's: a reflink (FICLONE) where the
//! filesystem shares blocks, else a sparse copy that only reads and writes
//! the data extents (SEEK_DATA/SEEK_HOLE). The image is never written.

use banger_lib::records::{Disks, ImageLine};
use banger_lib::{error::io, hosttools, Error, Result};
use nix::errno::Errno;
use nix::unistd::Whence;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;

/// The VM's disks from the image: the rootfs copied, the work disk made
/// from the work seed (grown to `size`) or empty.
pub fn make(image: &ImageLine, d: &Disks, size: u64) -> Result<()> {
    if let Some(dir) = d.rootfs.parent() {
        banger_lib::paths::ensure_dir(dir)?;
    }
    copy(&image.rootfs, &d.rootfs)?;
    match &image.work_seed {
        Some(seed) => {
            copy(seed, &d.work)?;
            grow(&d.work, size)?;
        }
        None => make_empty(&d.work, size)?,
    }
    Ok(())
}

/// How a disk was made, for progress and timings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Reflink,
    Sparse,
}

/// Copy `src` to a new file `dst` (which must not exist).
pub fn copy(src: &Path, dst: &Path) -> Result<Method> {
    let from = File::open(src).map_err(|e| io(format!("opening {}", src.display()), e))?;
    let to = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dst)
        .map_err(|e| io(format!("creating {}", dst.display()), e))?;
    let result = (|| {
        // Any failure to clone falls back to the copy, which reports a
        // real problem (space, I/O) with the copy's own error.
        if matches!(banger_lib::host::reflink(&from, &to), Ok(true)) {
            return Ok(Method::Reflink);
        }
        sparse_copy(&from, &to)?;
        to.sync_all()?;
        Ok(Method::Sparse)
    })();
    result.map_err(|e: std::io::Error| {
        let _ = std::fs::remove_file(dst);
        let err = io(format!("copying {} to {}", src.display(), dst.display()), e);
        if err.io_kind() == Some(std::io::ErrorKind::StorageFull) {
            return err.with_hint("free space in the banger state dir, or use a smaller --disk");
        }
        err
    })
}

fn sparse_copy(from: &File, to: &File) -> std::io::Result<()> {
    let len = from.metadata()?.len();
    to.set_len(len)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut pos: u64 = 0;
    while pos < len {
        let data = match seek(from, pos, Whence::SeekData) {
            Ok(d) => d,
            // ENXIO: no data after pos, the rest is a hole.
            Err(Errno::ENXIO) => break,
            // A filesystem without SEEK_DATA: copy everything from here.
            Err(Errno::EINVAL) => pos,
            Err(e) => return Err(e.into()),
        };
        let hole = seek(from, data, Whence::SeekHole).unwrap_or(len).min(len);
        let mut at = data;
        while at < hole {
            let n = usize::try_from(hole - at).map_or(buf.len(), |left| left.min(buf.len()));
            let chunk = &mut buf[..n];
            from.read_exact_at(chunk, at)?;
            // Zero blocks inside a data extent stay holes in the copy.
            if chunk.iter().any(|b| *b != 0) {
                to.write_all_at(chunk, at)?;
            }
            at += n as u64;
        }
        pos = hole;
    }
    Ok(())
}

/// lseek(2) with SEEK_DATA or SEEK_HOLE, which std's Seek cannot ask for.
fn seek(f: &File, offset: u64, whence: Whence) -> nix::Result<u64> {
    let offset = i64::try_from(offset).map_err(|_| Errno::EOVERFLOW)?;
    let at = nix::unistd::lseek(f, offset, whence)?;
    u64::try_from(at).map_err(|_| Errno::EOVERFLOW)
}

/// Grow an ext4 image file to `size` bytes and its filesystem with it.
/// A file already that big is left as it is (disks never shrink).
pub fn grow(path: &Path, size: u64) -> Result<bool> {
    let len = std::fs::metadata(path)
        .map_err(|e| io(format!("reading {}", path.display()), e))?
        .len();
    if len >= size {
        return Ok(false);
    }
    let resize2fs = hosttools::require("resize2fs", "growing a VM's work disk", "e2fsprogs")?;
    OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.set_len(size))
        .map_err(|e| too_big(path, e))?;
    let out = run(Command::new(&resize2fs).arg(path))?;
    if !out.0 {
        // resize2fs asks for a forced check of a filesystem that was
        // mounted since its last one; do it and try once more.
        if out.1.contains("e2fsck") {
            let e2fsck = hosttools::require("e2fsck", "growing a VM's work disk", "e2fsprogs")?;
            run(Command::new(e2fsck).arg("-fy").arg(path))?;
            let again = run(Command::new(&resize2fs).arg(path))?;
            if again.0 {
                return Ok(true);
            }
            return Err(resize_failed(path, &again.1));
        }
        return Err(resize_failed(path, &out.1));
    }
    Ok(true)
}

fn resize_failed(path: &Path, stderr: &str) -> Error {
    Error::failed(format!(
        "resize2fs {} failed: {}",
        path.display(),
        stderr.trim()
    ))
    .with_hint(
        "is the image's work seed an ext4 filesystem? check it with: banger-image verify IMAGE",
    )
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
    if e.raw_os_error() == Some(Errno::EFBIG as i32) {
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
    fn sparse_copy_keeps_data_and_holes() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        {
            let f = File::create(&src).unwrap();
            f.set_len(64 << 20).unwrap();
            f.write_all_at(b"hello", 4096).unwrap();
            // Written zeros are a data extent, but need no blocks in a copy.
            f.write_all_at(&[0u8; 1 << 20], 20 << 20).unwrap();
            f.write_all_at(&[7u8; 10000], 40 << 20).unwrap();
            // Data up to the end: no hole after the last extent.
            f.write_all_at(b"end", (64 << 20) - 3).unwrap();
        }
        let dst = t.path().join("dst");
        copy(&src, &dst).unwrap();
        assert_eq!(std::fs::read(&src).unwrap(), std::fs::read(&dst).unwrap());
        // Not 64 MiB of blocks: the holes stayed holes.
        let blocks = std::fs::metadata(&dst).unwrap().blocks() * 512;
        assert!(blocks < 4 << 20, "copy allocated {blocks} bytes");
    }

    #[test]
    fn copy_refuses_an_existing_destination_and_a_missing_source() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        std::fs::write(&src, b"x").unwrap();
        let dst = t.path().join("dst");
        std::fs::write(&dst, b"keep").unwrap();
        assert_eq!(copy(&src, &dst).unwrap_err().exit_code(), 5);
        assert_eq!(std::fs::read(&dst).unwrap(), b"keep");
        let e = copy(&t.path().join("nope"), &t.path().join("d2")).unwrap_err();
        assert_eq!(e.exit_code(), 3);
        assert!(!t.path().join("d2").exists());
    }

    #[test]
    fn grow_resizes_an_ext4_image() {
        if !banger_testkit::require_tool("grow_resizes_an_ext4_image", "mkfs.ext4") {
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("work.ext4");
        make_empty(&p, 8 << 20).unwrap();
        assert!(grow(&p, 16 << 20).unwrap());
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 16 << 20);
        let out = Command::new(hosttools::which("dumpe2fs").unwrap())
            .arg("-h")
            .arg(&p)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let blocks: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("Block count:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let bsize: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("Block size:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(blocks * bsize, 16 << 20);
        // Never shrinks.
        assert!(!grow(&p, 8 << 20).unwrap());
    }
}
