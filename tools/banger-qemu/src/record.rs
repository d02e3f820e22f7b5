//! The files of a QEMU VM in RUNTIME/ID beside the record that
//! banger_lib::vmm keeps, and the vhost-device-vsock helper that VMs
//! started by an older banger-qemu may still have.

use banger_lib::vmm::Driver;
use banger_lib::vmspec::{run_dir, VmmRecord};
use banger_lib::{Error, Result};
use std::path::PathBuf;

pub const VMM: Driver = Driver {
    tool: "banger-qemu",
    process: "qemu",
};

/// QEMU's pid file.
pub fn pid_file(id: &str) -> PathBuf {
    run_dir(id).join("qemu.pid")
}

/// The one directory the unprivileged QEMU may write: its working
/// directory. Owned by the VMM user; nothing root reads is left in it.
pub fn vmm_dir(id: &str) -> PathBuf {
    run_dir(id).join("vmm")
}

/// The host side of the guest agent's virtio-serial port: a socket
/// banger-qemu binds and hands QEMU.
pub fn agent_socket(id: &str) -> PathBuf {
    run_dir(id).join("agent.sock")
}

/// The resolved spec a VM was started with, kept for `snapshot create`.
pub fn spec_path(id: &str) -> PathBuf {
    run_dir(id).join("spec.json")
}

/// Whether the record's vhost-device-vsock is still running.
pub fn helper_alive(rec: &VmmRecord) -> Option<bool> {
    match (rec.helper_pid, rec.helper_pid_start_time) {
        (Some(pid), Some(start)) => Some(banger_lib::proc::is_alive(pid, start)),
        _ => None,
    }
}

/// End the helper of a VM whose QEMU is gone (it outlives QEMU).
pub fn end_helper(rec: &VmmRecord) -> Result<()> {
    if let (Some(pid), Some(start)) = (rec.helper_pid, rec.helper_pid_start_time) {
        if banger_lib::proc::terminate(pid, start).is_none() {
            return Err(Error::failed(format!(
                "vhost-device-vsock pid {pid} of VM {} survived SIGKILL",
                rec.id
            )));
        }
    }
    Ok(())
}

/// Remove the sockets, pid file and record of a VM whose processes are
/// gone, and its runtime dir when nothing else is left in it.
pub fn remove_leftovers(id: &str, rec: Option<&VmmRecord>) {
    // Whatever the VMM user left in its directory; remove_dir_all does not
    // follow symlinks it finds there.
    let _ = std::fs::remove_dir_all(vmm_dir(id));
    VMM.remove_leftovers(id, rec, &[agent_socket(id), pid_file(id), spec_path(id)]);
}
