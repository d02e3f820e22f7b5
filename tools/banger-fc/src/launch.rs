//! Spawning a firecracker process for a VM, and undoing it when anything
//! after the spawn fails: the process is killed, its sockets, record and
//! the logs this start created are removed. Nothing is left behind.

use crate::api::Api;
use crate::jail::Jail;
use crate::record;
use banger_lib::vmspec::{record_path, VmSpec, VmmRecord};
use banger_lib::wait::Backoff;
use banger_lib::{error::io, paths, state, Error, Result};
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long Firecracker gets to create its API socket.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Launch {
    id: String,
    child: Option<Child>,
    /// Under the jailer: the jail, and the jailed Firecracker (the jailer
    /// itself exits once it has started it in its pid namespace).
    jail: Option<Jail>,
    jailed: Option<(u32, u64)>,
    /// The spec as Firecracker sees it (paths inside the jail, if any):
    /// what the API requests carry.
    pub api_spec: VmSpec,
    api_socket: PathBuf,
    sockets: Vec<PathBuf>,
    created: Vec<PathBuf>,
    vmm_log: PathBuf,
}

fn need(p: &Option<PathBuf>) -> PathBuf {
    p.clone().expect("the spec was resolved")
}

/// Open a file for appending, noting whether it had to be created.
fn open_log(p: &Path, truncate: bool, created: &mut Vec<PathBuf>) -> Result<std::fs::File> {
    if let Some(dir) = p.parent() {
        paths::ensure_dir(dir)?;
    }
    if !p.exists() {
        created.push(p.to_path_buf());
    }
    let mut o = OpenOptions::new();
    if truncate {
        o.write(true).truncate(true);
    } else {
        o.append(true);
    }
    // Never through a symlink planted in the VM's dir.
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut o, nix::libc::O_NOFOLLOW);
    o.create(true)
        .open(p)
        .map_err(|e| io(format!("opening {}", p.display()), e))
}

impl Launch {
    /// Remove stale sockets, open the logs, spawn firecracker in its own
    /// session with stdout and stderr on vmm_log. `fresh_console`
    /// truncates the console log: Firecracker writes it from offset 0.
    pub fn spawn(
        spec: &VmSpec,
        bin: &Path,
        fresh_console: bool,
        jail: Option<Jail>,
    ) -> Result<Launch> {
        let api_socket = need(&spec.api_socket);
        let sockets: Vec<PathBuf> = [Some(api_socket.clone()), spec.vsock_uds.clone()]
            .into_iter()
            .flatten()
            .collect();
        if jail.is_none() {
            for s in &sockets {
                if let Some(dir) = s.parent() {
                    paths::ensure_dir(dir)?;
                }
                // Stale from a process that died: Firecracker will not bind
                // over it. The caller checked no live VM owns it.
                record::VMM.remove_file(s);
            }
        }
        let vmm_log = need(&spec.vmm_log);
        let mut created = Vec::new();
        let mut out = open_log(&vmm_log, false, &mut created)?;
        let _ = writeln!(
            out,
            "--- banger-fc: starting {} for {} at {} ---",
            bin.display(),
            spec.id,
            banger_lib::proc::now_rfc3339()
        );
        let console = need(&spec.console_log);
        drop(open_log(&console, fresh_console, &mut created)?);
        let err = out
            .try_clone()
            .map_err(|e| io("duplicating the log file", e))?;
        let mut launch = Launch {
            id: spec.id.clone(),
            child: None,
            jail: None,
            jailed: None,
            api_spec: spec.clone(),
            api_socket,
            sockets,
            created,
            vmm_log,
        };
        let mut cmd = match &jail {
            Some(j) => {
                launch.jail = Some(j.clone());
                launch.api_spec = match j.prepare(spec) {
                    Ok(s) => s,
                    Err(e) => return Err(launch.fail(e)),
                };
                let mut c = Command::new(&j.jailer);
                c.args(j.argv(bin));
                c
            }
            None => {
                let mut c = Command::new(bin);
                c.arg("--api-sock")
                    .arg(&launch.api_socket)
                    .arg("--id")
                    .arg(&spec.id);
                c
            }
        };
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        // Its own session: no terminal signals, and it outlives us.
        // SAFETY: the closure runs between fork and exec, where only
        // async-signal-safe calls are sound; setsid(2) is one, and nix's
        // wrapper allocates nothing.
        unsafe {
            cmd.pre_exec(|| Ok(nix::unistd::setsid().map(drop)?));
        }
        let what = jail.as_ref().map_or(bin, |j| j.jailer.as_path());
        match cmd.spawn() {
            Ok(child) => launch.child = Some(child),
            Err(e) => return Err(launch.fail(io(format!("starting {}", what.display()), e))),
        }
        if launch.jail.is_some() {
            if let Err(e) = launch.wait_jailer() {
                return Err(launch.fail(e));
            }
        }
        Ok(launch)
    }

