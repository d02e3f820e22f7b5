//! banger-fc: one Firecracker microVM process, driven over its API socket.

mod api;
mod binary;
mod boot;
mod cli;
mod control;
mod launch;
mod record;

use banger_lib::output::emit;
use clap::Parser;
use cli::{Cli, SnapshotCmd, Sub};
use std::io::Read;

fn main() {
    let cli = Cli::parse();
    banger_lib::run::main("banger-fc", || {
        match cli.sub {
            Sub::Start => {
                let mut text = String::new();
                std::io::stdin()
                    .read_to_string(&mut text)
                    .map_err(|e| banger_lib::error::io("reading the VM spec from stdin", e))?;
                emit(&boot::start(&text)?);
            }
            Sub::Status { id, config } => emit(&control::status(&id, config)?),
            Sub::Stop { id, timeout } => emit(&control::stop(&id, timeout)?),
            Sub::Pause { id } => emit(&control::pause(&id)?),
            Sub::Resume { id } => emit(&control::resume(&id)?),
            Sub::Snapshot(SnapshotCmd::Create { id, dir }) => {
                emit(&control::snapshot_create(&id, &dir)?)
            }
            Sub::Snapshot(SnapshotCmd::Load { id, dir }) => emit(&boot::load(&id, &dir)?),
        }
        Ok(0)
    })
}
