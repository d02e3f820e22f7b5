//! What a VMM driver's `stop` prints (banger-fc and banger-qemu alike),
//! which banger-vm reads. The record a driver's `start` prints is
//! `crate::vmspec::VmmRecord`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StopLine {
    pub id: String,
    pub stopped: bool,
    /// `agent` (the guest agent powered it off), `acpi` (QEMU's power
    /// button), `ctrl_alt_del` (Firecracker), `killed` (past the timeout,
    /// or --kill), `already_dead`, `not_running`.
    pub how: String,
    /// The guest shut down by itself: everything it wrote is on its disks.
    pub clean: bool,
    /// For a kill: the guest agent synced the disks first.
    #[serde(default)]
    pub synced: bool,
}
