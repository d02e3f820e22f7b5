//! The files of a Firecracker VM in RUNTIME/ID beside the record that
//! banger_lib::vmm keeps.

use banger_lib::vmm::Driver;
use banger_lib::vmspec::{run_dir, VmmRecord};
use std::path::PathBuf;

pub const VMM: Driver = Driver {
    tool: "banger-fc",
    process: "firecracker",
};

/// The resolved spec a VM was started with, kept for `snapshot create`.
pub fn spec_path(id: &str) -> PathBuf {
    run_dir(id).join("spec.json")
}

/// Remove the sockets, spec, jail and record of a VM whose process is
/// gone, and its runtime dir when nothing else is left in it.
pub fn remove_leftovers(id: &str, rec: Option<&VmmRecord>) {
    // A jail's sockets are inside it: the jail goes first.
    crate::jail::remove_for(id);
    VMM.remove_leftovers(id, rec, &[spec_path(id)]);
}
