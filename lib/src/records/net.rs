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
