//! Helpers the live tests share.

use serde_json::Value;
use std::io::Write;
use std::process::{Command, Stdio};

/// The guest agent's endpoint in a driver's record.
pub fn agent_endpoint(rec: &Value) -> banger_lib::agent::Endpoint {
    serde_json::from_value(rec["agent"].clone()).expect("the record's agent endpoint")
}

/// One request to the agent through the record's endpoint: its status and
/// body, None when it did not answer.
pub fn agent(rec: &Value, method: &str, path: &str) -> Option<(u16, Value)> {
    let ep = agent_endpoint(rec);
    banger_lib::agent::request(&ep, method, path, std::time::Duration::from_secs(10))
        .ok()
        .map(|r| (r.status, r.body))
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
