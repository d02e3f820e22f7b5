//! The steps create and start share: lease a TAP, start the VMM, wait for
//! the guest; and stopping the VMM.

use crate::create::Timings;
use crate::record::{self, State, VmRecord};
use crate::{tools, vmm};
use banger_lib::{proc, Error, Result};
use serde_json::Value;
use std::path::PathBuf;

/// `banger-net tap acquire`: a TAP and an address for the VM (the same
/// lease again when it has one), into the record with the derived CID and
/// kernel command line.
pub fn acquire_tap(rec: &mut VmRecord) -> Result<()> {
    let v = tools::call_one(
        "banger-net",
        &["tap", "acquire", "--vm", &rec.name],
        None,
        false,
    )?;
    let s = |k: &str| -> Result<String> {
        v.get(k)
            .and_then(|x| x.as_str())
            .map(str::to_string)
            .ok_or_else(|| Error::failed(format!("banger-net tap acquire printed no {k}: {v}")))
    };
    let ip = s("ip")?;
    let prefix = v
        .get("prefix")
        .and_then(|p| p.as_u64())
        .filter(|p| *p <= 32)
        .ok_or_else(|| Error::failed(format!("banger-net tap acquire printed no prefix: {v}")))?
        as u8;
    let gateway = s("gateway")?;
    let dns = s("dns").unwrap_or_else(|_| gateway.clone());
    rec.vsock_cid = Some(vmm::cid_for(&ip, prefix)?);
    rec.cmdline = vmm::cmdline(&rec.name, &ip, &gateway, prefix, &dns);
    rec.tap = Some(s("tap")?);
    rec.mac = Some(s("mac")?);
    rec.ip = Some(ip);
    rec.prefix = Some(prefix);
    rec.gateway = Some(gateway);
    rec.dns = Some(dns);
    Ok(())
}

/// Start the VMM from the record and note its process in the record.
pub fn start_vmm(rec: &mut VmRecord) -> Result<()> {
    let spec = serde_json::to_value(vmm::spec(rec)).expect("specs serialize");
    let v = tools::call_one(vmm::tool(&rec.vmm), &["start"], Some(&spec), false)?;
    let pid = v.get("pid").and_then(Value::as_u64).ok_or_else(|| {
        Error::failed(format!("{} start printed no pid: {v}", vmm::tool(&rec.vmm)))
    })? as u32;
    rec.pid = Some(pid);
    rec.pid_start_time = v
        .get("pid_start_time")
        .and_then(Value::as_u64)
        .or_else(|| proc::start_time(pid));
    rec.vsock_uds = v
        .get("vsock_uds")
        .and_then(Value::as_str)
        .map(PathBuf::from);
    rec.state = State::Running;
    rec.started_at = Some(proc::now_rfc3339());
    record::store(rec)
}

/// How a VMM driver is asked to stop a VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    /// The clean path (guest agent, then the VMM's own request) for up to
    /// this many seconds; then a sync through the agent and a kill.
    Clean(u64),
    /// Kill at once, no sync: for disks about to be removed.
    Kill,
}

/// What a driver's stop did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stopped {
    /// `agent`, `acpi`, `ctrl_alt_del`, `killed`, `already_dead`, ...
    pub how: String,
    /// Whether the guest shut down by itself (its disks are consistent).
    pub clean: bool,
    /// For a kill: whether the agent synced the guest's disks first.
    pub synced: bool,
}

/// Stop the VM's VMM through its driver; an already gone VMM is fine
/// (`how` is then `not_running`).
pub fn stop_vmm(tool: &str, name: &str, mode: StopMode) -> Result<Stopped> {
    let timeout;
    let args: Vec<&str> = match mode {
        StopMode::Clean(t) => {
            timeout = t.to_string();
            vec!["stop", name, "--timeout", &timeout]
        }
        StopMode::Kill => vec!["stop", name, "--kill"],
    };
    let lines = match tools::call(tool, &args, None, false) {
        Ok(l) => l,
        Err(e) if tools::gone(&e) => vec![],
        Err(e) => return Err(e),
    };
    let line = lines.first();
    let how = line
        .and_then(|l| l.get("how"))
        .and_then(Value::as_str)
        .unwrap_or("not_running")
        .to_string();
    let flag = |k: &str| line.and_then(|l| l.get(k)).and_then(Value::as_bool);
    Ok(Stopped {
        clean: flag("clean").unwrap_or(false),
        synced: flag("synced").unwrap_or(false),
        how,
    })
}

/// Make sure the .vm DNS server runs. It is a convenience (the VM works by
/// address without it), so a failure is a warning.
pub fn dns_ensure(name: &str) {
    if let Err(e) = tools::run("banger-net", &["dns", "ensure"]) {
        eprintln!("banger-vm: warning: {name}: {name}.vm will not resolve: {e}");
    }
}

/// Wait for the guest agent, then sshd.
pub fn wait_ready(
    rec: &VmRecord,
    timeout: u64,
    t: &mut Timings,
) -> std::result::Result<(), (&'static str, Error)> {
    let secs = timeout.to_string();
    crate::create::progress(&rec.name, "waiting for the guest agent");
    tools::call(
        "banger-health",
        &["wait", &rec.name, "--timeout", &secs],
        None,
        true,
    )
    .map_err(|e| ("healthy", e))?;
    t.mark("healthy");
    crate::create::progress(&rec.name, "waiting for sshd");
    tools::call(
        "banger-ssh",
        &["wait", &rec.name, "--timeout", &secs],
        None,
        true,
    )
    .map_err(|e| ("ssh", e))?;
    t.mark("ssh");
    Ok(())
}

/// The last lines of the guest console, so a failed boot says why before
/// its files are removed.
pub fn show_console_tail(name: &str) {
    let log = record::vm_dir(name).join("console.log");
    let Ok(text) = std::fs::read(&log) else {
        return;
    };
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    let tail = &lines[lines.len().saturating_sub(20)..];
    if !tail.is_empty() {
        eprintln!("banger-vm: {name}: last lines of the guest console:");
        for l in tail {
            eprintln!("  {l}");
        }
    }
}
