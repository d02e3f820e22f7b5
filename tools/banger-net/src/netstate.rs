//! net.json: the leases, the TAP pool, the NAT uplink, the host ports
//! opened to guests and the port forwards, read and written only under its lock
//! (banger_lib::state::update).

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetState {
    pub schema: u64,
    /// Whether NAT had to turn IPv4 forwarding on (the last NAT VM going,
    /// or teardown, turns it off again).
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
    /// Host ports opened to guests with `allow --port`.
    #[serde(default)]
    pub open_ports: Vec<u16>,
    /// Port forwards in force (`forward add`); a VM's go with its lease.
    #[serde(default)]
    pub forwards: Vec<Forward>,
}

impl Default for NetState {
    fn default() -> Self {
        NetState {
            schema: banger_lib::state::SCHEMA,
            forwarding_was_off: false,
            leases: Vec::new(),
            pool: Vec::new(),
            uplink: None,
            open_ports: Vec::new(),
            forwards: Vec::new(),
        }
    }
}

/// One VM's network: banger_lib's type, so banger-vm reads what
/// `tap acquire` prints (`TapLine::from(&lease)`).
pub use banger_lib::records::{Forward, Lease, TapLine};

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

#[cfg(test)]
mod tests {
    #[test]
    fn net_json_from_before_forwards_reads_as_none() {
        let st: super::NetState =
            serde_json::from_str(r#"{"schema":1,"leases":[],"open_ports":[8080]}"#).unwrap();
        assert!(st.forwards.is_empty());
        assert_eq!(st.open_ports, [8080]);
    }
}
