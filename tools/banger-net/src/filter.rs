//! What guests may do, in two nftables tables of banger's own (nothing else
//! of the host's ruleset is touched; every chain here has policy accept and
//! drops only what comes from or goes to the bridge):
//!
//! - `bridge banger` sees frames as they enter the bridge from a TAP:
//!   each leased TAP (`bgr-N`) may send only its lease's MAC, IPv4 from its
//!   lease's address and ARP for that pair; an idle `tap-pool-N` nothing
//!   (`spoofed`). Between TAPs, frames pass only when both VMs are not
//!   isolated (`isolated`; the kernel's port isolation, set by tap.rs, is
//!   the first line). A guest may not use the host as a router to another
//!   guest (`hairpin`).
//! - `inet banger` guards the host and its routing: from the bridge the
//!   host answers only DNS and ping on the gateway and the opened ports
//!   (`input`); the .vm DNS server takes no query from outside the bridge,
//!   and nothing from outside may claim a guest's address (`outside`); the
//!   host routes only NAT guests' traffic out of the uplink and its replies
//!   (`forward`), masqueraded. The bridge table has already checked every
//!   guest's source address, so NAT by address is NAT by TAP. Port
//!   forwards from the host to a guest (forward.rs) are DNAT by the map
//!   `forwards`: loopback ones in the output hook only, others also in
//!   prerouting for packets not from the bridge; the host routes only
//!   those connections (`forward_dests`) and their replies.
//!
//! The tables live as long as the bridge (setup makes them, teardown
//! removes them); leases, NAT and opened ports change only set elements,
//! in one transaction, so counters keep counting.

use crate::netcfg::NetCfg;
use crate::netstate::NetState;
use crate::nft;
use crate::tap::{LEASED, POOLED};
use banger_lib::{Error, Result};
use serde::Serialize;
use std::fmt::Write;

pub const TABLE: &str = "banger";
/// The table banger used before the filter (NAT only), removed on sight.
const LEGACY: &str = "ip banger";

