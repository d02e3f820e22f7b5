//! Port forwards from the host to guests: kernel DNAT in `inet banger`
//! (filter.rs has the rules), one element of the `forwards` map per
//! forward, kept in net.json. No process: a forward outlives banger-net.
//!
//! A forward opens one port of one guest and nothing else:
//! - a loopback address (the default) is DNATed only in the output hook,
//!   so only the host's own processes reach it; a packet from outside for
//!   127.0.0.0/8 is never rewritten (it stays a martian and is dropped).
//!   Such flows leave on the bridge with a loopback source, so the bridge
//!   has route_localnet=1 while any loopback forward exists, and they are
//!   SNATed to the gateway address so the guest can answer;
//! - another address (asked for with --address) is DNATed in prerouting
//!   too, for packets from anywhere but the bridge: a guest never reaches
//!   another guest through a forward. The host routes only those
//!   connections to the guest (`forward_dests`) and their replies, and
//!   IPv4 forwarding is on while such a forward exists (nat.rs).
//!
//! A host port is taken when another forward has it (same protocol and
//! address) or a socket on the host is bound to it: exit 5.

use crate::netcfg::NetCfg;
use crate::netlink::Nl;
use crate::netstate::{self, Intent, NetState, Op};
use banger_lib::records::{Forward, Proto};
use banger_lib::{Error, Result};
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};

/// What `forward add` asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Want {
    pub vm: String,
    pub proto: Proto,
    pub address: Ipv4Addr,
    pub host_port: u16,
    pub guest_port: u16,
}

/// Whether any forward needs the host to route (a non-loopback address).
pub fn routes(st: &NetState) -> bool {
    st.forwards.iter().any(|f| !f.address.is_loopback())
}

/// Whether any forward is on a loopback address (the bridge then needs
/// route_localnet).
pub fn loopback(st: &NetState) -> bool {
    st.forwards.iter().any(|f| f.address.is_loopback())
}

/// An address a forward may listen on: one of the host's own, not the
/// wildcard (a forward on every address would be one on the guests'
/// gateway and on addresses the user never thought of).
fn check_address(a: Ipv4Addr) -> Result<()> {
    if a.is_unspecified() || a.is_broadcast() || a.is_multicast() {
        return Err(Error::usage(format!(
            "--address {a}: a forward listens on one address of the host"
        ))
        .with_hint("name the address: 127.0.0.1 (the default) or one from `ip -4 addr`"));
    }
    Ok(())
}

/// Whether a socket on the host holds `address:port`; binding it for a
/// moment tells (SO_REUSEADDR for TCP, as a server sets it: a connection
/// in TIME_WAIT is no conflict, a listener is).
fn host_socket_conflict(proto: Proto, address: Ipv4Addr, port: u16) -> Result<()> {
    let sa = SocketAddrV4::new(address, port);
    let r = match proto {
        Proto::Tcp => TcpListener::bind(sa).map(drop),
        Proto::Udp => UdpSocket::bind(sa).map(drop),
    };
    match r {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::AddrInUse => Err(Error::conflict(format!(
            "host port {port}/{proto} on {address} is taken by a socket on the host"
        ))
        .with_hint(format!(
            "pick another host port, or stop what listens there (ss -lnp 'sport = :{port}')"
        ))),
        Err(e) if e.kind() == ErrorKind::AddrNotAvailable => Err(Error::usage(format!(
            "--address {address} is not an address of this host"
        ))
        .with_hint("use 127.0.0.1 (the default) or an address from `ip -4 addr`")),
        Err(e) => Err(banger_lib::error::io(
            format!("checking whether {address}:{port}/{proto} is free"),
            e,
        )),
    }
}

/// The forward in `st` that holds `proto address:port`, if any.
fn holder(st: &NetState, proto: Proto, address: Ipv4Addr, port: u16) -> Option<&Forward> {
    st.forwards
        .iter()
        .find(|f| f.proto == proto && f.address == address && f.host_port == port)
}

/// Forward `w.address:w.host_port` to the VM's guest port. The same
/// forward again is no change.
pub fn add(cfg: &NetCfg, w: &Want) -> Result<Forward> {
    banger_lib::names::validate("VM", &w.vm)?;
    check_address(w.address)?;
    crate::nft::require("port forwards")?;
    let nl = Nl::new()?;
    netstate::update(cfg, &nl, |st| {
        let i = crate::nat::lease_index(st, &w.vm)?;
        let guest_ip = st.leases[i].ip;
        if let Some(f) = holder(st, w.proto, w.address, w.host_port) {
            if f.vm == w.vm && f.guest_port == w.guest_port && f.guest_ip == guest_ip {
                let f = f.clone();
                crate::filter::sync(cfg, st)?;
                return Ok(f);
            }
            return Err(Error::conflict(format!(
                "host port {}/{} on {} already forwards to {}:{}",
                w.host_port, w.proto, w.address, f.vm, f.guest_port
            ))
            .with_hint("pick another host port, or remove that forward first"));
        }
        host_socket_conflict(w.proto, w.address, w.host_port)?;
        let f = Forward {
            vm: w.vm.clone(),
            proto: w.proto,
            address: w.address,
            host_port: w.host_port,
            guest_ip,
            guest_port: w.guest_port,
        };
        let mut intent = Intent::new(Op::Forward, Some(&w.vm), vec![]);
        intent.forwarding_was_off = crate::nat::forwarding() == Some(false);
        st.intend(intent)?;
        let before = st.clone();
        st.forwards.push(f.clone());
        st.forwards
            .sort_by_key(|f| (f.vm.clone(), f.host_port, f.proto, f.address));
        let r = crate::nat::ensure_routing(st).and_then(|_| crate::filter::sync(cfg, st));
        if let Err(e) = r {
            // net.json is not written on an error: the kernel as it was.
            if st.forwarding_was_off && !before.forwarding_was_off {
                let _ = crate::nat::restore_forwarding(st);
            }
            let _ = crate::filter::sync(cfg, &before);
            return Err(e);
        }
        Ok(f)
    })
}

