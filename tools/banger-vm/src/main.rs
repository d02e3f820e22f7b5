//! banger-vm: the porcelain. It keeps VM records and composes the plumbing
//! tools (banger-image, banger-net, banger-fc/banger-qemu, banger-health,
//! banger-ssh) as processes.

mod cli;
mod clone;
mod create;
mod disks;
mod forward;
mod gc;
mod init;
mod lifecycle;
mod pending;
mod plumbing;
mod qcow2;
mod record;
mod snapshot;
mod steps;
mod stop;
mod suspend;
mod view;
mod vmm;

use banger_lib::{interrupt, names, Result};
use cli::{Cli, Cmd, SnapshotsCmd};
use serde::Serialize;

/// A verb over several VMs: names are checked in each VM's own line.
fn fanout<T: Serialize>(vms: &[String], op: impl Fn(&str) -> Result<T> + Sync) -> i32 {
    banger_lib::fanout::run("banger-vm", vms, |n| {
        names::validate("VM", n).and_then(|_| op(n))
    })
}

fn main() {
    let cli = banger_lib::run::parse::<Cli>("banger-vm");
    banger_lib::run::main("banger-vm", || {
        // Every command sees VMs whose VMM died as crashed.
        record::reconcile_all();
        Ok(match cli.cmd {
            Cmd::Create(a) => {
                let v = create::create(&a)?;
                banger_lib::output::emit(&v);
                0
            }
            Cmd::Start(a) => {
                interrupt::install();
                fanout(&a.names, |n| lifecycle::start(n, a.no_wait, a.timeout))
            }
            Cmd::Stop(a) => fanout(&a.names, |n| lifecycle::stop(n, a.timeout)),
            Cmd::Suspend { names } => fanout(&names, suspend::suspend),
            Cmd::Snapshot { name, as_ } => {
                banger_lib::output::emit(&snapshot::take(&name, &as_)?);
                0
            }
            Cmd::Snapshots {
                cmd: Some(SnapshotsCmd::Rm { names }),
                ..
            } => banger_lib::fanout::run("banger-vm", &names, snapshot::remove),
            Cmd::Snapshots { json, cmd: None } => {
                banger_lib::output::print_list(
                    &snapshot::list()?,
                    &[
                        ("name", "name"),
                        ("source", "source"),
                        ("image", "image"),
                        ("vmm", "vmm"),
                        ("vcpus", "vcpus"),
                        ("memory_mib", "memory"),
                        ("bytes", "state bytes"),
                        ("created_at", "created"),
                    ],
                    json,
                );
                0
            }
            Cmd::Resume { names, timeout } => {
                interrupt::install();
                fanout(&names, |n| suspend::resume(n, timeout))
            }
            Cmd::Restart(a) => {
                interrupt::install();
                fanout(&a.names, |n| {
                    lifecycle::restart(n, a.no_wait, a.timeout, a.stop_timeout)
                })
            }
            Cmd::Delete(a) => fanout(&a.names, |n| {
                lifecycle::delete(n, a.force, a.graceful, a.timeout)
            }),
            Cmd::List { json } => view::list(json)?,
            Cmd::Show { name } => view::show(&name)?,
            Cmd::Spec { name } => view::spec(&name)?,
            Cmd::Set(a) => {
                let s = lifecycle::Settings {
                    nat: if a.nat {
                        Some(true)
                    } else if a.no_nat {
                        Some(false)
                    } else {
                        None
                    },
                    isolated: if a.isolate {
                        Some(true)
                    } else if a.no_isolate {
                        Some(false)
                    } else {
                        None
                    },
                    vcpus: a.vcpus,
                    memory: a.memory,
                };
                if s.nat.is_none()
                    && s.isolated.is_none()
                    && s.vcpus.is_none()
                    && s.memory.is_none()
                {
                    return Err(banger_lib::Error::usage(
                        "set needs --nat, --no-nat, --isolate, --no-isolate, --vcpus or --memory",
                    )
                    .into());
                }
                fanout(&a.names, |n| lifecycle::set(n, &s))
            }
            Cmd::Ssh { name, rekey, cmd } => view::ssh(&name, rekey, &cmd)?,
            Cmd::Health { names } => view::health(&names)?,
            Cmd::Cp {
                recursive,
                src,
                dst,
            } => view::cp(recursive, &src, &dst)?,
            Cmd::SshConfig { names } => view::ssh_config(&names)?,
            Cmd::Forward(a) => {
                names::validate("VM", &a.name)?;
                let proto = banger_lib::records::Proto::from_udp(a.udp);
                let lines = if a.list {
                    forward::list(&a.name)?
                } else if let Some(port) = a.remove {
                    forward::remove(&a.name, proto, port, a.address)?
                } else {
                    let (host_port, guest_port) =
                        forward::parse_spec(a.ports.as_deref().unwrap_or_default())?;
                    vec![forward::add(
                        &a.name,
                        banger_lib::records::PortForward {
                            proto,
                            address: a.address.unwrap_or(std::net::Ipv4Addr::LOCALHOST),
                            host_port,
                            guest_port,
                        },
                    )?]
                };
                if a.list {
                    banger_lib::output::print_list(
                        &lines,
                        &[
                            ("proto", "proto"),
                            ("address", "address"),
                            ("host_port", "host port"),
                            ("guest_port", "guest port"),
                            ("active", "active"),
                        ],
                        false,
                    );
                } else {
                    lines.iter().for_each(banger_lib::output::emit);
                }
                0
            }
            Cmd::Logs {
                name, init: true, ..
            } => {
                banger_lib::names::validate("VM", &name)?;
                init::print_logs(&record::load_existing(&name)?)?;
                0
            }
            Cmd::Logs { name, follow, .. } => view::logs(&name, follow)?,
            Cmd::Gc { dry_run } => {
                for l in gc::gc(dry_run)? {
                    banger_lib::output::emit(&l);
                }
                0
            }
        })
    })
}
