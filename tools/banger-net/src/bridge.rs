//! The bridge every TAP hangs off: setup (idempotent), teardown, status.

use crate::netcfg::NetCfg;
use crate::netlink::Nl;
use crate::netstate;
use banger_lib::{hosttools, Error, Result};
use serde::Serialize;

const FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

#[derive(Serialize)]
pub struct SetupLine {
    pub bridge: String,
    pub subnet: String,
    pub gateway: String,
    pub created: bool,
    pub address_added: bool,
    pub forwarding_enabled: bool,
    pub changed: bool,
}

fn forwarding() -> Option<bool> {
    std::fs::read_to_string(FORWARD)
        .ok()
        .map(|s| s.trim() == "1")
}

fn set_forwarding(on: bool) -> Result<()> {
    std::fs::write(FORWARD, if on { "1\n" } else { "0\n" })
        .map_err(|e| banger_lib::error::io(format!("writing {FORWARD}"), e))
}

/// A route of the host that already covers part of the subnet (and is not
/// ours) makes the bridge's addresses unreachable or hijacks the host's.
fn check_overlap(cfg: &NetCfg, nl: &Nl, bridge_index: Option<u32>) -> Result<()> {
    for r in nl.routes_v4()? {
        if r.prefix == 0 || (r.oif.is_some() && r.oif == bridge_index) {
            continue;
        }
        if cfg.overlaps(r.dst, r.prefix) {
            let via = r
                .oif
                .and_then(|i| nl.name_of(i).ok().flatten())
                .unwrap_or_else(|| "?".into());
            return Err(Error::conflict(format!(
                "subnet {} overlaps the host route {}/{} on {via}",
                cfg.subnet(),
                r.dst,
                r.prefix
            ))
            .with_hint(
                "set another `subnet` and `gateway` in $XDG_CONFIG_HOME/banger/config.json",
            ));
        }
    }
    Ok(())
}

/// Make the bridge, its address and forwarding; change nothing that is
/// already right.
pub fn setup(cfg: &NetCfg, nl: &Nl) -> Result<SetupLine> {
    hosttools::require_net_admin("setting up the bridge")?;
    netstate::update(|st| {
        let mut line = SetupLine {
            bridge: cfg.bridge.clone(),
            subnet: cfg.subnet(),
            gateway: cfg.gateway.to_string(),
            created: false,
            address_added: false,
            forwarding_enabled: false,
            changed: false,
        };
        let existing = nl.link(&cfg.bridge)?;
        let has_addr = match &existing {
            Some(l) => nl.addrs_v4(l.index)?.contains(&(cfg.gateway, cfg.prefix)),
            None => false,
        };
        if !has_addr {
            check_overlap(cfg, nl, existing.as_ref().map(|l| l.index))?;
        }
        let link = match existing {
            Some(l) => l,
            None => {
                nl.add_bridge(&cfg.bridge)?;
                line.created = true;
                nl.link(&cfg.bridge)?
                    .ok_or_else(|| Error::failed(format!("bridge {} vanished", cfg.bridge)))?
            }
        };
        let undo = |e: Error| {
            if line.created {
                let _ = nl.del_link(link.index);
            }
            e
        };
        if !has_addr {
            nl.add_addr(link.index, cfg.gateway, cfg.prefix)
                .map_err(undo)?;
            line.address_added = true;
        }
        if !link.up {
            nl.set_up(link.index).map_err(undo)?;
        }
        if forwarding() == Some(false) {
            set_forwarding(true).map_err(undo)?;
            st.forwarding_was_off = true;
            line.forwarding_enabled = true;
        }
        line.changed = line.created || line.address_added || line.forwarding_enabled || !link.up;
        register_resolved(cfg);
        Ok(line)
    })
}

/// Where systemd-resolved runs, send `~vm` to our DNS server on the bridge.
fn register_resolved(cfg: &NetCfg) {
    if !std::path::Path::new("/run/systemd/resolve/io.systemd.Resolve").exists() {
        return;
    }
    let Some(resolvectl) = hosttools::which("resolvectl") else {
        return;
    };
    let server = if cfg.dns_port == 53 {
        cfg.gateway.to_string()
    } else {
        format!("{}:{}", cfg.gateway, cfg.dns_port)
    };
    for args in [
        vec!["dns", cfg.bridge.as_str(), server.as_str()],
        vec!["domain", cfg.bridge.as_str(), "~vm"],
    ] {
        let ok = std::process::Command::new(&resolvectl)
            .args(&args)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!(
                "banger-net: warning: `resolvectl {}` failed",
                args.join(" ")
            );
        }
    }
}

