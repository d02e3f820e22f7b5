//! TAPs for VMs: acquire (lease an address, take a pooled TAP or make one),
//! release (back to the pool, or deleted), isolation, and the pool itself.
//! Every change to the leases brings the filter's sets in line (filter.rs)
//! before net.json is written.
//!
//! Names say what a TAP is: `bgr-N` is leased to a VM, `tap-pool-N` is idle
//! capacity. TAP names never derive from VM names, so they stay under the
//! kernel's 15 characters whatever the VM is called.

use crate::netcfg::{mac_for, NetCfg};
use crate::netlink::Nl;
use crate::netstate::{self, Intent, Lease, NetState, Op};
use crate::tuntap;
use banger_lib::{hosttools, Error, Result};
use serde::Serialize;

pub const LEASED: &str = "bgr-";
pub const POOLED: &str = "tap-pool-";

fn free_name(prefix: &str, taken: impl Fn(&str) -> bool) -> String {
    (0u32..)
        .map(|n| format!("{prefix}{n}"))
        .find(|n| !taken(n))
        .expect("some number is free")
}

fn bridge_index(cfg: &NetCfg, nl: &Nl) -> Result<u32> {
    Ok(nl
        .link(&cfg.bridge)?
        .ok_or_else(|| {
            Error::not_found(format!("bridge {} does not exist", cfg.bridge))
                .with_hint("run `banger-net setup`")
        })?
        .index)
}

/// The bridge is there, or set it up now (inside a net.json update).
/// A bridge without banger's MAC (an older banger's, which takes its
/// ports' lowest) is set up again too: the link's attributes come with the
/// lookup, so that costs no request when the MAC is right.
fn ensure_bridge(cfg: &NetCfg, nl: &Nl, st: &mut NetState) -> Result<u32> {
    let has = match nl.link(&cfg.bridge)? {
        Some(l) => {
            l.up && l.mac == crate::netcfg::bridge_mac(&cfg.bridge)
                && nl.addrs_v4(l.index)?.contains(&(cfg.gateway, cfg.prefix))
        }
        None => false,
    };
    if !has {
        st.intend(Intent::new(Op::Setup, None, vec![]))?;
        let line = crate::bridge::setup_steps(cfg, nl, st, true)?;
        if line.changed {
            eprintln!(
                "banger-net: set up bridge {} ({})",
                cfg.bridge,
                cfg.subnet()
            );
        }
    }
    bridge_index(cfg, nl)
}

/// Who owns the TAPs: the unprivileged VMM user (banger_lib::vmmuser), so
/// a VMM running as that user can attach to its TAP. None when that user
/// does not exist (the VMM driver then refuses to start, saying so).
fn owner() -> Option<tuntap::Owner> {
    let u = banger_lib::vmmuser::lookup(&banger_lib::vmmuser::configured()).ok()?;
    Some(tuntap::Owner {
        uid: u.uid.as_raw(),
        gid: u.gid.as_raw(),
    })
}

/// Make a TAP and put it on the bridge, isolated; nothing is left if
/// that fails.
fn make_tap(nl: &Nl, name: &str, bridge: u32) -> Result<()> {
    tuntap::create(name, owner())?;
    crate::fault::point("creating a TAP");
    let attach = || -> Result<()> {
        let l = nl
            .link(name)?
            .ok_or_else(|| Error::failed(format!("TAP {name} vanished after creation")))?;
        nl.attach(l.index, bridge)?;
        crate::fault::point("attaching a TAP");
        nl.set_isolated(l.index, true)?;
        crate::fault::point("isolating a TAP");
        Ok(())
    };
    attach().inspect_err(|_| {
        if let Ok(Some(l)) = nl.link(name) {
            let _ = nl.del_link(l.index);
        }
    })
}

