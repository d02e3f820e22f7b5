//! banger-health: is the guest up? Asks banger-vsock-agent inside it over
//! the hybrid vsock socket the VMM exposes on the host.

mod cli;
mod probe;
mod target;
mod wait;

#[cfg(test)]
#[path = "../tests/common/fakevsock.rs"]
mod fakevsock;

use banger_lib::{config::Bundle, output, Result};
use clap::Parser;
use cli::{Cli, Cmd, Target as Flags};
use probe::Outcome;
use std::time::Duration;

fn main() {
    let cli = Cli::parse();
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

fn check(names: &[String], flags: &Flags, timeout: Duration) -> Result<i32> {
    // Bad names are a usage error before anything is asked.
    for n in names {
        banger_lib::names::validate("VM", n)?;
    }
    let port = port(flags)?;
    let outcomes: Vec<Outcome> = match &flags.uds {
        Some(uds) => vec![probe::check(&uds.display().to_string(), uds, port, timeout)],
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
    for o in &outcomes {
        output::emit(&o.line);
    }
    Ok(if outcomes.iter().all(|o| o.ok) { 0 } else { 1 })
}

fn check_vm(name: &str, port: u32, timeout: Duration) -> Outcome {
    match target::resolve(name) {
        Ok(target::Target::Uds(uds)) => probe::check(name, &uds, port, timeout),
        Ok(target::Target::Down(why)) => Outcome::down(name, why),
        Err(e) => Outcome::down(name, e.message),
    }
}

fn wait(name: Option<String>, flags: &Flags, timeout: Duration) -> Result<i32> {
    let subject = match (&flags.uds, name) {
        (Some(uds), _) => wait::Subject::Uds(uds.clone()),
        (None, Some(n)) => {
            banger_lib::names::validate("VM", &n)?;
            wait::Subject::Vm(n)
        }
        (None, None) => unreachable!("clap requires a name or --uds"),
    };
    let port = port(flags)?;
    let outcome = wait::wait(&subject, port, timeout)?;
    output::emit(&outcome.line);
    if outcome.ok {
        Ok(0)
    } else {
        let name = outcome.line["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        Err(wait::failed(&name, timeout, &outcome))
    }
}
