//! The unprivileged user that banger's long-running processes run as when
//! banger itself runs as root: QEMU and vhost-device-vsock, Firecracker
//! under its jailer, the DNS server once its socket is bound. A guest that
//! escapes its VMM then holds that user, not root.
//!
//! One user for all of them (bundle key `vmm_user`, default `banger-vmm`),
//! made by `banger-net setup` or by hand with the `useradd` line `hint`
//! prints. It owns nothing but what a VM needs: its TAP, the directory its
//! sockets are made in; disks, kernel and logs are opened by the (root)
//! driver and handed over as descriptors.

use crate::error::{Error, Result};
use nix::unistd::{Gid, Uid, User};

pub const DEFAULT: &str = "banger-vmm";

/// A resolved unprivileged user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmmUser {
    pub name: String,
    pub uid: Uid,
    pub gid: Gid,
}

/// The configured name: the bundle's `vmm_user`, else the default.
pub fn configured() -> String {
    crate::config::Bundle::load()
        .map(|b| b.vmm_user)
        .unwrap_or_else(|_| DEFAULT.into())
}

/// The `useradd` that makes `name`, for hints and `banger-net setup`.
pub fn useradd_args(name: &str) -> Vec<String> {
    [
        "--system",
        "--user-group",
        "--no-create-home",
        "--home-dir",
        "/nonexistent",
        "--shell",
        "/usr/sbin/nologin",
        name,
    ]
    .map(String::from)
    .to_vec()
}

fn hint(name: &str) -> String {
    format!(
        "create it: banger-net setup (or: useradd {}), or set \"vmm_user\" in config.json",
        useradd_args(name).join(" ")
    )
}

/// Look `name` up; a missing or root user is a prerequisite error.
pub fn lookup(name: &str) -> Result<VmmUser> {
    let user = User::from_name(name)
        .map_err(|e| Error::failed(format!("looking up user {name}: {e}")))?
        .ok_or_else(|| {
            Error::prereq(format!(
                "the unprivileged VMM user {name} does not exist; banger will not run VMMs as root"
            ))
            .with_hint(hint(name))
        })?;
    if user.uid.is_root() || user.gid.as_raw() == 0 {
        return Err(Error::prereq(format!(
            "vmm_user {name} is root (uid {}, gid {}); it must be an unprivileged user",
            user.uid, user.gid
        ))
        .with_hint(hint(DEFAULT)));
    }
    Ok(VmmUser {
        name: name.into(),
        uid: user.uid,
        gid: user.gid,
    })
}

/// Who a process started now should run as: the configured user when this
/// process is root, `None` (the caller, who is unprivileged already) when
/// it is not.
pub fn for_children() -> Result<Option<VmmUser>> {
    if !crate::hosttools::is_root() {
        return Ok(None);
    }
    lookup(&configured()).map(Some)
}

/// Whether `name` exists.
pub fn exists(name: &str) -> bool {
    matches!(User::from_name(name), Ok(Some(_)))
}

/// Make `name` with useradd unless it exists; true when it was made.
pub fn ensure(name: &str) -> Result<bool> {
    if exists(name) {
        return Ok(false);
    }
    let useradd = crate::hosttools::require("useradd", "making the VMM user", "passwd")?;
    let out = std::process::Command::new(&useradd)
        .args(useradd_args(name))
        .output()
        .map_err(|e| crate::error::io(format!("running {}", useradd.display()), e))?;
    // Two setups racing: the other one made it.
    if !out.status.success() && !exists(name) {
        return Err(Error::failed(format!(
            "useradd {name} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(true)
}

/// Become `user` with exactly `groups` as supplementary groups: for the
/// child side of a fork, before exec. Only async-signal-safe syscalls and
/// no allocation; groups first, then gid, then uid (after setuid the
/// others are no longer allowed).
pub fn become_user(user: &VmmUser, groups: &[Gid]) -> nix::Result<()> {
    nix::unistd::setgroups(groups)?;
    nix::unistd::setresgid(user.gid, user.gid, user.gid)?;
    nix::unistd::setresuid(user.uid, user.uid, user.uid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_missing_users_are_refused_with_a_way_out() {
        let e = lookup("root").unwrap_err();
        assert_eq!(e.kind, crate::Kind::Prereq);
        assert!(e.message.contains("is root"), "{}", e.message);
        let e = lookup("banger-no-such-user").unwrap_err();
        assert_eq!(e.kind, crate::Kind::Prereq);
        let h = e.hint.unwrap();
        assert!(
            h.contains("banger-net setup") && h.contains("useradd --system"),
            "{h}"
        );
        assert!(h.contains("\"vmm_user\""), "{h}");
    }

    #[test]
    fn nobody_resolves_to_its_ids() {
        let u = lookup("nobody").unwrap();
        assert!(!u.uid.is_root());
    }
}
