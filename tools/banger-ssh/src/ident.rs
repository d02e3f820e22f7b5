//! Who we are to the guest: the bundle's key, checked the way sshd's own
//! StrictModes would, and a known_hosts file of our own per VM.

use banger_lib::{config::Bundle, paths, Error, Result};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The bundle's private key, or exit 4: missing, or readable by others
/// (OpenSSH would refuse it later with a less helpful message).
pub fn key() -> Result<PathBuf> {
    let bundle = Bundle::load()?;
    let key = bundle.path(&bundle.ssh_key);
    check_key(&key)?;
    Ok(key)
}

pub fn check_key(key: &Path) -> Result<()> {
    let meta = std::fs::metadata(key).map_err(|e| {
        Error::prereq(format!("ssh key {}: {e}", key.display())).with_hint(
            "create the runtime bundle's key: make runtime-local (or set ssh_key in config.json)",
        )
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Error::prereq(format!(
            "ssh key {} has mode {mode:04o}, readable by others",
            key.display()
        ))
        .with_hint(format!("chmod 600 {}", key.display())));
    }
    Ok(())
}

fn known_hosts_dir() -> PathBuf {
    paths::state_dir().join("known_hosts")
}

/// The VM's known_hosts file (its directory created 0700).
pub fn known_hosts(name: &str) -> Result<PathBuf> {
    Ok(paths::ensure_dir(&known_hosts_dir())?.join(name))
}

/// Remove the VM's known_hosts file; whether there was one.
pub fn forget(name: &str) -> Result<bool> {
    banger_lib::names::validate("VM", name)?;
    let path = known_hosts_dir().join(name);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(banger_lib::error::io(
            format!("removing {}", path.display()),
            e,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_mode_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k");
        std::fs::write(&key, "x").unwrap();
        for (mode, ok) in [
            (0o600, true),
            (0o400, true),
            (0o644, false),
            (0o640, false),
            (0o604, false),
        ] {
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).unwrap();
            let r = check_key(&key);
            assert_eq!(r.is_ok(), ok, "{mode:o}");
            if let Err(e) = r {
                assert_eq!(e.exit_code(), 4);
                assert!(e.hint.unwrap().contains("chmod 600"));
            }
        }
        let e = check_key(&dir.path().join("none")).unwrap_err();
        assert_eq!(e.exit_code(), 4);
    }
}
