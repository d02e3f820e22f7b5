//! Running the system ssh against a guest.

use crate::{ident, pin, target::Vm};
use banger_lib::records::HealthLine;
use banger_lib::{hosttools, sibling, Error, Result};
use std::ffi::OsString;
use std::io::IsTerminal;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::Command;

/// The ssh command line for `root@ip`.
pub fn ssh_args(key: &Path, known_hosts: &Path, ip: &str, tty: bool) -> Vec<OsString> {
    let mut a = ssh_options(key, known_hosts);
    if tty {
        a.push("-t".into());
    }
    a.push(format!("root@{ip}").into());
    a
}

/// The options banger's ssh and scp share: our key only, the VM's own
/// known_hosts, no user config, never a password prompt.
pub fn ssh_options(key: &Path, known_hosts: &Path) -> Vec<OsString> {
    let mut a: Vec<OsString> = vec!["-F".into(), "/dev/null".into(), "-i".into(), key.into()];
    for opt in [
        "IdentitiesOnly=yes".to_string(),
        // Key only: never stop to ask for a password.
        "BatchMode=yes".to_string(),
        format!("UserKnownHostsFile={}", known_hosts.display()),
        "GlobalKnownHostsFile=/dev/null".to_string(),
        // Keys pinned from the guest agent before the first contact
        // (pin.rs): an unknown or changed key is refused, never learned.
        "StrictHostKeyChecking=yes".to_string(),
        "ConnectTimeout=10".to_string(),
        "LogLevel=ERROR".to_string(),
    ] {
        a.push("-o".into());
        a.push(opt.into());
    }
    a
}

/// The VM's known_hosts with its keys pinned: checked against what its
/// agent says now (a changed key is an error unless `rekey`), pinned from
/// it when nothing is yet. An agent that does not answer leaves ssh to
/// check the keys already pinned.
pub fn pinned_known_hosts(vm: &Vm, rekey: bool) -> Result<std::path::PathBuf> {
    let ip = vm.running_ip()?;
    let path = ident::known_hosts(&vm.name)?;
    let have = !pin::pinned(&path).is_empty();
    let asked = match &vm.agent {
        Some(ep) => pin::fetch(&vm.name, ep, AGENT_TIMEOUT),
        None => Err(Error::prereq(format!(
            "{}'s record names no guest agent",
            vm.name
        ))),
    };
    match asked {
        Ok(keys) => pin::pin(&vm.name, ip, keys, rekey).map(|l| l.known_hosts),
        Err(_) if have && !rekey => Ok(path),
        Err(e) => Err(Error {
            message: format!("no ssh host keys of {} to check: {}", vm.name, e.message),
            hint: Some(format!(
                "banger takes a guest's host keys from its agent; restart it: banger vm restart {}",
                vm.name
            )),
            ..e
        }),
    }
}

/// How long a session waits for the agent's keys (the guest is up).
const AGENT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

fn ssh_command(vm: &Vm, tty: bool, rekey: bool) -> Result<Command> {
    let ip = vm.running_ip()?;
    let ssh = hosttools::require("ssh", "logging into guests", "openssh-client")?;
    let key = ident::key()?;
    let known_hosts = pinned_known_hosts(vm, rekey)?;
    let mut c = Command::new(ssh);
    c.args(ssh_args(&key, &known_hosts, ip, tty));
    Ok(c)
}

/// `banger-ssh NAME -- CMD`: become ssh, so nothing stands between the
/// remote command and the caller.
pub fn run_command(vm: &Vm, cmd: &[String], rekey: bool) -> Result<i32> {
    let tty = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let mut c = ssh_command(vm, tty, rekey)?;
    // `--` so a remote command starting with `-` is not read as an option.
    c.arg("--").args(cmd);
    let e = c.exec();
    Err(Error::failed(format!("running ssh: {e}")))
}

/// `banger-ssh NAME`: a login shell, then the still-running reminder.
pub fn interactive(vm: &Vm, rekey: bool) -> Result<i32> {
    let mut c = ssh_command(vm, false, rekey)?;
    // The terminal's ^C belongs to the remote shell; we only wait.
    let _guard = banger_lib::proc::InterruptsIgnored::new();
    let status = c
        .status()
        .map_err(|e| Error::failed(format!("running ssh: {e}")))?;
    let code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    // 255 is ssh's own failure: there was no session to remind about.
    if code != 255 && still_running(&vm.name) {
        eprintln!(
            "{0} is still running; stop it with: banger vm stop {0}",
            vm.name
        );
    }
    Ok(code)
}

/// Whether the guest agent still answers (banger-health check exits 0).
fn still_running(name: &str) -> bool {
    sibling::run_typed::<HealthLine>("banger-health", &["check", name, "--timeout", "2"], None)
        .map(|lines| lines.iter().all(|l| l.ok) && !lines.is_empty())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_pin_key_and_known_hosts() {
        let a: Vec<String> = ssh_args(Path::new("/k"), Path::new("/kh/box"), "10.0.0.2", false)
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect();
        let s = a.join(" ");
        assert!(s.starts_with("-F /dev/null -i /k "), "{s}");
        for want in [
            "-o IdentitiesOnly=yes",
            "-o UserKnownHostsFile=/kh/box",
            "-o StrictHostKeyChecking=yes",
        ] {
            assert!(s.contains(want), "{want} in {s}");
        }
        assert_eq!(a.last().unwrap(), "root@10.0.0.2");
        assert!(!a.contains(&"-t".to_string()));
        let t = ssh_args(Path::new("/k"), Path::new("/kh"), "x", true);
        assert!(t.contains(&"-t".into()));
    }
}