    /// The jailer starts Firecracker in a new pid namespace, writes its
    /// pid in the chroot and exits: wait for that, take the pid.
    fn wait_jailer(&mut self) -> Result<()> {
        let child = self.child.as_mut().expect("spawned");
        let status = banger_lib::wait::poll(SOCKET_TIMEOUT, || child.try_wait().ok().flatten())
            .ok_or_else(|| Error::failed("the jailer did not start firecracker in time"))?;
        self.child = None;
        if !status.success() {
            return Err(Error::failed(format!("the jailer failed ({status})")));
        }
        let jail = self.jail.as_ref().expect("jailed");
        let pid = jail.read_pid().ok_or_else(|| {
            Error::failed(format!(
                "the jailer wrote no pid to {}",
                jail.pid_file().display()
            ))
        })?;
        let start = banger_lib::proc::start_time(pid)
            .ok_or_else(|| Error::failed("the jailed firecracker exited at once"))?;
        self.jailed = Some((pid, start));
        Ok(())
    }

    pub fn pid(&self) -> u32 {
        match self.jailed {
            Some((pid, _)) => pid,
            None => self.child.as_ref().map(|c| c.id()).unwrap_or(0),
        }
    }

    /// Wait until the API socket accepts connections, or fail when the
    /// process exits or the deadline passes.
    pub fn wait_socket(&mut self) -> Result<Api> {
        // Firecracker makes its socket within milliseconds: retry fast.
        let backoff = Backoff::new(Duration::from_millis(2), Duration::from_millis(50));
        let jailed = self.jailed;
        let served = backoff.poll(SOCKET_TIMEOUT, || {
            if let Some((pid, start)) = jailed {
                if !banger_lib::proc::is_alive(pid, start) {
                    return Some(Err(Error::failed(
                        "the jailed firecracker exited before serving its API",
                    )));
                }
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                return Some(Err(Error::failed(format!(
                    "firecracker exited before serving its API ({status})"
                ))));
            }
            std::os::unix::net::UnixStream::connect(&self.api_socket)
                .is_ok()
                .then(|| Ok(Api::new(&self.api_socket)))
        });
        served.unwrap_or_else(|| {
            Err(Error::failed(format!(
                "firecracker did not create its API socket {} within {}s",
                self.api_socket.display(),
                SOCKET_TIMEOUT.as_secs()
            )))
        })
    }

    /// Make, store and return the record of the running VM, and let the
    /// process go.
    pub fn finish(mut self, spec: &VmSpec, vmm_version: String) -> Result<VmmRecord> {
        let pid = self.pid();
        let pid_start_time = match banger_lib::proc::start_time(pid) {
            Some(t) => t,
            None => return Err(self.fail(Error::failed("firecracker exited right after starting"))),
        };
        let rec = VmmRecord {
            schema: state::SCHEMA,
            id: spec.id.clone(),
            vmm: "firecracker".into(),
            accel: "kvm".into(),
            pid,
            pid_start_time,
            api_socket: spec.api_socket.clone(),
            jail: self.jail.as_ref().map(|j| j.dir.clone()),
            qmp_socket: None,
            vsock_uds: spec.vsock_uds.clone(),
            agent: spec.agent_endpoint(),
            helper_pid: None,
            helper_pid_start_time: None,
            vmm_version,
            started_at: banger_lib::proc::now_rfc3339(),
            vmm_log: need(&spec.vmm_log),
            console_log: need(&spec.console_log),
        };
        let spec_text = serde_json::to_vec_pretty(spec).expect("a spec serializes");
        let stored = std::fs::write(record::spec_path(&spec.id), spec_text)
            .map_err(|e| io("writing the VM's spec", e))
            .and_then(|()| state::store(&record_path(&spec.id), &rec));
        if let Err(e) = stored {
            return Err(self.fail(e));
        }
        // Not waited for: it is in its own session and outlives us.
        self.child = None;
        self.jailed = None;
        self.jail = None;
        self.created.clear();
        Ok(rec)
    }

    /// Undo everything and return `e` with the end of Firecracker's output.
    pub fn fail(mut self, e: Error) -> Error {
        let tail = self.undo();
        if tail.is_empty() {
            e
        } else {
            let msg = format!("{}\nfirecracker's last words:\n{tail}", e.message);
            Error { message: msg, ..e }
        }
    }

    fn undo(&mut self) -> String {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some((pid, start)) = self.jailed.take() {
            banger_lib::proc::terminate(pid, start);
        }
        if let Some(j) = self.jail.take() {
            j.remove();
        }
        let tail = std::fs::read_to_string(&self.vmm_log)
            .map(|t| {
                let lines: Vec<&str> = t
                    .lines()
                    .filter(|l| !l.starts_with("--- banger-fc:"))
                    .collect();
                lines[lines.len().saturating_sub(6)..]
                    .iter()
                    .map(|l| format!("  {l}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default();
        for s in &self.sockets {
            record::VMM.remove_file(s);
        }
        for f in self.created.drain(..) {
            record::VMM.remove_file(&f);
            if let Some(dir) = f.parent() {
                // Only removes it when empty: the VM's own state dir stays.
                let _ = std::fs::remove_dir(dir);
            }
        }
        record::remove_leftovers(&self.id, None);
        tail
    }
}

impl Drop for Launch {
    fn drop(&mut self) {
        if self.child.is_some() || self.jail.is_some() {
            self.undo();
        }
    }
}
