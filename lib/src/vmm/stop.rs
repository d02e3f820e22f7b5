//! How a VMM driver stops a VM, the same for banger-fc and banger-qemu:
//! ask the guest agent to shut down; if it does not answer, make the VMM's
//! own request (ACPI power button, Ctrl+Alt+Del); only when the timeout has
//! passed kill the VMM, and before that ask the agent to sync the disks so
//! the kill loses as little as possible.
//!
//! `next` is the decision, pure; `run` carries it out against a real
//! process.

use super::Driver;
use crate::agent::{self, Endpoint};
use crate::records::StopLine;
use crate::vmspec::VmmRecord;
use crate::{proc, Result};
use std::time::{Duration, Instant};

/// How long the agent gets to take a shutdown request. It syncs before it
/// answers, so a slow disk shows here; a late answer only means the VMM's
/// request follows at once.
pub const AGENT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the agent gets to sync the disks before a kill.
pub const SYNC_TIMEOUT: Duration = Duration::from_secs(5);

/// What a driver does to its VMM.
pub trait Vmm {
    /// Let a guest the VMM holds paused (a pause, a save cut short) run, so
    /// it can hear the shutdown requests; a paused guest would otherwise
    /// sit out the whole timeout and be killed. Best effort.
    fn wake(&mut self) {}
    /// The VMM's own shutdown request (QMP system_powerdown, Firecracker's
    /// SendCtrlAltDel); true when the VMM took it.
    fn request_shutdown(&mut self) -> bool;
    /// End the VMM process now (it has not shut down); an error when it
    /// survives.
    fn kill(&mut self) -> Result<()>;
}

/// One stop.
#[derive(Debug, Clone)]
pub struct Plan<'a> {
    /// For the warning: `banger-qemu`.
    pub tool: &'a str,
    pub id: &'a str,
    /// The VMM process.
    pub pid: u32,
    pub pid_start_time: u64,
    /// Where the guest agent is, when the VM has one.
    pub agent: Option<Endpoint>,
    /// What the agent is asked: `/shutdown` or `/reboot` (the driver says
    /// why).
    pub agent_path: &'a str,
    /// `how` when the VMM's own request stopped it: `acpi`, `ctrl_alt_del`.
    pub vmm_how: &'static str,
    pub timeout: Duration,
    /// `--kill`: no clean attempt and no sync.
    pub kill: bool,
}

/// What became of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asked {
    No,
    Accepted,
    /// Refused, or no answer.
    Failed,
}

/// What is known so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub has_agent: bool,
    pub agent: Asked,
    pub vmm: Asked,
    /// The VMM process has exited.
    pub gone: bool,
    pub elapsed: Duration,
    pub timeout: Duration,
    pub kill: bool,
}

/// What to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    AskAgent,
    AskVmm,
    /// Wait for the VMM to exit, at most this long.
    Wait(Duration),
    /// Kill the VMM, asking the agent to sync first when `sync`.
    Kill {
        sync: bool,
    },
    /// The VMM exited after a request: clean.
    Done,
}

/// The decision. The agent goes first; the VMM's request follows when the
/// agent did not take the shutdown, or at half the timeout when it did but
/// the VMM still runs (harmless to a guest already on its way down).
pub fn next(p: &Progress) -> Action {
    if p.gone {
        return Action::Done;
    }
    if p.kill {
        return Action::Kill { sync: false };
    }
    if p.elapsed >= p.timeout {
        return Action::Kill { sync: p.has_agent };
    }
    if p.has_agent && p.agent == Asked::No {
        return Action::AskAgent;
    }
    let half = p.timeout / 2;
    if p.vmm == Asked::No && (p.agent != Asked::Accepted || p.elapsed >= half) {
        return Action::AskVmm;
    }
    let until = if p.vmm == Asked::No { half } else { p.timeout };
    Action::Wait(until.saturating_sub(p.elapsed))
}

