//! Running the plumbing tools as processes and reading their records as
//! banger_lib's types (a line that does not fit the type is an error, not
//! a guess). Each runs in its own process group so that a Ctrl-C at the
//! terminal reaches banger-vm alone: a tool in the middle of making
//! something finishes it (and we undo it), while a wait is cut short.

use crate::interrupt;
use banger_lib::records::{ImageLine, TapLine};
use banger_lib::vmspec::{VmSpec, VmmRecord};
use banger_lib::{sibling, Error, Result};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::sync::mpsc;
use std::time::Duration;

/// Run `tool ARGS` (with `stdin` as JSON) and return its JSON lines.
/// `interruptible`: a Ctrl-C kills it (for waits) and the call fails.
pub fn call(
    tool: &str,
    args: &[&str],
    stdin: Option<&Value>,
    interruptible: bool,
) -> Result<Vec<Value>> {
    Call::spawn(tool, args, stdin, interruptible)?.wait()
}

/// A tool running while banger-vm does something else; `wait` for its
/// lines. Dropped unwaited, an interruptible one (a wait) is killed with
/// its group, since the run it served failed or was cut short; any other
/// is left to finish what it makes.
pub struct Call {
    tool: String,
    args: Vec<String>,
    interruptible: bool,
    group: Option<Pid>,
    rx: Option<mpsc::Receiver<Finished>>,
}

type Finished = (std::io::Result<std::process::ExitStatus>, String, String);

impl Call {
    pub fn spawn(
        tool: &str,
        args: &[&str],
        stdin: Option<&Value>,
        interruptible: bool,
    ) -> Result<Call> {
        let mut cmd = sibling::command(tool)?;
        cmd.args(args).process_group(0);
        if interruptible {
            // A wait serves this command alone: if banger-vm is killed
            // outright (SIGKILL, OOM), the wait must not poll on. Tools that
            // make something are left to finish it, so a kill never cuts
            // one short.
            // SAFETY: the closure runs between fork and exec, where only
            // async-signal-safe calls are sound; it makes one prctl(2) call
            // and allocates nothing.
            unsafe {
                cmd.pre_exec(banger_lib::proc::pre_exec_die_with_parent);
            }
        }
        let mut child = sibling::spawn(&mut cmd, tool, stdin)?;
        // It leads its own group (process_group(0)), so its pid names the group.
        let group = i32::try_from(child.id()).ok().map(Pid::from_raw);
        let mut out = child.stdout.take().expect("piped stdout");
        let mut err = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut o = String::new();
            let mut e = String::new();
            let eh = std::thread::spawn(move || {
                let _ = err.read_to_string(&mut e);
                e
            });
            let _ = out.read_to_string(&mut o);
            let e = eh.join().unwrap_or_default();
            let status = child.wait();
            let _ = tx.send((status, o, e));
        });
        Ok(Call {
            tool: tool.to_string(),
            args: args.iter().map(|a| a.to_string()).collect(),
            interruptible,
            group,
            rx: Some(rx),
        })
    }

    /// Its JSON lines once it ends; its error if it failed.
    pub fn wait(mut self) -> Result<Vec<Value>> {
        let tool = self.tool.clone();
        let rx = self.rx.take().expect("waited once");
        let (status, stdout, stderr) = loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(r) => break r,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if self.interruptible && interrupt::requested() {
                        self.kill();
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(Error::failed(format!("running {tool}: lost the process")))
                }
            }
        };
        let status = status.map_err(|e| Error::failed(format!("running {tool}: {e}")))?;
        if self.interruptible && interrupt::requested() {
            return Err(interrupt::error());
        }
        if !status.success() {
            let code = status.code().unwrap_or(1);
            let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
            return Err(sibling::tool_error(&tool, &args, code, &stderr));
        }
        sibling::parse_lines(&tool, &stdout)
    }

    fn kill(&self) {
        if let Some(group) = self.group {
            // The whole group: a script's children too.
            let _ = killpg(group, Signal::SIGKILL);
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        // Not once it has ended: its group id may name another group.
        if let Some(rx) = self.rx.as_ref().filter(|_| self.interruptible) {
            if let Err(mpsc::TryRecvError::Empty) = rx.try_recv() {
                self.kill();
            }
        }
    }
}

/// `call` for a tool that prints exactly one record.
pub fn call_one(
    tool: &str,
    args: &[&str],
    stdin: Option<&Value>,
    interruptible: bool,
) -> Result<Value> {
    sibling::one(tool, args, call(tool, args, stdin, interruptible)?)
}

/// Run a tool for its effect; its output is not needed.
pub fn run(tool: &str, args: &[&str]) -> Result<()> {
    call(tool, args, None, false).map(|_| ())
}

/// Whether a cleanup call failed only because the thing is already gone
/// (exit 3), as opposed to the tool itself missing (exit 4).
pub fn gone(e: &Error) -> bool {
    e.kind == banger_lib::Kind::NotFound
}

