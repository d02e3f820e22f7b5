//! Which qemu-system-x86_64 to run: the same
//! lookup banger-doctor reports (`banger_lib::host`).

use banger_lib::config::Bundle;
use banger_lib::host;
use banger_lib::hosttools::which;
use banger_lib::{Error, Result};
use std::path::PathBuf;

/// BANGER_QEMU, else the bundle's `qemu`, else qemu-system-x86_64 on PATH.
/// Never the spec's: see `VmSpec`.
pub fn qemu() -> Result<PathBuf> {
    let wanted = host::qemu_program(Bundle::load().ok().as_ref());
    which(&wanted).ok_or_else(|| {
        Error::prereq(format!(
            "{} is missing; it is needed to run VMs with QEMU",
            wanted.display()
        ))
        .with_hint("install it: apt-get install qemu-system-x86")
    })
}
