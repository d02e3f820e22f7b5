//! The steps that make a VM run, in one order for `create` and `start`,
//! and one way to undo them: each step that makes something records what
//! it made before the next step runs; a failed step, or an interrupt, undoes
//! the list backwards and names the step.

use crate::plumbing;
use crate::record::{self, State, VmRecord};
use crate::{disks, vmm};
use banger_lib::agent::Endpoint;
use banger_lib::interrupt;
use banger_lib::records::ImageLine;
use banger_lib::{proc, Error, Kind, Result};
use serde_json::{json, Map, Value};
use std::io::IsTerminal;
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The VM's own disks from the image's (create only).
    Disks,
    /// A TAP and a lease from banger-net.
    Tap,
    /// The VM's NAT element (only when the record says nat).
    Nat,
    /// The record's port forwards put in force (only when it has some).
    Forward,
    /// The VMM process, through its driver.
    Vmm,
    /// The .vm DNS server (a failure is only a warning).
    Dns,
    /// The guest agent answers.
    Healthy,
    /// A clone takes its own identity from its agent (create --from).
    Identity,
    /// The guest's ssh host keys, from its agent, pinned in its known_hosts.
    Pin,
    /// sshd answers.
    Ssh,
    /// The `--init` scripts ran, in order (create only).
    Init,
}

impl Step {
    /// The name errors and `--timings` use.
    pub fn name(self) -> &'static str {
        match self {
            Step::Disks => "disks",
            Step::Tap => "tap",
            Step::Nat => "nat",
            Step::Forward => "forward",
            Step::Vmm => "vmm start",
            Step::Dns => "dns",
            Step::Healthy => "healthy",
            Step::Identity => "identity",
            Step::Pin => "pin",
            Step::Ssh => "ssh",
            Step::Init => "init",
        }
    }

    /// What the progress line says while the step runs.
    fn doing(self) -> &'static str {
        match self {
            Step::Disks => "making the disks",
            Step::Tap => "leasing a TAP and an address",
            Step::Nat => "turning NAT on",
            Step::Forward => "putting its port forwards in force",
            Step::Vmm => "starting the VMM",
            Step::Dns => "starting the .vm DNS server",
            Step::Healthy => "waiting for the guest agent (the guest is booting)",
            Step::Identity => "giving the clone its own address, hostname, machine-id and keys",
            Step::Pin => "pinning the guest's ssh host keys",
            Step::Ssh => "waiting for sshd",
            Step::Init => "running the --init scripts",
        }
    }

    fn timing_key(self) -> &'static str {
        match self {
            Step::Vmm => "vmm_start",
            s => s.name(),
        }
    }

    /// Steps after which the guest console may say why it failed.
    fn shows_console(self) -> bool {
        matches!(
            self,
            Step::Vmm | Step::Healthy | Step::Identity | Step::Pin | Step::Ssh
        )
    }
}

/// The steps that boot a VM whose disks exist: NAT and port forwards are
/// in place before the guest runs (a taken host port fails the start
/// before a VMM is spent on it), DNS before anyone asks for NAME.vm.
pub fn boot(nat: bool, forwards: bool, wait: bool) -> Vec<Step> {
    let mut v = vec![Step::Tap];
    if nat {
        v.push(Step::Nat);
    }
    if forwards {
        v.push(Step::Forward);
    }
    v.extend([Step::Vmm, Step::Dns]);
    if wait {
        v.extend([Step::Healthy, Step::Pin, Step::Ssh]);
    }
    v
}

/// Whose the things a run makes are. A create owns everything it makes,
/// so undoing removes it all; a start boots a VM that keeps its disks,
/// lease and NAT setting, so undoing only stops its VMM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Create,
    Start,
}

impl Mode {
    fn verb(self) -> &'static str {
        match self {
            Mode::Create => "create",
            Mode::Start => "start",
        }
    }
}

