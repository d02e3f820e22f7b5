//! Starting a VM: from a spec (configure, then InstanceStart) or from a
//! snapshot (a fresh process loads it and resumes).

use crate::api::{Api, QUICK, SLOW};
use crate::jail::Jail;
use crate::launch::Launch;
use crate::{binary, record};
use banger_lib::records::{ProcessLine, RequestLine};
use banger_lib::vmspec::{DiskFormat, VmSpec, VmmRecord};
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

/// A fresh boot starts an empty console log (its .1 may hold the end of
/// an earlier one).
fn empty_console(log: &Path) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(log)
    {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(banger_lib::error::io(
            format!("emptying {}", log.display()),
            e,
        )),
        _ => Ok(()),
    }
}

/// vmm.log, for what a helper process has to say.
fn log_for_helpers(spec: &VmSpec) -> Option<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .append(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(spec.vmm_log.as_ref()?)
        .ok()
}

/// How this Firecracker runs the VM, beyond its spec: choices of this VMM
/// alone, which banger-qemu's spec has no use for.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Run Firecracker as root, without its jailer.
    pub no_jailer: bool,
    /// KVM dirty page tracking, which a Diff snapshot needs (it slows the
    /// guest's memory writes a little, so it is asked for).
    pub track_dirty_pages: bool,
}

