//! The VM record (`vms/NAME/vm.json`): written only by banger-vm, under the
//! VM's lock; every other tool reads it through [`view`], never by parsing
//! the file itself.

use crate::{paths, proc, state, Error, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VmState {
    /// A create is under way (written before its first disk is made); one
    /// left so by a killed create is found by `banger-vm gc`.
    Creating,
    /// Made, never booted (`create --no-start`).
    Created,
    Running,
    Stopped,
    /// Its VMM process died without a stop.
    Crashed,
    /// `vm suspend`: memory and device state saved in the VM's dir (see
    /// `VmRecord::suspend`), no VMM process; `vm resume` (or `start`)
    /// goes on where it was. Older readers do not know this state.
    Suspended,
}

impl VmState {
    pub fn word(self) -> &'static str {
        match self {
            VmState::Creating => "being created",
            VmState::Created => "created (never started)",
            VmState::Running => "running",
            VmState::Stopped => "stopped",
            VmState::Crashed => "crashed",
            VmState::Suspended => "suspended",
        }
    }
}

/// A VM's own disks. A disk with a backing file is a qcow2 overlay of
/// that file (QEMU VMs): the overlay holds only what the guest wrote, and
/// the backing file, one of the image's, is read and never written. It
/// must outlive the VM: `banger-image rm` refuses while a VM reads it. A
/// disk without one is a raw file of its own (Firecracker VMs, and VMs
/// made before overlays).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Disks {
    pub rootfs: PathBuf,
    pub work: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootfs_backing: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_backing: Option<PathBuf>,
}

impl Disks {
    /// The image files these disks read through (empty for raw disks).
    pub fn backing_files(&self) -> Vec<&std::path::Path> {
        [&self.rootfs_backing, &self.work_backing]
            .into_iter()
            .flatten()
            .map(PathBuf::as_path)
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmRecord {
    pub schema: u64,
    pub name: String,
    pub image: String,
    pub vmm: String,
    pub state: VmState,
    pub ip: Option<String>,
    pub prefix: Option<u8>,
    pub gateway: Option<String>,
    pub dns: Option<String>,
    pub mac: Option<String>,
    pub tap: Option<String>,
    pub nat: bool,
    /// Cut off from the other guests (the default); `false` lets it reach
    /// the other VMs that are not isolated either. Records from before
    /// isolation existed read as isolated.
    #[serde(default = "isolated_default")]
    pub isolated: bool,
    pub vsock_cid: Option<u32>,
    pub vsock_uds: Option<PathBuf>,
    /// Where the guest agent is reached, as the VMM driver said at start.
    #[serde(default)]
    pub agent: Option<crate::agent::Endpoint>,
    pub pid: Option<u32>,
    pub pid_start_time: Option<u64>,
    pub vcpus: u32,
    pub memory_mib: u32,
    pub disk_size: u64,
    pub disks: Disks,
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    pub cmdline: String,
    pub created_at: String,
    pub started_at: Option<String>,
    /// Firecracker runs without its jailer, as root (`create --no-jailer`,
    /// for debugging); left out when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_jailer: bool,
    /// The `--init` scripts that ran at create, in order, with their exit
    /// codes (the first non-zero one is the last that ran).
    #[serde(default)]
    pub init: Vec<InitRun>,
    /// Host ports forwarded to the guest (`vm forward`): in force while it
    /// runs, put back by `start`, taken away by `stop` and `delete`.
    /// Records from before forwards existed read as none.
    #[serde(default)]
    pub forwards: Vec<PortForward>,
    /// While suspended: where the saved state is and what it needs to be
    /// loaded again. Left out otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<SuspendInfo>,
    /// The golden snapshot it was cloned from (`create --from`); left out
    /// for VMs made from an image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_snapshot: Option<String>,
    /// A suspend, resume or snapshot under way (left out otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<Pending>,
}

/// A suspend, resume or snapshot under way: written before the driver
/// touches the guest and cleared by the store that says how it ended.
/// One a killed command left is finished by the next command on the VM
/// (banger-vm's pending.rs): the guest is never left paused, a saved
/// state is never loaded twice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, tag = "op", rename_all = "lowercase")]
pub enum Pending {
    /// The guest is being saved to `info.path`; `info` is what the record
    /// keeps once it is (`bytes` then filled in).
    Suspend { info: SuspendInfo },
    /// The suspended guest is being restored from its saved state.
    Resume,
    /// A golden snapshot of it is being taken.
    Snapshot { snapshot: String },
}

/// A suspended VM's saved state and what it was saved from: a resume
/// refuses another VMM binary, kernel or machine shape (the VMM would
/// refuse the state or run a guest that hangs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuspendInfo {
    /// The state: QEMU's one file, Firecracker's directory.
    pub path: PathBuf,
    /// The VMM's `--version` line at suspend.
    pub vmm_version: String,
    /// The kernel file's size and modification time (seconds) at suspend.
    pub kernel_size: u64,
    pub kernel_mtime: i64,
    pub vcpus: u32,
    pub memory_mib: u32,
    /// The state's size on disk.
    pub bytes: u64,
    /// The guest agent synced the guest's disks just before the save.
    #[serde(default)]
    pub synced: bool,
    pub suspended_at: String,
}

fn isolated_default() -> bool {
    true
}

/// One first-boot script that ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitRun {
    /// `NN-FILE`: its place in the order and its file name.
    pub name: String,
    pub exit: i32,
}