/// One thing to undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Undo {
    /// The VM's dir (disks, record) and its runtime dir.
    Dirs,
    Lease,
    Nat,
    /// The port forwards in force (a start's too: they go when it fails).
    Forwards,
    Vmm,
    /// The host keys pinned in its known_hosts.
    HostKeys,
}

/// One create or start of one VM.
pub struct Run {
    pub rec: VmRecord,
    /// The state before this run, for a start to go back to.
    initial: State,
    mode: Mode,
    made: Vec<Undo>,
    pub timings: Timings,
    /// For the disks step.
    pub image: Option<ImageLine>,
    /// Seconds each wait may take.
    pub timeout: u64,
    /// The guest agent's vsock port (bundle `agent_port`).
    pub agent_port: u32,
    /// The init step's scripts and their variables.
    pub init: Vec<crate::init::Script>,
    pub env: std::collections::BTreeMap<String, String>,
    /// A failed init script leaves the VM as it is; its error is here.
    pub keep_failed: bool,
    pub kept_failure: Option<Error>,
    /// A resume: the VMM step restores the VM from this saved state
    /// (removed once the VMM runs it) instead of booting it.
    pub restore: Option<std::path::PathBuf>,
    /// A clone (create --from): the disks step copies this snapshot's,
    /// the VMM step restores its state (which stays: it is the
    /// snapshot's) and the identity step gives the guest its own.
    pub snapshot: Option<banger_lib::records::snapshot::SnapshotRecord>,
    /// Held from the disks step until the VMM has loaded the snapshot's
    /// state: `vm snapshots rm` waits for it.
    snapshot_lock: Option<banger_lib::state::Lock>,
    /// The wait for sshd, started with the pin step (sshd answers only
    /// after the guest made the keys the pin step fetches, so the two
    /// overlap and neither's polling adds to the other's).
    ssh_wait: Option<Result<plumbing::Call>>,
    /// `dns ensure`, run beside the wait for the guest agent (the guest
    /// asks for no .vm name before its agent answers); finished after it.
    dns: Option<Result<plumbing::Call>>,
}

impl Run {
    pub fn new(rec: VmRecord, mode: Mode, timeout: u64, agent_port: u32) -> Run {
        Run {
            initial: rec.state,
            rec,
            mode,
            made: Vec::new(),
            timings: Timings::new(),
            image: None,
            timeout,
            agent_port,
            init: Vec::new(),
            env: Default::default(),
            keep_failed: false,
            kept_failure: None,
            restore: None,
            snapshot: None,
            snapshot_lock: None,
            ssh_wait: None,
            dns: None,
        }
    }

    /// Run `steps` in order. On failure (or Ctrl-C) undo what this run
    /// made, newest first, and return the error naming the step.
    pub fn run(&mut self, steps: &[Step]) -> Result<()> {
        for (i, &step) in steps.iter().enumerate() {
            if step == Step::Dns && steps.get(i + 1) == Some(&Step::Healthy) {
                self.dns = Some(plumbing::Call::spawn(
                    "banger-net",
                    &["dns", "ensure"],
                    None,
                    false,
                ));
                self.timings.mark(step.timing_key());
                continue;
            }
            if step == Step::Pin && steps.get(i + 1) == Some(&Step::Ssh) {
                self.ssh_wait = Some(self.ssh_wait_call());
            }
            let ticker = Ticker::start(&self.rec.name, step.doing());
            let r = interrupt::check().and_then(|_| self.step(step));
            drop(ticker);
            if let Err(e) = r {
                if step.shows_console() {
                    show_console_tail(&self.rec.name);
                }
                let err = step_error(&self.rec.name, self.mode.verb(), step.name(), e);
                progress(&self.rec.name, "undoing");
                self.undo();
                return Err(err);
            }
            self.timings.mark(step.timing_key());
        }
        interrupt::check().map_err(|e| {
            let err = step_error(&self.rec.name, self.mode.verb(), "done", e);
            self.undo();
            err
        })
    }