/// How a stop ended: the result line's `how`, `clean` and `synced`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// `agent`, the VMM's request (`acpi`, `ctrl_alt_del`), `killed`,
    /// `already_dead` or `not_running`.
    pub how: &'static str,
    /// The guest shut down by itself.
    pub clean: bool,
    /// The guest's disks are known to be synced: after a clean shutdown,
    /// or when the agent synced them before a kill.
    pub synced: bool,
}

impl Outcome {
    /// A VM whose VMM was gone before the stop (`already_dead`) or that
    /// has no record (`not_running`).
    pub fn nothing(how: &'static str) -> Outcome {
        Outcome {
            how,
            clean: false,
            synced: false,
        }
    }

    /// The driver's result line.
    pub fn line(&self, id: &str) -> StopLine {
        StopLine {
            id: id.into(),
            stopped: true,
            how: self.how.into(),
            clean: self.clean,
            synced: self.synced,
        }
    }
}

/// What a driver asks for a clean stop.
#[derive(Debug, Clone, Copy)]
pub struct Requests {
    /// What the agent is asked: `/shutdown` or `/reboot`.
    pub agent_path: &'static str,
    /// `how` when the VMM's own request stopped it: `acpi`, `ctrl_alt_del`.
    pub vmm_how: &'static str,
}

/// A driver's whole `stop ID` verb, under the VM's lock: a VM with no
/// record stops as `not_running`, one whose VMM is gone as `already_dead`,
/// and a running one through `run` with the driver's `vmm`. Then `cleanup`
/// removes what the VM left (given its record, when there was one); a stop
/// that failed leaves everything for the next try.
pub fn verb(
    driver: &Driver,
    id: &str,
    requests: Requests,
    timeout: Duration,
    kill: bool,
    vmm: impl for<'r> FnOnce(&'r VmmRecord) -> Box<dyn Vmm + 'r>,
    cleanup: impl FnOnce(Option<&VmmRecord>) -> Result<()>,
) -> Result<StopLine> {
    crate::names::validate("VM", id)?;
    let _lock = driver.lock(id)?;
    let Some(rec) = driver.load(id)? else {
        cleanup(None)?;
        return Ok(Outcome::nothing("not_running").line(id));
    };
    let outcome = if !rec.is_alive() {
        Outcome::nothing("already_dead")
    } else {
        let plan = Plan {
            tool: driver.tool,
            id,
            pid: rec.pid,
            pid_start_time: rec.pid_start_time,
            agent: rec.agent_endpoint(),
            agent_path: requests.agent_path,
            vmm_how: requests.vmm_how,
            timeout,
            kill,
        };
        run(&plan, vmm(&rec).as_mut())?
    };
    cleanup(Some(&rec))?;
    Ok(outcome.line(id))
}

/// Carry out a stop. On a kill after the timeout, a warning on stderr says
/// so and whether the disks were synced first.
pub fn run(plan: &Plan, vmm: &mut dyn Vmm) -> Result<Outcome> {
    if !plan.kill {
        vmm.wake();
    }
    let start = Instant::now();
    let mut p = Progress {
        has_agent: plan.agent.is_some(),
        agent: Asked::No,
        vmm: Asked::No,
        gone: false,
        elapsed: Duration::ZERO,
        timeout: plan.timeout,
        kill: plan.kill,
    };
    loop {
        p.gone = !proc::is_alive(plan.pid, plan.pid_start_time);
        p.elapsed = start.elapsed();
        match next(&p) {
            Action::Done => {
                let how = if p.agent == Asked::Accepted {
                    "agent"
                } else {
                    plan.vmm_how
                };
                return Ok(Outcome {
                    how,
                    clean: true,
                    synced: true,
                });
            }
            Action::AskAgent => {
                p.agent = match ask(plan, plan.agent_path, AGENT_TIMEOUT) {
                    Some(r) if r.ok() => Asked::Accepted,
                    _ => Asked::Failed,
                };
            }
            Action::AskVmm => {
                p.vmm = if vmm.request_shutdown() {
                    Asked::Accepted
                } else {
                    Asked::Failed
                };
            }
            Action::Wait(d) => {
                proc::wait_gone(plan.pid, plan.pid_start_time, d);
            }
            Action::Kill { sync } => {
                let synced = sync
                    && ask(plan, "/sync", SYNC_TIMEOUT)
                        .is_some_and(|r| r.ok() && r.body["synced"] == true);
                vmm.kill()?;
                if !plan.kill {
                    let why = match (&plan.agent, synced) {
                        (_, true) => "disks synced first",
                        (Some(_), false) => "the agent did not answer, unsynced writes may be lost",
                        (None, false) => {
                            "the VM has no guest agent to sync its disks, unsynced writes may be lost"
                        }
                    };
                    eprintln!(
                        "{}: warning: VM {} did not shut down within {} s; killed it ({why})",
                        plan.tool,
                        plan.id,
                        plan.timeout.as_secs()
                    );
                }
                return Ok(Outcome {
                    how: "killed",
                    clean: false,
                    synced,
                });
            }
        }
    }
}

