//! Running nft(8): one transaction per call (`nft -f -` applies a whole
//! script or nothing), and reading what exists.

use banger_lib::{hosttools, Error, Result};
use std::io::Write;
use std::process::{Command, Stdio};

/// nft is what installs the guests' filter: without it no guest may run.
pub fn require(needed_for: &str) -> Result<()> {
    hosttools::require("nft", needed_for, "nftables")?;
    hosttools::require_net_admin(needed_for)
}

fn nft() -> Command {
    Command::new(hosttools::which("nft").unwrap_or_else(|| "nft".into()))
}

/// Apply `script` atomically.
pub fn apply(script: &str) -> Result<()> {
    let mut child = nft()
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| banger_lib::error::io("running nft", e))?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let wrote = stdin.write_all(script.as_bytes());
    drop(stdin);
    let out = child
        .wait_with_output()
        .map_err(|e| banger_lib::error::io("running nft", e))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(Error::failed(format!(
            "nft refused banger's rules: {}",
            err.trim()
        )));
    }
    wrote.map_err(|e| banger_lib::error::io("writing to nft", e))
}

/// Whether `table FAMILY NAME` exists in this network namespace.
pub fn table_exists(family: &str, name: &str) -> bool {
    nft()
        .args(["list", "table", family, name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `nft -j list ARGS`, parsed; None when nft fails (no such table).
pub fn list_json(args: &[&str]) -> Option<serde_json::Value> {
    let out = nft()
        .args(["-j", "list"])
        .args(args)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// An interface name as it may appear quoted in a script: the kernel
/// takes almost any byte in a name, nft's quoting does not.
pub fn ifname(name: &str) -> Result<&str> {
    let ok = !name.is_empty()
        && name.len() <= crate::tuntap::MAX_IFNAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(name)
    } else {
        Err(Error::usage(format!(
            "interface name {name:?}: banger takes only letters, digits, '-', '_' and '.'"
        ))
        .with_hint("rename the interface, or set `bridge` / `uplink` in config.json to another"))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn interface_names_that_cannot_break_a_script() {
        for ok in ["banger0", "bgr-12", "eth0.100", "wlp0s20f3", "br_x"] {
            assert_eq!(super::ifname(ok).unwrap(), ok);
        }
        for bad in ["", "a\"b", "a b", "x;y", "eth0}", "a-very-long-name-x", "é"] {
            assert_eq!(super::ifname(bad).unwrap_err().exit_code(), 2, "{bad:?}");
        }
    }
}
