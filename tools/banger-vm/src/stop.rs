//! Stopping a VM's VMM through its driver.

use crate::plumbing;
use banger_lib::records::StopLine;
use banger_lib::Result;

/// How a VMM driver is asked to stop a VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    /// The clean path (guest agent, then the VMM's own request) for up to
    /// this many seconds; then a sync through the agent and a kill.
    Clean(u64),
    /// Kill at once, no sync: for disks about to be removed.
    Kill,
}

/// Stop the VM's VMM through its driver. An already gone VMM is fine:
/// `how` is then `not_running`.
pub fn stop_vmm(tool: &str, name: &str, mode: StopMode) -> Result<StopLine> {
    let timeout;
    let args: Vec<&str> = match mode {
        StopMode::Clean(t) => {
            timeout = t.to_string();
            vec!["stop", name, "--timeout", &timeout]
        }
        StopMode::Kill => vec!["stop", name, "--kill"],
    };
    match plumbing::call_typed(tool, &args, None, false) {
        Err(e) if plumbing::gone(&e) => Ok(StopLine {
            id: name.into(),
            stopped: true,
            how: "not_running".into(),
            clean: true,
            synced: false,
        }),
        r => r,
    }
}
