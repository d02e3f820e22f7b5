//! `gc [--dry-run]`: what killed commands left in this world's network,
//! one `GcLine` each, removed unless a dry run: intents left in net.json
//! (finished or undone as recover.rs says), TAPs without a lease, pool
//! entries whose TAP is gone, nft set elements no lease accounts for (a
//! NAT guest address above all), IPv4 forwarding left on with no VM on
//! NAT, `.net.json.tmp.PID` files, and a dead DNS server's pid file (and
//! its temp files). banger-net makes no socket files: the DNS server's
//! helper talks over a socket pair. Leases are not gc's: a lease whose VM
//! is gone is banger-vm gc's to release, and one whose TAP is gone is
//! remade by the next `tap acquire`.

use crate::filter::TABLE;
use crate::netcfg::NetCfg;
use crate::netlink::Nl;
use crate::netstate::{self, NetState};
use crate::recover::{self, Fix};
use banger_lib::records::GcLine;
use banger_lib::{hosttools, Result};
use std::collections::BTreeSet;
use std::path::PathBuf;

pub fn gc(cfg: &NetCfg, dry_run: bool) -> Result<Vec<GcLine>> {
    if !dry_run {
        hosttools::require_net_admin("gc")?;
    }
    let nl = Nl::new()?;
    let found = find(cfg, &nl, dry_run)?;
    if dry_run || found.is_empty() {
        return Ok(found.into_iter().map(|f| line(f, false, None)).collect());
    }
    let errors = remove(cfg, &nl, &found);
    let left: BTreeSet<(&str, String)> = find(cfg, &nl, false)?
        .into_iter()
        .map(|f| (f.what, f.detail))
        .collect();
    Ok(found
        .into_iter()
        .map(|f| {
            let still = left.contains(&(f.what, f.detail.clone()));
            let err = still.then(|| {
                errors
                    .clone()
                    .unwrap_or_else(|| "still there after gc".to_string())
            });
            line(f, !still, err)
        })
        .collect())
}

fn line(f: Fix, removed: bool, error: Option<String>) -> GcLine {
    GcLine {
        what: f.what.into(),
        vm: f.vm,
        detail: f.detail,
        removed,
        error,
    }
}