/// A port forward a VM keeps in its record: `address:host_port` on the
/// host to `guest_port` in the guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortForward {
    pub proto: super::net::Proto,
    pub address: std::net::Ipv4Addr,
    pub host_port: u16,
    pub guest_port: u16,
}

/// What `vm forward` prints: one of a VM's forwards, and whether it is in
/// force (the VM runs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardLine {
    pub vm: String,
    pub proto: super::net::Proto,
    pub address: std::net::Ipv4Addr,
    pub host_port: u16,
    pub guest_port: u16,
    pub active: bool,
}

impl VmRecord {
    /// Whether the recorded VMM process is this very process still.
    pub fn vmm_alive(&self) -> bool {
        match (self.pid, self.pid_start_time) {
            (Some(pid), Some(st)) => proc::is_alive(pid, st),
            _ => false,
        }
    }

    /// Seconds the VMM has run, while running.
    pub fn uptime_s(&self) -> Option<u64> {
        match (self.state, self.pid) {
            (VmState::Running, Some(pid)) => proc::uptime_s(pid),
            _ => None,
        }
    }
}

/// What `vm list` and `vm show` print: the record and its uptime. Read
/// as strictly as the record (serde's flatten cannot refuse unknown
/// fields, so the line is taken apart by hand).
#[derive(Debug, Clone, PartialEq)]
pub struct VmLine {
    pub record: VmRecord,
    pub uptime_s: Option<u64>,
}

impl Serialize for VmLine {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut v = serde_json::to_value(&self.record).map_err(serde::ser::Error::custom)?;
        v["uptime_s"] = self.uptime_s.into();
        v.serialize(s)
    }
}

impl<'de> Deserialize<'de> for VmLine {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let mut map = serde_json::Map::deserialize(d)?;
        let uptime_s = match map.remove("uptime_s") {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => Some(serde_json::from_value(v).map_err(serde::de::Error::custom)?),
        };
        let record = serde_json::from_value(serde_json::Value::Object(map))
            .map_err(serde::de::Error::custom)?;
        Ok(VmLine { record, uptime_s })
    }
}

pub fn dir(name: &str) -> PathBuf {
    paths::vms_dir().join(name)
}

pub fn path(name: &str) -> PathBuf {
    dir(name).join("vm.json")
}

pub fn not_found(name: &str) -> Error {
    Error::not_found(format!("no VM named {name}")).with_hint("list the VMs with: banger vm list")
}

/// The read-only view other tools have of a VM: its record, read under a
/// shared lock when no banger-vm command holds the VM, else the record as
/// last committed (records are replaced by rename, so a read never sees a
/// torn one). Exit 3 when there is no such VM.
pub fn view(name: &str) -> Result<VmRecord> {
    crate::names::validate("VM", name)?;
    crate::paths::refuse_symlink(&dir(name))?;
    let p = path(name);
    if !p.exists() {
        return Err(not_found(name));
    }
    let _shared = state::Lock::try_shared(&state::lock_path(&p), Duration::from_millis(200));
    state::load(&p)?.ok_or_else(|| not_found(name))
}

/// Every VM name with a record, sorted.
pub fn names() -> Result<Vec<String>> {
    let dir = paths::vms_dir();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(crate::error::io(format!("reading {}", dir.display()), e)),
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter(|e| e.path().join("vm.json").is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record as banger wrote it before isolation, the agent endpoint,
    /// init scripts and port forwards existed.
    const OLD: &str = r#"{"schema":1,"name":"box","image":"debian","vmm":"qemu",
        "state":"stopped","ip":"172.30.0.2","prefix":24,"gateway":"172.30.0.1",
        "dns":"172.30.0.1","mac":"02:00:00:00:00:01","tap":"bgr-0","nat":false,
        "vsock_cid":1002,"vsock_uds":null,"pid":null,"pid_start_time":null,
        "vcpus":1,"memory_mib":512,"disk_size":1073741824,
        "disks":{"rootfs":"/r","work":"/w"},"kernel":"/k","initrd":null,
        "cmdline":"console=ttyS0","created_at":"2026-01-01T00:00:00Z","started_at":null}"#;

    #[test]
    fn old_records_read_with_defaults_and_forwards_round_trip() {
        let mut r: VmRecord = serde_json::from_str(OLD).unwrap();
        assert!(r.forwards.is_empty() && r.init.is_empty() && r.isolated);
        r.forwards.push(PortForward {
            proto: super::super::net::Proto::Udp,
            address: std::net::Ipv4Addr::LOCALHOST,
            host_port: 5353,
            guest_port: 53,
        });
        let text = serde_json::to_string(&r).unwrap();
        assert!(
            text.contains(r#""forwards":[{"proto":"udp","address":"127.0.0.1","host_port":5353,"guest_port":53}]"#),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<VmRecord>(&text).unwrap(), r);
        // Strict: an unknown key in a forward is refused.
        let bad = text.replace(r#""guest_port":53}"#, r#""guest_port":53,"x":1}"#);
        assert!(serde_json::from_str::<VmRecord>(&bad).is_err());
    }
}
