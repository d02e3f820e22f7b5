//! banger-ssh: log into a guest (or run a command in it) with the bundle's
//! key and a per-VM known_hosts; wait for sshd; print ssh_config stanzas.

mod cli;
mod copy;
mod ident;
mod pin;
mod remote;
mod session;
mod stanza;
mod target;
mod wait;

use banger_lib::agent::Endpoint;
use banger_lib::{output, Error, Result};
use cli::{Cli, Cmd};
use serde_json::json;
use std::time::Duration;
use target::Vm;

fn main() {
    let cli = banger_lib::run::parse::<Cli>("banger-ssh");
    banger_lib::run::main("banger-ssh", || {
        Ok(match cli.cmd {
            None => {
                let vm = Vm::load(cli.name.as_deref().expect("clap requires NAME"))?;
                if cli.command.is_empty() {
                    session::interactive(&vm, cli.rekey)?
                } else {
                    session::run_command(&vm, &[remote::command_line(&cli.command)], cli.rekey)?
                }
            }
            Some(Cmd::Wait { name, ip, timeout }) => wait(&name, ip, timeout)?,
            Some(Cmd::Pin {
                name,
                rekey,
                uds,
                serial,
                port,
                ip,
                timeout,
            }) => {
                let given = match (uds, port, serial) {
                    (Some(uds), Some(port), _) => Some(Endpoint::Vsock { uds, port }),
                    (None, _, Some(uds)) => Some(Endpoint::Serial { uds }),
                    _ => None,
                };
                let target = match (given, ip) {
                    (Some(ep), Some(ip)) => {
                        let mut vm = Vm::at(&name, &ip.to_string())?;
                        vm.agent = Some(ep);
                        vm
                    }
                    _ => Vm::load(&name)?,
                };
                pin(&target, rekey, timeout)?
            }
            Some(Cmd::Config { names }) => config(&names)?,
            Some(Cmd::Cp {
                recursive,
                src,
                dst,
            }) => copy::copy(&src, &dst, recursive)?,
            Some(Cmd::Forget { names }) => forget(&names)?,
        })
    })
}

fn wait(name: &str, ip: Option<std::net::IpAddr>, timeout: f64) -> Result<i32> {
    // A wait only serves whoever runs it: gone with its parent.
    banger_lib::proc::die_with_parent();
    let vm = match ip {
        Some(ip) => Vm::at(name, &ip.to_string())?,
        None => Vm::load(name)?,
    };
    let (ok, line) = wait::wait(&vm, Duration::from_secs_f64(timeout));
    output::emit(&line);
    if ok {
        return Ok(0);
    }
    let why = line["error"].as_str().unwrap_or("sshd did not answer");
    Err(Error::failed(format!("{name}: {why}"))
        .with_hint(format!("see the guest console: banger vm logs {name}")))
}

fn pin(vm: &Vm, rekey: bool, timeout: f64) -> Result<i32> {
    // Like wait, it only serves whoever runs it.
    banger_lib::proc::die_with_parent();
    let ip = vm.running_ip()?;
    let ep = vm.agent.as_ref().ok_or_else(|| {
        Error::prereq(format!("{}'s record names no guest agent", vm.name))
            .with_hint(format!("start it again: banger vm restart {}", vm.name))
    })?;
    let keys = pin::fetch(&vm.name, ep, Duration::from_secs_f64(timeout))?;
    output::emit(&pin::pin(&vm.name, ip, keys, rekey)?);
    Ok(0)
}

fn config(names: &[String]) -> Result<i32> {
    let vms = names
        .iter()
        .map(|n| Vm::load(n))
        .collect::<Result<Vec<_>>>()?;
    let key = ident::key()?;
    let mut text = Vec::new();
    for vm in &vms {
        // Plain ssh checks the pinned keys; pin them now if none are yet.
        if vm.state == banger_lib::records::VmState::Running {
            if let Err(e) = session::pinned_known_hosts(vm, false) {
                eprintln!("banger-ssh: warning: {}: {e}", vm.name);
            }
        }
        text.push(stanza::stanza(
            &vm.name,
            vm.ip()?,
            &key,
            &ident::known_hosts(&vm.name)?,
        ));
    }
    print!("{}", text.join("\n"));
    Ok(0)
}

fn forget(names: &[String]) -> Result<i32> {
    for n in names {
        banger_lib::names::validate("VM", n)?;
    }
    let mut code = 0;
    for n in names {
        match ident::forget(n) {
            Ok(removed) => output::emit(&json!({"name": n, "ok": true, "removed": removed})),
            Err(e) => {
                code = 1;
                output::emit(&json!({"name": n, "ok": false, "error": e.message}));
            }
        }
    }
    Ok(code)
}
