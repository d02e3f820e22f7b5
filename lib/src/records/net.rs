//! banger-net's records: a VM's lease (stored in net.json, printed by
//! `lease list`) and the line `tap acquire` prints, which banger-vm reads.

use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

/// One VM's network, as net.json keeps it (written only by banger-net).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lease {
    pub vm: String,
    pub tap: String,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    pub mac: String,
    pub dns: Ipv4Addr,
    #[serde(default)]
    pub nat: bool,
    /// Whether the TAP is cut off from the other guests (bridge port
    /// isolation); a lease from before isolation existed reads as isolated.
    #[serde(default = "yes")]
    pub isolated: bool,
}

fn yes() -> bool {
    true
}

/// What `banger-net tap acquire` prints: the lease without its NAT flag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TapLine {
    pub vm: String,
    pub tap: String,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    pub mac: String,
    pub dns: Ipv4Addr,
    #[serde(default = "yes")]
    pub isolated: bool,
}

impl From<&Lease> for TapLine {
    fn from(l: &Lease) -> TapLine {
        TapLine {
            vm: l.vm.clone(),
            tap: l.tap.clone(),
            ip: l.ip,
            prefix: l.prefix,
            gateway: l.gateway,
            mac: l.mac.clone(),
            dns: l.dns,
            isolated: l.isolated,
        }
    }
}

/// What `banger-net dns status` and `dns ensure` print (banger-doctor
/// reads it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsLine {
    pub running: bool,
    pub pid: Option<u32>,
    pub listen: String,
    /// `dns ensure`: whether this call started it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<bool>,
}

/// A port forward's transport protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }

    /// `--udp` or not.
    pub fn from_udp(udp: bool) -> Proto {
        if udp {
            Proto::Udp
        } else {
            Proto::Tcp
        }
    }
}

impl std::fmt::Display for Proto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One port forward in force: connections to `address:host_port` on the
/// host are DNATed to `guest_ip:guest_port` (net.json keeps them, written
/// only by banger-net; `banger-net forward add/remove/list` print them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Forward {
    pub vm: String,
    pub proto: Proto,
    /// The host address it listens on (127.0.0.1 unless asked otherwise).
    pub address: Ipv4Addr,
    pub host_port: u16,
    pub guest_ip: Ipv4Addr,
    pub guest_port: u16,
}