/// A TAP that exists and is on the bridge and up (remade if it vanished,
/// e.g. after a reboot), isolated or not.
fn ensure_tap(nl: &Nl, name: &str, bridge: u32, isolated: bool) -> Result<()> {
    if let (Some(o), Some(_)) = (owner(), nl.link(name)?) {
        // A TAP made before it had an owner; one a VMM holds is busy and
        // already has its VMM, so that failure is no matter.
        let _ = tuntap::set_owner(name, o);
    }
    match nl.link(name)? {
        Some(l) if l.master == Some(bridge) && l.up => {}
        Some(l) => {
            nl.attach(l.index, bridge)?;
            crate::fault::point("attaching a TAP");
        }
        None => make_tap(nl, name, bridge)?,
    }
    isolate(nl, name, isolated)
}

fn isolate(nl: &Nl, name: &str, on: bool) -> Result<()> {
    let l = nl
        .link(name)?
        .ok_or_else(|| Error::not_found(format!("TAP {name} does not exist")))?;
    nl.set_isolated(l.index, on)?;
    crate::fault::point("isolating a TAP");
    Ok(())
}

/// The filter's sets from the state, in one nft transaction.
fn sync(cfg: &NetCfg, st: &NetState) -> Result<()> {
    crate::filter::sync(cfg, st)?;
    crate::fault::point("syncing the filter");
    Ok(())
}

/// Lease a TAP and an address to `vm`, isolated from the other guests
/// unless `isolated` is false. Asked again, the same lease, with the
/// isolation asked for now.
pub fn acquire(cfg: &NetCfg, vm: &str, isolated: bool) -> Result<Lease> {
    banger_lib::names::validate("VM", vm)?;
    hosttools::require_net_admin("tap acquire")?;
    crate::nft::require("tap acquire")?;
    let nl = Nl::new()?;
    netstate::update_refilling(cfg, &nl, |st| {
        let bridge = ensure_bridge(cfg, &nl, st)?;
        if let Some(i) = st.leases.iter().position(|l| l.vm == vm) {
            let tap = st.leases[i].tap.clone();
            st.intend(Intent::new(Op::Acquire, Some(vm), vec![tap.clone()]))?;
            st.leases[i].isolated = isolated;
            ensure_tap(&nl, &tap, bridge, isolated)?;
            sync(cfg, st)?;
            return Ok(st.leases[i].clone());
        }
        let ip = cfg
            .guest_addrs()
            .find(|a| !st.leases.iter().any(|l| l.ip == *a))
            .ok_or_else(|| {
                Error::conflict(format!(
                    "subnet {} is exhausted: all {} guest addresses are leased",
                    cfg.subnet(),
                    st.leases.len()
                ))
                .with_hint("release a lease (tap release --vm NAME) or configure a larger `subnet`")
            })?;
        let links: Vec<String> = nl.links()?.into_iter().map(|l| l.name).collect();
        let tap = free_name(LEASED, |n| {
            links.iter().any(|l| l == n) || st.leases.iter().any(|l| l.tap == n)
        });
        st.intend(Intent::new(Op::Acquire, Some(vm), vec![tap.clone()]))?;
        take_or_make(st, &nl, &tap, bridge)?;
        let lease = Lease {
            vm: vm.to_string(),
            tap: tap.clone(),
            ip,
            prefix: cfg.prefix,
            gateway: cfg.gateway,
            mac: mac_for(vm),
            dns: cfg.gateway,
            nat: false,
            isolated,
        };
        st.leases.push(lease.clone());
        // Its frames are dropped until the filter knows its MAC and address.
        let r = isolate(&nl, &tap, isolated).and_then(|_| sync(cfg, st));
        if let Err(e) = r {
            // net.json is not written on an error: no TAP either.
            if let Ok(Some(l)) = nl.link(&tap) {
                let _ = nl.del_link(l.index);
            }
            return Err(e);
        }
        forget_neighbour(&nl, bridge, &lease);
        Ok(lease)
    })
}

