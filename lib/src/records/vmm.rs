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

/// What a VMM driver's `suspend` prints (banger-qemu, banger-fc), which
/// banger-vm reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuspendLine {
    pub id: String,
    /// `suspended`.
    pub state: String,
    /// The saved state (QEMU: one file; Firecracker: the vmstate file,
    /// with its `memory` file beside it).
    pub file: std::path::PathBuf,
    /// The saved state's size on disk, all files together.
    pub bytes: u64,
    /// How long the suspend took, pause to VMM gone.
    pub ms: u64,
    /// The VMM's `--version` line (its record's `vmm_version`).
    pub vmm_version: String,
}
