//! What the UI asks of banger, as a trait: the real implementation runs
//! the tools as processes and reads their JSON lines (no private state
//! access), tests use a fake.

use crate::records::{Health, Image, Vm};
use banger_lib::records::{FanoutLine, HealthLine, ImageLine, VmLine};
use banger_lib::{sibling, Error};
use serde_json::Value;
use std::process::{Command, Stdio};

/// A lifecycle action on one VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Start,
    Stop,
    Restart,
    Delete,
    NatOn,
    NatOff,
}

impl Verb {
    /// The `banger-vm` arguments before the VM name.
    pub fn args(self) -> &'static [&'static str] {
        match self {
            Verb::Start => &["start"],
            Verb::Stop => &["stop"],
            Verb::Restart => &["restart"],
            Verb::Delete => &["delete"],
            Verb::NatOn => &["set", "--nat"],
            Verb::NatOff => &["set", "--no-nat"],
        }
    }

    /// For the status line: "stopping box", "stopped box".
    pub fn progressive(self) -> &'static str {
        match self {
            Verb::Start => "starting",
            Verb::Stop => "stopping",
            Verb::Restart => "restarting",
            Verb::Delete => "deleting",
            Verb::NatOn => "enabling NAT for",
            Verb::NatOff => "disabling NAT for",
        }
    }

    pub fn past(self) -> &'static str {
        match self {
            Verb::Start => "started",
            Verb::Stop => "stopped",
            Verb::Restart => "restarted",
            Verb::Delete => "deleted",
            Verb::NatOn => "NAT enabled for",
            Verb::NatOff => "NAT disabled for",
        }
    }
}

/// Everything the UI does to the outside world, except ssh, which needs
/// the terminal (see `ssh_command`).
pub trait Backend: Send + Sync {
    fn list_vms(&self) -> Result<Vec<Vm>, Error>;
    fn list_images(&self) -> Result<Vec<Image>, Error>;
    fn health(&self, names: &[String]) -> Result<Vec<Health>, Error>;
    fn act(&self, verb: Verb, name: &str) -> Result<(), Error>;
    fn create(&self, name: &str) -> Result<(), Error>;
    fn logs(&self, name: &str) -> Result<String, Error>;
    /// The command that runs an interactive ssh session into `name`; the
    /// caller hands it the terminal.
    fn ssh_command(&self, name: &str) -> Result<Command, Error>;
}

/// The real backend: banger-vm, banger-image and banger-health found by
/// `banger_lib::sibling` (BANGER_LIBEXEC, next to this program, PATH).
pub struct Tools;

impl Backend for Tools {
    fn list_vms(&self) -> Result<Vec<Vm>, Error> {
        let lines: Vec<VmLine> = sibling::run_typed("banger-vm", &["list"], None)?;
        Ok(lines.into_iter().map(Vm::from).collect())
    }

    fn list_images(&self) -> Result<Vec<Image>, Error> {
        let lines: Vec<ImageLine> = sibling::run_typed("banger-image", &["list"], None)?;
        Ok(lines.into_iter().map(Image::from).collect())
    }

    fn health(&self, names: &[String]) -> Result<Vec<Health>, Error> {
        let mut args = vec!["check"];
        args.extend(names.iter().map(String::as_str));
        // An unhealthy VM makes check exit 1 with its ok:false line: that
        // line is the answer, not a failure.
        let (lines, _) = run_fanout("banger-health", &args)?;
        let lines: Vec<HealthLine> = sibling::typed("banger-health", &args, lines)?;
        Ok(lines.into_iter().map(Health::from).collect())
    }

    fn act(&self, verb: Verb, name: &str) -> Result<(), Error> {
        let mut args = verb.args().to_vec();
        args.push(name);
        let (lines, _) = run_fanout("banger-vm", &args)?;
        let lines: Vec<FanoutLine> = sibling::typed("banger-vm", &args, lines)?;
        // A fan-out verb reports a per-VM failure in its result line.
        match lines.iter().find(|l| !l.ok) {
            Some(l) => Err(Error::failed(format!(
                "{} {name}: {}",
                verb.args()[0],
                l.error.as_deref().unwrap_or("failed")
            ))),
            None => Ok(()),
        }
    }

