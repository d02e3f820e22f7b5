//! Trusted paths: as root, banger keeps its state, sockets, config and
//! bundle only in directories that root owns and no one else can write.
//!
//! `sudo -E` or `su` keeps a user's XDG_RUNTIME_DIR (and HOME, and the other
//! XDG variables); a root command that followed them would create, lock,
//! truncate and delete files in a tree the user controls, and the user
//! could plant symlinks there to aim those writes anywhere. So every tool
//! checks, before it does anything, each directory it resolves and every
//! directory above it: owned by root, not group or world writable (an
//! ancestor may be world writable with the sticky bit, like /tmp, whose
//! entries only their owner can rename or delete). Non-root runs are not
//! checked: the user's own files are the user's business.

use crate::error::{Error, Result};
use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

const STICKY: u32 = 0o1000;

/// Check every directory banger resolves, when running as root. Called by
/// `run::main` before a tool's body, so every tool refuses alike.
pub fn check_dirs() -> Result<()> {
    if !crate::hosttools::is_root() {
        return Ok(());
    }
    for (what, var, dir) in dirs()? {
        check_dir(what, Some(var), &dir)?;
    }
    Ok(())
}

/// The directories `check_dirs` checks: what they are for, the variable
/// that points there, the path. The bundle of the source checkout this
/// program was built in is not checked: whoever can write it can write
/// the program being run, so the check would protect nothing.
fn dirs() -> Result<Vec<(&'static str, &'static str, PathBuf)>> {
    let mut v = vec![
        ("runtime", "XDG_RUNTIME_DIR", crate::paths::runtime_dir()),
        ("state", "XDG_STATE_HOME", crate::paths::state_dir()),
        ("data", "XDG_DATA_HOME", crate::paths::data_dir()),
        ("config", "XDG_CONFIG_HOME", crate::paths::config_dir()),
    ];
    let bundle = crate::config::runtime_dir()?;
    let chosen = std::env::var_os("BANGER_RUNTIME").is_some_and(|v| !v.is_empty());
    if chosen || bundle == Path::new(crate::config::INSTALLED_RUNTIME) {
        v.push(("bundle", "BANGER_RUNTIME", bundle));
    }
    Ok(v)
}

/// Refuse `dir` (exit 4) when it, or a directory above it, is not owned by
/// root or can be written by others. Parts that do not exist yet are
/// skipped: banger creates them itself, root-owned and 0700.
/// `var` is the variable that chose it, for the hint.
pub fn check_dir(what: &str, var: Option<&str>, dir: &Path) -> Result<()> {
    for (d, leaf) in chain(dir) {
        let Ok(m) = std::fs::metadata(&d) else {
            continue;
        };
        let why = if m.uid() != 0 {
            format!("is owned by uid {}, not root", m.uid())
        } else if m.mode() & 0o022 != 0 && (leaf || m.mode() & STICKY == 0) {
            format!(
                "is writable by {} (mode {:04o})",
                if m.mode() & 0o002 != 0 {
                    "everyone"
                } else {
                    "its group"
                },
                m.mode() & 0o7777
            )
        } else {
            continue;
        };
        let of = if d == dir {
            String::new()
        } else {
            format!(" (above {})", dir.display())
        };
        return Err(Error::prereq(format!(
            "refusing the {what} directory: {}{of} {why}; as root, banger uses only \
             directories that root owns and no one else can write",
            d.display()
        ))
        .with_hint(format!(
            "{}fix it: chown root:root {1} && chmod go-w {1}",
            match var {
                Some(var) => format!(
                    "run as root without the user's environment (unset {var}, or sudo without \
                     -E), or "
                ),
                None => "use a directory only root can write, or ".into(),
            },
            d.display()
        )));
    }
    Ok(())
}

/// `dir` and every directory above it, as written and as resolved (a
/// symlink's own directory is in the first, its target's in the second),
/// each once, with whether it is the directory itself.
fn chain(dir: &Path) -> Vec<(PathBuf, bool)> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    let mut add = |p: &Path, leaf: bool, out: &mut Vec<(PathBuf, bool)>| {
        if seen.insert((p.to_path_buf(), leaf)) {
            out.push((p.to_path_buf(), leaf));
        }
    };
    for (i, a) in dir.ancestors().enumerate() {
        if !a.as_os_str().is_empty() {
            add(a, i == 0, &mut out);
        }
    }
    // The deepest part that exists, resolved.
    if let Some((i, real)) = dir
        .ancestors()
        .enumerate()
        .find_map(|(i, a)| a.canonicalize().ok().map(|r| (i, r)))
    {
        for (j, a) in real.ancestors().enumerate() {
            add(a, i == 0 && j == 0, &mut out);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn chmod(p: &Path, mode: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn root_owned_private_dirs_pass_and_missing_parts_are_skipped() {
        if !crate::hosttools::is_root() {
            eprintln!("needs root: the check only runs as root");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        chmod(t.path(), 0o755);
        check_dir(
            "state",
            Some("XDG_STATE_HOME"),
            &t.path().join("a/b/banger"),
        )
        .unwrap();
    }

    #[test]
    fn foreign_owner_and_writable_dirs_are_refused_naming_the_dir() {
        if !crate::hosttools::is_root() {
            eprintln!("needs root: chown");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        chmod(t.path(), 0o755);
        let user = t.path().join("user");
        std::fs::create_dir(&user).unwrap();
        nix::unistd::chown(&user, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
        let dir = user.join("banger");
        let e = check_dir("runtime", Some("XDG_RUNTIME_DIR"), &dir).unwrap_err();
        assert_eq!(e.exit_code(), 4);
        assert!(
            e.message.contains(&user.display().to_string()),
            "{}",
            e.message
        );
        assert!(e.message.contains("uid 65534"), "{}", e.message);
        assert!(e.hint.as_deref().unwrap().contains("XDG_RUNTIME_DIR"));

        let open = t.path().join("open");
        std::fs::create_dir(&open).unwrap();
        chmod(&open, 0o777);
        let e = check_dir("state", Some("XDG_STATE_HOME"), &open.join("banger")).unwrap_err();
        assert!(e.message.contains("everyone"), "{}", e.message);
        // Sticky, like /tmp: fine above, not as the dir itself.
        chmod(&open, 0o1777);
        check_dir("state", Some("XDG_STATE_HOME"), &open.join("banger")).unwrap();
        assert!(check_dir("state", Some("XDG_STATE_HOME"), &open).is_err());
        chmod(&open, 0o770);
        let e = check_dir("state", Some("XDG_STATE_HOME"), &open).unwrap_err();
        assert!(e.message.contains("its group"), "{}", e.message);
    }

    #[test]
    fn a_symlink_is_checked_where_it_lives_and_where_it_points() {
        if !crate::hosttools::is_root() {
            eprintln!("needs root: chown");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        chmod(t.path(), 0o755);
        let user = t.path().join("user");
        std::fs::create_dir(&user).unwrap();
        nix::unistd::chown(&user, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
        let real = user.join("real");
        std::fs::create_dir(&real).unwrap();
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let e = check_dir("bundle", Some("BANGER_RUNTIME"), &link).unwrap_err();
        assert!(
            e.message.contains(&user.display().to_string()),
            "{}",
            e.message
        );
    }
}