/// The host may still have the address's last VM's MAC in its neighbour
/// table (a released address goes to another VM, so another MAC), and
/// would send the new guest's first packets there for seconds, until
/// probing fails: a guest that announces itself (gratuitous ARP) fixes
/// that, but one need not. The address is banger's to lease, so whatever
/// entry the bridge has for it, permanent or not, is stale now.
///
/// After the filter's sync, so only a lease that stands clears anything.
/// Best effort: a failure is a warning on stderr, not the acquire's. The
/// lease is sound and the filter knows it; failing now would undo it over
/// an entry that (unless someone made it permanent) costs those seconds
/// and no more. No fault point: it changes no state of banger's, and
/// doing it again is harmless.
fn forget_neighbour(nl: &Nl, bridge: u32, lease: &Lease) {
    if let Err(e) = nl.del_neighbour(bridge, lease.ip) {
        eprintln!("banger-net: warning: {}", e.message);
    }
}

/// Cut `vm` off from the other guests, or (isolated false) let it reach
/// the other VMs that are not isolated either.
pub fn set_isolated(cfg: &NetCfg, vm: &str, isolated: bool) -> Result<Lease> {
    banger_lib::names::validate("VM", vm)?;
    hosttools::require_net_admin("tap set")?;
    crate::nft::require("tap set")?;
    let nl = Nl::new()?;
    netstate::update(cfg, &nl, |st| {
        let i = crate::nat::lease_index(st, vm)?;
        st.intend(Intent::new(Op::Isolate, Some(vm), vec![]))?;
        st.leases[i].isolated = isolated;
        // A TAP that is gone (host reboot) gets the setting when it is
        // made again at the next acquire.
        if nl.link(&st.leases[i].tap)?.is_some() {
            isolate(&nl, &st.leases[i].tap, isolated)?;
        }
        sync(cfg, st)?;
        Ok(st.leases[i].clone())
    })
}

/// Give `tap` to a VM: a pooled TAP renamed, else a new one.
fn take_or_make(st: &mut NetState, nl: &Nl, tap: &str, bridge: u32) -> Result<()> {
    while let Some(p) = (!st.pool.is_empty()).then(|| st.pool.remove(0)) {
        if let Some(l) = nl.link(&p)? {
            if let Some(o) = owner() {
                tuntap::set_owner(&p, o)?;
            }
            nl.rename(l.index, tap)?;
            crate::fault::point("renaming a pooled TAP");
            nl.attach(l.index, bridge)?;
            crate::fault::point("attaching a TAP");
            return Ok(());
        }
        // A pool entry whose TAP is gone (reboot): forget it.
    }
    make_tap(nl, tap, bridge)
}

#[derive(Serialize)]
pub struct Released {
    pub vm: String,
    pub tap: String,
    pub ip: std::net::Ipv4Addr,
    pub pooled_as: Option<String>,
}

pub fn release(cfg: &NetCfg, vm: &str) -> Result<Released> {
    banger_lib::names::validate("VM", vm)?;
    hosttools::require_net_admin("tap release")?;
    let nl = Nl::new()?;
    netstate::update(cfg, &nl, |st| {
        let i = crate::nat::lease_index(st, vm)?;
        let link = nl.link(&st.leases[i].tap)?;
        let pool_as = match &link {
            Some(_)
                if (st.pool.len() as u32) < cfg.pool_size && nl.link(&cfg.bridge)?.is_some() =>
            {
                let links: Vec<String> = nl.links()?.into_iter().map(|l| l.name).collect();
                Some(free_name(POOLED, |n| {
                    links.iter().any(|l| l == n) || st.pool.iter().any(|p| p == n)
                }))
            }
            _ => None,
        };
        let taps = std::iter::once(st.leases[i].tap.clone())
            .chain(pool_as.clone())
            .collect();
        st.intend(Intent::new(Op::Release, Some(vm), taps))?;
        crate::nat::remove(st, i);
        let lease = st.leases.remove(i);
        // Its port forwards go with the address they lead to.
        st.forwards.retain(|f| f.vm != lease.vm);
        // The filter forgets the lease first: from here on its TAP can
        // send nothing (an idle pool TAP is dropped whole).
        if banger_lib::hosttools::which("nft").is_some() {
            sync(cfg, st)?;
        }
        if st.forwarding_was_off && !st.leases.iter().any(|l| l.nat) {
            crate::nat::restore_if_unused(st)?;
            crate::fault::point("restoring forwarding");
        }
        let mut pooled_as = None;
        if let Some(l) = link {
            if let Some(name) = pool_as {
                nl.rename(l.index, &name)?;
                crate::fault::point("renaming a TAP into the pool");
                nl.set_isolated(l.index, true)?;
                crate::fault::point("isolating a TAP");
                st.pool.push(name.clone());
                pooled_as = Some(name);
            } else {
                nl.del_link(l.index)?;
                crate::fault::point("deleting a TAP");
            }
        }
        Ok(Released {
            vm: lease.vm,
            tap: lease.tap,
            ip: lease.ip,
            pooled_as,
        })
    })
}

