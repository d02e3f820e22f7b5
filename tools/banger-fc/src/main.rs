//! banger-fc: one Firecracker microVM process, driven over its API socket.

mod api;
mod binary;
mod boot;
mod cli;
mod control;
mod jail;
mod launch;
mod record;

use banger_lib::output::emit;
use banger_lib::vmspec::read_stdin;
use cli::{Cli, SnapshotCmd, Sub};

fn main() {
    let cli = banger_lib::run::parse::<Cli>("banger-fc");
    banger_lib::run::main("banger-fc", || {
        match cli.sub {
            Sub::Start {
                no_jailer,
                print_argv: false,
            } => emit(&boot::start(&read_stdin()?, no_jailer)?),
            Sub::Start {
                no_jailer,
                print_argv: true,
            } => {
                let (process, requests) = boot::print_argv(&read_stdin()?, no_jailer)?;
                emit(&process);
                for r in requests {
                    emit(&r);
                }
            }
            Sub::Status { id, config } => emit(&control::status(&id, config)?),
            Sub::Stop { id, timeout, kill } => emit(&control::stop(&id, timeout, kill)?),
            Sub::Pause { id } => emit(&control::pause(&id)?),
            Sub::Resume { id } => emit(&control::resume(&id)?),
            Sub::Snapshot(SnapshotCmd::Create { id, dir }) => {
                emit(&control::snapshot_create(&id, &dir)?)
            }
            Sub::Snapshot(SnapshotCmd::Load { id, dir }) => emit(&boot::load(&id, &dir)?),
            Sub::Suspend { id, to } => emit(&control::suspend(&id, &to)?),
            Sub::Restore { from } => emit(&boot::restore(&read_stdin()?, &from)?),
            Sub::ConsoleLog(args) => return Ok(banger_lib::console::run_logger(&args)?),
        }
        Ok(0)
    })
}
