//! State files: JSON records written atomically (temp file, fsync, rename,
//! fsync dir) under an exclusive `flock`.
//!
//! A lock lives in a sidecar file (`NAME.lock`) so that the rename of the
//! record never swaps the inode a waiter has locked. The kernel drops a
//! `flock` when its holder dies, so a killed command never leaves a stale
//! lock; waiters still give up after a deadline in case the holder hangs.

use crate::error::{io, Error, Result};
use crate::wait::Backoff;
use serde::{de::DeserializeOwned, Serialize};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The state format this build reads and writes.
pub const SCHEMA: u64 = 1;

/// How long a command waits for another one holding the same lock.
pub fn default_lock_timeout() -> Duration {
    std::env::var("BANGER_LOCK_TIMEOUT")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .map(Duration::from_secs_f64)
        .unwrap_or(Duration::from_secs(300))
}

/// An exclusive lock held until dropped.
#[derive(Debug)]
pub struct Lock {
    _file: File,
    path: PathBuf,
}

impl Lock {
    /// Take the lock at `path` (created if needed), waiting up to `timeout`.
    pub fn acquire(path: &Path, timeout: Duration) -> Result<Lock> {
        if let Some(dir) = path.parent() {
            crate::paths::ensure_dir(dir)?;
        }
        // Never through a symlink: one planted here would aim the pid we
        // write (and the create) at any file.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(|e| not_a_symlink(io(format!("opening lock {}", path.display()), e), path))?;
        // A hand-over between commands should cost next to nothing: a
        // waiter polls every few ms at most (a try_lock is one syscall),
        // or ten concurrent creates queue on banger-net's lock for far
        // longer than its holders hold it.
        let backoff = Backoff::new(Duration::from_millis(1), Duration::from_millis(10));
        let got = backoff.poll(timeout, || match file.try_lock() {
            Ok(()) => Some(Ok(())),
            Err(TryLockError::WouldBlock) => None,
            Err(TryLockError::Error(e)) => Some(Err(e)),
        });
        match got {
            Some(Ok(())) => {}
            Some(Err(e)) => return Err(io(format!("locking {}", path.display()), e)),
            None => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(Error::conflict(format!(
                    "{} is locked by another banger command{}",
                    path.display(),
                    if holder.is_empty() {
                        String::new()
                    } else {
                        format!(" (pid {holder})")
                    }
                ))
                .with_hint("wait for it to finish, or set BANGER_LOCK_TIMEOUT"));
            }
        }
        // Who holds it, for the message a waiter prints on timeout.
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = write!(file, "{}", std::process::id());
        Ok(Lock {
            _file: file,
            path: path.to_path_buf(),
        })
    }

    /// A shared lock on an existing lock file, for readers: None when the
    /// file is missing or a writer holds it past `timeout`.
    pub fn try_shared(path: &Path, timeout: Duration) -> Option<Lock> {
        let file = open_nofollow(path).ok()?;
        let got = crate::wait::poll(timeout, || match file.try_lock_shared() {
            Ok(()) => Some(true),
            Err(TryLockError::WouldBlock) => None,
            Err(TryLockError::Error(_)) => Some(false),
        });
        (got == Some(true)).then(|| Lock {
            _file: file,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Open an existing file for reading, refusing a symlink (ELOOP).
pub fn open_nofollow(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// A hint for an open refused because the path is a symlink.
fn not_a_symlink(e: Error, path: &Path) -> Error {
    if e.errno() == Some(libc::ELOOP) {
        e.with_hint(format!(
            "{} is a symbolic link, which banger never follows for its own files; remove it",
            path.display()
        ))
    } else {
        e
    }
}

/// The lock file that guards `record`.
pub fn lock_path(record: &Path) -> PathBuf {
    let mut name = record.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    record.with_file_name(name)
}

/// Lock the record at `path` for the default timeout.
pub fn lock(path: &Path) -> Result<Lock> {
    Lock::acquire(&lock_path(path), default_lock_timeout())
}

/// Read a record; `None` when the file does not exist.
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    let mut text = String::new();
    match open_nofollow(path).and_then(|mut f| f.read_to_string(&mut text)) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(not_a_symlink(
                io(format!("reading {}", path.display()), e),
                path,
            ))
        }
    };
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::failed(format!("{} is corrupt: {e}", path.display())))?;
    match value.get("schema").and_then(|s| s.as_u64()) {
        Some(s) if s <= SCHEMA => {}
        Some(s) => {
            return Err(Error::prereq(format!(
                "{} has schema {s}; this banger reads up to {SCHEMA}",
                path.display()
            ))
            .with_hint("upgrade banger"))
        }
        None => {
            return Err(Error::failed(format!(
                "{} has no schema number",
                path.display()
            )))
        }
    }
    serde_json::from_value(value)
        .map(Some)
        .map_err(|e| Error::failed(format!("{} is corrupt: {e}", path.display())))
}

