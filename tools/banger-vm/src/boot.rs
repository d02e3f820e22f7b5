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

/// Stop the VM's VMM through its driver; an already gone VMM is fine.
pub fn stop_vmm(tool: &str, name: &str, timeout: u64) -> Result<()> {
    tools::run_gone_ok(tool, &["stop", name, "--timeout", &timeout.to_string()])
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
