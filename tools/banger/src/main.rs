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
        Sub::Gc { args } => {
            let mut v: Vec<std::ffi::OsString> = vec!["vm".into(), "gc".into()];
            v.extend(args);
            dispatch(v)
        }
        Sub::External(args) => dispatch(args),
    })
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
