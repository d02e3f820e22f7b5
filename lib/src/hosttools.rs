//! Host programs banger runs: find them, or fail with exit 4 naming the
//! Debian package that provides them.

use crate::error::{Error, Result};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Find an executable: a path with a slash is taken as is, a bare name is
/// looked up on PATH (plus the sbin dirs, which a non-login root shell may
/// lack, unless `BANGER_PATH_ONLY=1`: tests use it to hide a host tool).
pub fn which(tool: impl AsRef<Path>) -> Option<PathBuf> {
    let tool = tool.as_ref();
    if tool.components().count() > 1 || tool.is_absolute() {
        return is_executable(tool).then(|| tool.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let sbin: &[&str] = if std::env::var("BANGER_PATH_ONLY").is_ok_and(|v| v == "1") {
        &[]
    } else {
        &["/usr/local/sbin", "/usr/sbin", "/sbin"]
    };
    std::env::split_paths(&path)
        .chain(sbin.iter().map(PathBuf::from))
        .map(|d| d.join(tool))
        .find(|p| is_executable(p))
}

pub fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Find `tool` or fail with exit 4: what needs it and how to install it.
pub fn require(tool: &str, needed_for: &str, debian_package: &str) -> Result<PathBuf> {
    which(tool).ok_or_else(|| {
        Error::prereq(format!("{tool} is missing; it is needed for {needed_for}"))
            .with_hint(format!("install it: apt-get install {debian_package}"))
    })
}

/// The first non-blank line of `BIN --version`, for records. Exit 4 when
/// it fails or prints nothing: `what` names the program it should be
/// (`firecracker`, `QEMU`).
pub fn version(bin: &Path, what: &str) -> Result<String> {
    let out = std::process::Command::new(bin)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| crate::error::io(format!("running {} --version", bin.display()), e))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    if !out.status.success() || line.is_empty() {
        return Err(Error::prereq(format!(
            "{} --version failed; is it a {what} binary?",
            bin.display()
        )));
    }
    Ok(line.trim().to_string())
}

/// Whether this process runs as root (effective uid 0).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Whether this process may change the host's network: root, or
/// CAP_NET_ADMIN in its effective set.
pub fn has_net_admin() -> bool {
    const CAP_NET_ADMIN: u32 = 12;
    cap_effective().is_some_and(|caps| caps & (1 << CAP_NET_ADMIN) != 0)
}

fn cap_effective() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("CapEff:"))?;
    u64::from_str_radix(line.split_whitespace().nth(1)?, 16).ok()
}

/// Fail with exit 4 unless this process may change the host's network.
pub fn require_net_admin(needed_for: &str) -> Result<()> {
    if has_net_admin() {
        Ok(())
    } else {
        Err(
            Error::prereq(format!("{needed_for} needs root or CAP_NET_ADMIN"))
                .with_hint("run it with sudo"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_is_the_first_non_blank_line() {
        let t = tempfile::tempdir().unwrap();
        let bin = t.path().join("vmm");
        let script = |body: &str| {
            // Written to a new inode each time: an exec'd old one may be busy.
            let _ = std::fs::remove_file(&bin);
            std::fs::write(&bin, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        script("printf '\\n  vmm v1.2  \\nmore\\n'");
        assert_eq!(version(&bin, "vmm").unwrap(), "vmm v1.2");
        script("exit 3");
        let e = version(&bin, "vmm").unwrap_err();
        assert_eq!(e.exit_code(), 4);
        assert!(e.message.ends_with("is it a vmm binary?"), "{}", e.message);
        script("true");
        assert_eq!(version(&bin, "vmm").unwrap_err().exit_code(), 4);
        assert!(version(&t.path().join("none"), "vmm").is_err());
    }

    #[test]
    fn finds_sh_and_not_nonsense() {
        assert!(which("sh").is_some());
        assert!(which("/bin/sh").is_some());
        assert!(which("no-such-tool-banger").is_none());
        let e = require("no-such-tool-banger", "testing", "banger-test").unwrap_err();
        assert_eq!(e.exit_code(), 4);
        assert_eq!(
            e.hint.as_deref(),
            Some("install it: apt-get install banger-test")
        );
        assert!(e.message.contains("needed for testing"));
    }
}
