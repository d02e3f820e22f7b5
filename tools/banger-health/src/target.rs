//! From a VM name to its hybrid vsock socket, through the record banger-vm
//! keeps at vms_dir()/NAME/vm.json. Read as plain JSON: banger-vm owns the
//! record's type; we need three fields of it.

use banger_lib::{names, paths, proc, state, Error, Result};
use serde_json::Value;
use std::path::PathBuf;

/// Where to find a VM's agent, or why it cannot be reached at all.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Uds(PathBuf),
    /// Asking would be pointless: not running, VMM gone, no socket known.
    Down(String),
}

/// `Err` when there is no such VM (exit 3) or its record is unreadable.
pub fn resolve(name: &str) -> Result<Target> {
    names::validate("VM", name)?;
    let path = paths::vms_dir().join(name).join("vm.json");
    let rec: Value = state::load(&path)?.ok_or_else(|| {
        Error::not_found(format!("no VM named {name}")).with_hint("list VMs with: banger vm list")
    })?;
    Ok(from_record(name, &rec))
}

fn from_record(name: &str, rec: &Value) -> Target {
    let state = rec
        .get("state")
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    if state != "running" {
        return Target::Down(format!(
            "{name} is {state}, not running; start it with: banger vm start {name}"
        ));
    }
    let pid = rec.get("pid").and_then(Value::as_u64);
    let start = rec.get("pid_start_time").and_then(Value::as_u64);
    if let (Some(pid), Some(start)) = (pid, start) {
        if !proc::is_alive(pid as u32, start) {
            return Target::Down(format!(
                "{name}'s VMM (pid {pid}) has exited; see: banger vm logs {name}"
            ));
        }
    }
    match rec.get("vsock_uds").and_then(Value::as_str) {
        Some(p) if !p.is_empty() => Target::Uds(PathBuf::from(p)),
        _ => Target::Down(format!("{name}'s record has no vsock socket (vsock_uds)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn running_vm_with_socket() {
        let rec = json!({"state": "running", "vsock_uds": "/run/banger/box/v.sock"});
        assert_eq!(
            from_record("box", &rec),
            Target::Uds("/run/banger/box/v.sock".into())
        );
    }

    #[test]
    fn stopped_vm_is_down() {
        let rec = json!({"state": "stopped", "vsock_uds": "/x"});
        let Target::Down(why) = from_record("box", &rec) else {
            panic!()
        };
        assert!(why.contains("box is stopped"), "{why}");
    }

    #[test]
    fn missing_socket_field_is_down() {
        let rec = json!({"state": "running", "vsock_uds": null});
        assert!(matches!(from_record("box", &rec), Target::Down(w) if w.contains("vsock_uds")));
    }

    #[test]
    fn dead_vmm_is_down() {
        // Our own pid with a start time that cannot be ours.
        let rec = json!({"state": "running", "vsock_uds": "/x",
                         "pid": std::process::id(), "pid_start_time": 1u64});
        assert!(matches!(from_record("box", &rec), Target::Down(w) if w.contains("has exited")));
    }
}
