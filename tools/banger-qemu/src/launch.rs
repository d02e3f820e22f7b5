//! `start`: vhost-device-vsock first, then QEMU daemonized, then the
//! record. Anything that fails on the way ends both processes and removes
//! what this start made.

use crate::argv::{qemu_args, Plan};
use crate::{accel, binary, qmp::Qmp, record};
use banger_lib::error::io;
use banger_lib::proc::{now_rfc3339, start_time};
use banger_lib::vmspec::{record_path, VmSpec, VmmRecord};
use banger_lib::wait::poll;
use banger_lib::{paths, state, Error, Result};
use std::fs::{File, OpenOptions};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// What a start made so far; dropped while armed, it undoes all of it.
struct Undo {
    id: String,
    helper: Option<(u32, u64)>,
    qemu: Option<(u32, u64)>,
    files: Vec<PathBuf>,
    dirs: Vec<PathBuf>,
    armed: bool,
}

impl Drop for Undo {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        // A QEMU that daemonized but failed later may only be known by
        // its pid file.
        let qemu = self.qemu.or_else(|| {
            let pid = banger_lib::proc::read_pid_file(&record::pid_file(&self.id))?;
            Some((pid, start_time(pid)?))
        });
        for (pid, start) in [qemu, self.helper].into_iter().flatten() {
            banger_lib::proc::terminate(pid, start);
        }
        for f in &self.files {
            record::VMM.remove_file(f);
        }
        record::remove_leftovers(&self.id, None);
        for d in self.dirs.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// Create `dir` and its missing parents; remember the ones made.
fn make_dir(dir: &Path, undo: &mut Undo) -> Result<()> {
    let missing: Vec<PathBuf> = dir
        .ancestors()
        .take_while(|d| !d.exists())
        .map(Path::to_path_buf)
        .collect();
    paths::ensure_dir(dir)?;
    undo.dirs.extend(missing.into_iter().rev());
    Ok(())
}

fn open_log(path: &Path, undo: &mut Undo) -> Result<File> {
    if !path.exists() {
        undo.files.push(path.to_path_buf());
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| io(format!("opening {}", path.display()), e))
}

/// The last lines `path` got since byte `from`, for error messages.
fn log_tail(path: &Path, from: u64) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(text.get(from as usize..).unwrap_or_default());
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(8)..].join("\n  ");
    if tail.is_empty() {
        format!("{} has nothing new", path.display())
    } else {
        format!("{}:\n  {tail}", path.display())
    }
}

