//! The network settings from bundle.json / config.json, checked once: the
//! bridge name, the subnet and its gateway, the DNS port, the pool size,
//! the host ports opened to guests.

use banger_lib::{config::Bundle, Error, Result};
use sha2::{Digest, Sha256};
use std::net::Ipv4Addr;

#[derive(Debug, Clone, PartialEq)]
pub struct NetCfg {
    pub bridge: String,
    pub network: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    pub dns_port: u16,
    pub pool_size: u32,
    /// `guest_host_ports`: host ports guests may reach on the gateway.
    pub host_ports: Vec<u16>,
}

fn bad(what: &str) -> Error {
    Error::usage(what.to_string()).with_hint(
        "fix `bridge`, `subnet` or `gateway` in $XDG_CONFIG_HOME/banger/config.json or bundle.json",
    )
}

impl NetCfg {
    pub fn load() -> Result<NetCfg> {
        let b = Bundle::load()?;
        let mut cfg = Self::from_parts(&b.bridge, &b.subnet, &b.gateway, b.dns_port, b.pool_size)?;
        if b.guest_host_ports.contains(&0) {
            return Err(Error::usage("guest_host_ports holds port 0").with_hint(
                "list ports 1-65535 in `guest_host_ports` in $XDG_CONFIG_HOME/banger/config.json",
            ));
        }
        cfg.host_ports = b.guest_host_ports;
        Ok(cfg)
    }

    pub fn from_parts(
        bridge: &str,
        subnet: &str,
        gateway: &str,
        dns_port: u16,
        pool_size: u32,
    ) -> Result<NetCfg> {
        if bridge.is_empty() || bridge.len() > crate::tuntap::MAX_IFNAME || bridge.contains('/') {
            return Err(bad(&format!(
                "bridge name {bridge:?} must be 1-15 characters without '/'"
            )));
        }
        let (net, prefix) = subnet
            .split_once('/')
            .ok_or_else(|| bad(&format!("subnet {subnet:?} is not ADDRESS/PREFIX")))?;
        let net: Ipv4Addr = net
            .parse()
            .map_err(|_| bad(&format!("subnet {subnet:?}: bad address")))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| (8..=29).contains(p))
            .ok_or_else(|| bad(&format!("subnet {subnet:?}: the prefix must be 8-29")))?;
        let network = Ipv4Addr::from(u32::from(net) & mask(prefix));
        let gateway: Ipv4Addr = gateway
            .parse()
            .map_err(|_| bad(&format!("gateway {gateway:?} is not an IPv4 address")))?;
        let cfg = NetCfg {
            bridge: bridge.to_string(),
            network,
            prefix,
            gateway,
            dns_port,
            pool_size,
            host_ports: Vec::new(),
        };
        if !cfg.contains(gateway) || gateway == network || gateway == cfg.broadcast() {
            return Err(bad(&format!(
                "gateway {gateway} is not a host address of {network}/{prefix}"
            )));
        }
        Ok(cfg)
    }

    pub fn subnet(&self) -> String {
        format!("{}/{}", self.network, self.prefix)
    }

    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) | !mask(self.prefix))
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == u32::from(self.network)
    }

    /// Guest addresses in order: every host address but the gateway.
    pub fn guest_addrs(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        (u32::from(self.network) + 1..u32::from(self.broadcast()))
            .map(Ipv4Addr::from)
            .filter(move |a| *a != self.gateway)
    }

    /// Whether `dst/prefix` overlaps this subnet.
    pub fn overlaps(&self, dst: Ipv4Addr, prefix: u8) -> bool {
        let p = prefix.min(self.prefix);
        u32::from(dst) & mask(p) == u32::from(self.network) & mask(p)
    }
}

pub fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

/// A stable, locally administered unicast MAC for a VM name, so a VM keeps
/// its MAC (and the guest its interface config) across restarts.
pub fn mac_for(vm: &str) -> String {
    let h = Sha256::digest(format!("banger-mac:{vm}").as_bytes());
    format!(
        "02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        h[0], h[1], h[2], h[3], h[4]
    )
}

