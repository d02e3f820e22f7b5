//! banger: the dispatcher. `banger SUB ARGS..` execs `banger-SUB` the way
//! `git SUB` runs `git-SUB`, so exit codes, signals, stdin and the TTY pass
//! through unchanged.

mod cli;
mod tools;

use banger_lib::{output::emit, Error};
use clap::Parser;
use cli::{Cli, Sub};
use std::os::unix::process::CommandExt;

fn main() {
    let cli = Cli::parse();
    banger_lib::run::main("banger", || match cli.sub {
        Sub::Commands => {
            for t in tools::all() {
                emit(&t);
            }
            Ok(0)
        }
        Sub::Completions { shell } => {
            cli::completions(shell, &mut std::io::stdout());
            Ok(0)
        }
        Sub::Gc { args } => gc(&args),
        Sub::External(args) => dispatch(args),
    })
}

/// `banger gc ARGS`: `banger-vm gc ARGS` (VMs, their dirs and leases),
/// then `banger-net gc ARGS` (TAPs, nft elements, files left once the
/// leases are gone), each printing its own lines. A usage error stops at
/// the first; otherwise the exit code is the first non-zero one. A tool
/// that is not installed is skipped with a note.
fn gc(args: &[std::ffi::OsString]) -> anyhow::Result<i32> {
    let mut code = 0;
    let mut ran = 0;
    for sub in ["vm", "net"] {
        let Some(path) = tools::find(sub) else {
            eprintln!("banger: note: banger-{sub} is not installed; its gc is skipped");
            continue;
        };
        ran += 1;
        let status = std::process::Command::new(&path)
            .arg("gc")
            .args(args)
            .status()
            .map_err(|e| Error::failed(format!("running {}: {e}", path.display())))?;
        let c = status.code().unwrap_or(1);
        if c == 2 {
            return Ok(2);
        }
        if code == 0 {
            code = c;
        }
    }
    if ran == 0 {
        return Err(
            Error::not_found("neither banger-vm nor banger-net is installed")
                .with_hint("make install")
                .into(),
        );
    }
    Ok(code)
}

fn dispatch(args: Vec<std::ffi::OsString>) -> anyhow::Result<i32> {
    let (sub, rest) = args.split_first().expect("clap gives the subcommand name");
    let sub = sub.to_string_lossy();
    let Some(path) = tools::find(&sub) else {
        let known: Vec<String> = tools::all().into_iter().map(|t| t.name).collect();
        return Err(Error::usage(format!("unknown command {sub:?}"))
            .with_hint(format!(
                "the commands are: {}, and the built-ins help, commands, completions, gc",
                known.join(", ")
            ))
            .into());
    };
    // exec only returns on failure.
    let err = std::process::Command::new(&path)
        .arg0(format!("banger-{sub}"))
        .args(rest)
        .exec();
    Err(Error::failed(format!("running {}: {err}", path.display())).into())
}
