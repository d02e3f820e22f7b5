//! Per-VM NAT: a VM's address in the filter's `nat_guests` set, masqueraded
//! out of the uplink (filter.rs has the rules). IPv4 forwarding is on only
//! while some VM has NAT: the first one turns it on if it was off, the
//! last one going turns it back off.

use crate::filter;
use crate::netcfg::NetCfg;
use crate::netlink::Nl;
use crate::netstate::{self, Intent, NetState, Op};
use banger_lib::{Error, Result};
use std::net::Ipv4Addr;

const FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

#[derive(serde::Serialize)]
pub struct NatLine {
    pub vm: String,
    pub ip: Ipv4Addr,
    pub nat: bool,
    pub uplink: Option<String>,
}

/// net.ipv4.ip_forward, if it can be read.
pub fn forwarding() -> Option<bool> {
    std::fs::read_to_string(FORWARD)
        .ok()
        .map(|s| s.trim() == "1")
}

fn set_forwarding(on: bool) -> Result<()> {
    std::fs::write(FORWARD, if on { "1\n" } else { "0\n" })
        .map_err(|e| banger_lib::error::io(format!("writing {FORWARD}"), e))?;
    crate::fault::point("writing ip_forward");
    Ok(())
}

/// Turn forwarding on for NAT, remembering that it was off.
pub fn ensure_forwarding(st: &mut NetState) -> Result<()> {
    if forwarding() == Some(false) {
        set_forwarding(true)?;
        st.forwarding_was_off = true;
    }
    Ok(())
}

/// Put forwarding back as NAT found it. Whether it was turned off.
pub fn restore_forwarding(st: &mut NetState) -> Result<bool> {
    if !st.forwarding_was_off {
        return Ok(false);
    }
    set_forwarding(false)?;
    st.forwarding_was_off = false;
    Ok(true)
}

/// The interface of the default route.
pub fn default_uplink(nl: &Nl) -> Result<String> {
    let r = nl.routes_v4()?;
    let idx = r
        .iter()
        .find(|r| r.prefix == 0 && r.oif.is_some())
        .and_then(|r| r.oif)
        .ok_or_else(|| {
            Error::prereq("there is no default route to find the uplink from").with_hint(format!(
                "set \"uplink\" (the interface that reaches the outside) in {}, or pass --uplink IF",
                banger_lib::paths::config_dir().join("config.json").display()
            ))
        })?;
    nl.name_of(idx)?
        .ok_or_else(|| Error::failed(format!("the default route's interface {idx} vanished")))
}

/// The filter's sets from the state, in one nft transaction.
fn sync(cfg: &NetCfg, st: &NetState) -> Result<()> {
    filter::sync(cfg, st)?;
    crate::fault::point("syncing the filter");
    Ok(())
}

fn any_nat(st: &NetState) -> bool {
    st.leases.iter().any(|l| l.nat)
}

pub fn enable(cfg: &NetCfg, vm: &str, uplink: Option<&str>) -> Result<NatLine> {
    banger_lib::names::validate("VM", vm)?;
    crate::nft::require("NAT")?;
    let nl = Nl::new()?;
    let configured = banger_lib::config::Bundle::load()
        .map(|b| b.uplink)
        .unwrap_or_default();
    netstate::update(cfg, &nl, |st| {
        let i = lease_index(st, vm)?;
        let uplink = match uplink {
            Some(u) => u.to_string(),
            None => match &st.uplink {
                Some(u) if any_nat(st) => u.clone(),
                _ if !configured.is_empty() => configured,
                _ => default_uplink(&nl)?,
            },
        };
        crate::nft::ifname(&uplink)?;
        if nl.link(&uplink)?.is_none() {
            return Err(
                Error::not_found(format!("uplink interface {uplink} does not exist"))
                    .with_hint("set \"uplink\" in config.json (or pass --uplink) to an interface from `ip link`"),
            );
        }
        let mut intent = Intent::new(Op::NatOn, Some(vm), vec![]);
        intent.forwarding_was_off = forwarding() == Some(false);
        st.intend(intent)?;
        let before = st.clone();
        st.leases[i].nat = true;
        st.uplink = Some(uplink.clone());
        let r = ensure_forwarding(st).and_then(|_| sync(cfg, st));
        if let Err(e) = r {
            // Nothing half made (net.json is not written on an error):
            // forwarding as it was, the sets as they were.
            if st.forwarding_was_off && !before.forwarding_was_off {
                let _ = set_forwarding(false);
            }
            let _ = filter::sync(cfg, &before);
            return Err(e);
        }
        Ok(NatLine {
            vm: vm.to_string(),
            ip: st.leases[i].ip,
            nat: true,
            uplink: Some(uplink),
        })
    })
}

pub fn disable(cfg: &NetCfg, vm: &str) -> Result<NatLine> {
    banger_lib::names::validate("VM", vm)?;
    crate::nft::require("NAT")?;
    let nl = Nl::new()?;
    netstate::update(cfg, &nl, |st| {
        let i = lease_index(st, vm)?;
        st.intend(Intent::new(Op::NatOff, Some(vm), vec![]))?;
        remove(st, i);
        sync(cfg, st)?;
        restore_if_unused(st)?;
        Ok(NatLine {
            vm: vm.to_string(),
            ip: st.leases[i].ip,
            nat: false,
            uplink: st.uplink.clone(),
        })
    })
}

/// Take lease `i` out of NAT (inside a net.json update; the caller syncs
/// the filter, then calls `restore_if_unused`).
pub fn remove(st: &mut NetState, i: usize) {
    st.leases[i].nat = false;
    if !any_nat(st) {
        st.uplink = None;
    }
}

/// Forwarding on when a port forward on a non-loopback address needs the
/// host to route (forward.rs), remembering that it was off.
pub fn ensure_routing(st: &mut NetState) -> Result<()> {
    if crate::forward::routes(st) {
        ensure_forwarding(st)?;
    }
    Ok(())
}

/// With no VM on NAT and no routed port forward, forwarding goes back to
/// how NAT (or the first such forward) found it.
pub fn restore_if_unused(st: &mut NetState) -> Result<()> {
    if !any_nat(st) && !crate::forward::routes(st) {
        restore_forwarding(st)?;
    }
    Ok(())
}

pub fn list() -> Result<Vec<NatLine>> {
    let st = netstate::load()?;
    Ok(st
        .leases
        .iter()
        .filter(|l| l.nat)
        .map(|l| NatLine {
            vm: l.vm.clone(),
            ip: l.ip,
            nat: true,
            uplink: st.uplink.clone(),
        })
        .collect())
}

pub fn lease_index(st: &NetState, vm: &str) -> Result<usize> {
    st.leases.iter().position(|l| l.vm == vm).ok_or_else(|| {
        Error::not_found(format!("VM {vm} has no lease")).with_hint(
            "`banger-net lease list` shows the leases; `tap acquire --vm NAME` makes one",
        )
    })
}
