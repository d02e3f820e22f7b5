//! Persistent TAP devices. rtnetlink cannot make them: the tun driver wants
//! TUNSETIFF on /dev/net/tun, then TUNSETPERSIST so the device outlives us.

use banger_lib::Error;
use std::os::fd::AsRawFd;

/// The longest interface name the kernel takes (IFNAMSIZ - 1).
pub const MAX_IFNAME: usize = 15;

const IFF_TAP: i16 = 0x0002;
const IFF_NO_PI: i16 = 0x1000;

/// `struct ifreq` as TUNSETIFF reads it: the name, then the flags of the
/// union; 40 bytes in all.
#[repr(C)]
struct IfReq {
    name: [u8; 16],
    flags: i16,
    _pad: [u8; 22],
}

// The kernel declares both _IOW('T', N, int), though TUNSETIFF is handed a
// struct ifreq, and writes the device's name back into it.
nix::ioctl_readwrite_bad!(
    tunsetiff,
    nix::request_code_write!(b'T', 202, std::mem::size_of::<std::ffi::c_int>()),
    IfReq
);
nix::ioctl_write_int!(tunsetpersist, b'T', 203);

/// Create the persistent TAP `name` (not yet up, not on a bridge).
pub fn create(name: &str) -> banger_lib::Result<()> {
    if name.is_empty() || name.len() > MAX_IFNAME {
        return Err(Error::usage(format!(
            "interface name {name:?} must be 1-{MAX_IFNAME} bytes"
        )));
    }
    let tun = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .map_err(|e| {
            banger_lib::error::io("opening /dev/net/tun", e)
                .with_hint("load the tun module (modprobe tun) and run as root")
        })?;
    let mut req = IfReq {
        name: [0; 16],
        flags: IFF_TAP | IFF_NO_PI,
        _pad: [0; 22],
    };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    let fd = tun.as_raw_fd();
    // SAFETY: fd is our open /dev/net/tun, and TUNSETIFF reads and writes
    // back a struct ifreq (IFNAMSIZ name, then the flags) through the
    // pointer: req is a live, exclusively borrowed #[repr(C)] struct of
    // that layout and the full 40 bytes.
    unsafe { tunsetiff(fd, &raw mut req) }.map_err(|e| errno("TUNSETIFF", name, e))?;
    // SAFETY: TUNSETPERSIST takes a plain integer (1: keep the device) on
    // the same open fd and touches no memory of ours.
    unsafe { tunsetpersist(fd, 1) }.map_err(|e| errno("TUNSETPERSIST", name, e))?;
    Ok(())
}

fn errno(call: &str, name: &str, e: nix::errno::Errno) -> Error {
    let msg = format!("creating TAP {name} ({call}): {e}");
    match e {
        nix::errno::Errno::EPERM | nix::errno::Errno::EACCES => {
            Error::prereq(msg).with_hint("run it as root (or with CAP_NET_ADMIN)")
        }
        nix::errno::Errno::EBUSY | nix::errno::Errno::EEXIST => Error::conflict(msg),
        _ => Error::failed(msg),
    }
}
