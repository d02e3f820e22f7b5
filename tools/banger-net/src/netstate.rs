//! net.json: the leases, the TAP pool, the NAT uplink, the host ports
//! opened to guests, the port forwards, and the intents of a command at work, read and
//! written only under its lock (banger_lib::state).
//!
//! Intents: a command that changes the kernel (a link, an nft set, a
//! sysctl) first stores what it is about to do in `intents`, under the
//! lock, and clears it in the same store that records the result. Every
//! mutating command holds the lock from its first read to its last write,
//! so an intent found by the next one is always from a command that died
//! mid-way (SIGKILL, OOM, a reboot): `update` hands it to recover.rs, which
//! finishes or undoes it and reconciles the state with the links that
//! exist, before the command does its own work.

use crate::netcfg::NetCfg;
use crate::netlink::Nl;
use crate::recover::NatSet;
use banger_lib::Result;
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
    /// What a command is about to do (absent from files that older
    /// versions wrote, and whenever no command is mid-way).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub intents: Vec<Intent>,
    /// Port forwards in force (`forward add`); a VM's go with its lease.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forwards: Vec<Forward>,
}

/// The step a command is about to take. What the next command does with
/// one left behind (recover.rs): `acquire`, `nat-on` and `isolate` are
/// undone (their caller never got an answer); `release`, `nat-off`,
/// `pool-drain`, `setup` and `teardown` are finished; `pool-fill`,
/// `ports` and `forward` leave nothing the reconciliation does not put
/// right (the maps are rewritten from the state as last stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Op {
    Acquire,
    Release,
    NatOn,
    NatOff,
    Isolate,
    Setup,
    Teardown,
    PoolFill,
    PoolDrain,
    Ports,
    /// A port forward added or removed (forward.rs).
    Forward,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    pub op: Op,
    /// The VM it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm: Option<String>,
    /// The links it may make or rename (a lease's TAP first): one of them
    /// that no lease or pool entry holds afterwards is the step's leftover.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taps: Vec<String>,
    /// nat-on: forwarding was off when the step began (it may turn it on).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forwarding_was_off: bool,
    /// The command's pid, for the record.
    pub pid: u32,
}

impl Intent {
    pub fn new(op: Op, vm: Option<&str>, taps: Vec<String>) -> Intent {
        Intent {
            op,
            vm: vm.map(String::from),
            taps,
            forwarding_was_off: false,
            pid: std::process::id(),
        }
    }

    /// One line for a message or a gc line: `release web bgr-0 (pid 42)`.
    pub fn describe(&self) -> String {
        let op = serde_json::to_value(self.op)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        let mut s = op;
        for w in self.vm.iter().chain(&self.taps) {
            s.push(' ');
            s.push_str(w);
        }
        s.push_str(&format!(" (pid {})", self.pid));
        s
    }
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
            intents: Vec::new(),
            forwards: Vec::new(),
        }
    }
}

impl NetState {
    /// Record `intent` in net.json before the change it names (the caller
    /// holds the lock: it is inside `update`). Call it before changing
    /// anything else in the state: it stores the state as it is.
    pub fn intend(&mut self, intent: Intent) -> Result<()> {
        self.intents.push(intent);
        store(self)?;
        crate::fault::point("storing an intent");
        Ok(())
    }

    /// Whether `name` is a lease's TAP or a pool entry.
    pub fn holds(&self, name: &str) -> bool {
        self.leases.iter().any(|l| l.tap == name) || self.pool.iter().any(|p| p == name)
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

pub fn store(st: &NetState) -> Result<()> {
    banger_lib::state::store(&path(), st)
}

pub fn lock() -> Result<banger_lib::state::Lock> {
    banger_lib::state::lock(&path())
}

/// Read-modify-write net.json under its lock. What a killed command left
/// (intents, TAPs without a lease, stale pool entries, temp files) is put
/// right first (recover.rs). `f` records an intent (`NetState::intend`)
/// before each change to the kernel; its result is stored with the
/// intents cleared. When `f` fails after recording one, what it changed
/// is undone or finished from the state last stored, as the next command
/// would do, so a failure leaves nothing half made either.
pub fn update<R>(cfg: &NetCfg, nl: &Nl, f: impl FnOnce(&mut NetState) -> Result<R>) -> Result<R> {
    update_with(cfg, nl, NatSet::Check, f)
}

/// `update` for a command whose `f` rewrites every filter set from the
/// state (filter::sync) before it succeeds: the recovery does not read
/// the NAT set first, one nft run less under the lock.
pub fn update_refilling<R>(
    cfg: &NetCfg,
    nl: &Nl,
    f: impl FnOnce(&mut NetState) -> Result<R>,
) -> Result<R> {
    update_with(cfg, nl, NatSet::Refilled, f)
}

fn update_with<R>(
    cfg: &NetCfg,
    nl: &Nl,
    nat_set: NatSet,
    f: impl FnOnce(&mut NetState) -> Result<R>,
) -> Result<R> {
    let _lock = lock()?;
    let mut st = load()?;
    let fixed = crate::recover::run(cfg, nl, &mut st, false, nat_set)?;
    if !fixed.is_empty() {
        for x in &fixed {
            eprintln!("banger-net: recovered: {} {}", x.what, x.detail);
        }
        store(&st)?;
        crate::fault::point("storing the recovered state");
    }
    match f(&mut st) {
        Ok(r) => {
            st.intents.clear();
            store(&st)?;
            crate::fault::point("storing the result");
            Ok(r)
        }
        Err(e) if !st.intents.is_empty() => {
            let mut last = load()?;
            match crate::recover::run(cfg, nl, &mut last, false, NatSet::Check)
                .and_then(|_| store(&last))
            {
                Ok(()) => {}
                Err(e2) => eprintln!(
                    "banger-net: warning: undoing the failed step: {}; the next command retries",
                    e2.message
                ),
            }
            Err(e)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_without_intents_reads_and_writes_as_before() {
        // What an older banger wrote: no `intents` key.
        let old = r#"{"schema":1,"forwarding_was_off":false,"leases":[],"pool":["tap-pool-0"],"uplink":null,"open_ports":[]}"#;
        let st: NetState = serde_json::from_str(old).unwrap();
        assert!(st.intents.is_empty());
        // Written back without intents, it has no `intents` key either.
        assert_eq!(serde_json::to_string(&st).unwrap(), old);
        let mut st = st;
        st.intents.push(Intent {
            op: Op::NatOn,
            vm: Some("web".into()),
            taps: vec![],
            forwarding_was_off: true,
            pid: 7,
        });
        let s = serde_json::to_string(&st).unwrap();
        assert!(
            s.contains(
                r#""intents":[{"op":"nat-on","vm":"web","forwarding_was_off":true,"pid":7}]"#
            ),
            "{s}"
        );
        let back: NetState = serde_json::from_str(&s).unwrap();
        assert_eq!(back.intents, st.intents);
        assert_eq!(back.intents[0].describe(), "nat-on web (pid 7)");
    }
}

#[cfg(test)]
mod forward_tests {
    #[test]
    fn net_json_from_before_forwards_reads_as_none() {
        let st: super::NetState =
            serde_json::from_str(r#"{"schema":1,"leases":[],"open_ports":[8080]}"#).unwrap();
        assert!(st.forwards.is_empty());
        assert_eq!(st.open_ports, [8080]);
    }
}