/// Which of a VM's forwards `remove` takes away.
#[derive(Debug, Clone, Copy)]
pub enum Which {
    All,
    Port {
        proto: Proto,
        host_port: u16,
        address: Option<Ipv4Addr>,
    },
}

/// Take away `vm`'s forwards that `which` names; they are printed. A port
/// the VM does not forward is exit 3; `All` of a VM without any is none.
pub fn remove(cfg: &NetCfg, vm: &str, which: Which) -> Result<Vec<Forward>> {
    banger_lib::names::validate("VM", vm)?;
    crate::nft::require("port forwards")?;
    let nl = Nl::new()?;
    netstate::update(cfg, &nl, |st| {
        let hit = |f: &Forward| {
            f.vm == vm
                && match which {
                    Which::All => true,
                    Which::Port {
                        proto,
                        host_port,
                        address,
                    } => {
                        f.proto == proto
                            && f.host_port == host_port
                            && address.is_none_or(|a| a == f.address)
                    }
                }
        };
        if !st.forwards.iter().any(hit) {
            if let Which::Port {
                proto, host_port, ..
            } = which
            {
                return Err(Error::not_found(format!(
                    "VM {vm} has no forward of host port {host_port}/{proto}"
                ))
                .with_hint(format!(
                    "banger-net forward list --vm {vm} shows its forwards"
                )));
            }
            return Ok(Vec::new());
        }
        st.intend(Intent::new(Op::Forward, Some(vm), vec![]))?;
        let (gone, kept): (Vec<Forward>, Vec<Forward>) =
            std::mem::take(&mut st.forwards).into_iter().partition(hit);
        st.forwards = kept;
        crate::filter::sync_if_present(cfg, st)?;
        crate::nat::restore_if_unused(st)?;
        Ok(gone)
    })
}

/// The forwards in force, of one VM or all.
pub fn list(vm: Option<&str>) -> Result<Vec<Forward>> {
    if let Some(vm) = vm {
        banger_lib::names::validate("VM", vm)?;
    }
    let st = netstate::load()?;
    Ok(st
        .forwards
        .into_iter()
        .filter(|f| vm.is_none_or(|v| f.vm == v))
        .collect())
}

const LOCALNET: &str = "route_localnet";

/// The bridge's route_localnet as the forwards need it: on while any
/// forward is on a loopback address. Nothing when the bridge is not there.
pub fn sync_localnet(cfg: &NetCfg, st: &NetState) -> Result<()> {
    let p = format!("/proc/sys/net/ipv4/conf/{}/{LOCALNET}", cfg.bridge);
    let Ok(now) = std::fs::read_to_string(&p) else {
        return Ok(());
    };
    let want = if loopback(st) { "1" } else { "0" };
    if now.trim() == want {
        return Ok(());
    }
    std::fs::write(&p, format!("{want}\n"))
        .map_err(|e| banger_lib::error::io(format!("writing {p}"), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fwd(vm: &str, address: [u8; 4], port: u16) -> Forward {
        Forward {
            vm: vm.into(),
            proto: Proto::Tcp,
            address: address.into(),
            host_port: port,
            guest_ip: Ipv4Addr::new(172, 30, 0, 2),
            guest_port: 8000,
        }
    }

    #[test]
    fn loopback_and_routed_forwards() {
        let mut st = NetState::default();
        assert!(!routes(&st) && !loopback(&st));
        st.forwards.push(fwd("a", [127, 0, 0, 1], 18000));
        assert!(!routes(&st) && loopback(&st));
        st.forwards.push(fwd("a", [192, 168, 1, 5], 18000));
        assert!(routes(&st));
        assert_eq!(
            holder(&st, Proto::Tcp, [192, 168, 1, 5].into(), 18000)
                .unwrap()
                .address,
            Ipv4Addr::new(192, 168, 1, 5)
        );
        assert!(holder(&st, Proto::Udp, [127, 0, 0, 1].into(), 18000).is_none());
    }

    #[test]
    fn wildcard_and_group_addresses_are_refused() {
        for a in ["0.0.0.0", "255.255.255.255", "224.0.0.1"] {
            let e = check_address(a.parse().unwrap()).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{a}");
        }
        check_address(Ipv4Addr::LOCALHOST).unwrap();
    }

    #[test]
    fn a_bound_port_is_a_conflict_and_a_foreign_address_a_usage_error() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let e = host_socket_conflict(Proto::Tcp, Ipv4Addr::LOCALHOST, port).unwrap_err();
        assert_eq!(e.exit_code(), 5, "{e}");
        drop(l);
        host_socket_conflict(Proto::Tcp, Ipv4Addr::LOCALHOST, port).unwrap();
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = u.local_addr().unwrap().port();
        let e = host_socket_conflict(Proto::Udp, Ipv4Addr::LOCALHOST, port).unwrap_err();
        assert_eq!(e.exit_code(), 5);
        // TEST-NET-3: never an address of this host.
        let e = host_socket_conflict(Proto::Tcp, Ipv4Addr::new(203, 0, 113, 9), 1).unwrap_err();
        assert_eq!(e.exit_code(), 2, "{e}");
    }
}
