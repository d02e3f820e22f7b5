//! Running the plumbing tools as processes. Each runs in its own process
//! group so that a Ctrl-C at the terminal reaches banger-vm alone: a tool in
//! the middle of making something finishes it (and we undo it), while a
//! wait is cut short.

use crate::interrupt;
use banger_lib::{sibling, Error, Result};
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
    let mut cmd = sibling::command(tool)?;
    cmd.args(args).process_group(0);
    if interruptible {
        // A wait serves this command alone: if banger-vm is killed outright
        // (SIGKILL, OOM), the wait must not poll on. Tools that make
        // something are left to finish it, so a kill never cuts one short.
        // SAFETY: the closure only calls prctl(2), allowed before exec.
        unsafe {
            cmd.pre_exec(banger_lib::proc::pre_exec_die_with_parent);
        }
    }
    let mut child = sibling::spawn(&mut cmd, tool, stdin)?;
    let pid = child.id() as i32;
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
    let (status, stdout, stderr) = loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(r) => break r,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if interruptible && interrupt::requested() {
                    // The whole group: a script's children too.
                    unsafe { libc::kill(-pid, libc::SIGKILL) };
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(Error::failed(format!("running {tool}: lost the process")))
            }
        }
    };
    let status = status.map_err(|e| Error::failed(format!("running {tool}: {e}")))?;
    if interruptible && interrupt::requested() {
        return Err(interrupt::error());
    }
    if !status.success() {
        let code = status.code().unwrap_or(1);
        return Err(sibling::tool_error(tool, args, code, &stderr));
    }
    sibling::parse_lines(tool, &stdout)
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