/// The rules, with empty sets: depends on the settings only.
pub fn ruleset(cfg: &NetCfg) -> Result<String> {
    let br = nft::ifname(&cfg.bridge)?;
    let (gw, subnet, dns) = (cfg.gateway, cfg.subnet(), cfg.dns_port);
    Ok(format!(
        r#"table bridge {TABLE} {{
	comment "banger: what guests may send onto the bridge (banger-net(1))"
	set macs {{ type ifname . ether_addr; comment "each leased TAP's MAC"; }}
	set addrs {{ type ifname . ipv4_addr; comment "each leased TAP's address"; }}
	set shared {{ type ifname; comment "TAPs of VMs that are not isolated"; }}
	counter spoofed {{ comment "frames from a guest with another MAC or address, not IPv4 or ARP, or from an idle TAP"; }}
	counter isolated {{ comment "frames between guests that are not both non-isolated"; }}
	counter hairpin {{ comment "packets from a guest to another guest's address through the host"; }}
	chain prerouting {{
		type filter hook prerouting priority -200; policy accept;
		iifname "{LEASED}*" jump guest
		iifname "{POOLED}*" counter name "spoofed" drop
	}}
	chain guest {{
		iifname . ether saddr != @macs counter name "spoofed" drop
		ether type ip iifname . ip saddr != @addrs counter name "spoofed" drop
		ether type ip accept
		ether type arp jump guest_arp
		counter name "spoofed" drop
	}}
	chain guest_arp {{
		arp htype != 1 counter name "spoofed" drop
		arp ptype != ip counter name "spoofed" drop
		arp hlen != 6 counter name "spoofed" drop
		arp plen != 4 counter name "spoofed" drop
		iifname . arp saddr ether != @macs counter name "spoofed" drop
		iifname . arp saddr ip != @addrs counter name "spoofed" drop
		accept
	}}
	chain forward {{
		type filter hook forward priority -200; policy accept;
		iifname "{LEASED}*" oifname "{LEASED}*" iifname != @shared counter name "isolated" drop
		iifname "{LEASED}*" oifname "{LEASED}*" oifname != @shared counter name "isolated" drop
	}}
	chain input {{
		type filter hook input priority -200; policy accept;
		iifname "{LEASED}*" ip daddr {subnet} ip daddr != {gw} counter name "hairpin" drop
	}}
}}
table inet {TABLE} {{
	comment "banger: what guests may reach on the host, and what it routes for them (banger-net(1))"
	set nat_guests {{ type ipv4_addr; comment "addresses of VMs with NAT"; }}
	set uplink {{ type ifname; comment "the interface NAT goes out of"; }}
	set host_ports {{ type inet_service; comment "host ports opened to guests"; }}
	map forwards {{ type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; comment "port forwards: host address . protocol . port to guest address . port"; }}
	set forward_dests {{ type ipv4_addr . inet_proto . inet_service; comment "guest address . protocol . port that forwards on non-loopback addresses reach"; }}
	counter input {{ comment "packets from guests to the host that no rule lets in"; }}
	counter forward {{ comment "packets from or to guests that the host does not route"; }}
	counter outside {{ comment "packets from outside the bridge with a guest's address, or for its DNS server"; }}
	chain prerouting {{
		type filter hook prerouting priority -150; policy accept;
		iifname != {{ "{br}", "lo" }} ip saddr {subnet} counter name "outside" drop
	}}
	chain input {{
		type filter hook input priority 0; policy accept;
		iifname "{br}" jump guest_to_host
		iifname != "lo" ip daddr {gw} meta l4proto {{ tcp, udp }} th dport {dns} counter name "outside" drop
	}}
	chain guest_to_host {{
		ct state established,related accept
		ip daddr {gw} meta l4proto {{ tcp, udp }} th dport {dns} accept
		ip daddr {gw} icmp type echo-request accept
		ip daddr {gw} meta l4proto {{ tcp, udp }} th dport @host_ports accept
		counter name "input" drop
	}}
	chain forward {{
		type filter hook forward priority 0; policy accept;
		iifname "{br}" oifname "{br}" accept
		iifname "{br}" oifname @uplink ip saddr @nat_guests accept
		oifname "{br}" ip daddr @nat_guests ct state established,related accept
		oifname "{br}" ct status dnat ip daddr . meta l4proto . th dport @forward_dests accept
		iifname "{br}" ct status dnat ct direction reply accept
		iifname "{br}" counter name "forward" drop
		oifname "{br}" counter name "forward" drop
	}}
	chain postrouting {{
		type nat hook postrouting priority 100; policy accept;
		oifname @uplink ip saddr @nat_guests masquerade
		oifname "{br}" ip saddr 127.0.0.0/8 ct status dnat snat ip to {gw}
	}}
	chain forward_in {{
		type nat hook prerouting priority -100; policy accept;
		iifname "{br}" return
		ip daddr 127.0.0.0/8 return
		dnat ip to ip daddr . meta l4proto . th dport map @forwards
	}}
	chain forward_out {{
		type nat hook output priority -100; policy accept;
		dnat ip to ip daddr . meta l4proto . th dport map @forwards
	}}
}}
"#
    ))
}

/// The ports guests may reach: `guest_host_ports` and `allow --port`.
pub fn host_ports(cfg: &NetCfg, st: &NetState) -> Vec<u16> {
    let mut v: Vec<u16> = cfg
        .host_ports
        .iter()
        .chain(&st.open_ports)
        .copied()
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

fn mac(s: &str) -> Result<String> {
    let bytes: Vec<u8> = s
        .split(':')
        .map(|b| u8::from_str_radix(b, 16))
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| Error::failed(format!("net.json holds a bad MAC {s:?}")))?;
    if bytes.len() != 6 {
        return Err(Error::failed(format!("net.json holds a bad MAC {s:?}")));
    }
    Ok(bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":"))
}

