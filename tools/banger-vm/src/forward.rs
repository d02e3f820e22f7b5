//! `vm forward`: host ports forwarded to a VM. The VM's record keeps them
//! (`forwards`); banger-net puts them in force (`forward add`, kernel
//! DNAT) while the VM runs: `start` adds them back (the `forward` step),
//! `stop` takes them away, `delete` gives the lease back and they go with
//! it. On a stopped VM the record alone changes.

use crate::plumbing;
use crate::record::{self, State, VmRecord};
use banger_lib::records::{ForwardLine, PortForward, Proto};
use banger_lib::{Error, Kind, Result};
use std::net::Ipv4Addr;

/// `HOSTPORT:GUESTPORT`, each 1-65535.
pub fn parse_spec(s: &str) -> Result<(u16, u16)> {
    let bad = || {
        Error::usage(format!("{s:?} is not HOSTPORT:GUESTPORT"))
            .with_hint("for example: banger vm forward box 18000:8000")
    };
    let (h, g) = s.split_once(':').ok_or_else(bad)?;
    let port = |p: &str| p.parse::<u16>().ok().filter(|p| *p > 0);
    Ok((port(h).ok_or_else(bad)?, port(g).ok_or_else(bad)?))
}

fn line(rec: &VmRecord, f: &PortForward, active: bool) -> ForwardLine {
    ForwardLine {
        vm: rec.name.clone(),
        proto: f.proto,
        address: f.address,
        host_port: f.host_port,
        guest_port: f.guest_port,
        active,
    }
}

fn same_port(a: &PortForward, b: &PortForward) -> bool {
    a.proto == b.proto && a.address == b.address && a.host_port == b.host_port
}

/// `banger-net forward add` for one of `vm`'s forwards.
fn net_add(vm: &str, f: &PortForward) -> Result<()> {
    let (host, guest, address) = (
        f.host_port.to_string(),
        f.guest_port.to_string(),
        f.address.to_string(),
    );
    let mut args = vec![
        "forward",
        "add",
        "--vm",
        vm,
        "--host-port",
        &host,
        "--guest-port",
        &guest,
        "--address",
        &address,
    ];
    if f.proto == Proto::Udp {
        args.push("--udp");
    }
    plumbing::run("banger-net", &args)
}

/// `net_add` at start: a forward the record keeps cannot be put in force;
/// the hint says how to let the VM start without it.
pub fn net_add_kept(vm: &str, f: &PortForward) -> Result<()> {
    net_add(vm, f).map_err(|mut e| {
        if e.kind == Kind::Conflict {
            e.hint = Some(format!(
                "free that host port, or start without the forward: banger vm forward {vm} --remove {}{}",
                f.host_port,
                if f.proto == Proto::Udp { " --udp" } else { "" }
            ));
        }
        e
    })
}

/// `banger-net forward remove --vm NAME --all`: none in force is fine.
pub fn net_remove_all(vm: &str) -> Result<()> {
    plumbing::run_gone_ok("banger-net", &["forward", "remove", "--vm", vm, "--all"])
}

