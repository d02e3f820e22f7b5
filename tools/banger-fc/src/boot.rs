//! Starting a VM: from a spec (configure, then InstanceStart) or from a
//! snapshot (a fresh process loads it and resumes).

use crate::api::{Api, SLOW};
use crate::jail::Jail;
use crate::launch::Launch;
use crate::{binary, record};
use banger_lib::vmspec::{VmSpec, VmmRecord};
use banger_lib::{Error, Result};
use serde_json::{json, Value};
use std::path::Path;

/// Refuse when the VM runs; clear what a dead one left behind.
fn ensure_not_running(id: &str) -> Result<()> {
    if let Some(r) = record::VMM.load(id)? {
        if r.is_alive() {
            return Err(record::VMM.already_running(id, r.pid));
        }
        record::remove_leftovers(id, Some(&r));
    }
    Ok(())
}

/// The requests that configure a fresh Firecracker from a spec, in order.
pub fn config_requests(spec: &VmSpec) -> Vec<(String, Value)> {
    let mut r = vec![
        (
            "/logger".to_string(),
            json!({"level": "Info", "show_level": true, "show_log_origin": false}),
        ),
        (
            "/serial".to_string(),
            json!({"serial_out_path": spec.console_log}),
        ),
        (
            "/machine-config".to_string(),
            json!({"vcpu_count": spec.vcpus, "mem_size_mib": spec.mem_mib, "smt": false}),
        ),
    ];
    // Firecracker appends root=/dev/vda itself for the root drive.
    let mut boot = json!({"kernel_image_path": spec.kernel, "boot_args": spec.cmdline.trim()});
    if let Some(i) = &spec.initrd {
        boot["initrd_path"] = json!(i);
    }
    r.push(("/boot-source".into(), boot));
    for d in &spec.drives {
        r.push((
            format!("/drives/{}", d.id),
            json!({"drive_id": d.id, "path_on_host": d.path, "is_root_device": d.root,
                   "is_read_only": d.read_only}),
        ));
    }
    if let Some(tap) = &spec.tap {
        let mut net = json!({"iface_id": "eth0", "host_dev_name": tap});
        if let Some(mac) = &spec.mac {
            net["guest_mac"] = json!(mac);
        }
        r.push(("/network-interfaces/eth0".into(), net));
    }
    if let (Some(cid), Some(uds)) = (spec.vsock_cid, &spec.vsock_uds) {
        r.push(("/vsock".into(), json!({"guest_cid": cid, "uds_path": uds})));
    }
    r
}

/// `start`: the spec is the JSON text read from stdin. Under the jailer
/// when one is found (see jail.rs), unless `no_jailer`.
pub fn start(text: &str, no_jailer: bool) -> Result<VmmRecord> {
    let mut spec = VmSpec::parse(text)?;
    spec.resolve("api.sock");
    spec.validate()?;
    let bin = binary::find()?;
    let version = banger_lib::hosttools::version(&bin, "firecracker")?;
    binary::check_version(&bin, &version)?;
    let jail = match crate::jail::find(no_jailer)? {
        Some(jailer) => Some(Jail::new(jailer, &bin, &spec)?),
        None => None,
    };
    if let Some(j) = &jail {
        spec = j.host_spec(&spec);
    }
    let _lock = record::VMM.lock(&spec.id)?;
    ensure_not_running(&spec.id)?;
    let mut launch = Launch::spawn(&spec, &bin, true, jail)?;
    let booted = (|| -> Result<()> {
        let api = launch.wait_socket()?;
        for (path, body) in config_requests(&launch.api_spec) {
            api.put(&path, body)?;
        }
        api.call(
            "PUT",
            "/actions",
            Some(&json!({"action_type": "InstanceStart"})),
            SLOW,
        )?;
        Ok(())
    })();
    match booted {
        Ok(()) => launch.finish(&spec, version),
        Err(e) => Err(launch.fail(e)),
    }
}

/// `snapshot load`: a new process for DIR/spec.json, loaded from
/// DIR/vmstate and DIR/memory, then resumed.
pub fn load(id: &str, dir: &Path) -> Result<VmmRecord> {
    // Root loads only what root alone could have written: the spec names
    // the kernel and disks, and the memory file becomes the guest.
    if banger_lib::hosttools::is_root() {
        banger_lib::trust::check_dir("snapshot", None, dir)?;
    }
    let spec_path = dir.join("spec.json");
    let text = std::fs::read_to_string(&spec_path).map_err(|e| {
        banger_lib::error::io(format!("reading {}", spec_path.display()), e)
            .with_hint("give a directory written by `banger-fc snapshot create`")
    })?;
    let mut spec = VmSpec::parse(&text)?;
    if spec.id != id {
        return Err(Error::usage(format!(
            "the snapshot in {} is of VM {}, not {id}",
            dir.display(),
            spec.id
        )));
    }
    // Where this host's sockets and logs go is this host's choice, not the
    // snapshot's (a path in it would be created and written as root).
    spec.api_socket = None;
    spec.vsock_uds = None;
    spec.vmm_log = None;
    spec.console_log = None;
    spec.resolve("api.sock");
    spec.validate()?;
    for f in ["vmstate", "memory"] {
        if !dir.join(f).is_file() {
            return Err(Error::not_found(format!(
                "{} is missing",
                dir.join(f).display()
            )));
        }
    }
    let bin = binary::find()?;
    let version = banger_lib::hosttools::version(&bin, "firecracker")?;
    binary::check_version(&bin, &version)?;
    let _lock = record::VMM.lock(id)?;
    ensure_not_running(id)?;
    // Not under the jailer yet: the snapshot's paths are the host's.
    let mut launch = Launch::spawn(&spec, &bin, false, None)?;
    let loaded = (|| -> Result<()> {
        let api: Api = launch.wait_socket()?;
        api.put(
            "/logger",
            json!({"level": "Info", "show_level": true, "show_log_origin": false}),
        )?;
        let mut body = json!({
            "snapshot_path": dir.join("vmstate"),
            "mem_backend": {"backend_type": "File", "backend_path": dir.join("memory")},
            "resume_vm": true,
        });
        if let Some(uds) = &spec.vsock_uds {
            body["vsock_override"] = json!({"uds_path": uds});
        }
        if let Some(tap) = &spec.tap {
            body["network_overrides"] = json!([{"iface_id": "eth0", "host_dev_name": tap}]);
        }
        api.call("PUT", "/snapshot/load", Some(&body), SLOW)?;
        Ok(())
    })();
    match loaded {
        Ok(()) => launch.finish(&spec, version),
        Err(e) => Err(launch.fail(e)),
    }
}