/// Every set emptied and filled from the state, as one script.
pub fn elements(cfg: &NetCfg, st: &NetState) -> Result<String> {
    let mut macs = Vec::new();
    let mut addrs = Vec::new();
    let mut shared = Vec::new();
    for l in &st.leases {
        let tap = nft::ifname(&l.tap)?;
        macs.push(format!("\"{tap}\" . {}", mac(&l.mac)?));
        addrs.push(format!("\"{tap}\" . {}", l.ip));
        if !l.isolated {
            shared.push(format!("\"{tap}\""));
        }
    }
    let nat: Vec<String> = st
        .leases
        .iter()
        .filter(|l| l.nat)
        .map(|l| l.ip.to_string())
        .collect();
    let uplink = match (&st.uplink, nat.is_empty()) {
        (Some(u), false) => vec![format!("\"{}\"", nft::ifname(u)?)],
        _ => vec![],
    };
    let ports: Vec<String> = host_ports(cfg, st).iter().map(u16::to_string).collect();
    let forwards: Vec<String> = st
        .forwards
        .iter()
        .map(|f| {
            format!(
                "{} . {} . {} : {} . {}",
                f.address, f.proto, f.host_port, f.guest_ip, f.guest_port
            )
        })
        .collect();
    let mut dests: Vec<String> = st
        .forwards
        .iter()
        .filter(|f| !f.address.is_loopback())
        .map(|f| format!("{} . {} . {}", f.guest_ip, f.proto, f.guest_port))
        .collect();
    dests.sort();
    dests.dedup();
    let mut s = String::new();
    for (family, set, elems) in [
        ("bridge", "macs", macs),
        ("bridge", "addrs", addrs),
        ("bridge", "shared", shared),
        ("inet", "nat_guests", nat),
        ("inet", "uplink", uplink),
        ("inet", "host_ports", ports),
        ("inet", "forwards", forwards),
        ("inet", "forward_dests", dests),
    ] {
        let kind = if set == "forwards" { "map" } else { "set" };
        let _ = writeln!(s, "flush {kind} {family} {TABLE} {set}");
        if !elems.is_empty() {
            let _ = writeln!(
                s,
                "add element {family} {TABLE} {set} {{ {} }}",
                elems.join(", ")
            );
        }
    }
    Ok(s)
}

pub fn exists() -> bool {
    nft::table_exists("bridge", TABLE) && nft::table_exists("inet", TABLE)
}

/// Fill the sets of tables this version made. It fails, changing nothing
/// (one transaction), where a table or set is missing, as in a table an
/// older banger made (it lacks the forwards map): the caller installs
/// them then. Trying first spares the listing of the ruleset on every
/// `tap acquire`, under banger-net's lock.
fn refill(cfg: &NetCfg, st: &NetState) -> Result<()> {
    nft::apply(&elements(cfg, st)?)?;
    crate::forward::sync_localnet(cfg, st)
}

/// Both tables made afresh (a stale or half-present one replaced) with
/// their elements, in one transaction. Whether they were missing before.
pub fn install(cfg: &NetCfg, st: &NetState) -> Result<bool> {
    nft::require("the guests' packet filter")?;
    let was = exists();
    let mut s = String::new();
    // `add` then `delete`: replaces a table without failing on a missing one.
    for t in [
        format!("bridge {TABLE}"),
        format!("inet {TABLE}"),
        LEGACY.into(),
    ] {
        let _ = writeln!(s, "add table {t}\ndelete table {t}");
    }
    s.push_str(&ruleset(cfg)?);
    s.push_str(&elements(cfg, st)?);
    nft::apply(&s)?;
    crate::forward::sync_localnet(cfg, st)?;
    Ok(!was)
}

