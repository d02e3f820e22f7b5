//! The bridge every TAP hangs off, with the guests' packet filter
//! (filter.rs): setup (idempotent), teardown, status.

use crate::netcfg::NetCfg;
use crate::netlink::Nl;
use crate::netstate::{self, Intent, Op};
use banger_lib::{hosttools, Error, Result};
use serde::Serialize;

#[derive(Serialize)]
pub struct SetupLine {
    pub bridge: String,
    pub subnet: String,
    pub gateway: String,
    pub created: bool,
    pub address_added: bool,
    /// Whether the bridge's MAC had to be set: made with it, or a bridge
    /// from an older banger, which had its ports' lowest.
    pub mac_set: bool,
    /// Whether banger's nftables tables had to be made (they are remade
    /// from the settings either way).
    pub filter_installed: bool,
    pub changed: bool,
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

/// Make the bridge (with its fixed MAC, netcfg::bridge_mac), its address
/// and the guests' filter; change nothing that is already right. The
/// filter goes in before the bridge is up, so no guest ever sends through
/// an unfiltered bridge.
pub fn setup(cfg: &NetCfg, nl: &Nl) -> Result<SetupLine> {
    hosttools::require_net_admin("setting up the bridge")?;
    crate::nft::require("the guests' packet filter")?;
    netstate::update(cfg, nl, |st| {
        st.intend(Intent::new(Op::Setup, None, vec![]))?;
        setup_steps(cfg, nl, st, true)
    })
}

/// setup's work, inside a net.json update (tap acquire sets up a missing
/// bridge this way; recover.rs finishes a killed setup). `reinstall`:
/// remake the filter's tables even when they exist (setup picks up
/// changed settings so); else only when they are missing.
pub fn setup_steps(
    cfg: &NetCfg,
    nl: &Nl,
    st: &mut netstate::NetState,
    reinstall: bool,
) -> Result<SetupLine> {
    let mut line = SetupLine {
        bridge: cfg.bridge.clone(),
        subnet: cfg.subnet(),
        gateway: cfg.gateway.to_string(),
        created: false,
        address_added: false,
        mac_set: false,
        filter_installed: false,
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
    let mac = crate::netcfg::bridge_mac(&cfg.bridge);
    let link = match existing {
        Some(l) => l,
        None => {
            nl.add_bridge(&cfg.bridge, mac)?;
            line.created = true;
            line.mac_set = true;
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
    if line.created {
        crate::fault::point("creating the bridge");
    }
    // A bridge made by an older banger (or changed by hand): the gateway's
    // MAC changes once now, and no more as TAPs come and go.
    if link.mac != mac {
        nl.set_mac(link.index, mac).map_err(undo)?;
        line.mac_set = true;
        crate::fault::point("setting the bridge's MAC");
    }
    if !has_addr {
        nl.add_addr(link.index, cfg.gateway, cfg.prefix)
            .map_err(undo)?;
        line.address_added = true;
        crate::fault::point("adding the bridge's address");
    }
    if reinstall || !crate::filter::exists() {
        line.filter_installed = crate::filter::install(cfg, st).map_err(undo)?;
        crate::fault::point("installing the filter");
    }
    if !link.up {
        nl.set_up(link.index).map_err(undo)?;
        crate::fault::point("bringing the bridge up");
    }
    line.changed =
        line.created || line.address_added || line.mac_set || line.filter_installed || !link.up;
    register_resolved(cfg);
    Ok(line)
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
    /// Whether banger's nftables tables were there to remove.
    pub tables_removed: bool,
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
    netstate::update(cfg, &nl, |st| {
        refuse(st)?;
        st.intend(Intent::new(Op::Teardown, None, vec![]))?;
        let (removed, tables_removed, forwarding_disabled) = teardown_steps(cfg, &nl, st)?;
        Ok(TeardownLine {
            bridge: cfg.bridge.clone(),
            changed: !removed.is_empty() || tables_removed || dns_stopped || forwarding_disabled,
            removed,
            tables_removed,
            dns_stopped,
            forwarding_disabled,
        })
    })
}

/// teardown's work inside a net.json update (recover.rs finishes a killed
/// teardown with it): the tables, every banger TAP of the state or on the
/// bridge, the bridge, forwarding as NAT found it, and the state emptied
/// but for the ports opened with `allow`. What was removed: links, tables,
/// forwarding.
pub fn teardown_steps(
    cfg: &NetCfg,
    nl: &Nl,
    st: &mut netstate::NetState,
) -> Result<(Vec<String>, bool, bool)> {
    let tables_removed = crate::filter::purge()?;
    if tables_removed {
        crate::fault::point("removing the tables");
    }
    let mut removed = Vec::new();
    let bridge = nl.link(&cfg.bridge)?;
    let ours: Vec<String> = st
        .leases
        .iter()
        .map(|l| l.tap.clone())
        .chain(st.pool.iter().cloned())
        .chain(st.intents.iter().flat_map(|i| i.taps.iter().cloned()))
        .collect();
    for l in nl.links()? {
        let on_bridge = bridge.as_ref().is_some_and(|b| l.master == Some(b.index));
        if ours.contains(&l.name) || (on_bridge && crate::recover::banger_name(&l.name)) {
            nl.del_link(l.index)?;
            crate::fault::point("deleting a TAP");
            removed.push(l.name);
        }
    }
    if let Some(b) = bridge {
        nl.del_link(b.index)?;
        crate::fault::point("deleting the bridge");
        removed.push(b.name);
    }
    let forwarding_disabled = crate::nat::restore_forwarding(st)?;
    // Ports opened with `allow` stay open for the next setup.
    let open_ports = std::mem::take(&mut st.open_ports);
    let intents = std::mem::take(&mut st.intents);
    *st = netstate::NetState {
        open_ports,
        intents,
        ..netstate::NetState::default()
    };
    Ok((removed, tables_removed, forwarding_disabled))
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
        "forwarding": crate::nat::forwarding(),
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
    out.push(json!({
        "kind": "nat",
        "uplink": st.uplink,
        "vms": nat_vms,
    }));
    for f in &st.forwards {
        let mut v = serde_json::to_value(f).expect("forward serializes");
        v["kind"] = json!("forward");
        out.push(v);
    }
    let readable = hosttools::has_net_admin() && hosttools::which("nft").is_some();
    let dropped = readable.then(crate::filter::dropped).flatten();
    out.push(json!({
        "kind": "filter",
        "tables": readable.then(|| dropped.is_some()),
        "host_ports": crate::filter::host_ports(cfg, &st),
        "dropped": dropped,
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
