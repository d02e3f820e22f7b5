//! Helpers the live tests share.

use serde_json::Value;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

pub fn have_vhost_vsock(test: &str) -> bool {
    let in_cargo = std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".cargo/bin/vhost-device-vsock"))
        .is_some_and(|p| p.is_file());
    in_cargo || banger_testkit::require_tool(test, "vhost-device-vsock")
}

pub fn run_json(mut cmd: Command, stdin: Option<&Value>) -> Value {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawning");
    let text = stdin.map(|s| s.to_string()).unwrap_or_default();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON line")
}