/// The requests that configure a fresh Firecracker from a spec, in order.
pub fn config_requests(spec: &VmSpec, opts: Options) -> Vec<(String, Value)> {
    let mut machine = json!({"vcpu_count": spec.vcpus, "mem_size_mib": spec.mem_mib, "smt": false});
    if opts.track_dirty_pages {
        machine["track_dirty_pages"] = json!(true);
    }
    let mut r = vec![
        (
            "/logger".to_string(),
            json!({"level": "Info", "show_level": true, "show_log_origin": false}),
        ),
        (
            "/serial".to_string(),
            json!({"serial_out_path": spec.console_log}),
        ),
        ("/machine-config".to_string(), machine),
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

/// Firecracker takes raw disk files only: a qcow2 drive is refused before
/// anything runs.
pub fn check_raw(spec: &VmSpec) -> Result<()> {
    match spec.drives.iter().find(|d| d.format != DiskFormat::Raw) {
        Some(d) => Err(Error::usage(format!(
            "drive {} is {}; Firecracker takes raw disk files only",
            d.id,
            d.format.name()
        ))
        .with_hint(format!(
            "run it with banger-qemu, or make a raw copy: qemu-img convert -O raw {} DISK.ext4",
            d.path.display()
        ))),
        None => Ok(()),
    }
}

/// `start --print-argv`: the process `start` would run for this spec (the
/// jailer, or firecracker itself) and the API requests it would make, in
/// order, InstanceStart last, with the paths as that process sees them.
/// Nothing is made, linked or started.
pub fn print_argv(text: &str, opts: Options) -> Result<(ProcessLine, Vec<RequestLine>)> {
    let mut spec = VmSpec::parse(text)?;
    spec.resolve("api.sock");
    spec.validate()?;
    check_raw(&spec)?;
    let bin = binary::find()?;
    let jail = match crate::jail::find(opts.no_jailer)? {
        Some(jailer) => Some(Jail::new(jailer, &bin, &spec)?),
        None => None,
    };
    let fifo = banger_lib::console::fifo_path(&spec.id);
    let run_dir = banger_lib::vmspec::run_dir(&spec.id);
    let (process, api_spec) = match &jail {
        Some(j) => {
            let host = VmSpec {
                console_log: Some(fifo),
                ..j.host_spec(&spec)
            };
            let line = ProcessLine {
                process: "jailer".into(),
                program: j.jailer.clone(),
                args: j
                    .argv(&bin)
                    .iter()
                    .map(|a| a.to_string_lossy().into_owned())
                    .collect(),
                cwd: run_dir,
                user: None,
                groups: Vec::new(),
                fds: Vec::new(),
            };
            (line, j.inside(&host))
        }
        None => {
            let api = spec.api_socket.clone().expect("resolved");
            let line = ProcessLine {
                process: "firecracker".into(),
                program: bin.clone(),
                args: vec![
                    "--api-sock".into(),
                    api.to_string_lossy().into_owned(),
                    "--id".into(),
                    spec.id.clone(),
                ],
                cwd: run_dir,
                user: None,
                groups: Vec::new(),
                fds: Vec::new(),
            };
            let s = VmSpec {
                console_log: Some(fifo),
                ..spec.clone()
            };
            (line, s)
        }
    };
    let requests = config_requests(&api_spec, opts)
        .into_iter()
        .chain([(
            "/actions".to_string(),
            json!({"action_type": "InstanceStart"}),
        )])
        .map(|(path, body)| RequestLine {
            method: "PUT".into(),
            path,
            body,
        })
        .collect();
    Ok((process, requests))
}

/// `start`: the spec is the JSON text read from stdin. Under the jailer
/// when one is found (see jail.rs), unless `no_jailer`.
pub fn start(text: &str, opts: Options) -> Result<VmmRecord> {
    let mut spec = VmSpec::parse(text)?;
    spec.resolve("api.sock");
    spec.validate()?;
    check_raw(&spec)?;
    let bin = binary::find()?;
    let version = banger_lib::hosttools::version(&bin, "firecracker")?;
    binary::check_version(&bin, &version)?;
    let jail = match crate::jail::find(opts.no_jailer)? {
        Some(jailer) => Some(Jail::new(jailer, &bin, &spec)?),
        None => None,
    };
    if let Some(j) = &jail {
        spec = j.host_spec(&spec);
    }
    let _lock = record::VMM.lock(&spec.id)?;
    ensure_not_running(&spec.id)?;
    // Firecracker writes the console into a FIFO that a logger copies into
    // console.log under the cap (banger_lib::console); a jail links the
    // FIFO in (and hands it to the VMM user) like any file the VMM writes.
    let console_log = spec.console_log.clone().expect("resolved");
    let made_console = !console_log.exists();
    let forget_console = |e: Error| {
        if made_console {
            let _ = std::fs::remove_file(&console_log);
            if let Some(dir) = console_log.parent() {
                // Only when empty: the VM's own state dir stays.
                let _ = std::fs::remove_dir(dir);
            }
        }
        e
    };
    empty_console(&console_log)?;
    let fifo = banger_lib::console::fifo_path(&spec.id);
    let console = banger_lib::console::Logger::start(
        &fifo,
        &console_log,
        banger_lib::console::max_bytes(),
        log_for_helpers(&spec),
    )
    .map_err(forget_console)?;
    let vmm_spec = VmSpec {
        console_log: Some(fifo),
        ..spec.clone()
    };
    let mut launch = Launch::spawn(&vmm_spec, &bin, true, jail).map_err(forget_console)?;
    let booted = (|| -> Result<()> {
        let api = launch.wait_socket()?;
        for (path, body) in config_requests(&launch.api_spec, opts) {
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
    let rec = match booted {
        Ok(()) => launch.finish(&spec, version).map_err(forget_console)?,
        Err(e) => return Err(forget_console(launch.fail(e))),
    };
    console.watch(rec.pid, rec.pid_start_time);
    Ok(rec)
}

/// `snapshot load`: a new process for DIR/spec.json, loaded from
/// DIR/vmstate and DIR/memory, then resumed.
pub fn load(id: &str, dir: &Path, opts: Options) -> Result<VmmRecord> {
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
    let spec = VmSpec::parse(&text)?;
    if spec.id != id {
        return Err(Error::usage(format!(
            "the snapshot in {} is of VM {}, not {id}",
            dir.display(),
            spec.id
        )));
    }
    load_spec(spec, dir, opts)
}

/// `restore --from DIR`: the spec on stdin (the VM's own, as for start:
/// its TAP and vsock socket are this host's now), its state from DIR,
/// which `suspend` wrote.
pub fn restore(text: &str, dir: &Path, opts: Options) -> Result<VmmRecord> {
    if banger_lib::hosttools::is_root() {
        banger_lib::trust::check_dir("suspended state", None, dir)?;
    }
    load_spec(VmSpec::parse(text)?, dir, opts)
}

/// The jail a snapshot loads in: a vmstate names the drives as its VM
/// saw them, so a snapshot is loaded the way it was made. One written
/// under the jailer (its JAILED_MARK) names the chroot's /drive-ID and
/// loads only in a jail, where the spec's drives are linked at those
/// paths; one written without it names host paths, absent from a chroot,
/// and loads without the jailer as it always has.
fn load_jail(spec: &VmSpec, dir: &Path, bin: &Path, opts: Options) -> Result<Option<Jail>> {
    if !dir.join(crate::jail::JAILED_MARK).exists() {
        return Ok(None);
    }
    let made_jailed = || {
        format!(
            "{} was saved from a VM under the jailer: its vmstate names the drives inside a jail",
            dir.display()
        )
    };
    if opts.no_jailer {
        return Err(
            Error::usage(format!("{}; it loads only under the jailer", made_jailed()))
                .with_hint("drop --no-jailer"),
        );
    }
    match crate::jail::find(false)? {
        Some(jailer) => Ok(Some(Jail {
            state: Some(dir.to_path_buf()),
            ..Jail::new(jailer, bin, spec)?
        })),
        None => Err(Error::prereq(format!(
            "{}; there is no jailer to load it in",
            made_jailed()
        ))
        .with_hint(
            "run it as root with the jailer found (BANGER_JAILER, or the bundle's `jailer`)",
        )),
    }
}

/// A new Firecracker process for `spec`, loaded from DIR/vmstate and
/// DIR/memory (with the spec's TAP and vsock socket), its drives pointed
/// at the spec's files, then resumed.
fn load_spec(mut spec: VmSpec, dir: &Path, opts: Options) -> Result<VmmRecord> {
    let id = spec.id.clone();
    let id = id.as_str();
    // Where this host's sockets and logs go is this host's choice, not the
    // snapshot's (a path in it would be created and written as root).
    spec.api_socket = None;
    spec.vsock_uds = None;
    spec.vmm_log = None;
    spec.console_log = None;
    spec.resolve("api.sock");
    spec.validate()?;
    check_raw(&spec)?;
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
    let jail = load_jail(&spec, dir, &bin, opts)?;
    if let Some(j) = &jail {
        spec = j.host_spec(&spec);
    }
    let _lock = record::VMM.lock(id)?;
    ensure_not_running(id)?;
    let (vmstate, memory) = match &jail {
        Some(_) => (crate::jail::VMSTATE.into(), crate::jail::MEMORY.into()),
        None => (dir.join("vmstate"), dir.join("memory")),
    };
    let mut launch = Launch::spawn(&spec, &bin, false, jail)?;
    let loaded = (|| -> Result<()> {
        let api: Api = launch.wait_socket()?;
        // Paths as Firecracker sees them (in its chroot, under the jailer).
        let inside = &launch.api_spec;
        api.put(
            "/logger",
            json!({"level": "Info", "show_level": true, "show_log_origin": false}),
        )?;
        let mut body = json!({
            "snapshot_path": vmstate,
            "mem_backend": {"backend_type": "File", "backend_path": memory},
            // Resumed only once its drives are the spec's: the vmstate
            // names the files it was made with (a snapshot's disk copies,
            // or another VM's disks), which this guest must never write.
            "resume_vm": false,
        });
        if opts.track_dirty_pages {
            body["track_dirty_pages"] = json!(true);
        }
        if let Some(uds) = &inside.vsock_uds {
            body["vsock_override"] = json!({"uds_path": uds});
        }
        if let Some(tap) = &inside.tap {
            body["network_overrides"] = json!([{"iface_id": "eth0", "host_dev_name": tap}]);
        }
        api.call("PUT", "/snapshot/load", Some(&body), SLOW)?;
        for d in &inside.drives {
            api.call(
                "PATCH",
                &format!("/drives/{}", d.id),
                Some(&json!({"drive_id": d.id, "path_on_host": d.path})),
                QUICK,
            )?;
        }
        api.call("PATCH", "/vm", Some(&json!({"state": "Resumed"})), QUICK)?;
        Ok(())
    })();
    match loaded {
        Ok(()) => launch.finish(&spec, version),
        Err(e) => Err(launch.fail(e)),
    }
}
