//! `create`: check the input, look up the image, then run the steps (disks,
//! then the boot steps start uses too) under the VM's lock; a failed step
//! or an interrupt undoes everything this create made.

use crate::cli::{CreateArgs, VmmChoice};
use crate::record::{self, State, VmLine, VmRecord};
use crate::steps::{self, Mode, Run, Step};
use crate::{disks, plumbing, vmm};
use banger_lib::{config::Bundle, interrupt, names, proc, state, Error, Result};
use serde::Serialize;
use std::path::Path;

/// What create prints: the record, and with `--timings` the step times.
#[derive(Serialize)]
pub struct Created {
    #[serde(flatten)]
    pub line: VmLine,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timings_ms: Option<serde_json::Value>,
}

pub fn create(a: &CreateArgs) -> Result<Created> {
    if let Some(from) = &a.from {
        return crate::clone::create(a, from);
    }
    names::validate("VM", &a.name)?;
    let bundle = Bundle::load()?;
    let vcpus = a.vcpus.unwrap_or(bundle.vcpus);
    let memory = a.memory.unwrap_or(bundle.memory_mib);
    crate::lifecycle::check_size(vcpus, memory, "create")?;
    let disk_size = disks::parse_size(a.disk.as_deref().unwrap_or(&bundle.disk_size))?;
    let choice = match a.vmm {
        Some(c) => c,
        None => VmmChoice::parse(&bundle.vmm).unwrap_or(VmmChoice::Auto),
    };
    if let Some(i) = &a.image {
        names::validate("image", i)?;
    }
    let scripts = crate::init::load(&a.init)?;
    let env = crate::init::parse_env(&a.env)?;

    let name = a.name.clone();
    let _lock = claim(&name)?;

    let mut timings = steps::Timings::new();
    steps::progress(&name, "image");
    // Nothing but the lock file is made yet: a failure here removes it.
    let undo_lock = |e: Error| {
        let _ = std::fs::remove_dir_all(record::vm_dir(&name));
        e
    };
    let image = plumbing::image(a.image.as_deref())
        .and_then(|i| {
            if let Some(seed) = &i.work_seed {
                disks::check_room(seed, disk_size)?;
            }
            Ok(i)
        })
        .map_err(|e| undo_lock(steps::step_error(&name, "create", "image", e)))?;
    let kernel = image
        .kernel
        .clone()
        .unwrap_or_else(|| bundle.path(&bundle.kernel));
    let initrd = image.initrd.clone().or_else(|| {
        let p = bundle.path(&bundle.initrd);
        p.exists().then_some(p)
    });
    let vmm = vmm::pick(choice, &bundle)
        .and_then(|v| check_boot_files(&kernel, initrd.as_deref()).map(|_| v))
        .map_err(|e| undo_lock(steps::step_error(&name, "create", "image", e)))?;
    timings.mark("image");
    if a.no_jailer && vmm != "firecracker" {
        return Err(undo_lock(
            Error::usage(format!(
                "--no-jailer is for Firecracker; VM {name} would run under {vmm}"
            ))
            .with_hint("drop --no-jailer, or pass --vmm firecracker"),
        ));
    }

    let dir = record::vm_dir(&name);
    let disks = disks::plan(&dir, &image, &vmm);
    let mut rec = creating(&name, &image.name, &vmm, disks, kernel, initrd);
    rec.nat = a.nat;
    rec.isolated = !a.no_isolate;
    (rec.vcpus, rec.memory_mib, rec.disk_size) = (vcpus, memory, disk_size);
    rec.no_jailer = a.no_jailer;
    let mut run = Run::new(rec, Mode::Create, a.timeout, bundle.agent_port);
    run.timings = timings;
    run.image = Some(image);
    run.init = scripts;
    run.env = env;
    run.keep_failed = a.keep_failed;
    let mut list = vec![Step::Disks];
    if a.no_start {
        list.push(Step::Tap);
        if a.nat {
            list.push(Step::Nat);
        }
    } else {
        list.extend(steps::boot(a.nat, false, !a.no_wait));
        if !run.init.is_empty() {
            list.push(Step::Init);
        }
    }
    run.run(&list)?;
    finish(run, a.timings)
}

/// The new VM's name, locked for this create: a VM of that name is exit 5,
/// and what a create killed before its record left under it goes (nobody
/// owns it, we hold the lock). Ctrl-C from here on undoes the create.
pub fn claim(name: &str) -> Result<state::Lock> {
    interrupt::install();
    let lock = record::lock(name, state::default_lock_timeout())?;
    if record::load(name)?.is_some() {
        return Err(
            Error::conflict(format!("a VM named {name} already exists")).with_hint(format!(
                "pick another --name, or remove it: banger vm delete {name}"
            )),
        );
    }
    clear_leftovers(&record::vm_dir(name));
    Ok(lock)
}

/// A new VM's record before its first step: `creating` (a create killed
/// before its last step is found by gc), nothing leased or running yet.
pub fn creating(
    name: &str,
    image: &str,
    vmm: &str,
    disks: banger_lib::records::Disks,
    kernel: std::path::PathBuf,
    initrd: Option<std::path::PathBuf>,
) -> VmRecord {
    VmRecord {
        schema: state::SCHEMA,
        name: name.to_string(),
        image: image.to_string(),
        vmm: vmm.to_string(),
        state: State::Creating,
        ip: None,
        prefix: None,
        gateway: None,
        dns: None,
        mac: None,
        tap: None,
        nat: false,
        isolated: true,
        vsock_cid: None,
        vsock_uds: None,
        agent: None,
        pid: None,
        pid_start_time: None,
        vcpus: 1,
        memory_mib: 0,
        disk_size: 0,
        disks,
        kernel,
        initrd,
        cmdline: String::new(),
        created_at: proc::now_rfc3339(),
        started_at: None,
        no_jailer: false,
        init: Vec::new(),
        forwards: Vec::new(),
        suspend: None,
        from_snapshot: None,
        pending: None,
    }
}

/// What a create prints once its steps ran; with --keep-failed and a
/// failed init script, the record and then that failure.
pub fn finish(mut run: Run, timings: bool) -> Result<Created> {
    if let Some(e) = run.kept_failure.take() {
        // --keep-failed: the VM stays, as the failed script left it.
        banger_lib::output::emit(&record::line(&run.rec));
        return Err(e.with_hint(format!(
            "the VM is kept: banger vm logs --init {0}; banger vm ssh {0}",
            run.rec.name
        )));
    }
    if run.rec.state == State::Creating {
        run.rec.state = State::Created;
        record::store(&run.rec)?;
    }
    Ok(Created {
        line: record::line(&run.rec),
        timings_ms: timings.then(|| run.timings.finish()),
    })
}

/// The kernel (and initrd) a VM boots must be files; say which is wrong.
fn check_boot_files(kernel: &Path, initrd: Option<&Path>) -> Result<()> {
    use banger_lib::{paths::require_file, Kind};
    require_file("the guest kernel", kernel, Kind::Prereq).map_err(|e| {
        e.with_hint(
            "build the runtime bundle: make runtime-local (or register the image with --kernel)",
        )
    })?;
    if let Some(i) = initrd {
        require_file("the initrd", i, Kind::Prereq)
            .map_err(|e| e.with_hint("build the runtime bundle: make runtime-local"))?;
    }
    Ok(())
}

fn clear_leftovers(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let n = e.file_name();
        if n.to_string_lossy().ends_with(".lock") {
            continue;
        }
        let _ = std::fs::remove_file(e.path());
    }
}
