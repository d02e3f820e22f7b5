//! Attaching to a TAP device through /dev/net/tun (TUNSETIFF): banger-net
//! makes TAPs with it, banger-qemu opens a VM's TAP for QEMU, which then
//! needs neither /dev/net/tun (often 0600) nor rights on the TAP.

use crate::error::{Error, Result};
use std::os::fd::AsRawFd;

/// The longest interface name the kernel takes (IFNAMSIZ - 1).
pub const MAX_IFNAME: usize = 15;

pub const IFF_TAP: i16 = 0x0002;
pub const IFF_NO_PI: i16 = 0x1000;
/// Frames carry a virtio-net header: what QEMU wants for offloads.
pub const IFF_VNET_HDR: i16 = 0x4000;

/// `struct ifreq` as TUNSETIFF reads it: the name, then the flags of the
/// union; 40 bytes in all.
#[repr(C)]
struct IfReq {
    name: [u8; 16],
    flags: i16,
    _pad: [u8; 22],
}

// The kernel declares it _IOW('T', 202, int), though it is handed a struct
// ifreq, and writes the device's name back into it.
nix::ioctl_readwrite_bad!(
    tunsetiff,
    nix::request_code_write!(b'T', 202, std::mem::size_of::<std::ffi::c_int>()),
    IfReq
);

/// /dev/net/tun attached to the TAP `name` with `flags` (IFF_TAP and
/// more); the TAP is made if missing, and goes with the descriptor unless
/// made persistent.
pub fn attach(name: &str, flags: i16) -> Result<std::fs::File> {
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
            crate::error::io("opening /dev/net/tun", e)
                .with_hint("load the tun module (modprobe tun) and run as root")
        })?;
    let mut req = IfReq {
        name: [0; 16],
        flags,
        _pad: [0; 22],
    };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: the fd is our open /dev/net/tun, and TUNSETIFF reads and
    // writes back a struct ifreq (IFNAMSIZ name, then the flags) through
    // the pointer: req is a live, exclusively borrowed #[repr(C)] struct of
    // that layout and the full 40 bytes.
    unsafe { tunsetiff(tun.as_raw_fd(), &raw mut req) }.map_err(|e| errno("TUNSETIFF", name, e))?;
    Ok(tun)
}

/// An ioctl's failure on TAP `name`, by errno: permission is exit 4, busy
/// or existing exit 5.
pub fn errno(call: &str, name: &str, e: nix::errno::Errno) -> Error {
    let msg = format!("setting up TAP {name} ({call}): {e}");
    match e {
        nix::errno::Errno::EPERM | nix::errno::Errno::EACCES => {
            Error::prereq(msg).with_hint("run it as root (or with CAP_NET_ADMIN)")
        }
        nix::errno::Errno::EBUSY | nix::errno::Errno::EEXIST => Error::conflict(msg),
        _ => Error::failed(msg),
    }
}
