//! banger-qemu: one QEMU microvm process (plus its vhost-device-vsock
//! helper), driven over QMP.

mod accel;
mod argv;
mod binary;
mod cli;
mod control;
mod launch;
mod qmp;
mod record;

use banger_lib::output::emit;
use banger_lib::vmspec::read_stdin;
use banger_lib::Error;
use cli::{Cli, Sub};

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
            Sub::ConsoleLog(args) => return Ok(banger_lib::console::run_logger(&args)?),
            Sub::Snapshot { .. } => {
                return Err(
                    Error::failed("snapshot is not supported by the qemu driver")
                        .with_hint("use banger-fc (vmm \"firecracker\") for snapshots")
                        .into(),
                )
            }
        }
        Ok(0)
    })
}