    fn step(&mut self, step: Step) -> Result<()> {
        let name = self.rec.name.clone();
        match step {
            Step::Disks if self.snapshot.is_some() => self.clone_disks(),
            Step::Disks => {
                let image = self
                    .image
                    .as_ref()
                    .ok_or_else(|| Error::failed("no image for the disks step"))?;
                self.made.push(Undo::Dirs);
                // The record first: whatever a kill leaves from here on
                // belongs to a record `vm list` shows and gc finds.
                // Under the image's lock: `banger-image rm` either sees
                // this record (and refuses) or has finished (and the
                // check below finds the files gone).
                let _image = banger_lib::records::image::lock(&image.name)?;
                record::store(&self.rec)?;
                disks::make(image, &self.rec.disks, self.rec.disk_size)?;
                disks::check_backing(&name, &self.rec.disks)
            }
            Step::Tap => {
                // banger-net undoes its own half-made acquire: there is only
                // something to give back once it succeeded.
                let t = plumbing::tap_acquire(&name, self.rec.isolated)?;
                if self.mode == Mode::Create {
                    self.made.push(Undo::Lease);
                }
                vmm::apply_lease(&mut self.rec, &t)?;
                record::store(&self.rec)
            }
            Step::Nat => match plumbing::nat_enable(&name) {
                Ok(()) => {
                    if self.mode == Mode::Create {
                        self.made.push(Undo::Nat);
                    }
                    Ok(())
                }
                // Already on (a VM that was started before).
                Err(e) if e.kind == Kind::Conflict => Ok(()),
                Err(e) => Err(e),
            },
            Step::Forward => {
                self.made.push(Undo::Forwards);
                for f in &self.rec.forwards {
                    crate::forward::net_add_kept(&name, f)?;
                }
                Ok(())
            }
            Step::Vmm => {
                // The driver removes what a failed start made; once it has
                // printed its record, the VMM is ours to stop.
                disks::check_backing(&name, &self.rec.disks)?;
                let tool = vmm::tool(&self.rec.vmm);
                let spec = vmm::spec(&self.rec, self.agent_port);
                let v = match &self.restore {
                    Some(from) => plumbing::vmm_restore(tool, &spec, from)?,
                    None => plumbing::vmm_start(tool, &spec, self.rec.no_jailer)?,
                };
                self.made.push(Undo::Vmm);
                match self.restore.take() {
                    // A snapshot's state is the snapshot's: it stays.
                    Some(_) if self.snapshot.is_some() => self.snapshot_lock = None,
                    // The guest runs on from it: the state is spent, and
                    // loading it again would go back in time under disks
                    // that moved on.
                    Some(from) => {
                        crate::suspend::discard(&from);
                        self.rec.suspend = None;
                        self.rec.pending = None;
                    }
                    None => {}
                }
                self.rec.pid = Some(v.pid);
                self.rec.pid_start_time = Some(v.pid_start_time);
                self.rec.agent = v.agent_endpoint();
                self.rec.vsock_uds = v.vsock_uds;
                self.rec.state = State::Running;
                self.rec.started_at = Some(proc::now_rfc3339());
                record::store(&self.rec)
            }
            Step::Dns => {
                if let Err(e) = plumbing::call("banger-net", &["dns", "ensure"], None, false) {
                    self.dns_warning(e);
                }
                Ok(())
            }
            Step::Healthy => {
                let ep = agent_args(&name, self.rec.agent.as_ref())?;
                let secs = self.timeout.to_string();
                let mut args = vec!["wait", &name];
                args.extend(ep.iter().map(String::as_str));
                args.extend(["--timeout", &secs]);
                plumbing::call("banger-health", &args, None, true)?;
                if let Some(e) = self
                    .dns
                    .take()
                    .and_then(|d| d.and_then(plumbing::Call::wait).err())
                {
                    self.dns_warning(e);
                }
                Ok(())
            }
            Step::Identity => crate::clone::apply_identity(&self.rec, self.timeout),
            Step::Pin => {
                let ep = agent_args(&name, self.rec.agent.as_ref())?;
                let secs = self.timeout.to_string();
                let ip = self.rec.ip.clone().unwrap_or_default();
                let mut args = vec!["pin", &name];
                args.extend(ep.iter().map(String::as_str));
                args.extend(["--ip", &ip, "--timeout", &secs]);
                if self.mode == Mode::Create {
                    // A new VM has no keys yet: any pinned under its name
                    // are an earlier VM's that a failed delete left.
                    args.push("--rekey");
                    self.made.push(Undo::HostKeys);
                }
                match plumbing::call("banger-ssh", &args, None, true) {
                    // Keys that changed since they were pinned: ssh will
                    // refuse the guest until they are accepted on purpose,
                    // which needs it running.
                    Err(e) if e.kind == Kind::Conflict => {
                        eprintln!("banger-vm: warning: {name}: {e}");
                        if let Some(h) = e.hint {
                            eprintln!("hint: {h}");
                        }
                        Ok(())
                    }
                    r => r.map(drop),
                }
            }
            Step::Init => {
                let t = std::time::Duration::from_secs(self.timeout);
                match crate::init::run_all(&mut self.rec, &self.init, &self.env, t) {
                    Err(e) if self.keep_failed => {
                        self.kept_failure = Some(e);
                        Ok(())
                    }
                    r => r,
                }
            }
            Step::Ssh => match self.ssh_wait.take() {
                Some(started) => started.and_then(plumbing::Call::wait).map(drop),
                None => self.ssh_wait_call()?.wait().map(drop),
            },
        }
    }

