//! Which firecracker to run.

use banger_lib::config::Bundle;
use banger_lib::hosttools::which;
use banger_lib::{Error, Result};
use std::path::{Path, PathBuf};

/// BANGER_FIRECRACKER, else the bundle's `firecracker` (a file in the
/// runtime dir, or a name on PATH). Never the spec's: see `VmSpec`.
pub fn find() -> Result<PathBuf> {
    let (wanted, from) = match banger_lib::host::program_override("BANGER_FIRECRACKER") {
        Some(v) => (v, "BANGER_FIRECRACKER"),
        None => {
            let b = Bundle::load()?;
            (b.program(&b.firecracker), "the runtime bundle")
        }
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

/// The oldest Firecracker banger-fc drives: every request it sends is
/// checked against v1.16's API document (../shared/firecracker), and the
/// agent channel, serial output and snapshot calls it uses are there.
pub const OLDEST: (u64, u64) = (1, 16);

/// `(major, minor)` of a `firecracker --version` line (`Firecracker
/// v1.17.0-dev`).
pub fn parse_version(line: &str) -> Option<(u64, u64)> {
    let v = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix('v').or(Some(w)).filter(|w| w.contains('.')))?;
    let mut parts = v.split(['.', '-']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Refuse a firecracker older than [`OLDEST`] (exit 4, naming both).
pub fn check_version(bin: &Path, line: &str) -> Result<()> {
    match parse_version(line) {
        Some(v) if v >= OLDEST => Ok(()),
        found => Err(Error::prereq(format!(
            "{} is {}; banger-fc needs Firecracker v{}.{} or newer",
            bin.display(),
            match found {
                Some((a, b)) => format!("Firecracker v{a}.{b}"),
                None => format!("not a Firecracker it can tell the version of ({line:?})"),
            },
            OLDEST.0,
            OLDEST.1
        ))
        .with_hint(
            "put a newer firecracker in the runtime bundle or set BANGER_FIRECRACKER to one",
        )),
    }
}

#[cfg(test)]
mod version_tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(parse_version("Firecracker v1.16.1"), Some((1, 16)));
        assert_eq!(parse_version("Firecracker v1.17.0-dev"), Some((1, 17)));
        assert_eq!(parse_version("Firecracker v2.0.0"), Some((2, 0)));
        assert_eq!(parse_version("nonsense"), None);
        let p = Path::new("/x/firecracker");
        assert!(check_version(p, "Firecracker v1.17.0-dev").is_ok());
        let e = check_version(p, "Firecracker v1.9.2").unwrap_err();
        assert_eq!(e.exit_code(), 4);
        assert!(
            e.message.contains("v1.9") && e.message.contains("v1.16"),
            "{}",
            e.message
        );
    }
}