/// Bring the sets in line with the state; the tables too if they are gone.
pub fn sync(cfg: &NetCfg, st: &NetState) -> Result<()> {
    nft::require("the guests' packet filter")?;
    if refill(cfg, st).is_ok() {
        return Ok(());
    }
    install(cfg, st).map(drop)
}

/// `sync` where the tables exist (the bridge is set up); nothing else.
pub fn sync_if_present(cfg: &NetCfg, st: &NetState) -> Result<()> {
    if refill(cfg, st).is_ok() {
        Ok(())
    } else if exists() {
        install(cfg, st).map(drop)
    } else {
        Ok(())
    }
}

/// Remove banger's tables, whatever the state says. Whether any existed.
pub fn purge() -> Result<bool> {
    if banger_lib::hosttools::which("nft").is_none() {
        return Ok(false);
    }
    let mut s = String::new();
    let mut any = false;
    for (family, name) in [("bridge", TABLE), ("inet", TABLE), ("ip", TABLE)] {
        if nft::table_exists(family, name) {
            any = true;
            let _ = writeln!(s, "delete table {family} {name}");
        }
    }
    if any {
        nft::apply(&s)?;
    }
    Ok(any)
}

/// Packets each of banger's counters dropped.
#[derive(Debug, Default, Serialize, PartialEq)]
pub struct Dropped {
    pub spoofed: u64,
    pub isolated: u64,
    pub hairpin: u64,
    pub input: u64,
    pub forward: u64,
    pub outside: u64,
}