#[derive(Serialize)]
pub struct TeardownLine {
    pub bridge: String,
    pub removed: Vec<String>,
    pub nat_removed: bool,
    pub dns_stopped: bool,
    pub forwarding_disabled: bool,
    pub changed: bool,
}

/// Remove everything setup and the TAP commands made.
pub fn teardown(cfg: &NetCfg, force: bool) -> Result<TeardownLine> {
    hosttools::require_net_admin("tearing down the bridge")?;
    let nl = Nl::new()?;
    let refuse = |st: &netstate::NetState| -> Result<()> {
        if st.leases.is_empty() || force {
            return Ok(());
        }
        let vms: Vec<_> = st.leases.iter().map(|l| l.vm.as_str()).collect();
        Err(
            Error::conflict(format!("VMs still hold leases: {}", vms.join(", ")))
                .with_hint("release them (tap release --vm NAME), or pass --force"),
        )
    };
    // Refuse before stopping anything, and again under the lock.
    refuse(&netstate::load()?)?;
    let dns_stopped = crate::dnsd::stop()?.was_running;
    netstate::update(|st| {
        refuse(st)?;
        let nat_removed = crate::nat::purge()?;
        let mut removed = Vec::new();
        let bridge = nl.link(&cfg.bridge)?;
        let ours: Vec<String> = st
            .leases
            .iter()
            .map(|l| l.tap.clone())
            .chain(st.pool.iter().cloned())
            .collect();
        for l in nl.links()? {
            let on_bridge = bridge.as_ref().is_some_and(|b| l.master == Some(b.index));
            let banger_name = l.name.starts_with("tap-pool-") || l.name.starts_with("bgr-");
            if ours.contains(&l.name) || (on_bridge && banger_name) {
                nl.del_link(l.index)?;
                removed.push(l.name);
            }
        }
        if let Some(b) = bridge {
            nl.del_link(b.index)?;
            removed.push(b.name);
        }
        let mut forwarding_disabled = false;
        if st.forwarding_was_off {
            set_forwarding(false)?;
            forwarding_disabled = true;
        }
        *st = netstate::NetState::default();
        Ok(TeardownLine {
            bridge: cfg.bridge.clone(),
            changed: !removed.is_empty() || nat_removed || dns_stopped || forwarding_disabled,
            removed,
            nat_removed,
            dns_stopped,
            forwarding_disabled,
        })
    })
}

/// The state of everything, one JSON line per thing, each with a `kind`.
pub fn status(cfg: &NetCfg) -> Result<Vec<serde_json::Value>> {
    use serde_json::json;
    let nl = Nl::new()?;
    let st = netstate::load()?;
    let mut out = Vec::new();
    let link = nl.link(&cfg.bridge)?;
    let addrs = match &link {
        Some(l) => nl.addrs_v4(l.index)?,
        None => vec![],
    };
    out.push(json!({
        "kind": "bridge",
        "name": cfg.bridge,
        "present": link.is_some(),
        "up": link.as_ref().is_some_and(|l| l.up),
        "addresses": addrs.iter().map(|(a, p)| format!("{a}/{p}")).collect::<Vec<_>>(),
        "subnet": cfg.subnet(),
        "gateway": cfg.gateway,
        "forwarding": forwarding(),
    }));
    let names: Vec<String> = nl.links()?.into_iter().map(|l| l.name).collect();
    for l in &st.leases {
        let mut v = serde_json::to_value(l).expect("lease serializes");
        v["kind"] = json!("lease");
        v["tap_present"] = json!(names.contains(&l.tap));
        out.push(v);
    }
    for t in &st.pool {
        out.push(json!({"kind": "pool", "tap": t, "present": names.contains(t)}));
    }
    let nat_vms: Vec<&str> = st
        .leases
        .iter()
        .filter(|l| l.nat)
        .map(|l| l.vm.as_str())
        .collect();
    let table = if hosttools::has_net_admin() && hosttools::which("nft").is_some() {
        Some(crate::nat::table_exists())
    } else {
        None
    };
    out.push(json!({
        "kind": "nat",
        "table": table,
        "uplink": st.uplink,
        "vms": nat_vms,
    }));
    let mut dns = serde_json::to_value(crate::dnsd::status(cfg)?).expect("serializes");
    dns["kind"] = json!("dns");
    if !std::path::Path::new("/run/systemd/resolve/io.systemd.Resolve").exists() {
        dns["resolver_hint"] = json!(format!(
            "no systemd-resolved: point a resolver at {}:{} for the vm domain (dnsmasq: server=/vm/{}#{})",
            cfg.gateway, cfg.dns_port, cfg.gateway, cfg.dns_port
        ));
    }
    out.push(dns);
    Ok(out)
}
