//! banger-qemu: one QEMU microvm process, driven over QMP; the guest
//! agent on a virtio-serial port.

mod accel;
mod argv;
mod binary;
mod cli;
mod control;
mod launch;
mod qmp;
mod record;
mod snapshot;
mod suspend;

use banger_lib::output::emit;
use banger_lib::vmspec::read_stdin;
use cli::{Cli, SnapshotCmd, Sub};

fn main() {
    let cli = banger_lib::run::parse::<Cli>("banger-qemu");
    banger_lib::run::main("banger-qemu", || {
        match cli.sub {
            Sub::Start { print_argv: false } => emit(&launch::start(&read_stdin()?)?),
            Sub::Start { print_argv: true } => {
                for line in launch::print_argv(&read_stdin()?)? {
                    emit(&line);
                }
            }
            Sub::Status { id } => emit(&control::status(&id)?),
            Sub::Stop { id, timeout, kill } => emit(&control::stop(&id, timeout, kill)?),
            Sub::Pause { id } => emit(&control::pause(&id)?),
            Sub::Resume { id } => emit(&control::resume(&id)?),
            Sub::Suspend { id, to, timeout } => emit(&suspend::suspend(
                &id,
                &to,
                std::time::Duration::from_secs(timeout),
            )?),
            Sub::Restore { from } => emit(&launch::launch(&read_stdin()?, Some(&from))?),
            Sub::ConsoleLog(args) => return Ok(banger_lib::console::run_logger(&args)?),
            Sub::Snapshot(SnapshotCmd::Create {
                id,
                dir,
                disks,
                timeout,
            }) => emit(&snapshot::create(
                &id,
                &dir,
                &disks,
                std::time::Duration::from_secs(timeout),
            )?),
        }
        Ok(0)
    })
}
