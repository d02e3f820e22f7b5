//! Finishing or undoing what a killed command left, and bringing net.json
//! and the kernel back in line: run by every mutating command under the
//! lock before its own work (netstate::update), and by `gc`.
//!
//! In order:
//! 1. Each intent left in net.json (netstate.rs) is resolved in the state:
//!    `release` and `nat-off` are finished (the lease goes, its NAT goes),
//!    `acquire`, `nat-on` and `forward` undone (no lease or forward was
//!    recorded; forwarding goes back off if the step had found it off), `pool-drain` finished,
//!    `teardown` finished at once, `setup` finished at the end (below).
//! 2. Pool entries whose TAP is gone are forgotten.
//! 3. A TAP named `bgr-N` or `tap-pool-N` that no lease or pool entry
//!    holds is deleted when it is on banger's bridge, on no bridge (made
//!    and never attached), or named by an intent. A TAP that a lease or
//!    pool entry holds is never touched; nor is one on another bridge.
//! 4. Isolation is set again from the lease for an `acquire`/`isolate`
//!    left mid-way; IPv4 forwarding goes back off when no VM has NAT and
//!    no port forward needs routing, and banger had turned it on.
//! 5. A bridge left half set up gets its address, filter and link up.
//! 6. The NAT set is read (one nft run) for addresses of no NAT lease,
//!    unless the command rewrites every set itself right after
//!    (`NatSet::Refilled`: `tap acquire`, on every create, under the lock).
//!    When anything was found, the filter's sets are rewritten from the
//!    state (one nft transaction), which removes any element without a
//!    lease (a NAT guest address included).
//! 7. Temp files `.net.json.tmp.PID` (a writer killed mid-store) go.
//!
//! A lease whose TAP vanished is kept: the lease is the VM's address, and
//! its TAP is made again by the next `tap acquire` for that VM (a host
//! reboot does this to every lease). Leases whose VM is gone are
//! banger-vm gc's to release.

use crate::netcfg::NetCfg;
use crate::netlink::Nl;
use crate::netstate::{NetState, Op};
use crate::tap::{LEASED, POOLED};
use banger_lib::Result;

/// One thing found (and, unless a dry run, put right).
#[derive(Debug, Clone, PartialEq)]
pub struct Fix {
    /// `intent`, `tap`, `pool-entry`, `forwarding`, `tmp-file`.
    pub what: &'static str,
    pub vm: String,
    pub detail: String,
}

pub fn banger_name(name: &str) -> bool {
    let num = |rest: &str| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit());
    name.strip_prefix(LEASED).is_some_and(num) || name.strip_prefix(POOLED).is_some_and(num)
}

/// Whether step 6 reads the NAT set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatSet {
    Check,
    /// The command refills every set from the state once it has its lock.
    Refilled,
}

