//! What a VMM driver's `stop` prints (banger-fc and banger-qemu alike),
//! which banger-vm reads, and what `start --print-argv` prints. The record
//! a driver's `start` prints is `crate::vmspec::VmmRecord`.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// `start --print-argv`: one process the driver would start for a spec,
/// in the order it starts them, exactly as it would run it: a benchmark
/// runs the same command lines by hand to measure the driver's own cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessLine {
    /// What it is: `vhost-device-vsock`, `qemu`, `firecracker`.
    pub process: String,
    pub program: PathBuf,
    /// Its arguments, argv[1] on.
    pub args: Vec<String>,
    /// The directory it runs in (relative paths in args are from here).
    pub cwd: PathBuf,
    /// The user it runs as (the VMM user), or null: the caller's own.
    pub user: Option<String>,
    /// Supplementary groups it gets besides (under KVM: /dev/kvm's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<u32>,
    /// The descriptors it inherits, at the numbers its args name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fds: Vec<FdLine>,
}

/// One inherited descriptor of a `ProcessLine`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FdLine {
    pub fd: i32,
    /// `read`, `read-write`, `write` (the console FIFO's write end), `tap`
    /// (/dev/net/tun attached to the TAP named by `path` with IFF_TAP,
    /// IFF_NO_PI and IFF_VNET_HDR) or `listen` (a Unix socket bound at
    /// `path`, listening).
    pub open: String,
    pub path: PathBuf,
}

/// `banger-fc start --print-argv`: after the process, each API request
/// the driver would make on its socket, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestLine {
    pub method: String,
    pub path: String,
    pub body: serde_json::Value,
}

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

/// What a VMM driver's `snapshot create` prints (banger-qemu, banger-fc),
/// which banger-vm reads: the VM was paused, its state saved into `dir`
/// and its disks copied (each `--disk ID=DEST`), then it ran on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotLine {
    pub id: String,
    /// How the VM is after: `running`, or `paused` when it was paused before.
    pub state: String,
    /// The snapshot's dir: QEMU `state` and `spec.json`; Firecracker
    /// `vmstate`, `memory` and `spec.json`.
    pub dir: std::path::PathBuf,
    /// The saved state's size on disk (without the disk copies).
    pub bytes: u64,
    /// The disks copied while the VM was paused, in the order asked.
    #[serde(default)]
    pub disks: Vec<SnapshotDisk>,
    /// How long the guest was paused.
    pub paused_ms: u64,
    /// The whole snapshot, start to the VM running on.
    pub ms: u64,
    /// The VMM's `--version` line (its record's `vmm_version`).
    pub vmm_version: String,
}

/// One disk a `snapshot create` copied: the drive's id and the copy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotDisk {
    pub id: String,
    pub path: std::path::PathBuf,
    /// `reflink` or `sparse`.
    pub method: String,
}