/// POST `path` to the agent; None when it does not answer.
fn ask(plan: &Plan, path: &str, timeout: Duration) -> Option<agent::Reply> {
    agent::request(plan.agent.as_ref()?, "POST", path, timeout).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixListener;
    use std::sync::{Arc, Mutex};

    const S: Duration = Duration::from_secs(1);

    fn at(secs: u64) -> Progress {
        Progress {
            has_agent: true,
            agent: Asked::No,
            vmm: Asked::No,
            gone: false,
            elapsed: S * secs as u32,
            timeout: S * 30,
            kill: false,
        }
    }

    #[test]
    fn the_agent_goes_first() {
        assert_eq!(next(&at(0)), Action::AskAgent);
    }

    #[test]
    fn no_agent_means_the_vmm_request_at_once() {
        let p = Progress {
            has_agent: false,
            ..at(0)
        };
        assert_eq!(next(&p), Action::AskVmm);
        let p = Progress {
            agent: Asked::Failed,
            ..at(2)
        };
        assert_eq!(next(&p), Action::AskVmm);
    }

    #[test]
    fn an_accepted_shutdown_waits_then_adds_the_vmm_request_at_half_time() {
        let p = Progress {
            agent: Asked::Accepted,
            ..at(1)
        };
        assert_eq!(next(&p), Action::Wait(S * 14));
        let p = Progress {
            agent: Asked::Accepted,
            ..at(15)
        };
        assert_eq!(next(&p), Action::AskVmm);
        let p = Progress {
            agent: Asked::Accepted,
            vmm: Asked::Accepted,
            ..at(16)
        };
        assert_eq!(next(&p), Action::Wait(S * 14));
    }

    #[test]
    fn after_the_vmm_request_wait_for_the_deadline() {
        for vmm in [Asked::Accepted, Asked::Failed] {
            let p = Progress {
                agent: Asked::Failed,
                vmm,
                ..at(3)
            };
            assert_eq!(next(&p), Action::Wait(S * 27));
        }
    }

    #[test]
    fn past_the_deadline_sync_then_kill() {
        let p = Progress {
            agent: Asked::Accepted,
            vmm: Asked::Accepted,
            ..at(30)
        };
        assert_eq!(next(&p), Action::Kill { sync: true });
        let p = Progress {
            has_agent: false,
            vmm: Asked::Failed,
            ..at(31)
        };
        assert_eq!(next(&p), Action::Kill { sync: false });
    }

    #[test]
    fn timeout_zero_skips_to_sync_and_kill() {
        let p = Progress {
            timeout: Duration::ZERO,
            ..at(0)
        };
        assert_eq!(next(&p), Action::Kill { sync: true });
    }

    #[test]
    fn kill_flag_kills_at_once_without_sync() {
        let p = Progress {
            kill: true,
            ..at(0)
        };
        assert_eq!(next(&p), Action::Kill { sync: false });
    }

    #[test]
    fn gone_is_done_whatever_else() {
        for p in [
            at(0),
            at(40),
            Progress {
                kill: true,
                ..at(0)
            },
        ] {
            assert_eq!(next(&Progress { gone: true, ..p }), Action::Done);
        }
    }

    /// A VMM stand-in: a `sleep` child; `request_shutdown` ends it when
    /// `obeys`, and the calls are logged.
    struct Child {
        child: std::process::Child,
        obeys: bool,
        log: Arc<Mutex<Vec<String>>>,
    }

    impl Vmm for Child {
        fn request_shutdown(&mut self) -> bool {
            self.log.lock().unwrap().push("vmm request".into());
            if self.obeys {
                let _ = self.child.kill();
            }
            true
        }
        fn kill(&mut self) -> Result<()> {
            self.log.lock().unwrap().push("kill".into());
            let _ = self.child.kill();
            Ok(())
        }
    }

    impl Drop for Child {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn child(obeys: bool) -> (Child, Arc<Mutex<Vec<String>>>) {
        let c = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let log = Arc::default();
        (
            Child {
                child: c,
                obeys,
                log: Arc::clone(&log),
            },
            log,
        )
    }

    /// A fake agent on a hybrid vsock socket answering every POST with
    /// `status` and `{"synced":true}`, logging the request lines.
    fn agent(status: u16, log: Arc<Mutex<Vec<String>>>) -> (tempfile::TempDir, Endpoint) {
        let dir = tempfile::tempdir().unwrap();
        let uds = dir.path().join("v.sock");
        let l = UnixListener::bind(&uds).unwrap();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(conn) = conn else { return };
                let mut r = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                (&conn).write_all(b"OK 1\n").unwrap();
                let mut first = String::new();
                r.read_line(&mut first).unwrap();
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                }
                log.lock()
                    .unwrap()
                    .push(format!("agent {}", first.split(' ').nth(1).unwrap()));
                let body = r#"{"status":"ok","synced":true}"#;
                let _ = write!(
                    &conn,
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        (dir, Endpoint::Vsock { uds, port: 52 })
    }

    fn plan<'a>(c: &Child, agent: Option<Endpoint>, timeout: Duration) -> Plan<'a> {
        let pid = c.child.id();
        Plan {
            tool: "banger-test",
            id: "box",
            pid,
            pid_start_time: proc::start_time(pid).unwrap(),
            agent,
            agent_path: "/shutdown",
            vmm_how: "acpi",
            timeout,
            kill: false,
        }
    }

    #[test]
    fn run_without_agent_uses_the_vmm_request() {
        let (mut c, log) = child(true);
        let p = plan(&c, None, Duration::from_secs(10));
        let o = run(&p, &mut c).unwrap();
        assert_eq!((o.how, o.clean, o.synced), ("acpi", true, true));
        assert_eq!(*log.lock().unwrap(), ["vmm request"]);
    }

    #[test]
    fn run_syncs_then_kills_a_vm_that_stays_up() {
        let (mut c, log) = child(false);
        let (_d, ep) = agent(404, log.clone());
        let p = plan(&c, Some(ep), Duration::from_millis(200));
        let o = run(&p, &mut c).unwrap();
        assert_eq!((o.how, o.clean, o.synced), ("killed", false, false));
        // /sync answered 404 here: not synced.
        assert_eq!(
            *log.lock().unwrap(),
            ["agent /shutdown", "vmm request", "agent /sync", "kill"]
        );
    }

    #[test]
    fn run_with_kill_asks_nobody() {
        let (mut c, log) = child(false);
        let (_d, ep) = agent(200, log.clone());
        let mut p = plan(&c, Some(ep), Duration::from_secs(30));
        p.kill = true;
        let o = run(&p, &mut c).unwrap();
        assert_eq!((o.how, o.clean, o.synced), ("killed", false, false));
        assert_eq!(*log.lock().unwrap(), ["kill"]);
        assert_eq!(
            serde_json::to_value(o.line("box")).unwrap(),
            serde_json::json!({"id": "box", "stopped": true, "how": "killed", "clean": false,
                   "synced": false})
        );
    }
}