/// Resolve `st`'s intents and reconcile it with the links; with `dry`,
/// only say what that would do (nothing changes, in the kernel or `st`'s
/// file; `st` itself is changed as it would be).
pub fn run(
    cfg: &NetCfg,
    nl: &Nl,
    st: &mut NetState,
    dry: bool,
    nat_set: NatSet,
) -> Result<Vec<Fix>> {
    let mut fixed = Vec::new();
    let intents = std::mem::take(&mut st.intents);
    let mut named: Vec<String> = Vec::new();
    let mut reisolate: Vec<String> = Vec::new();
    let mut resetup = false;
    for i in &intents {
        fixed.push(Fix {
            what: "intent",
            vm: i.vm.clone().unwrap_or_default(),
            detail: i.describe(),
        });
        named.extend(i.taps.iter().cloned());
        let lease = |st: &NetState| st.leases.iter().position(|l| Some(&l.vm) == i.vm.as_ref());
        match i.op {
            Op::Acquire | Op::Isolate => reisolate.extend(i.vm.clone()),
            Op::Release => {
                if let Some(ix) = lease(st).filter(|&ix| i.taps.first() == Some(&st.leases[ix].tap))
                {
                    crate::nat::remove(st, ix);
                    let lease = st.leases.remove(ix);
                    st.forwards.retain(|f| f.vm != lease.vm);
                }
            }
            Op::NatOn | Op::Forward => {
                if i.forwarding_was_off {
                    st.forwarding_was_off = true;
                }
            }
            Op::NatOff => {
                if let Some(ix) = lease(st) {
                    crate::nat::remove(st, ix);
                }
            }
            Op::PoolDrain => st.pool.clear(),
            Op::Setup => resetup = true,
            Op::Teardown => {
                if !dry {
                    crate::bridge::teardown_steps(cfg, nl, st)?;
                }
                resetup = false;
            }
            Op::PoolFill | Op::Ports => {}
        }
    }

    let links = nl.links()?;
    let bridge = links.iter().find(|l| l.name == cfg.bridge).map(|l| l.index);
    st.pool.retain(|p| {
        let there = links.iter().any(|l| &l.name == p);
        if !there {
            fixed.push(Fix {
                what: "pool-entry",
                vm: String::new(),
                detail: p.clone(),
            });
        }
        there
    });
    for l in &links {
        if !banger_name(&l.name) || st.holds(&l.name) {
            continue;
        }
        // On banger's bridge, on no bridge at all (made, never attached),
        // or named by an intent: never a TAP on another bridge.
        let ours = l.master.is_none()
            || (bridge.is_some() && l.master == bridge)
            || named.contains(&l.name);
        if !ours {
            continue;
        }
        if !dry {
            match nl.del_link(l.index) {
                Ok(()) => crate::fault::point("deleting a TAP without a lease"),
                Err(e) if e.exit_code() == 3 => {}
                Err(e) => return Err(e),
            }
        }
        fixed.push(Fix {
            what: "tap",
            vm: String::new(),
            detail: l.name.clone(),
        });
    }

    if !dry {
        for vm in &reisolate {
            let Some(l) = st.leases.iter().find(|l| &l.vm == vm) else {
                continue;
            };
            // Only a port of the bridge has the setting; a TAP left off
            // it is attached and isolated by the VM's next acquire.
            let link = links
                .iter()
                .find(|k| k.name == l.tap && bridge.is_some() && k.master == bridge);
            if let Some(link) = link {
                if let Err(e) = nl.set_isolated(link.index, l.isolated) {
                    eprintln!(
                        "banger-net: warning: isolation of {} not set again: {}",
                        l.tap, e.message
                    );
                }
            }
        }
    }
    if !st.leases.iter().any(|l| l.nat) {
        st.uplink = None;
    }
    if !st.leases.iter().any(|l| l.nat) && !crate::forward::routes(st) && st.forwarding_was_off {
        if crate::nat::forwarding() == Some(true) {
            fixed.push(Fix {
                what: "forwarding",
                vm: String::new(),
                detail: "net.ipv4.ip_forward on with no VM on NAT or routed forward".into(),
            });
        }
        if !dry {
            crate::nat::restore_forwarding(st)?;
            crate::fault::point("restoring forwarding");
        }
    }
    // The one element whose leftover does harm unasked (the next VM given
    // that address would be masqueraded): checked every time, one nft run.
    if bridge.is_some()
        && nat_set == NatSet::Check
        && banger_lib::hosttools::which("nft").is_some()
        && banger_lib::hosttools::has_net_admin()
    {
        let want: Vec<String> = st
            .leases
            .iter()
            .filter(|l| l.nat)
            .map(|l| l.ip.to_string())
            .collect();
        fixed.extend(crate::gc::stale_in_set(st, "inet", "nat_guests", &want));
    }
    if resetup && bridge.is_some() && !dry {
        // Not fatal: the command goes on, and the next setup (or an
        // acquire, which sets up a bridge without its address or down)
        // tries again, with the error to show.
        if let Err(e) = crate::bridge::setup_steps(cfg, nl, st, false) {
            eprintln!(
                "banger-net: warning: finishing a killed setup: {}",
                e.message
            );
        }
    }
    if !fixed.is_empty() && !dry && banger_lib::hosttools::which("nft").is_some() {
        crate::filter::sync_if_present(cfg, st)?;
        crate::fault::point("syncing the filter");
    }
    for t in tmp_files() {
        if !dry {
            let _ = std::fs::remove_file(&t);
        }
        fixed.push(Fix {
            what: "tmp-file",
            vm: String::new(),
            detail: t.display().to_string(),
        });
    }
    Ok(fixed)
}

/// `.net.json.tmp.PID` beside net.json: under the lock, no writer is at
/// work, so any is what a killed one left.
fn tmp_files() -> Vec<std::path::PathBuf> {
    crate::gc::tmp_files(&crate::netstate::path(), |_| true)
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_banger_names_are_banger_taps() {
        for yes in ["bgr-0", "bgr-17", "tap-pool-3"] {
            assert!(super::banger_name(yes), "{yes}");
        }
        for no in [
            "bgr-",
            "bgr-x",
            "bgr-1a",
            "tap-pool-",
            "tap0",
            "banger0",
            "veth-bgr-1",
        ] {
            assert!(!super::banger_name(no), "{no}");
        }
    }
}