/// net.json's lock; a dry run by someone who may not take it (not root,
/// root's state dir) reads without it.
fn lock(dry_run: bool) -> Result<Option<banger_lib::state::Lock>> {
    match netstate::lock() {
        Ok(l) => Ok(Some(l)),
        Err(e)
            if dry_run
                && matches!(
                    e.errno(),
                    Some(nix::libc::EACCES | nix::libc::EPERM | nix::libc::EROFS)
                ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Everything there is to find, changing nothing.
fn find(cfg: &NetCfg, nl: &Nl, dry_run: bool) -> Result<Vec<Fix>> {
    let mut found = {
        let _lock = lock(dry_run)?;
        let mut plan = netstate::load()?;
        let mut found = recover::run(cfg, nl, &mut plan, true, recover::NatSet::Check)?;
        found.extend(stale_elements(cfg, &plan));
        found
    };
    found.extend(dns_leftovers());
    Ok(found)
}

/// Put it all right: recover.rs under the lock, the filter's sets
/// rewritten from the state, the DNS server's leftovers removed. The
/// first error, if any.
fn remove(cfg: &NetCfg, nl: &Nl, found: &[Fix]) -> Option<String> {
    let mut first = None;
    let r = netstate::lock().and_then(|_lock| {
        let mut st = netstate::load()?;
        recover::run(cfg, nl, &mut st, false, recover::NatSet::Check)?;
        if found.iter().any(|f| f.what == "nft-element") {
            crate::filter::sync_if_present(cfg, &st)?;
        }
        netstate::store(&st)
    });
    if let Err(e) = r {
        first = Some(e.message);
    }
    if found
        .iter()
        .any(|f| f.what == "dns-pid-file" || f.what == "dns-tmp-file")
    {
        let r = crate::dnsd::lock().map(|_lock| {
            for f in dns_leftovers() {
                let _ = std::fs::remove_file(&f.detail);
            }
        });
        if let (Err(e), None) = (r, &first) {
            first = Some(e.message);
        }
    }
    first
}

/// The elements of banger's sets that the state does not account for,
/// as `FAMILY banger SET ELEMENT`. Nothing when the tables are not there
/// or cannot be read (no nft, no CAP_NET_ADMIN).
fn stale_elements(cfg: &NetCfg, st: &NetState) -> Vec<Fix> {
    if hosttools::which("nft").is_none() || !hosttools::has_net_admin() {
        return Vec::new();
    }
    let nat: Vec<_> = st.leases.iter().filter(|l| l.nat).collect();
    let want: [(&str, &str, Vec<String>); 6] = [
        (
            "bridge",
            "macs",
            st.leases
                .iter()
                .map(|l| format!("{} . {}", l.tap, l.mac.to_lowercase()))
                .collect(),
        ),
        (
            "bridge",
            "addrs",
            st.leases
                .iter()
                .map(|l| format!("{} . {}", l.tap, l.ip))
                .collect(),
        ),
        (
            "bridge",
            "shared",
            st.leases
                .iter()
                .filter(|l| !l.isolated)
                .map(|l| l.tap.clone())
                .collect(),
        ),
        (
            "inet",
            "nat_guests",
            nat.iter().map(|l| l.ip.to_string()).collect(),
        ),
        (
            "inet",
            "uplink",
            st.uplink
                .iter()
                .filter(|_| !nat.is_empty())
                .cloned()
                .collect(),
        ),
        (
            "inet",
            "host_ports",
            crate::filter::host_ports(cfg, st)
                .iter()
                .map(u16::to_string)
                .collect(),
        ),
    ];
    let mut out = Vec::new();
    for (family, set, want) in want {
        if set == "nat_guests" {
            // recover.rs checks this one on every command.
            continue;
        }
        out.extend(stale_in_set(st, family, set, &want));
    }
    out
}

/// The elements of `FAMILY banger SET` not in `want`, as `nft-element`
/// fixes; none when the set cannot be read.
pub fn stale_in_set(st: &NetState, family: &str, set: &str, want: &[String]) -> Vec<Fix> {
    let Some(v) = crate::nft::list_json(&["set", family, TABLE, set]) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in v["nftables"].as_array().into_iter().flatten() {
        for e in item["set"]["elem"].as_array().into_iter().flatten() {
            let e = element(e);
            if !want.contains(&e) {
                out.push(Fix {
                    what: "nft-element",
                    vm: vm_of(st, &e),
                    detail: format!("{family} {TABLE} {set} {e}"),
                });
            }
        }
    }
    out
}

/// An element of `nft -j list set` as the state spells it.
fn element(e: &serde_json::Value) -> String {
    match e {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::Object(o) if o.contains_key("concat") => o["concat"]
            .as_array()
            .map(|a| a.iter().map(element).collect::<Vec<_>>().join(" . "))
            .unwrap_or_default(),
        serde_json::Value::Object(o) if o.contains_key("elem") => element(&o["elem"]["val"]),
        other => other.to_string(),
    }
}

/// The VM whose lease the element names (a TAP or an address), if any.
fn vm_of(st: &NetState, e: &str) -> String {
    st.leases
        .iter()
        .find(|l| e.split(" . ").any(|w| w == l.tap || w == l.ip.to_string()))
        .map(|l| l.vm.clone())
        .unwrap_or_default()
}

/// A DNS server's pid file whose process is gone (a server killed
/// outright, or a host reboot with a persistent runtime dir), and the
/// temp files of one killed while writing it.
fn dns_leftovers() -> Vec<Fix> {
    let mut out = Vec::new();
    let pid = crate::dnsd::pid_path();
    if pid.exists() && crate::dnsd::running().is_none() {
        out.push(Fix {
            what: "dns-pid-file",
            vm: String::new(),
            detail: pid.display().to_string(),
        });
    }
    for t in dead_tmp_files(&pid) {
        out.push(Fix {
            what: "dns-tmp-file",
            vm: String::new(),
            detail: t.display().to_string(),
        });
    }
    out
}

/// `.NAME.tmp.PID` beside `path` whose writer is not alive.
fn dead_tmp_files(path: &std::path::Path) -> Vec<PathBuf> {
    tmp_files(path, |pid| {
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
    })
}

/// `.NAME.tmp.PID` beside `path` (what banger_lib::state writes before
/// its rename) whose PID `stale` says is no writer's, sorted.
pub fn tmp_files(path: &std::path::Path, stale: impl Fn(u32) -> bool) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Vec::new();
    };
    let prefix = format!(".{}.tmp.", name.to_string_lossy());
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.strip_prefix(&prefix)
                .and_then(|p| p.parse::<u32>().ok())
                .is_some_and(&stale)
        })
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn elements_read_as_the_state_spells_them() {
        assert_eq!(element(&json!("172.30.0.2")), "172.30.0.2");
        assert_eq!(element(&json!(8080)), "8080");
        assert_eq!(
            element(&json!({"concat": ["bgr-0", "02:ab:00:00:00:01"]})),
            "bgr-0 . 02:ab:00:00:00:01"
        );
        assert_eq!(
            element(&json!({"elem": {"val": "10.0.0.1", "comment": "x"}})),
            "10.0.0.1"
        );
    }
}
