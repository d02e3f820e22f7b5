//! Where banger keeps things: XDG directories with a `banger` subfolder,
//! created 0700, and a short runtime dir for sockets.

use crate::error::{io, Error, Result};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// `sun_path` is 108 bytes including the trailing NUL.
pub const MAX_SOCKET_PATH: usize = 107;

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"))
}

fn xdg(var: &str, fallback: &str) -> PathBuf {
    match std::env::var_os(var) {
        // The XDG spec says relative values are invalid and must be ignored.
        Some(v) if Path::new(&v).is_absolute() => PathBuf::from(v),
        _ => home().join(fallback),
    }
    .join("banger")
}

/// `$XDG_CONFIG_HOME/banger` (not created: config is optional).
pub fn config_dir() -> PathBuf {
    xdg("XDG_CONFIG_HOME", ".config")
}

/// `$XDG_DATA_HOME/banger`.
pub fn data_dir() -> PathBuf {
    xdg("XDG_DATA_HOME", ".local/share")
}

/// `$XDG_STATE_HOME/banger`.
pub fn state_dir() -> PathBuf {
    xdg("XDG_STATE_HOME", ".local/state")
}

/// `$XDG_RUNTIME_DIR/banger`, else `/run/banger`: kept short because Unix
/// socket paths are limited to 107 bytes.
pub fn runtime_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(v) if Path::new(&v).is_absolute() => PathBuf::from(v).join("banger"),
        _ => PathBuf::from("/run/banger"),
    }
}

/// Managed images live here, one folder per image.
pub fn images_dir() -> PathBuf {
    data_dir().join("images")
}

/// VM records and disks, one folder per VM.
pub fn vms_dir() -> PathBuf {
    state_dir().join("vms")
}

/// Golden snapshots (`banger vm snapshot`): one dir each.
pub fn snapshots_dir() -> PathBuf {
    state_dir().join("snapshots")
}

/// Firecracker's jails (banger-fc under the jailer): `jail_dir()/NAME/VM`,
/// NAME being the firecracker binary's file name. banger-vm gc looks here
/// for what a killed VM left.
pub fn jail_dir() -> PathBuf {
    state_dir().join("jail")
}

/// Create a directory (and parents) with mode 0700 for the last component.
/// A symlink there is refused (exit 4), never followed: banger's own dirs
/// (a VM's, its run dir) are deleted whole, and a planted link must not
/// aim that at another tree.
pub fn ensure_dir(dir: &Path) -> Result<PathBuf> {
    refuse_symlink(dir)?;
    if !dir.is_dir() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| io(format!("creating {}", dir.display()), e))?;
        // recursive() applies the mode only to directories it creates, and
        // the umask may have narrowed it; make the leaf exactly 0700.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| io(format!("chmod {}", dir.display()), e))?;
    }
    Ok(dir.to_path_buf())
}

/// Refuse (exit 4) a path that is a symbolic link; a missing one is fine.
pub fn refuse_symlink(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(Error::prereq(format!(
            "{} is a symbolic link; banger does not follow links for its own directories",
            path.display()
        ))
        .with_hint(format!(
            "remove the link (rm {}) and let banger make a real directory",
            path.display()
        ))),
        _ => Ok(()),
    }
}

/// Fail when a socket path would not fit in `sun_path`.
pub fn check_socket_path(path: &Path) -> Result<()> {
    let len = path.as_os_str().len();
    if len > MAX_SOCKET_PATH {
        return Err(Error::usage(format!(
            "socket path is {len} bytes, over the {MAX_SOCKET_PATH}-byte limit of a Unix socket: {}",
            path.display()
        ))
        .with_hint("use a shorter XDG_RUNTIME_DIR, or shorter VM names"));
    }
    Ok(())
}

/// Check that `path` is a regular file (symlinks followed), with an error
/// of `kind` that says which of "does not exist" or "is not a file" it is.
pub fn require_file(what: &str, path: &Path, kind: crate::Kind) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(m) => {
            let is = if m.is_dir() {
                "a directory"
            } else {
                "not a regular file"
            };
            Err(crate::Error::new(
                kind,
                format!("{what} {} is not a file: it is {is}", path.display()),
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(crate::Error::new(
            kind,
            format!("{what} {} does not exist", path.display()),
        )),
        Err(e) => Err(crate::error::io(format!("{what} {}", path.display()), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_path_limit() {
        let ok = PathBuf::from(format!("/{}", "a".repeat(106)));
        assert!(check_socket_path(&ok).is_ok());
        let long = PathBuf::from(format!("/{}", "a".repeat(107)));
        let err = check_socket_path(&long).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.message.contains("108 bytes"), "{}", err.message);
    }

    #[test]
    fn a_symlinked_dir_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let real = t.path().join("real");
        std::fs::create_dir(&real).unwrap();
        let link = t.path().join("vm");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let e = ensure_dir(&link).unwrap_err();
        assert_eq!(e.exit_code(), 4);
        assert!(e.message.contains("symbolic link"), "{}", e.message);
    }

    #[test]
    fn ensure_dir_is_private() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("a/b/banger");
        ensure_dir(&d).unwrap();
        let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }
}
