//! Which qemu-system-x86_64 and vhost-device-vsock to run.

use banger_lib::config::Bundle;
use banger_lib::hosttools::{is_executable, which};
use banger_lib::{Error, Result};
use std::path::{Path, PathBuf};

/// The spec's binary, else BANGER_QEMU, else the bundle's `qemu`, else
/// qemu-system-x86_64 on PATH.
pub fn qemu(spec_binary: Option<&Path>) -> Result<PathBuf> {
    let wanted = match spec_binary {
        Some(p) => p.to_path_buf(),
        None => match std::env::var_os("BANGER_QEMU").filter(|v| !v.is_empty()) {
            Some(v) => PathBuf::from(v),
            None => Bundle::load()
                .map(|b| b.program(&b.qemu))
                .unwrap_or_else(|_| PathBuf::from("qemu-system-x86_64")),
        },
    };
    which(&wanted).ok_or_else(|| {
        Error::prereq(format!(
            "{} is missing; it is needed to run VMs with QEMU",
            wanted.display()
        ))
        .with_hint("install it: apt-get install qemu-system-x86")
    })
}

/// BANGER_VHOST_VSOCK, else the bundle's `vhost_vsock`, found on PATH or
/// in cargo's bin dir (where `cargo install` puts it, often not on root's
/// PATH).
pub fn vhost_vsock() -> Result<PathBuf> {
    let wanted = match std::env::var_os("BANGER_VHOST_VSOCK").filter(|v| !v.is_empty()) {
        Some(v) => PathBuf::from(v),
        None => Bundle::load()
            .map(|b| b.program(&b.vhost_vsock))
            .unwrap_or_else(|_| PathBuf::from("vhost-device-vsock")),
    };
    let cargo_bins = [
        std::env::var_os("CARGO_HOME").map(|c| PathBuf::from(c).join("bin")),
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin")),
    ];
    which(&wanted)
        .or_else(|| {
            if wanted.components().count() > 1 {
                return None;
            }
            cargo_bins
                .iter()
                .flatten()
                .map(|d| d.join(&wanted))
                .find(|p| is_executable(p))
        })
        .ok_or_else(|| {
            Error::prereq(format!(
                "{} is missing; it is needed for vsock under QEMU",
                wanted.display()
            ))
            .with_hint("install it: cargo install --locked vhost-device-vsock")
        })
}