    fn create(&self, name: &str) -> Result<(), Error> {
        sibling::run_json("banger-vm", &["create", "--name", name], None).map(drop)
    }

    fn logs(&self, name: &str) -> Result<String, Error> {
        let out = sibling::command("banger-vm")?
            .args(["logs", name])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Error::failed(format!("running banger-vm logs: {e}")))?;
        if !out.status.success() {
            return Err(sibling::tool_error(
                "banger-vm",
                &["logs", name],
                out.status.code().unwrap_or(1),
                &String::from_utf8_lossy(&out.stderr),
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn ssh_command(&self, name: &str) -> Result<Command, Error> {
        let mut cmd = sibling::command("banger-vm")?;
        cmd.args(["ssh", name]);
        Ok(cmd)
    }
}

/// Run a fan-out tool: its JSON lines whatever the exit status (a failed
/// target is a line with ok:false), or the tool's error when it printed
/// no line at all (usage, not found, missing prerequisite).
fn run_fanout(tool: &str, args: &[&str]) -> Result<(Vec<Value>, i32), Error> {
    let out = sibling::command(tool)?
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::failed(format!("running {tool}: {e}")))?;
    let code = out.status.code().unwrap_or(1);
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    if code != 0 && lines.is_empty() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(sibling::tool_error(tool, args, code, &stderr));
    }
    Ok((lines, code))
}

/// A backend that answers from memory and records what it was asked, for
/// tests of the UI logic.
#[cfg(test)]
pub mod fake {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    pub struct Fake {
        pub vms: Mutex<Vec<Vm>>,
        pub calls: Mutex<Vec<String>>,
        /// When set, every action fails with this message.
        pub fail: Mutex<Option<String>>,
    }

    pub fn vm(name: &str, state: &str, nat: bool) -> Vm {
        Vm {
            name: name.into(),
            state: state.into(),
            vmm: "qemu".into(),
            ip: "172.30.0.2".into(),
            nat,
            image: "debian".into(),
            started_at: None,
            uptime_s: None,
        }
    }

    impl Fake {
        pub fn with(vms: Vec<Vm>) -> Fake {
            Fake {
                vms: Mutex::new(vms),
                ..Default::default()
            }
        }

        fn record(&self, call: String) -> Result<(), Error> {
            self.calls.lock().unwrap().push(call);
            match self.fail.lock().unwrap().clone() {
                Some(m) => Err(Error::failed(m).with_hint("try again")),
                None => Ok(()),
            }
        }

        pub fn calls(&self) -> Vec<String> {
            self.calls.lock().unwrap().clone()
        }
    }

    impl Backend for Fake {
        fn list_vms(&self) -> Result<Vec<Vm>, Error> {
            Ok(self.vms.lock().unwrap().clone())
        }
        fn list_images(&self) -> Result<Vec<Image>, Error> {
            self.record("image list".into())?;
            Ok(vec![Image {
                name: "debian".into(),
                default: true,
                managed: "yes".into(),
                size: "4.0G".into(),
                from: "debian:bookworm".into(),
                created_at: "2026-01-01T00:00:00Z".into(),
            }])
        }
        fn health(&self, names: &[String]) -> Result<Vec<Health>, Error> {
            Ok(names
                .iter()
                .map(|n| Health {
                    name: n.clone(),
                    ok: true,
                    error: None,
                })
                .collect())
        }
        fn act(&self, verb: Verb, name: &str) -> Result<(), Error> {
            self.record(format!("{} {name}", verb.args().join(" ")))
        }
        fn create(&self, name: &str) -> Result<(), Error> {
            self.record(format!("create --name {name}"))
        }
        fn logs(&self, name: &str) -> Result<String, Error> {
            self.record(format!("logs {name}"))?;
            Ok((1..=100).map(|i| format!("console line {i}\n")).collect())
        }
        fn ssh_command(&self, name: &str) -> Result<Command, Error> {
            let mut c = Command::new("true");
            c.arg(name);
            Ok(c)
        }
    }
}