/// Like `run`, but "not found" (already gone) counts as done: cleanup
/// steps are idempotent.
pub fn run_gone_ok(tool: &str, args: &[&str]) -> Result<()> {
    match run(tool, args) {
        Err(e) if gone(&e) => Ok(()),
        r => r,
    }
}

/// `call_one`, read as `T`.
pub fn call_typed<T: DeserializeOwned>(
    tool: &str,
    args: &[&str],
    stdin: Option<&Value>,
    interruptible: bool,
) -> Result<T> {
    let v = call_one(tool, args, stdin, interruptible)?;
    serde_json::from_value(v.clone()).map_err(|e| {
        Error::failed(format!(
            "{tool} {} printed a record banger-vm cannot read ({e}): {v}",
            args.iter()
                .take_while(|a| !a.starts_with('-'))
                .take(2)
                .copied()
                .collect::<Vec<_>>()
                .join(" ")
        ))
    })
}

/// `call`, every line read as `T`.
pub fn call_many<T: DeserializeOwned>(tool: &str, args: &[&str]) -> Result<Vec<T>> {
    let lines = call(tool, args, None, false)?;
    banger_lib::sibling::typed(tool, args, lines)
}

/// `banger-image show NAME`, or `banger-image default` (the user's chosen
/// default) when no name was given.
pub fn image(name: Option<&str>) -> Result<ImageLine> {
    match name {
        Some(n) => call_typed("banger-image", &["show", n], None, false),
        None => call_typed("banger-image", &["default"], None, false),
    }
}

/// `banger-net tap acquire --vm NAME`: a TAP and an address (the same
/// lease again when the VM has one), cut off from the other guests unless
/// `isolated` is false.
pub fn tap_acquire(vm: &str, isolated: bool) -> Result<TapLine> {
    let mut args = vec!["tap", "acquire", "--vm", vm];
    if !isolated {
        args.push("--no-isolate");
    }
    call_typed("banger-net", &args, None, false)
}

/// `banger-net tap set --vm NAME --isolate|--no-isolate` on a leased VM.
pub fn tap_isolate(vm: &str, isolated: bool) -> Result<()> {
    let flag = if isolated {
        "--isolate"
    } else {
        "--no-isolate"
    };
    run("banger-net", &["tap", "set", "--vm", vm, flag])
}

/// `banger-net tap release --vm NAME`; an already released lease is fine.
pub fn tap_release(vm: &str) -> Result<()> {
    run_gone_ok("banger-net", &["tap", "release", "--vm", vm])
}

/// `banger-net nat enable --vm NAME`, with a hint in banger-vm's terms:
/// banger-vm has no --uplink, the config file does.
pub fn nat_enable(vm: &str) -> Result<()> {
    run("banger-net", &["nat", "enable", "--vm", vm]).map_err(|mut e| {
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

/// `banger-net nat disable --vm NAME`; NAT already off is fine.
pub fn nat_disable(vm: &str) -> Result<()> {
    run_gone_ok("banger-net", &["nat", "disable", "--vm", vm])
}

/// `banger-fc start` / `banger-qemu start` with the spec on stdin;
/// `--no-jailer` (banger-fc only) when the VM was made with it.
pub fn vmm_start(tool: &str, spec: &VmSpec, no_jailer: bool) -> Result<VmmRecord> {
    let spec = serde_json::to_value(spec).expect("specs serialize");
    let args: &[&str] = if no_jailer {
        &["start", "--no-jailer"]
    } else {
        &["start"]
    };
    call_typed(tool, args, Some(&spec), false)
}

/// A driver's `suspend NAME --to PATH`: the VM saved, its VMM gone.
pub fn vmm_suspend(
    tool: &str,
    name: &str,
    to: &std::path::Path,
) -> Result<banger_lib::records::SuspendLine> {
    let to = to.display().to_string();
    call_typed(tool, &["suspend", name, "--to", &to], None, false)
}

/// A driver's `restore --from PATH` with the VM's spec: the VMM record.
pub fn vmm_restore(tool: &str, spec: &VmSpec, from: &std::path::Path) -> Result<VmmRecord> {
    let spec = serde_json::to_value(spec).expect("specs serialize");
    let from = from.display().to_string();
    call_typed(tool, &["restore", "--from", &from], Some(&spec), false)
}

/// A driver's `snapshot create NAME --dir DIR --disk ID=DEST..`: the VM
/// paused, saved into DIR, the asked drives copied, the VM running on.
pub fn vmm_snapshot(
    tool: &str,
    name: &str,
    dir: &std::path::Path,
    disks: &[(&str, &std::path::Path)],
) -> Result<banger_lib::records::SnapshotLine> {
    let dir = dir.display().to_string();
    let asks: Vec<String> = disks
        .iter()
        .map(|(id, dest)| format!("{id}={}", dest.display()))
        .collect();
    let mut args = vec!["snapshot", "create", name, "--dir", &dir];
    for a in &asks {
        args.extend(["--disk", a]);
    }
    call_typed(tool, &args, None, false)
}
