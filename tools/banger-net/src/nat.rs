//! Per-VM NAT: one nftables table `ip banger` whose set `guests` holds the
//! addresses masqueraded out of the uplink. Toggling a VM adds or removes
//! one element; removing the last one removes the table.

use crate::netlink::Nl;
use crate::netstate::{self, NetState};
use banger_lib::{hosttools, Error, Result};
use nftables::{helper, schema::Nftables};
use serde_json::{json, Value};
use std::net::Ipv4Addr;

pub const TABLE: &str = "banger";

#[derive(serde::Serialize)]
pub struct NatLine {
    pub vm: String,
    pub ip: Ipv4Addr,
    pub nat: bool,
    pub uplink: Option<String>,
}

fn require() -> Result<()> {
    hosttools::require("nft", "NAT", "nftables")?;
    hosttools::require_net_admin("NAT")
}

fn apply(cmds: Vec<Value>) -> Result<()> {
    let doc: Nftables = serde_json::from_value(json!({ "nftables": cmds }))
        .map_err(|e| Error::failed(format!("building the nftables batch: {e}")))?;
    helper::apply_ruleset(&doc).map_err(|e| match e {
        helper::NftablesError::NftFailed { stderr, .. } => {
            Error::failed(format!("nft refused the NAT rules: {}", stderr.trim()))
        }
        other => Error::failed(format!("running nft: {other}")),
    })
}

/// Whether the table exists in this network namespace.
pub fn table_exists() -> bool {
    helper::get_current_ruleset_with_args(helper::DEFAULT_NFT, ["list", "table", "ip", TABLE])
        .is_ok()
}

fn element(op: &str, ip: Ipv4Addr) -> Value {
    json!({ op: { "element": {
        "family": "ip", "table": TABLE, "name": "guests", "elem": [ip.to_string()]
    }}})
}

fn rule(chain: &str, expr: Value) -> Value {
    json!({ "add": { "rule": {
        "family": "ip", "table": TABLE, "chain": chain, "expr": expr
    }}})
}

fn matches(left: Value, op: &str, right: Value) -> Value {
    json!({ "match": { "op": op, "left": left, "right": right } })
}

/// The whole table, made from scratch in one atomic batch.
fn build(uplink: &str, addrs: &[Ipv4Addr]) -> Vec<Value> {
    let t = json!({ "table": { "family": "ip", "name": TABLE } });
    let saddr = matches(
        json!({ "payload": { "protocol": "ip", "field": "saddr" } }),
        "==",
        json!("@guests"),
    );
    let daddr = matches(
        json!({ "payload": { "protocol": "ip", "field": "daddr" } }),
        "==",
        json!("@guests"),
    );
    let out = matches(json!({ "meta": { "key": "oifname" } }), "==", json!(uplink));
    let est = matches(
        json!({ "ct": { "key": "state" } }),
        "in",
        json!(["established", "related"]),
    );
    let mut cmds = vec![
        // add+delete+add: replaces a stale table without failing on a missing one.
        json!({ "add": t.clone() }),
        json!({ "delete": t.clone() }),
        json!({ "add": t }),
        json!({ "add": { "set": {
            "family": "ip", "table": TABLE, "name": "guests", "type": "ipv4_addr"
        }}}),
        json!({ "add": { "chain": {
            "family": "ip", "table": TABLE, "name": "postrouting",
            "type": "nat", "hook": "postrouting", "prio": 100, "policy": "accept"
        }}}),
        json!({ "add": { "chain": {
            "family": "ip", "table": TABLE, "name": "forward",
            "type": "filter", "hook": "forward", "prio": 0, "policy": "accept"
        }}}),
        rule(
            "postrouting",
            json!([saddr.clone(), out.clone(), { "masquerade": null }]),
        ),
        rule("forward", json!([saddr, out, { "accept": null }])),
        rule("forward", json!([daddr, est, { "accept": null }])),
    ];
    for ip in addrs {
        cmds.push(element("add", *ip));
    }
    cmds
}

fn delete_table() -> Vec<Value> {
    let t = json!({ "table": { "family": "ip", "name": TABLE } });
    vec![json!({ "add": t.clone() }), json!({ "delete": t })]
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

fn nat_addrs(st: &NetState) -> Vec<Ipv4Addr> {
    st.leases.iter().filter(|l| l.nat).map(|l| l.ip).collect()
}

pub fn enable(vm: &str, uplink: Option<&str>) -> Result<NatLine> {
    banger_lib::names::validate("VM", vm)?;
    require()?;
    let nl = Nl::new()?;
    netstate::update(|st| {
        let i = lease_index(st, vm)?;
        let configured = banger_lib::config::Bundle::load()
            .map(|b| b.uplink)
            .unwrap_or_default();
        let uplink = match uplink {
            Some(u) => u.to_string(),
            None => match &st.uplink {
                Some(u) if !nat_addrs(st).is_empty() => u.clone(),
                _ if !configured.is_empty() => configured,
                _ => default_uplink(&nl)?,
            },
        };
        if nl.link(&uplink)?.is_none() {
            return Err(
                Error::not_found(format!("uplink interface {uplink} does not exist"))
                    .with_hint("set \"uplink\" in config.json (or pass --uplink) to an interface from `ip link`"),
            );
        }
        let ip = st.leases[i].ip;
        let same_uplink = st.uplink.as_deref() == Some(uplink.as_str());
        if same_uplink && !nat_addrs(st).is_empty() && table_exists() {
            if !st.leases[i].nat {
                apply(vec![element("add", ip)])?;
            }
        } else {
            let mut addrs = nat_addrs(st);
            if !addrs.contains(&ip) {
                addrs.push(ip);
            }
            apply(build(&uplink, &addrs))?;
        }
        st.leases[i].nat = true;
        st.uplink = Some(uplink.clone());
        Ok(NatLine {
            vm: vm.to_string(),
            ip,
            nat: true,
            uplink: Some(uplink),
        })
    })
}

pub fn disable(vm: &str) -> Result<NatLine> {
    banger_lib::names::validate("VM", vm)?;
    require()?;
    netstate::update(|st| {
        let i = lease_index(st, vm)?;
        let ip = st.leases[i].ip;
        remove(st, i)?;
        Ok(NatLine {
            vm: vm.to_string(),
            ip,
            nat: false,
            uplink: st.uplink.clone(),
        })
    })
}

/// Take lease `i` out of NAT (inside a net.json update).
pub fn remove(st: &mut NetState, i: usize) -> Result<()> {
    let was = st.leases[i].nat;
    st.leases[i].nat = false;
    let rest = nat_addrs(st);
    if rest.is_empty() {
        if was || table_exists() {
            apply(delete_table())?;
        }
        st.uplink = None;
    } else if was && table_exists() {
        apply(vec![element("delete", st.leases[i].ip)])?;
    }
    Ok(())
}

/// Remove the table whatever the state says (teardown).
pub fn purge() -> Result<bool> {
    if hosttools::which("nft").is_none() || !table_exists() {
        return Ok(false);
    }
    apply(delete_table())?;
    Ok(true)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_parse_as_nftables_documents() {
        let addrs = [Ipv4Addr::new(172, 30, 0, 2)];
        for cmds in [
            build("eth0", &addrs),
            delete_table(),
            vec![element("add", addrs[0])],
            vec![element("delete", addrs[0])],
        ] {
            let n = cmds.len();
            let doc: Nftables = serde_json::from_value(json!({ "nftables": cmds })).unwrap();
            assert_eq!(doc.objects.len(), n);
        }
    }
}