pub fn start(text: &str) -> Result<VmmRecord> {
    let mut spec = VmSpec::parse(text)?;
    spec.resolve("qmp.sock");
    spec.validate()?;
    let id = spec.id.clone();
    let vhost = spec.vsock_cid.map(|_| record::vhost_socket(&id));
    if let Some(v) = &vhost {
        paths::check_socket_path(v)?;
    }
    let qemu_bin = binary::qemu(spec.binary.as_deref())?;
    let helper_bin = match spec.vsock_cid {
        Some(_) => Some(binary::vhost_vsock()?),
        None => None,
    };
    let vmm_version = banger_lib::hosttools::version(&qemu_bin, "QEMU")?;
    let accel = accel::detect();
    let mut cmdline = spec.cmdline_with_root();
    if accel == "tcg" {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        for extra in accel::tcg_cmdline_extras(&cmdline, &cpuinfo) {
            cmdline.push(' ');
            cmdline.push_str(&extra);
        }
        cmdline = cmdline.trim().to_string();
    }

    let _lock = record::VMM.lock(&id)?;
    if let Some(old) = record::VMM.load(&id)? {
        if old.is_alive() {
            return Err(record::VMM.already_running(&id, old.pid));
        }
        // A crashed VM: its helper may still run and its sockets remain.
        record::end_helper(&old)?;
        record::remove_leftovers(&id, Some(&old));
    }

    let mut undo = Undo {
        id: id.clone(),
        helper: None,
        qemu: None,
        files: Vec::new(),
        dirs: Vec::new(),
        armed: true,
    };
    let vmm_log = spec.vmm_log.clone().expect("resolved");
    let console_log = spec.console_log.clone().expect("resolved");
    let qmp_socket = spec.api_socket.clone().expect("resolved");
    for p in [&vmm_log, &console_log, &qmp_socket]
        .into_iter()
        .chain(spec.vsock_uds.as_ref())
    {
        if let Some(parent) = p.parent() {
            make_dir(parent, &mut undo)?;
        }
    }
    if !console_log.exists() {
        undo.files.push(console_log.clone());
    }
    let log = open_log(&vmm_log, &mut undo)?;
    let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
    let fail = |what: &str| Error::failed(format!("{what}; {}", log_tail(&vmm_log, log_start)));

    // Stale sockets from a crash would make the new processes fail to
    // bind; the new ones go when this start fails.
    for p in [Some(&qmp_socket), spec.vsock_uds.as_ref(), vhost.as_ref()]
        .into_iter()
        .flatten()
    {
        record::VMM.remove_file(p);
        undo.files.push(p.clone());
    }

    if let (Some(bin), Some(sock), Some(cid), Some(uds)) =
        (&helper_bin, &vhost, spec.vsock_cid, &spec.vsock_uds)
    {
        let mut cmd = Command::new(bin);
        cmd.arg("--guest-cid")
            .arg(cid.to_string())
            .arg("--socket")
            .arg(sock)
            .arg("--uds-path")
            .arg(uds)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| io("duplicating the log", e))?)
            .stderr(log.try_clone().map_err(|e| io("duplicating the log", e))?);
        // Its own session: not killed with the caller's terminal.
        // SAFETY: the closure runs between fork and exec, where only
        // async-signal-safe calls are sound; setsid(2) is one, and nix's
        // wrapper allocates nothing.
        unsafe {
            cmd.pre_exec(|| Ok(nix::unistd::setsid().map(drop)?));
        }
        let child = cmd
            .spawn()
            .map_err(|e| io(format!("starting {}", bin.display()), e))?;
        let pid = child.id();
        let st = start_time(pid).ok_or_else(|| fail("vhost-device-vsock exited at once"))?;
        undo.helper = Some((pid, st));
        let up = banger_lib::proc::is_alive;
        let ready = poll(READY_TIMEOUT, || {
            if !up(pid, st) {
                return Some(false);
            }
            (sock.exists() && uds.exists()).then_some(true)
        });
        if ready != Some(true) {
            return Err(fail("vhost-device-vsock did not come up"));
        }
    }

    let plan = Plan {
        spec: &spec,
        accel,
        cmdline,
        pid_file: record::pid_file(&id),
        vhost_socket: vhost.clone(),
    };
    // -daemonize: this returns once QEMU has set the VM up (or failed to).
    let status = Command::new(&qemu_bin)
        .args(qemu_args(&plan))
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| io("duplicating the log", e))?)
        .stderr(log.try_clone().map_err(|e| io("duplicating the log", e))?)
        .status()
        .map_err(|e| io(format!("starting {}", qemu_bin.display()), e))?;
    if !status.success() {
        return Err(fail(&format!("qemu failed to start ({status})")));
    }
    let pid = banger_lib::proc::read_pid_file(&plan.pid_file)
        .ok_or_else(|| fail("qemu wrote no pid file"))?;
    let pst = start_time(pid).ok_or_else(|| fail("qemu exited right after starting"))?;
    undo.qemu = Some((pid, pst));

    let state = Qmp::connect(&qmp_socket, Duration::from_secs(10))
        .and_then(|mut q| q.run_state())
        .map_err(|e| fail(&format!("qemu does not answer QMP: {}", e.message)))?;
    if state != "running" {
        return Err(fail(&format!("qemu is {state}, not running")));
    }

    let rec = VmmRecord {
        schema: state::SCHEMA,
        id: id.clone(),
        vmm: "qemu".into(),
        accel: accel.into(),
        pid,
        pid_start_time: pst,
        api_socket: None,
        qmp_socket: Some(qmp_socket),
        vsock_uds: spec.vsock_uds.clone(),
        agent: spec.agent_endpoint(),
        helper_pid: undo.helper.map(|h| h.0),
        helper_pid_start_time: undo.helper.map(|h| h.1),
        vmm_version,
        started_at: now_rfc3339(),
        vmm_log,
        console_log,
    };
    state::store(&record_path(&id), &rec)?;
    undo.armed = false;
    Ok(rec)
}