    fn dns_warning(&self, e: Error) {
        let name = &self.rec.name;
        eprintln!("banger-vm: warning: {name}: {name}.vm will not resolve: {e}");
    }

    fn ssh_wait_call(&self) -> Result<plumbing::Call> {
        let ip = self.rec.ip.clone().unwrap_or_default();
        let secs = self.timeout.to_string();
        let args = ["wait", &self.rec.name, "--ip", &ip, "--timeout", &secs];
        plumbing::Call::spawn("banger-ssh", &args, None, true)
    }

    /// A clone's disks: copies of its snapshot's, under the snapshot's
    /// lock (shared: clones of one snapshot are made side by side), which
    /// stays held until the VMM has loaded the snapshot's state.
    fn clone_disks(&mut self) -> Result<()> {
        let snap = self.snapshot.as_ref().expect("a clone");
        let lock = crate::clone::lock_snapshot(&snap.name)?;
        self.made.push(Undo::Dirs);
        record::store(&self.rec)?;
        for (from, to) in [
            (&snap.disks.rootfs, &self.rec.disks.rootfs),
            (&snap.disks.work, &self.rec.disks.work),
        ] {
            banger_lib::diskcopy::copy(from, to)?;
        }
        disks::check_backing(&self.rec.name, &self.rec.disks)?;
        self.snapshot_lock = Some(lock);
        Ok(())
    }

    /// Undo what this run made, newest first; a failing undo is reported
    /// and the rest still run. A start's VM goes back to how it was.
    fn undo(&mut self) {
        // A wait started early serves this run alone; dns ensure finishes.
        self.ssh_wait = None;
        self.dns = None;
        let name = self.rec.name.clone();
        while let Some(u) = self.made.pop() {
            let r = match u {
                Undo::Dirs => remove_dirs(&name),
                Undo::Lease => plumbing::tap_release(&name),
                Undo::Nat => plumbing::nat_disable(&name),
                Undo::Forwards => crate::forward::net_remove_all(&name),
                Undo::HostKeys => plumbing::run("banger-ssh", &["forget", &name]),
                Undo::Vmm => {
                    // A create's disks go with the undo: kill. A start's
                    // guest keeps its disks: sync them first if it answers.
                    let mode = match self.mode {
                        Mode::Create => crate::stop::StopMode::Kill,
                        Mode::Start => crate::stop::StopMode::Clean(0),
                    };
                    crate::stop::stop_vmm(vmm::tool(&self.rec.vmm), &name, mode).map(drop)
                }
            };
            if let Err(e) = r {
                eprintln!("banger-vm: warning: {name}: undoing {u:?} failed: {e}");
                if let Some(h) = e.hint {
                    eprintln!("hint: {h}");
                }
            }
        }
        if self.mode == Mode::Start && self.rec.state == State::Running {
            self.rec.state = if self.initial == State::Created {
                State::Created
            } else {
                State::Stopped
            };
            self.rec.pid = None;
            self.rec.pid_start_time = None;
            let _ = record::store(&self.rec);
        }
    }
}

