//! Copying a raw disk in time that does not grow with its size where the
//! filesystem allows: a reflink (FICLONE) where it shares blocks, else a
//! sparse copy that reads and writes only the data extents
//! (SEEK_DATA/SEEK_HOLE), with a progress line on a terminal. banger-vm
//! makes Firecracker VMs' disks with it, and the drivers copy a paused
//! VM's disks into a golden snapshot with it.

use crate::{error::io, Result};
use nix::errno::Errno;
use nix::unistd::Whence;
use std::fs::{File, OpenOptions};
use std::io::IsTerminal;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// How a raw disk was made.
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
        if matches!(crate::host::reflink(&from, &to), Ok(true)) {
            return Ok(Method::Reflink);
        }
        let mut bar = Bar::new(dst);
        sparse_copy(&from, &to, &mut |at, len| bar.draw(at, len))?;
        bar.done();
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

/// A copy's progress on stderr, only when it is a terminal and the copy
/// takes long enough to be worth a line.
struct Bar {
    name: String,
    tty: bool,
    started: Instant,
    last: Option<Instant>,
}

impl Bar {
    fn new(dst: &Path) -> Bar {
        Bar {
            name: dst
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            tty: std::io::stderr().is_terminal(),
            started: Instant::now(),
            last: None,
        }
    }

    fn draw(&mut self, at: u64, len: u64) {
        let now = Instant::now();
        let early = now - self.started < Duration::from_millis(300);
        let recent = self
            .last
            .is_some_and(|l| now - l < Duration::from_millis(100));
        if !self.tty || early || recent || len == 0 {
            return;
        }
        self.last = Some(now);
        eprint!(
            "\r\x1b[Kdisks: copying {} {}% of {:.1}G (no reflink here: see banger doctor)",
            self.name,
            at * 100 / len,
            len as f64 / f64::from(1u32 << 30)
        );
    }

    fn done(&self) {
        if self.last.is_some() {
            eprint!("\r\x1b[K");
        }
    }
}

/// Copy the data extents of `from` into `to`, leaving holes as holes;
/// `progress(offset, len)` after each chunk.
fn sparse_copy(from: &File, to: &File, progress: &mut dyn FnMut(u64, u64)) -> std::io::Result<()> {
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
            progress(at, len);
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

/// Bytes a file takes on disk (its allocated blocks: a sparse disk or
/// memory file is far smaller than its length), or a directory's files
/// together; 0 for what cannot be read.
pub fn on_disk(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    match std::fs::read_dir(p) {
        Ok(d) => d
            .flatten()
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.blocks() * 512)
            .sum(),
        Err(_) => std::fs::metadata(p).map_or(0, |m| m.blocks() * 512),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

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
    fn on_disk_counts_blocks_not_length_and_a_dirs_files_together() {
        let t = tempfile::tempdir().unwrap();
        let sparse = t.path().join("sparse");
        let f = File::create(&sparse).unwrap();
        f.set_len(64 << 20).unwrap();
        f.write_all_at(&[1u8; 8192], 0).unwrap();
        f.sync_all().unwrap();
        let one = on_disk(&sparse);
        assert!((8192..1 << 20).contains(&one), "{one}");
        std::fs::write(t.path().join("b"), [2u8; 4096]).unwrap();
        let both = on_disk(t.path());
        assert!(both >= one + 4096, "{both} vs {one}");
        assert_eq!(on_disk(&t.path().join("none")), 0);
    }
}