/// Write `value` to `path` atomically: a reader sees the old record or the
/// new one, never a torn one, and a crash never loses both.
pub fn store<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| Error::failed(format!("{} has no parent dir", path.display())))?;
    crate::paths::ensure_dir(dir)?;
    let mut json = serde_json::to_vec_pretty(value)
        .map_err(|e| Error::failed(format!("encoding {}: {e}", path.display())))?;
    json.push(b'\n');
    let tmp = dir.join(format!(
        ".{}.tmp.{}",
        path.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        // A new file, never an existing one or a symlink's target; one a
        // killed writer left under this pid goes first.
        let _ = std::fs::remove_file(&tmp);
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&json)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(format!("writing {}", path.display()), e));
    }
    Ok(())
}

/// Read-modify-write a record under its lock. `init` makes the record when
/// the file does not exist yet.
pub fn update<T, R>(
    path: &Path,
    init: impl FnOnce() -> T,
    f: impl FnOnce(&mut T) -> Result<R>,
) -> Result<R>
where
    T: DeserializeOwned + Serialize,
{
    let _lock = lock(path)?;
    let mut rec = load(path)?.unwrap_or_else(init);
    let out = f(&mut rec)?;
    store(path, &rec)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Serialize, Deserialize, Default, Debug, PartialEq)]
    struct Rec {
        schema: u64,
        n: u32,
    }

    #[test]
    fn store_then_load() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("x/rec.json");
        assert_eq!(load::<Rec>(&p).unwrap(), None);
        store(&p, &Rec { schema: 1, n: 3 }).unwrap();
        assert_eq!(load::<Rec>(&p).unwrap(), Some(Rec { schema: 1, n: 3 }));
        // No temp files left beside it.
        let names: Vec<_> = std::fs::read_dir(p.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("rec.json")]);
    }

    #[test]
    fn newer_schema_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("rec.json");
        std::fs::write(&p, r#"{"schema": 99, "n": 1}"#).unwrap();
        assert_eq!(load::<Rec>(&p).unwrap_err().exit_code(), 4);
        std::fs::write(&p, r#"{"n": 1}"#).unwrap();
        assert_eq!(load::<Rec>(&p).unwrap_err().exit_code(), 1);
    }

    #[test]
    fn symlinks_are_never_followed() {
        let t = tempfile::tempdir().unwrap();
        let canary = t.path().join("canary");
        std::fs::write(&canary, "keep").unwrap();
        let p = t.path().join("rec.json");
        std::os::unix::fs::symlink(&canary, lock_path(&p)).unwrap();
        let e = lock(&p).unwrap_err();
        assert_eq!(e.errno(), Some(libc::ELOOP));
        assert!(e.hint.as_deref().unwrap().contains("symbolic link"));
        assert!(Lock::try_shared(&lock_path(&p), Duration::from_millis(10)).is_none());
        std::os::unix::fs::symlink(&canary, &p).unwrap();
        assert_eq!(load::<Rec>(&p).unwrap_err().errno(), Some(libc::ELOOP));
        // A temp name planted as a symlink is replaced, not written through.
        let tmp = t
            .path()
            .join(format!(".rec2.json.tmp.{}", std::process::id()));
        std::os::unix::fs::symlink(&canary, &tmp).unwrap();
        store(&t.path().join("rec2.json"), &Rec { schema: 1, n: 1 }).unwrap();
        assert_eq!(std::fs::read_to_string(&canary).unwrap(), "keep");
    }

    #[test]
    fn lock_times_out_with_conflict() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("a.lock");
        let _held = Lock::acquire(&p, Duration::from_secs(1)).unwrap();
        let err = Lock::acquire(&p, Duration::from_millis(50)).unwrap_err();
        assert_eq!(err.exit_code(), 5);
        assert!(
            err.message.contains(&std::process::id().to_string()),
            "{}",
            err.message
        );
    }

    #[test]
    fn update_serializes_threads() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("counter.json");
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..25 {
                        update(
                            &p,
                            || Rec { schema: 1, n: 0 },
                            |r: &mut Rec| {
                                r.n += 1;
                                Ok(())
                            },
                        )
                        .unwrap();
                    }
                });
            }
        });
        assert_eq!(load::<Rec>(&p).unwrap().unwrap().n, 200);
    }
}
