//! `cp [-r] SRC DST`: files in and out of a guest with scp, over the same
//! key, known_hosts and options as `banger-ssh NAME`. One side is
//! `NAME:PATH`, the other a local path.

use crate::{ident, session, target::Vm};
use banger_lib::{hosttools, names, Error, Result};
use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

/// One side of a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Side {
    Local(String),
    /// A VM and a path in it.
    Guest(String, String),
}

/// `NAME:PATH` is a guest path when NAME is a VM name (no `/` before the
/// colon); anything else is local (`./a:b` for a local name with a colon).
pub fn side(arg: &str) -> Side {
    match arg.split_once(':') {
        Some((name, path)) if !name.contains('/') && names::validate("VM", name).is_ok() => {
            Side::Guest(name.to_string(), path.to_string())
        }
        _ => Side::Local(arg.to_string()),
    }
}

pub fn copy(src: &str, dst: &str, recursive: bool) -> Result<i32> {
    let (src, dst) = (side(src), side(dst));
    let vm = match (&src, &dst) {
        (Side::Guest(a, _), Side::Guest(b, _)) if a != b => {
            return Err(
                Error::usage("cp copies between the host and one VM, not two VMs")
                    .with_hint("copy to the host first, then on"),
            );
        }
        (Side::Guest(n, _), _) | (_, Side::Guest(n, _)) => n.clone(),
        _ => {
            return Err(Error::usage("neither side of cp is a VM path")
                .with_hint("write one side as NAME:PATH, e.g. banger vm cp ./app box:/root/"))
        }
    };
    if let Side::Local(p) = &src {
        if std::fs::symlink_metadata(p).is_err() {
            return Err(Error::not_found(format!("{p}: no such file or directory")));
        }
        if Path::new(p).is_dir() && !recursive {
            return Err(
                Error::usage(format!("{p} is a directory")).with_hint("copy a directory with -r")
            );
        }
    }
    let vm = Vm::load(&vm)?;
    let ip = vm.running_ip()?.to_string();
    let scp = hosttools::require("scp", "copying files to and from guests", "openssh-client")?;
    let key = ident::key()?;
    let known_hosts = session::pinned_known_hosts(&vm, false)?;
    let arg = |s: &Side| -> OsString {
        match s {
            Side::Local(p) => p.into(),
            Side::Guest(_, p) => format!("root@{ip}:{p}").into(),
        }
    };
    let mut c = Command::new(scp);
    c.args(session::ssh_options(&key, &known_hosts));
    if recursive {
        c.arg("-r");
    }
    // Keep the modes and times, as cp -p would.
    c.arg("-p").arg("--").arg(arg(&src)).arg(arg(&dst));
    // scp's own exit code and messages pass through.
    let e = c.exec();
    Err(Error::failed(format!("running scp: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sides() {
        assert_eq!(
            side("box:/root/x"),
            Side::Guest("box".into(), "/root/x".into())
        );
        assert_eq!(side("box:"), Side::Guest("box".into(), "".into()));
        assert_eq!(side("./box:x"), Side::Local("./box:x".into()));
        assert_eq!(side("/tmp/a"), Side::Local("/tmp/a".into()));
        assert_eq!(side("Bad_Name:x"), Side::Local("Bad_Name:x".into()));
    }
}