#[derive(Serialize)]
pub struct PoolLine {
    pub tap: String,
    pub bridge: String,
    pub present: bool,
}

#[derive(Serialize)]
pub struct PoolAction {
    pub tap: String,
    pub action: &'static str,
}

pub fn pool_fill(cfg: &NetCfg, size: Option<u32>) -> Result<Vec<PoolAction>> {
    hosttools::require_net_admin("pool fill")?;
    let size = size.unwrap_or(cfg.pool_size) as usize;
    let nl = Nl::new()?;
    netstate::update(cfg, &nl, |st| {
        let bridge = ensure_bridge(cfg, &nl, st)?;
        let links: Vec<String> = nl.links()?.into_iter().map(|l| l.name).collect();
        st.pool.retain(|p| links.contains(p));
        let mut names = Vec::new();
        while st.pool.len() + names.len() < size {
            let name = free_name(POOLED, |n| {
                links.iter().any(|l| l == n)
                    || st.pool.iter().any(|p| p == n)
                    || names.contains(&n.to_string())
            });
            names.push(name);
        }
        if names.is_empty() {
            return Ok(Vec::new());
        }
        st.intend(Intent::new(Op::PoolFill, None, names.clone()))?;
        let mut made = Vec::new();
        for name in names {
            make_tap(&nl, &name, bridge)?;
            st.pool.push(name.clone());
            made.push(PoolAction {
                tap: name,
                action: "created",
            });
        }
        Ok(made)
    })
}

pub fn pool_list(cfg: &NetCfg) -> Result<Vec<PoolLine>> {
    let nl = Nl::new()?;
    let st = netstate::load()?;
    let links: Vec<String> = nl.links()?.into_iter().map(|l| l.name).collect();
    Ok(st
        .pool
        .iter()
        .map(|t| PoolLine {
            tap: t.clone(),
            bridge: cfg.bridge.clone(),
            present: links.contains(t),
        })
        .collect())
}

pub fn pool_drain(cfg: &NetCfg) -> Result<Vec<PoolAction>> {
    hosttools::require_net_admin("pool drain")?;
    let nl = Nl::new()?;
    netstate::update(cfg, &nl, |st| {
        if !st.pool.is_empty() {
            st.intend(Intent::new(Op::PoolDrain, None, st.pool.clone()))?;
        }
        let mut out = Vec::new();
        for t in std::mem::take(&mut st.pool) {
            if let Some(l) = nl.link(&t)? {
                nl.del_link(l.index)?;
                crate::fault::point("deleting a TAP");
            }
            out.push(PoolAction {
                tap: t,
                action: "deleted",
            });
        }
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_names_are_lowest_and_short() {
        let taken = ["bgr-0", "bgr-2"];
        assert_eq!(free_name(LEASED, |n| taken.contains(&n)), "bgr-1");
        assert_eq!(free_name(POOLED, |_| false), "tap-pool-0");
        // Even the 10000th TAP name fits IFNAMSIZ.
        assert!(format!("{POOLED}99999").len() <= tuntap::MAX_IFNAME);
    }
}
