//! From a VM name to its guest agent, through banger_lib's read-only view
//! of banger-vm's record (typed; never parsed here).

use banger_lib::agent::Endpoint;
use banger_lib::records::{vm, VmRecord, VmState};
use banger_lib::{proc, Result};

/// Where to find a VM's agent, or why it cannot be reached at all.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// The agent's endpoint (hybrid vsock or serial port).
    Agent(Endpoint),
    /// Asking would be pointless: not running, VMM gone, no socket known.
    Down(String),
}

/// `Err` when there is no such VM (exit 3) or its record is unreadable.
/// `port` is used for a record from before VMs kept their agent endpoint.
pub fn resolve(name: &str, port: u32) -> Result<Target> {
    Ok(from_record(&vm::view(name)?, port))
}

fn from_record(rec: &VmRecord, port: u32) -> Target {
    let name = &rec.name;
    if rec.state != VmState::Running {
        return Target::Down(format!(
            "{name} is {}, not running; start it with: banger vm start {name}",
            rec.state.word()
        ));
    }
    if let (Some(pid), Some(start)) = (rec.pid, rec.pid_start_time) {
        if !proc::is_alive(pid, start) {
            return Target::Down(format!(
                "{name}'s VMM (pid {pid}) has exited; see: banger vm logs {name}"
            ));
        }
    }
    match (&rec.agent, &rec.vsock_uds) {
        (Some(ep), _) => Target::Agent(ep.clone()),
        (None, Some(uds)) => Target::Agent(Endpoint::Vsock {
            uds: uds.clone(),
            port,
        }),
        (None, None) => Target::Down(format!(
            "{name}'s record has no guest agent endpoint (vsock_uds)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn rec(state: &str, uds: Option<&str>) -> VmRecord {
        banger_testkit::records::vm("box", state, Some("172.30.0.2"), uds.map(Path::new))
    }

    #[test]
    fn running_vm_with_socket() {
        assert_eq!(
            from_record(&rec("running", Some("/run/banger/box/v.sock")), 52),
            Target::Agent(Endpoint::Vsock {
                uds: "/run/banger/box/v.sock".into(),
                port: 52
            })
        );
        // A record from before the agent endpoint: its socket, the port given.
        let mut old = rec("running", Some("/x"));
        old.agent = None;
        assert_eq!(
            from_record(&old, 7),
            Target::Agent(Endpoint::Vsock {
                uds: "/x".into(),
                port: 7
            })
        );
        // A QEMU VM's serial port.
        let mut q = rec("running", None);
        q.agent = Some(Endpoint::Serial {
            uds: "/run/banger/box/agent.sock".into(),
        });
        assert_eq!(from_record(&q, 52), Target::Agent(q.agent.clone().unwrap()));
    }

    #[test]
    fn stopped_vm_is_down() {
        let Target::Down(why) = from_record(&rec("stopped", Some("/x")), 52) else {
            panic!()
        };
        assert!(why.contains("box is stopped"), "{why}");
    }

    #[test]
    fn missing_socket_is_down() {
        assert!(
            matches!(from_record(&rec("running", None), 52), Target::Down(w) if w.contains("vsock_uds"))
        );
    }

    #[test]
    fn dead_vmm_is_down() {
        // Our own pid with a start time that cannot be ours.
        let mut r = rec("running", Some("/x"));
        r.pid = Some(std::process::id());
        r.pid_start_time = Some(1);
        assert!(matches!(from_record(&r, 52), Target::Down(w) if w.contains("has exited")));
    }
}
