//! net.json: the leases, the TAP pool and the NAT uplink, read and written
//! only under its lock (banger_lib::state::update).

use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::path::PathBuf;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetState {
    pub schema: u64,
    /// Whether setup had to turn IPv4 forwarding on (teardown turns it off).
    #[serde(default)]
    pub forwarding_was_off: bool,
    #[serde(default)]
    pub leases: Vec<Lease>,
    /// Idle TAPs on the bridge, named tap-pool-N.
    #[serde(default)]
    pub pool: Vec<String>,
    /// The interface NAT masquerades out of, while any VM has NAT.
    #[serde(default)]
    pub uplink: Option<String>,
}

impl Default for NetState {
    fn default() -> Self {
        NetState {
            schema: banger_lib::state::SCHEMA,
            forwarding_was_off: false,
            leases: Vec::new(),
            pool: Vec::new(),
            uplink: None,
        }
    }
}

/// One VM's network: what `tap acquire` prints, plus whether NAT is on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
}

/// The line `tap acquire` prints (the lease without its NAT flag).
#[derive(Serialize)]
pub struct Acquired<'a> {
    pub vm: &'a str,
    pub tap: &'a str,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    pub mac: &'a str,
    pub dns: Ipv4Addr,
}

impl Lease {
    pub fn acquired(&self) -> Acquired<'_> {
        Acquired {
            vm: &self.vm,
            tap: &self.tap,
            ip: self.ip,
            prefix: self.prefix,
            gateway: self.gateway,
            mac: &self.mac,
            dns: self.dns,
        }
    }
}

pub fn path() -> PathBuf {
    banger_lib::paths::state_dir().join("net.json")
}

pub fn load() -> banger_lib::Result<NetState> {
    Ok(banger_lib::state::load(&path())?.unwrap_or_default())
}

/// Read-modify-write net.json under its lock.
pub fn update<R>(f: impl FnOnce(&mut NetState) -> banger_lib::Result<R>) -> banger_lib::Result<R> {
    banger_lib::state::update(&path(), NetState::default, f)
}
