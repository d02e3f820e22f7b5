//! Which firecracker to run, and its version.

use banger_lib::config::Bundle;
use banger_lib::hosttools::{is_executable, which};
use banger_lib::{Error, Result};
use std::path::{Path, PathBuf};

/// The spec's binary, else BANGER_FIRECRACKER, else the bundle's
/// `firecracker` (a file in the runtime dir, or a name on PATH).
pub fn find(spec_binary: Option<&Path>) -> Result<PathBuf> {
    let (wanted, from) = match spec_binary {
        Some(p) => (p.to_path_buf(), "the spec's binary"),
        None => match std::env::var_os("BANGER_FIRECRACKER").filter(|v| !v.is_empty()) {
            Some(v) => (PathBuf::from(v), "BANGER_FIRECRACKER"),
            None => {
                let b = Bundle::load()?;
                (b.program(&b.firecracker), "the runtime bundle")
            }
        },
    };
    let found = if wanted.components().count() > 1 {
        is_executable(&wanted).then(|| wanted.clone())
    } else {
        which(&wanted)
    };
    found.ok_or_else(|| {
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

/// The first line of `firecracker --version`.
pub fn version(bin: &Path) -> Result<String> {
    let out = std::process::Command::new(bin)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| banger_lib::error::io(format!("running {} --version", bin.display()), e))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    if !out.status.success() || line.is_empty() {
        return Err(Error::prereq(format!(
            "{} --version failed; is it a firecracker binary?",
            bin.display()
        )));
    }
    Ok(line.to_string())
}