/// The counters, or None when the tables are not there.
pub fn dropped() -> Option<Dropped> {
    let mut d = Dropped::default();
    let mut found = 0;
    for family in ["bridge", "inet"] {
        let v = nft::list_json(&["counters", "table", family, TABLE])?;
        for o in v["nftables"].as_array()? {
            let c = &o["counter"];
            let Some(n) = c["packets"].as_u64() else {
                continue;
            };
            let slot = match (family, c["name"].as_str()) {
                ("bridge", Some("spoofed")) => &mut d.spoofed,
                ("bridge", Some("isolated")) => &mut d.isolated,
                ("bridge", Some("hairpin")) => &mut d.hairpin,
                ("inet", Some("input")) => &mut d.input,
                ("inet", Some("forward")) => &mut d.forward,
                ("inet", Some("outside")) => &mut d.outside,
                _ => continue,
            };
            *slot = n;
            found += 1;
        }
    }
    (found == 6).then_some(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netstate::Lease;
    use std::net::Ipv4Addr;

    fn cfg() -> NetCfg {
        let mut c = NetCfg::from_parts("banger0", "172.30.0.0/24", "172.30.0.1", 53, 2).unwrap();
        c.host_ports = vec![8080, 22];
        c
    }

    fn lease(vm: &str, n: u8, nat: bool, isolated: bool) -> Lease {
        Lease {
            vm: vm.into(),
            tap: format!("bgr-{n}"),
            ip: Ipv4Addr::new(172, 30, 0, n + 2),
            prefix: 24,
            gateway: Ipv4Addr::new(172, 30, 0, 1),
            mac: crate::netcfg::mac_for(vm).to_uppercase(),
            dns: Ipv4Addr::new(172, 30, 0, 1),
            nat,
            isolated,
        }
    }

    fn forward(
        address: [u8; 4],
        proto: banger_lib::records::Proto,
        port: u16,
    ) -> crate::netstate::Forward {
        crate::netstate::Forward {
            vm: "web".into(),
            proto,
            address: address.into(),
            host_port: port,
            guest_ip: Ipv4Addr::new(172, 30, 0, 2),
            guest_port: 8000,
        }
    }

    #[test]
    fn rules_name_the_bridge_gateway_and_dns_port() {
        let mut c = cfg();
        c.dns_port = 5353;
        let r = ruleset(&c).unwrap();
        assert!(r.contains("iifname \"banger0\" jump guest_to_host"), "{r}");
        assert!(r.contains("ip daddr 172.30.0.1 meta l4proto { tcp, udp } th dport 5353 accept"));
        assert!(r.contains("ip daddr 172.30.0.0/24 ip daddr != 172.30.0.1"));
        assert!(r.contains("iifname \"bgr-*\" jump guest"));
        // Only banger's own chains, each accepting what it does not drop.
        assert_eq!(r.matches("policy accept").count(), 9);
        // Forwards: loopback ones only for the host's own processes, none
        // for packets from the bridge.
        assert!(r.contains("iifname \"banger0\" return\n\t\tip daddr 127.0.0.0/8 return"));
        assert!(r.contains(
            "oifname \"banger0\" ip saddr 127.0.0.0/8 ct status dnat snat ip to 172.30.0.1"
        ));
        assert!(!r.contains("policy drop"));
    }

    #[test]
    fn elements_follow_the_leases() {
        let mut st = NetState {
            leases: vec![lease("web", 0, true, true), lease("db", 1, false, false)],
            uplink: Some("eth0".into()),
            open_ports: vec![8080, 9000],
            ..NetState::default()
        };
        let e = elements(&cfg(), &st).unwrap();
        let mac = crate::netcfg::mac_for("web");
        assert!(e.contains(&format!("\"bgr-0\" . {mac}")), "{e}");
        assert!(e.contains(
            "add element bridge banger addrs { \"bgr-0\" . 172.30.0.2, \"bgr-1\" . 172.30.0.3 }"
        ));
        assert!(e.contains("add element bridge banger shared { \"bgr-1\" }"));
        assert!(e.contains("add element inet banger nat_guests { 172.30.0.2 }"));
        assert!(e.contains("add element inet banger uplink { \"eth0\" }"));
        assert!(e.contains("add element inet banger host_ports { 22, 8080, 9000 }"));
        assert_eq!(e.matches("flush set").count(), 7);
        assert_eq!(e.matches("flush map").count(), 1);
        // No NAT: no uplink; no leases: every set just emptied.
        st.leases.clear();
        let e = elements(
            &NetCfg::from_parts("banger0", "172.30.0.0/24", "172.30.0.1", 53, 2).unwrap(),
            &st,
        )
        .unwrap();
        assert!(!e.contains("uplink {"), "{e}");
        assert_eq!(e.matches("add element").count(), 1, "{e}");
        // Forwards: every one in the map, only routed ones in the dests.
        st.leases.clear();
        st.forwards = vec![
            forward([127, 0, 0, 1], banger_lib::records::Proto::Tcp, 18000),
            forward([10, 9, 0, 1], banger_lib::records::Proto::Udp, 5353),
        ];
        let e = elements(&cfg(), &st).unwrap();
        assert!(e.contains("add element inet banger forwards { 127.0.0.1 . tcp . 18000 : 172.30.0.2 . 8000, 10.9.0.1 . udp . 5353 : 172.30.0.2 . 8000 }"), "{e}");
        assert!(
            e.contains("add element inet banger forward_dests { 172.30.0.2 . udp . 8000 }"),
            "{e}"
        );
        st.forwards.clear();
        // A name nft cannot take safely is refused, not quoted.
        st.uplink = Some("a\"b".into());
        st.leases.push(lease("web", 0, true, true));
        assert_eq!(elements(&cfg(), &st).unwrap_err().exit_code(), 2);
    }

    #[test]
    fn bad_macs_are_refused() {
        assert_eq!(mac("02:AB:00:00:00:01").unwrap(), "02:ab:00:00:00:01");
        for bad in [
            "",
            "02:ab",
            "02:ab:00:00:00:01:02",
            "zz:ab:00:00:00:01",
            "02:ab:00:00:00:1\"}",
        ] {
            assert!(mac(bad).is_err(), "{bad}");
        }
    }
}
