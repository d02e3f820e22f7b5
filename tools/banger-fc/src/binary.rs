//! Which firecracker to run.

use banger_lib::config::Bundle;
use banger_lib::hosttools::which;
use banger_lib::{Error, Result};
use std::path::{Path, PathBuf};

/// The spec's binary, else BANGER_FIRECRACKER, else the bundle's
/// `firecracker` (a file in the runtime dir, or a name on PATH).
pub fn find(spec_binary: Option<&Path>) -> Result<PathBuf> {
    let (wanted, from) = match spec_binary {
        Some(p) => (p.to_path_buf(), "the spec's binary"),
        None => match banger_lib::host::program_override("BANGER_FIRECRACKER") {
            Some(v) => (v, "BANGER_FIRECRACKER"),
            None => {
                let b = Bundle::load()?;
                (b.program(&b.firecracker), "the runtime bundle")
            }
        },
    };
    which(&wanted).ok_or_else(|| {
        Error::prereq(format!(
            "firecracker is missing or not executable: {} (from {from})",
            wanted.display()
        ))
        .with_hint(
            "put a firecracker v1.16 binary in the runtime bundle, set BANGER_FIRECRACKER, \
             or use banger-qemu (vmm \"qemu\")",
        )
    })
}