fn remove_dirs(name: &str) -> Result<()> {
    let _ = std::fs::remove_dir_all(banger_lib::vmspec::run_dir(name));
    let dir = record::vm_dir(name);
    match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(banger_lib::error::io(
            format!("removing {}", dir.display()),
            e,
        )),
        _ => Ok(()),
    }
}

/// The error of a failed step: its kind and hint, and which step it was.
pub fn step_error(vm: &str, verb: &str, step: &str, e: Error) -> Error {
    let why = if interrupt::requested() && !interrupt::is_interrupt(&e) {
        format!("{e} (interrupted)")
    } else {
        e.message.clone()
    };
    let message = format!("{verb} {vm} failed at step {step}: {why}");
    e.reword(message)
}

/// Per-step milliseconds for `--timings`.
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

/// A progress line on a terminal while a step runs: the step and its
/// elapsed seconds, rewritten in place, cleared when the step ends.
struct Ticker {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Ticker {
    fn start(vm: &str, doing: &str) -> Ticker {
        if !std::io::stderr().is_terminal() {
            return Ticker {
                stop: None,
                thread: None,
            };
        }
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let line = format!("{vm}: {doing}");
        let thread = std::thread::spawn(move || {
            let start = Instant::now();
            loop {
                eprint!("\r\x1b[K{line} ({}s)", start.elapsed().as_secs());
                match rx.recv_timeout(std::time::Duration::from_secs(1)) {
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    _ => break,
                }
            }
            eprint!("\r\x1b[K");
        });
        Ticker {
            stop: Some(tx),
            thread: Some(thread),
        }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A progress line on a terminal.
pub fn progress(vm: &str, msg: &str) {
    if std::io::stderr().is_terminal() {
        eprintln!("{vm}: {msg}");
    }
}

/// The last lines of the guest console, so a failed boot says why before
/// its files are removed.
/// Only the log's last 64 KiB is read, and the guest's control characters
/// are shown as `?`.
pub fn show_console_tail(name: &str) {
    let log = record::vm_dir(name).join("console.log");
    let Some(text) = banger_lib::console::tail(&log, 64 << 10) else {
        return;
    };
    let text = banger_lib::console::sanitize(&text);
    let lines: Vec<&str> = text.lines().collect();
    let tail = &lines[lines.len().saturating_sub(20)..];
    if !tail.is_empty() {
        eprintln!("banger-vm: {name}: last lines of the guest console:");
        for l in tail {
            eprintln!("  {l}");
        }
    }
}

/// The flags that name a VM's agent endpoint to banger-health and
/// banger-ssh: `--uds PATH --port P` (vsock) or `--serial PATH`.
fn agent_args(name: &str, ep: Option<&Endpoint>) -> Result<Vec<String>> {
    match ep {
        Some(Endpoint::Vsock { uds, port }) => Ok(vec![
            "--uds".into(),
            uds.display().to_string(),
            "--port".into(),
            port.to_string(),
        ]),
        Some(Endpoint::Serial { uds }) => Ok(vec!["--serial".into(), uds.display().to_string()]),
        None => Err(Error::failed(format!(
            "{name}'s VMM gave no guest agent endpoint"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_boot_order_for_create_and_start() {
        assert_eq!(
            boot(true, true, true),
            [
                Step::Tap,
                Step::Nat,
                Step::Forward,
                Step::Vmm,
                Step::Dns,
                Step::Healthy,
                Step::Pin,
                Step::Ssh
            ]
        );
        assert_eq!(boot(false, false, false), [Step::Tap, Step::Vmm, Step::Dns]);
    }
}