/// The bridge's own MAC (the gateway's, as guests see it), stable for a
/// bridge name. Set when the bridge is made, so the kernel keeps it:
/// without one, a bridge takes the lowest MAC of its ports and changes it
/// as TAPs come and go, and every guest's ARP entry for the gateway goes
/// stale. Locally administered unicast like a VM's (mac_for), but 0a: where
/// a VM's is 02:, so it never equals one.
pub fn bridge_mac(bridge: &str) -> [u8; 6] {
    let h = Sha256::digest(format!("banger-bridge-mac:{bridge}").as_bytes());
    [0x0a, h[0], h[1], h[2], h[3], h[4]]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(subnet: &str, gw: &str) -> Result<NetCfg> {
        NetCfg::from_parts("banger0", subnet, gw, 53, 4)
    }

    #[test]
    fn parses_and_normalizes() {
        let c = cfg("172.30.0.7/24", "172.30.0.1").unwrap();
        assert_eq!(c.network, Ipv4Addr::new(172, 30, 0, 0));
        assert_eq!(c.broadcast(), Ipv4Addr::new(172, 30, 0, 255));
        let addrs: Vec<_> = c.guest_addrs().collect();
        assert_eq!(addrs.len(), 253);
        assert_eq!(addrs[0], Ipv4Addr::new(172, 30, 0, 2));
    }

    #[test]
    fn small_subnet_guest_addrs() {
        let c = cfg("10.0.0.0/29", "10.0.0.1").unwrap();
        assert_eq!(c.guest_addrs().count(), 5);
    }

    #[test]
    fn rejects_bad_settings() {
        for (s, g) in [
            ("172.30.0.0", "172.30.0.1"),
            ("172.30.0.0/31", "172.30.0.1"),
            ("x/24", "172.30.0.1"),
            ("172.30.0.0/24", "172.31.0.1"),
            ("172.30.0.0/24", "172.30.0.0"),
            ("172.30.0.0/24", "172.30.0.255"),
        ] {
            assert_eq!(cfg(s, g).unwrap_err().exit_code(), 2, "{s} {g}");
        }
        let e = NetCfg::from_parts("a-very-long-bridge", "10.0.0.0/24", "10.0.0.1", 53, 1);
        assert_eq!(e.unwrap_err().exit_code(), 2);
    }

    #[test]
    fn overlap() {
        let c = cfg("172.30.0.0/24", "172.30.0.1").unwrap();
        assert!(c.overlaps(Ipv4Addr::new(172, 16, 0, 0), 12));
        assert!(c.overlaps(Ipv4Addr::new(172, 30, 0, 128), 25));
        assert!(!c.overlaps(Ipv4Addr::new(172, 31, 0, 0), 24));
        assert!(!c.overlaps(Ipv4Addr::new(10, 0, 0, 0), 8));
    }

    #[test]
    fn macs_are_stable_local_unicast() {
        assert_eq!(mac_for("web"), mac_for("web"));
        assert_ne!(mac_for("web"), mac_for("db"));
        assert!(mac_for("web").starts_with("02:"));
        assert_eq!(mac_for("web").len(), 17);
        // Pinned: a VM keeps its MAC across banger upgrades (sha256 of
        // "banger-mac:web" starts 99 66 d4 8c 1a).
        assert_eq!(mac_for("web"), "02:99:66:d4:8c:1a");
    }

    #[test]
    fn the_bridge_mac_is_stable_local_unicast_and_no_vms() {
        let m = bridge_mac("banger0");
        assert_eq!(m, bridge_mac("banger0"));
        assert_ne!(m, bridge_mac("banger1"));
        // Locally administered, unicast.
        assert_eq!(m[0] & 0b11, 0b10);
        // Pinned: guests keep the gateway's MAC across banger upgrades
        // (sha256 of "banger-bridge-mac:banger0" starts de 89 36 83 0e).
        assert_eq!(m, [0x0a, 0xde, 0x89, 0x36, 0x83, 0x0e]);
        assert!(!mac_for("banger0").starts_with("0a:"));
    }
}
