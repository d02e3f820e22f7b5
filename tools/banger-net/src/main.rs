//! banger-net: host networking. The bridge, TAPs and their pool, leases,
//! the guests' packet filter (isolation, anti-spoofing, the host's ports),
//! per-VM NAT, port forwards and the .vm DNS server.

mod bridge;
mod cli;
mod dns;
mod dnsd;
mod dnspriv;
mod fault;
mod filter;
mod forward;
mod gc;
mod nat;
mod netcfg;
mod netlink;
mod netstate;
mod nft;
mod ports;
mod recover;
mod tap;
mod tuntap;

use banger_lib::output::emit;
use cli::{Cli, Cmd, DnsCmd, ForwardCmd, LeaseCmd, NatCmd, PoolCmd, TapCmd};
use netcfg::NetCfg;

fn main() {
    let cli = banger_lib::run::parse::<Cli>("banger-net");
    banger_lib::run::main("banger-net", || run(cli))
}

fn each<T: serde::Serialize>(items: Vec<T>) -> anyhow::Result<i32> {
    for i in &items {
        emit(i);
    }
    Ok(0)
}

fn run(cli: Cli) -> anyhow::Result<i32> {
    let cfg = NetCfg::load()?;
    match cli.cmd {
        Cmd::Setup => {
            let nl = netlink::Nl::new()?;
            emit(&bridge::setup(&cfg, &nl)?);
            // The user VMMs and the DNS server run as (banger_lib::vmmuser).
            let user = banger_lib::vmmuser::configured();
            if banger_lib::vmmuser::ensure(&user)? {
                eprintln!("banger-net: created the unprivileged VMM user {user}");
            }
        }
        Cmd::Teardown { force } => emit(&bridge::teardown(&cfg, force)?),
        Cmd::Status => return each(bridge::status(&cfg)?),
        Cmd::Tap { cmd } => {
            match cmd {
                TapCmd::Acquire { vm, no_isolate } => emit(&netstate::TapLine::from(
                    &tap::acquire(&cfg, &vm, !no_isolate)?,
                )),
                TapCmd::Set { vm, isolate, .. } => emit(&tap::set_isolated(&cfg, &vm, isolate)?),
                TapCmd::Release { vm } => emit(&tap::release(&cfg, &vm)?),
            }
        }
        Cmd::Pool { cmd } => match cmd {
            PoolCmd::Fill { size } => return each(tap::pool_fill(&cfg, size)?),
            PoolCmd::List => return each(tap::pool_list(&cfg)?),
            PoolCmd::Drain => return each(tap::pool_drain(&cfg)?),
        },
        Cmd::Lease {
            cmd: LeaseCmd::List,
        } => return each(netstate::load()?.leases),
        Cmd::Nat { cmd } => match cmd {
            NatCmd::Enable { vm, uplink } => emit(&nat::enable(&cfg, &vm, uplink.as_deref())?),
            NatCmd::Disable { vm, .. } => emit(&nat::disable(&cfg, &vm)?),
            NatCmd::List => return each(nat::list()?),
        },
        Cmd::Gc { dry_run } => return each(gc::gc(&cfg, dry_run)?),
        Cmd::Allow { port } => emit(&ports::allow(&cfg, port)?),
        Cmd::Deny { port } => emit(&ports::deny(&cfg, port)?),
        Cmd::Forward { cmd } => match cmd {
            ForwardCmd::Add {
                vm,
                host_port,
                guest_port,
                udp,
                address,
            } => emit(&forward::add(
                &cfg,
                &forward::Want {
                    vm,
                    proto: banger_lib::records::Proto::from_udp(udp),
                    address,
                    host_port,
                    guest_port,
                },
            )?),
            ForwardCmd::Remove {
                vm,
                host_port,
                udp,
                address,
                all,
            } => {
                let which = match host_port {
                    Some(host_port) if !all => forward::Which::Port {
                        proto: banger_lib::records::Proto::from_udp(udp),
                        host_port,
                        address,
                    },
                    _ => forward::Which::All,
                };
                return each(forward::remove(&cfg, &vm, which)?);
            }
            ForwardCmd::List { vm } => return each(forward::list(vm.as_deref())?),
        },
        Cmd::Dns { cmd } => match cmd {
            DnsCmd::Serve {
                listen,
                no_forward,
                pid_file,
            } => {
                let listen = listen.unwrap_or_else(|| dnsd::default_listen(&cfg));
                dns::serve(&cfg, listen, !no_forward, pid_file.as_deref())?;
            }
            DnsCmd::Ensure { listen, no_forward } => {
                emit(&dnsd::ensure(&cfg, listen, !no_forward)?)
            }
            DnsCmd::Stop => emit(&dnsd::stop()?),
            DnsCmd::LeaseHelper => dnspriv::helper(netstate::path())?,
            DnsCmd::Status => emit(&dnsd::status(&cfg)?),
        },
    }
    Ok(0)
}
