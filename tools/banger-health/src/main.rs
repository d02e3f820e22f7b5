//! banger-health: is the guest up? Asks banger-vsock-agent inside it over
//! the agent endpoint the VMM exposes on the host (Firecracker's hybrid
//! vsock, QEMU's virtio-serial port).

mod cli;
mod probe;
mod target;
mod wait;

use banger_lib::agent::Endpoint;
use banger_lib::{config::Bundle, output, Result};
use cli::{Cli, Cmd, Target as Flags};
use probe::Outcome;
use std::time::Duration;

fn main() {
    let cli = banger_lib::run::parse::<Cli>("banger-health");
    banger_lib::run::main("banger-health", || match cli.cmd {
        Cmd::Check {
            names,
            target,
            timeout,
        } => Ok(check(&names, &target, Duration::from_secs_f64(timeout))?),
        Cmd::Wait {
            name,
            target,
            timeout,
        } => Ok(wait(name, &target, Duration::from_secs_f64(timeout))?),
    })
}

/// --port, else the bundle's agent_port.
fn port(flags: &Flags) -> Result<u32> {
    match flags.port {
        Some(p) => Ok(p),
        None => Ok(Bundle::load()?.agent_port),
    }
}

/// The endpoint --uds (with the port) or --serial names, if either.
fn endpoint(flags: &Flags, port: u32) -> Option<Endpoint> {
    match (&flags.uds, &flags.serial) {
        (Some(uds), _) => Some(Endpoint::Vsock {
            uds: uds.clone(),
            port,
        }),
        (None, Some(uds)) => Some(Endpoint::Serial { uds: uds.clone() }),
        (None, None) => None,
    }
}

fn check(names: &[String], flags: &Flags, timeout: Duration) -> Result<i32> {
    // Bad names are a usage error before anything is asked.
    for n in names {
        banger_lib::names::validate("VM", n)?;
    }
    let port = port(flags)?;
    let outcomes: Vec<(Outcome, i32)> = match endpoint(flags, port) {
        Some(ep) => vec![(
            probe::check(&ep.uds().display().to_string(), &ep, timeout),
            1,
        )],
        None => std::thread::scope(|s| {
            let handles: Vec<_> = names
                .iter()
                .map(|n| s.spawn(move || check_vm(n, port, timeout)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a check thread panicked"))
                .collect()
        }),
    };
    for (o, _) in &outcomes {
        output::emit(&o.line);
        if let Some(e) = o.error().filter(|_| !o.ok) {
            let msg = format!("{}: {e}", o.line.name);
            banger_lib::error::report("banger-health", banger_lib::Kind::Failed, &msg, None);
        }
    }
    // One name: its own exit code (3 for no such VM); several: 1 if any failed.
    Ok(match outcomes.as_slice() {
        [(o, code)] if !o.ok => *code,
        all if all.iter().all(|(o, _)| o.ok) => 0,
        _ => 1,
    })
}

/// One VM's outcome and the exit code its failure would have alone.
fn check_vm(name: &str, port: u32, timeout: Duration) -> (Outcome, i32) {
    match target::resolve(name, port) {
        Ok(target::Target::Agent(ep)) => (probe::check(name, &ep, timeout), 1),
        Ok(target::Target::Down(why)) => (Outcome::down(name, why), 1),
        Err(e) => (Outcome::down(name, e.message.clone()), e.exit_code()),
    }
}

fn wait(name: Option<String>, flags: &Flags, timeout: Duration) -> Result<i32> {
    // A wait only serves whoever runs it: gone with its parent.
    banger_lib::proc::die_with_parent();
    let port = port(flags)?;
    let subject = match (endpoint(flags, port), name) {
        (Some(ep), name) => wait::Subject::Agent(ep, name),
        (None, Some(n)) => {
            banger_lib::names::validate("VM", &n)?;
            wait::Subject::Vm(n)
        }
        (None, None) => unreachable!("clap requires a name, --uds or --serial"),
    };
    let outcome = wait::wait(&subject, port, timeout)?;
    output::emit(&outcome.line);
    if outcome.ok {
        Ok(0)
    } else {
        let name = outcome.line.name.clone();
        Err(wait::failed(&name, timeout, &outcome))
    }
}
