//! The DNS server's privilege separation. It answers hostile guests, so
//! once its socket is bound (port 53 needs root) and its pid file written,
//! it drops to the unprivileged VMM user (banger_lib::vmmuser). The leases
//! it answers from stay in root's state dir: a small helper that stays
//! root (`dns lease-helper`, hidden) reads them and answers one question
//! over a socket pair: "NAME" -> "IP" or "-". It parses nothing else, reads
//! at most one short line per question, and dies with the server.
//!
//! Not root (a test, a user's own port): no helper, no drop; the server
//! reads the leases itself.

use crate::dns::Leases;
use banger_lib::{vmmuser, Error, Result};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::Ipv4Addr;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

/// The longest question line: a DNS label is at most 63 bytes.
const MAX_LINE: u64 = 128;

/// Where the server looks leases up.
pub enum LeaseSource {
    File(Leases),
    Helper {
        reader: BufReader<UnixStream>,
        writer: UnixStream,
        /// Reaped when the server exits; it dies with it (PDEATHSIG).
        _child: std::process::Child,
    },
}

/// Who the server will run as: looked up before it binds, so a missing
/// user fails `dns ensure` rather than a server that said it was up.
pub fn target() -> Result<Option<vmmuser::VmmUser>> {
    vmmuser::for_children()
}

/// Drop privileges to `user`, keeping a way to the leases at `path`.
pub fn drop_privileges(user: Option<vmmuser::VmmUser>, path: PathBuf) -> Result<LeaseSource> {
    let Some(user) = user else {
        return Ok(LeaseSource::File(Leases::new(path)));
    };
    let (ours, theirs) =
        UnixStream::pair().map_err(|e| banger_lib::error::io("making a socket pair", e))?;
    let dup = |s: &UnixStream| {
        s.try_clone()
            .map(|s| std::process::Stdio::from(std::os::fd::OwnedFd::from(s)))
            .map_err(|e| banger_lib::error::io("duplicating a socket", e))
    };
    let exe = std::env::current_exe().map_err(|e| banger_lib::error::io("finding myself", e))?;
    let child = std::process::Command::new(exe)
        .args(["dns", "lease-helper"])
        .stdin(dup(&theirs)?)
        .stdout(dup(&theirs)?)
        .spawn()
        .map_err(|e| banger_lib::error::io("starting the lease helper", e))?;
    drop(theirs);
    vmmuser::become_user(&user, &[])
        .map_err(|e| Error::failed(format!("dropping privileges to {}: {e}", user.name)))?;
    // No way back: setuid programs gain nothing, should one be reached.
    let _ = nix::sys::prctl::set_no_new_privs();
    let timeout = Some(Duration::from_secs(2));
    let io = |e| banger_lib::error::io("setting up the lease helper socket", e);
    ours.set_read_timeout(timeout).map_err(io)?;
    ours.set_write_timeout(timeout).map_err(io)?;
    Ok(LeaseSource::Helper {
        reader: BufReader::new(ours.try_clone().map_err(io)?),
        writer: ours,
        _child: child,
    })
}

impl LeaseSource {
    pub fn lookup(&mut self, vm: &str) -> Option<Ipv4Addr> {
        match self {
            LeaseSource::File(l) => l.lookup(vm),
            LeaseSource::Helper { reader, writer, .. } => {
                if vm.contains('\n') || vm.len() as u64 >= MAX_LINE {
                    return None;
                }
                writer.write_all(format!("{vm}\n").as_bytes()).ok()?;
                let line = read_line(reader)?;
                line.parse().ok()
            }
        }
    }
}

fn read_line(r: &mut impl BufRead) -> Option<String> {
    let mut line = String::new();
    let n = r.take(MAX_LINE).read_line(&mut line).ok()?;
    (n > 0 && line.ends_with('\n')).then(|| line.trim_end().to_string())
}

/// `dns lease-helper`: answer questions on stdin from the leases at `path`
/// until stdin closes (the server is gone).
pub fn helper(path: PathBuf) -> Result<()> {
    banger_lib::proc::die_with_parent();
    let mut leases = Leases::new(path);
    let mut input = BufReader::new(std::io::stdin().lock());
    let mut out = std::io::stdout().lock();
    while let Some(name) = read_line(&mut input) {
        let answer = leases
            .lookup(&name)
            .map_or_else(|| "-".to_string(), |ip| ip.to_string());
        if writeln!(out, "{answer}").and_then(|_| out.flush()).is_err() {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questions_are_single_bounded_lines() {
        let long = format!("{}\n", "a".repeat(300));
        assert_eq!(read_line(&mut long.as_bytes()), None);
        assert_eq!(read_line(&mut "web\n".as_bytes()), Some("web".into()));
        assert_eq!(
            read_line(&mut "web".as_bytes()),
            None,
            "no newline: cut off"
        );
    }
}
