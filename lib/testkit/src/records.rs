//! Records as the tools write them, made from banger_lib's own types, so a
//! test's stand-in state can never drift from what the real writer makes.

use banger_lib::records::{Disks, ImageLine, VmRecord, VmState};
use std::path::Path;

/// A VM record for `name` in `state`, with an address and agent socket.
pub fn vm(name: &str, state: &str, ip: Option<&str>, uds: Option<&Path>) -> VmRecord {
    let state: VmState = serde_json::from_value(serde_json::json!(state)).expect("a VM state word");
    VmRecord {
        schema: banger_lib::state::SCHEMA,
        name: name.into(),
        image: "debian".into(),
        vmm: "qemu".into(),
        state,
        ip: ip.map(str::to_string),
        prefix: ip.map(|_| 24),
        gateway: ip.map(|_| "172.30.0.1".into()),
        dns: ip.map(|_| "172.30.0.1".into()),
        mac: ip.map(|_| "06:00:ac:1e:00:02".into()),
        tap: ip.map(|_| "bgr-0".into()),
        nat: false,
        isolated: true,
        vsock_cid: ip.map(|_| 1002),
        vsock_uds: uds.map(Path::to_path_buf),
        agent: uds.map(|u| banger_lib::agent::Endpoint::Vsock {
            uds: u.to_path_buf(),
            port: 52,
        }),
        pid: None,
        pid_start_time: None,
        vcpus: 1,
        memory_mib: 256,
        disk_size: 1 << 30,
        disks: Disks {
            rootfs: "/nonexistent/rootfs.ext4".into(),
            work: "/nonexistent/work.ext4".into(),
            rootfs_backing: None,
            work_backing: None,
        },
        kernel: "/nonexistent/vmlinux".into(),
        initrd: None,
        cmdline: String::new(),
        created_at: "2026-01-01T00:00:00Z".into(),
        started_at: None,
        no_jailer: false,
        init: Vec::new(),
        forwards: Vec::new(),
        suspend: None,
        from_snapshot: None,
        pending: None,
    }
}

/// Store `rec` where banger-vm keeps it under the XDG state dir `state`.
pub fn store_vm(state_home: &Path, rec: &VmRecord) {
    let p = state_home
        .join("banger/vms")
        .join(&rec.name)
        .join("vm.json");
    banger_lib::state::store(&p, rec).expect("writing a VM record");
}

/// What `banger-image show NAME` prints for an image of these files.
pub fn image_line(name: &str, rootfs: &Path, work_seed: Option<&Path>) -> ImageLine {
    ImageLine {
        schema: banger_lib::state::SCHEMA,
        name: name.into(),
        managed: false,
        rootfs: rootfs.to_path_buf(),
        work_seed: work_seed.map(Path::to_path_buf),
        kernel: None,
        initrd: None,
        size: std::fs::metadata(rootfs).map(|m| m.len()).unwrap_or(0),
        sha256: "0".repeat(64),
        created_at: "2026-01-01T00:00:00Z".into(),
        from: None,
        profile: None,
        packages: Vec::new(),
        default: name == "debian",
    }
}