/// Add a forward to the VM: in force at once when it runs, else at its
/// next start. The same forward again is no change.
pub fn add(name: &str, want: PortForward) -> Result<ForwardLine> {
    // banger-net checks the address too, but a stopped VM's forward
    // reaches it only at start: refuse what can never work now.
    let a = want.address;
    if a.is_unspecified() || a.is_broadcast() || a.is_multicast() {
        return Err(Error::usage(format!(
            "--address {a}: a forward listens on one address of the host"
        ))
        .with_hint("name the address: 127.0.0.1 (the default) or one from `ip -4 addr`"));
    }
    let _l = crate::lifecycle::lock(name)?;
    let mut rec = record::reconcile_locked(name)?;
    if rec.state == State::Creating {
        return Err(Error::conflict(format!("{name} is being created")));
    }
    let running = rec.state == State::Running;
    if let Some(f) = rec.forwards.iter().find(|f| same_port(f, &want)) {
        if f.guest_port != want.guest_port {
            return Err(Error::conflict(format!(
                "{name} already forwards host port {}/{} on {} to guest port {}",
                f.host_port, f.proto, f.address, f.guest_port
            ))
            .with_hint(format!(
                "remove it first: banger vm forward {name} --remove {}{}",
                f.host_port,
                if f.proto == Proto::Udp { " --udp" } else { "" }
            )));
        }
        if running {
            net_add(name, f)?;
        }
        return Ok(line(&rec, f, running));
    }
    // Another VM's record holding the port (running or not) is a conflict
    // too: at most one of them could have it in force.
    for other in banger_lib::records::vm::names()? {
        if other == name {
            continue;
        }
        let Ok(o) = banger_lib::records::vm::view(&other) else {
            continue;
        };
        if o.forwards.iter().any(|f| same_port(f, &want)) {
            return Err(Error::conflict(format!(
                "host port {}/{} on {} is forwarded to VM {other}",
                want.host_port, want.proto, want.address
            ))
            .with_hint(format!(
                "pick another host port, or: banger vm forward {other} --remove {}",
                want.host_port
            )));
        }
    }
    if running {
        net_add(name, &want)?;
    }
    rec.forwards.push(want.clone());
    if let Err(e) = record::store(&rec) {
        if running {
            let _ = net_remove(name, &want);
        }
        return Err(e);
    }
    Ok(line(&rec, &want, running))
}

fn net_remove(vm: &str, f: &PortForward) -> Result<()> {
    let (host, address) = (f.host_port.to_string(), f.address.to_string());
    let mut args = vec![
        "forward",
        "remove",
        "--vm",
        vm,
        "--host-port",
        &host,
        "--address",
        &address,
    ];
    if f.proto == Proto::Udp {
        args.push("--udp");
    }
    plumbing::run_gone_ok("banger-net", &args)
}

/// Remove the VM's forwards of `host_port` (`proto`; any address unless
/// one is given); exit 3 when it has none.
pub fn remove(
    name: &str,
    proto: Proto,
    host_port: u16,
    address: Option<Ipv4Addr>,
) -> Result<Vec<ForwardLine>> {
    let _l = crate::lifecycle::lock(name)?;
    let mut rec = record::reconcile_locked(name)?;
    let hit = |f: &PortForward| {
        f.proto == proto && f.host_port == host_port && address.is_none_or(|a| a == f.address)
    };
    let gone: Vec<PortForward> = rec.forwards.iter().filter(|f| hit(f)).cloned().collect();
    if gone.is_empty() {
        return Err(Error::not_found(format!(
            "{name} has no forward of host port {host_port}/{proto}"
        ))
        .with_hint(format!(
            "banger vm forward {name} --list shows its forwards"
        )));
    }
    // Out of the kernel first: a record that still lists it is the safe
    // side of a failure (stop, delete and gc take it away again).
    if rec.ip.is_some() {
        for f in &gone {
            net_remove(name, f)?;
        }
    }
    rec.forwards.retain(|f| !hit(f));
    record::store(&rec)?;
    Ok(gone.iter().map(|f| line(&rec, f, false)).collect())
}

/// The VM's forwards, in force while it runs.
pub fn list(name: &str) -> Result<Vec<ForwardLine>> {
    banger_lib::names::validate("VM", name)?;
    let rec = banger_lib::records::vm::view(name)?;
    let running = rec.state == State::Running && rec.vmm_alive();
    Ok(rec
        .forwards
        .iter()
        .map(|f| line(&rec, f, running))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        assert_eq!(parse_spec("18000:8000").unwrap(), (18000, 8000));
        assert_eq!(parse_spec("1:65535").unwrap(), (1, 65535));
        for bad in [
            "", "18000", "0:80", "80:0", "65536:80", "a:b", "80:80:80", ":80", "-1:80",
        ] {
            assert_eq!(parse_spec(bad).unwrap_err().exit_code(), 2, "{bad}");
        }
    }
}
