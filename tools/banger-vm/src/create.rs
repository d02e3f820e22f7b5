//! `create`: image -> disks -> TAP and lease -> VMM -> DNS -> NAT -> waits.
//! Each step that makes something registers how to undo it first; a failed
//! step, or an interrupt, runs the undo list backwards.

use crate::cli::{CreateArgs, VmmChoice};
use crate::record::{self, Disks, State, VmRecord};
use crate::{boot, disks, interrupt, tools, vmm};
use banger_lib::{config::Bundle, names, proc, state, Error, Result};
use serde_json::{json, Map, Value};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

type UndoStep = Box<dyn FnOnce() -> Result<()>>;

/// What to undo, newest last.
#[derive(Default)]
pub struct Undo {
    steps: Vec<(&'static str, UndoStep)>,
}

impl Undo {
    pub fn push(&mut self, what: &'static str, f: impl FnOnce() -> Result<()> + 'static) {
        self.steps.push((what, Box::new(f)));
    }

    /// Run every undo step, newest first; a failing one is reported and
    /// the rest still run.
    pub fn run(self, vm: &str) {
        for (what, f) in self.steps.into_iter().rev() {
            if let Err(e) = f() {
                eprintln!("banger-vm: warning: {vm}: undoing {what} failed: {e}");
                if let Some(h) = e.hint {
                    eprintln!("hint: {h}");
                }
            }
        }
    }
}

/// The error of a failed step: its kind and hint, and which step it was.
pub fn step_error(vm: &str, verb: &str, step: &str, e: Error) -> Error {
    let why = if interrupt::requested() && !e.message.contains("interrupted") {
        format!("{e} (interrupted)")
    } else {
        e.message.clone()
    };
    let mut out = Error::new(e.kind, format!("{verb} {vm} failed at step {step}: {why}"));
    out.hint = e.hint;
    out
}

pub struct Timings {
    start: Instant,
    last: Instant,
    map: Map<String, Value>,
}

impl Timings {
    pub fn new() -> Timings {
        let now = Instant::now();
        Timings {
            start: now,
            last: now,
            map: Map::new(),
        }
    }
    pub fn mark(&mut self, step: &str) {
        let now = Instant::now();
        let ms = (now - self.last).as_secs_f64() * 1000.0;
        self.map
            .insert(step.into(), json!((ms * 10.0).round() / 10.0));
        self.last = now;
    }
    pub fn finish(mut self) -> Value {
        let ms = self.start.elapsed().as_secs_f64() * 1000.0;
        self.map
            .insert("total".into(), json!((ms * 10.0).round() / 10.0));
        Value::Object(self.map)
    }
}

pub fn progress(vm: &str, msg: &str) {
    if std::io::stderr().is_terminal() {
        eprintln!("{vm}: {msg}");
    }
}

struct Image {
    name: String,
    rootfs: PathBuf,
    work_seed: Option<PathBuf>,
    kernel: PathBuf,
    initrd: Option<PathBuf>,
}

pub fn create(a: &CreateArgs) -> Result<Value> {
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

    interrupt::install();
    let name = a.name.clone();
    let _lock = record::lock(&name, state::default_lock_timeout())?;
    if record::load(&name)?.is_some() {
        return Err(
            Error::conflict(format!("a VM named {name} already exists")).with_hint(format!(
                "pick another --name, or remove it: banger vm delete {name}"
            )),
        );
    }

    let mut undo = Undo::default();
    let mut t = Timings::new();
    let dir = record::vm_dir(&name);
    {
        let (dir, name) = (dir.clone(), name.clone());
        undo.push("disks and record", move || {
            let _ = std::fs::remove_dir_all(banger_lib::vmspec::run_dir(&name));
            match std::fs::remove_dir_all(&dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(banger_lib::error::io(
                    format!("removing {}", dir.display()),
                    e,
                )),
                _ => Ok(()),
            }
        });
    }
    // Leftovers of a create that was killed outright (SIGKILL) before it
    // wrote a record: nobody owns them, we hold the lock.
    clear_leftovers(&dir);

    let result = steps(
        a, &bundle, choice, vcpus, memory, disk_size, &mut undo, &mut t,
    );
    match result {
        Ok(rec) => {
            let mut v = rec.view();
            if a.timings {
                v["timings_ms"] = t.finish();
            }
            Ok(v)
        }
        Err((step, e)) => {
            if matches!(step, "vmm start" | "healthy" | "ssh") {
                boot::show_console_tail(&name);
            }
            let err = step_error(&name, "create", step, e);
            progress(&name, "undoing");
            undo.run(&name);
            Err(err)
        }
    }
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

type StepResult<T> = std::result::Result<T, (&'static str, Error)>;

fn at<T>(step: &'static str, r: Result<T>) -> StepResult<T> {
    r.map_err(|e| (step, e))
}

#[allow(clippy::too_many_arguments)]
fn steps(
    a: &CreateArgs,
    bundle: &Bundle,
    choice: VmmChoice,
    vcpus: u32,
    memory: u32,
    disk_size: u64,
    undo: &mut Undo,
    t: &mut Timings,
) -> StepResult<VmRecord> {
    let name = a.name.as_str();
    progress(name, "image");
    at("image", interrupt::check())?;
    let image = at("image", image(a.image.as_deref(), bundle))?;
    let vmm = at("image", vmm::pick(choice, bundle))?;
    if let Some(seed) = &image.work_seed {
        at("image", disks::check_room(seed, disk_size))?;
    }
    t.mark("image");

    progress(name, "disks");
    at("disks", interrupt::check())?;
    let dir = record::vm_dir(name);
    let d = Disks {
        rootfs: dir.join("rootfs.ext4"),
        work: dir.join("work.ext4"),
    };
    at("disks", disks::copy(&image.rootfs, &d.rootfs))?;
    match &image.work_seed {
        Some(seed) => {
            at("disks", disks::copy(seed, &d.work))?;
            at("disks", disks::grow(&d.work, disk_size))?;
        }
        None => at("disks", disks::make_empty(&d.work, disk_size))?,
    }
    let mut rec = VmRecord {
        schema: state::SCHEMA,
        name: name.to_string(),
        image: image.name.clone(),
        vmm: vmm.clone(),
        state: State::Created,
        ip: None,
        prefix: None,
        gateway: None,
        dns: None,
        mac: None,
        tap: None,
        nat: a.nat,
        vsock_cid: None,
        vsock_uds: None,
        pid: None,
        pid_start_time: None,
        vcpus,
        memory_mib: memory,
        disk_size,
        disks: d,
        kernel: image.kernel.clone(),
        initrd: image.initrd.clone(),
        cmdline: String::new(),
        created_at: proc::now_rfc3339(),
        started_at: None,
    };
    at("disks", record::store(&rec))?;
    t.mark("disks");

    progress(name, "network");
    at("tap", interrupt::check())?;
    // banger-net undoes its own half-made acquire; there is only something
    // to give back once it succeeded.
    at("tap", boot::acquire_tap(&mut rec))?;
    {
        let n = name.to_string();
        undo.push("TAP and lease", move || {
            tools::run_gone_ok("banger-net", &["tap", "release", "--vm", &n])
        });
    }
    at("tap", record::store(&rec))?;
    t.mark("tap");

    if a.no_start {
        if a.nat {
            at("nat", interrupt::check())?;
            at("nat", nat_enable(name))?;
            push_nat_undo(undo, name);
        }
        at("nat", interrupt::check())?;
        return Ok(rec);
    }

    progress(name, &format!("starting {vmm}"));
    at("vmm start", interrupt::check())?;
    {
        // The disks go with the undo: no need to shut the guest down.
        let (n, tool) = (name.to_string(), vmm::tool(&vmm));
        undo.push("VMM process", move || {
            boot::stop_vmm(tool, &n, boot::StopMode::Kill).map(drop)
        });
    }
    at("vmm start", boot::start_vmm(&mut rec))?;
    t.mark("vmm_start");

    boot::dns_ensure(name);
    t.mark("dns");

    if a.nat {
        at("nat", interrupt::check())?;
        at("nat", nat_enable(name))?;
        push_nat_undo(undo, name);
    }
    t.mark("nat");

    if !a.no_wait {
        boot::wait_ready(&rec, a.timeout, t)?;
    }
    at("done", interrupt::check())?;
    Ok(rec)
}

/// `banger-net nat enable --vm NAME`, with a hint in banger-vm's terms:
/// banger-vm has no --uplink, the config file does.
pub fn nat_enable(name: &str) -> Result<()> {
    tools::run("banger-net", &["nat", "enable", "--vm", name]).map_err(|mut e| {
        if e.hint.as_deref().is_some_and(|h| h.contains("--uplink")) {
            e.hint = Some(format!(
                "set \"uplink\" (the interface that reaches the outside, see `ip route`) in {}",
                banger_lib::paths::config_dir()
                    .join("config.json")
                    .display()
            ));
        }
        e
    })
}

fn push_nat_undo(undo: &mut Undo, name: &str) {
    let n = name.to_string();
    undo.push("NAT element", move || {
        tools::run_gone_ok("banger-net", &["nat", "disable", "--vm", &n])
    });
}

/// The image's record: `banger-image show NAME`, or `banger-image default`
/// (the user's chosen default) when no name was given.
fn image(name: Option<&str>, bundle: &Bundle) -> Result<Image> {
    let v = match name {
        Some(n) => tools::call_one("banger-image", &["show", n], None, false)?,
        None => tools::call_one("banger-image", &["default"], None, false)?,
    };
    let name = name.unwrap_or(&bundle.default_image);
    let path = |key: &str| -> Option<PathBuf> {
        v.get(key)
            .and_then(|p| p.as_str())
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
    };
    let rootfs = path("rootfs")
        .ok_or_else(|| Error::failed(format!("banger-image show {name} gave no rootfs")))?;
    let kernel = path("kernel").unwrap_or_else(|| bundle.path(&bundle.kernel));
    banger_lib::paths::require_file("the guest kernel", &kernel, banger_lib::Kind::Prereq)
        .map_err(|e| {
            e.with_hint(
            "build the runtime bundle: make runtime-local (or register the image with --kernel)",
        )
        })?;
    let initrd = path("initrd").or_else(|| {
        let p = bundle.path(&bundle.initrd);
        p.exists().then_some(p)
    });
    if let Some(i) = &initrd {
        banger_lib::paths::require_file("the initrd", i, banger_lib::Kind::Prereq)
            .map_err(|e| e.with_hint("build the runtime bundle: make runtime-local"))?;
    }
    Ok(Image {
        name: v
            .get("name")
            .and_then(|n| n.as_str())
            .unwrap_or(name)
            .to_string(),
        rootfs,
        work_seed: path("work_seed"),
        kernel,
        initrd,
    })
}
