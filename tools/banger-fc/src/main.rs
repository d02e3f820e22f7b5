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
use boot::Options;
use cli::{Cli, SnapshotCmd, Sub};

fn main() {
    let cli = banger_lib::run::parse::<Cli>("banger-fc");
    banger_lib::run::main("banger-fc", || {
        match cli.sub {
            Sub::Start {
                no_jailer,
                print_argv,
                track_dirty_pages,
            } if !print_argv => emit(&boot::start(
                &read_stdin()?,
                Options {
                    no_jailer,
                    track_dirty_pages,
                },
            )?),
            Sub::Start {
                no_jailer,
                track_dirty_pages,
                ..
            } => {
                let opts = Options {
                    no_jailer,
                    track_dirty_pages,
                };
                let (process, requests) = boot::print_argv(&read_stdin()?, opts)?;
                emit(&process);
                for r in requests {
                    emit(&r);
                }
            }
            Sub::Status { id, config } => emit(&control::status(&id, config)?),
            Sub::Stop { id, timeout, kill } => emit(&control::stop(&id, timeout, kill)?),
            Sub::Pause { id } => emit(&control::pause(&id)?),
            Sub::Resume { id } => emit(&control::resume(&id)?),
            Sub::Snapshot(SnapshotCmd::Create {
                id,
                dir,
                disks,
                diff,
            }) => emit(&control::snapshot_create(
                &id,
                &dir,
                &control::SnapshotAsk { disks, diff },
            )?),
            Sub::Snapshot(SnapshotCmd::Load {
                id,
                dir,
                no_jailer,
                track_dirty_pages,
            }) => emit(&boot::load(
                &id,
                &dir,
                Options {
                    no_jailer,
                    track_dirty_pages,
                },
            )?),
            Sub::Suspend { id, to } => emit(&control::suspend(&id, &to)?),
            Sub::Restore {
                from,
                no_jailer,
                track_dirty_pages,
            } => emit(&boot::restore(
                &read_stdin()?,
                &from,
                Options {
                    no_jailer,
                    track_dirty_pages,
                },
            )?),
            Sub::ConsoleLog(args) => return Ok(banger_lib::console::run_logger(&args)?),
        }
        Ok(0)
    })
}
