//! Persistent TAP devices. rtnetlink cannot make them: the tun driver wants
//! TUNSETIFF on /dev/net/tun (banger_lib::tun), then TUNSETPERSIST so the
//! device outlives us, and TUNSETOWNER/TUNSETGROUP so an unprivileged VMM
//! (Firecracker under its jailer) may attach to it.

use banger_lib::tun::{errno, IFF_NO_PI, IFF_TAP};
use std::os::fd::AsRawFd;

pub use banger_lib::tun::MAX_IFNAME;

nix::ioctl_write_int!(tunsetpersist, b'T', 203);
nix::ioctl_write_int!(tunsetowner, b'T', 204);
nix::ioctl_write_int!(tunsetgroup, b'T', 206);

/// Who may attach to a TAP without CAP_NET_ADMIN: the unprivileged VMM.
#[derive(Debug, Clone, Copy)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

fn attach(name: &str) -> banger_lib::Result<std::fs::File> {
    banger_lib::tun::attach(name, IFF_TAP | IFF_NO_PI)
}

/// Create the persistent TAP `name` (not yet up, not on a bridge), owned by
/// `owner` when given.
pub fn create(name: &str, owner: Option<Owner>) -> banger_lib::Result<()> {
    let tun = attach(name)?;
    if let Some(o) = owner {
        set_owner_on(&tun, name, o)?;
    }
    // SAFETY: TUNSETPERSIST takes a plain integer (1: keep the device) on
    // the open /dev/net/tun and touches no memory of ours.
    unsafe { tunsetpersist(tun.as_raw_fd(), 1) }.map_err(|e| errno("TUNSETPERSIST", name, e))?;
    Ok(())
}

/// Give the existing, unattached TAP `name` to `owner` (a pooled TAP made
/// before, or without, an owner).
pub fn set_owner(name: &str, owner: Owner) -> banger_lib::Result<()> {
    set_owner_on(&attach(name)?, name, owner)
}

fn set_owner_on(tun: &std::fs::File, name: &str, o: Owner) -> banger_lib::Result<()> {
    let fd = tun.as_raw_fd();
    // SAFETY: TUNSETOWNER and TUNSETGROUP take a plain integer (a uid, a
    // gid) on the attached /dev/net/tun and touch no memory of ours.
    unsafe { tunsetowner(fd, o.uid.into()) }.map_err(|e| errno("TUNSETOWNER", name, e))?;
    // SAFETY: as above.
    unsafe { tunsetgroup(fd, o.gid.into()) }.map_err(|e| errno("TUNSETGROUP", name, e))?;
    Ok(())
}
