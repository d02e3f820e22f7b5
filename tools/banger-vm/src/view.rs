//! Reading VMs: list, show, logs; and handing over to banger-ssh and
//! banger-health.

use crate::record::{self, State, VmLine};
use banger_lib::wait::Backoff;
use banger_lib::{output, sibling, Error, Result};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::process::CommandExt;
use std::time::Duration;

pub fn list(json: bool) -> Result<i32> {
    let mut lines: Vec<VmLine> = Vec::new();
    for name in record::names()? {
        match record::load(&name) {
            Ok(Some(r)) => lines.push(record::line(&r)),
            Ok(None) => {}
            Err(e) => eprintln!("banger-vm: warning: {name}: {e}"),
        }
    }
    // On a terminal: uptime and age as people read them.
    let now = banger_lib::proc::now_unix();
    output::print_list_human(
        &lines,
        &[
            ("name", "name"),
            ("state", "state"),
            ("vmm", "vmm"),
            ("ip", "ip"),
            ("nat", "nat"),
            ("isolated", "isolated"),
            ("image", "image"),
            ("uptime", "uptime"),
            ("created_at", "created"),
        ],
        json,
        |row| {
            row["uptime"] = row["uptime_s"].as_u64().map(output::human_duration).into();
            if let Some(t) = row["created_at"].as_str() {
                row["created_at"] = output::human_ago(t, now).into();
            }
        },
    );
    Ok(0)
}

pub fn show(name: &str) -> Result<i32> {
    banger_lib::names::validate("VM", name)?;
    output::emit(&record::line(&record::load_existing(name)?));
    Ok(0)
}

/// The spec `start` hands the VM's driver, as it would now: what
/// `banger-fc start --print-argv` / `banger-qemu start --print-argv` read.
pub fn spec(name: &str) -> Result<i32> {
    banger_lib::names::validate("VM", name)?;
    let rec = record::load_existing(name)?;
    let port = banger_lib::config::Bundle::load()?.agent_port;
    output::emit(&crate::vmm::spec(&rec, port));
    Ok(0)
}

/// Replace this process with `banger-ssh NAME [-- CMD]`, so the exit code,
/// stdin and the terminal pass through untouched.
pub fn ssh(name: &str, rekey: bool, cmd: &[String]) -> Result<i32> {
    banger_lib::names::validate("VM", name)?;
    let rec = record::load_existing(name)?;
    if rec.state != State::Running {
        return Err(
            Error::conflict(format!("{name} is {}, not running", rec.state.word()))
                .with_hint(format!("start it: banger vm start {name}")),
        );
    }
    let mut c = sibling::command("banger-ssh")?;
    if rekey {
        c.arg("--rekey");
    }
    c.arg(name);
    if !cmd.is_empty() {
        c.arg("--").args(cmd);
    }
    let e = c.exec();
    Err(Error::failed(format!("running banger-ssh: {e}")))
}

/// `banger-ssh cp`: its exit code and messages are ours.
pub fn cp(recursive: bool, src: &str, dst: &str) -> Result<i32> {
    let mut c = sibling::command("banger-ssh")?;
    c.arg("cp");
    if recursive {
        c.arg("-r");
    }
    c.args(["--", src, dst]);
    let e = c.exec();
    Err(Error::failed(format!("running banger-ssh: {e}")))
}

/// `banger-ssh config` for the named VMs, or every VM that has an
/// address (a lease), for `Include` in ~/.ssh/config.
pub fn ssh_config(names: &[String]) -> Result<i32> {
    let names: Vec<String> = if names.is_empty() {
        record::names()?
            .into_iter()
            .filter(|n| {
                record::load(n)
                    .ok()
                    .flatten()
                    .is_some_and(|r| r.ip.is_some())
            })
            .collect()
    } else {
        for n in names {
            banger_lib::names::validate("VM", n)?;
            record::load_existing(n)?;
        }
        names.to_vec()
    };
    if names.is_empty() {
        return Ok(0);
    }
    let mut c = sibling::command("banger-ssh")?;
    c.arg("config").args(&names);
    let e = c.exec();
    Err(Error::failed(format!("running banger-ssh: {e}")))
}

/// `banger-health check NAMES..`: its fan-out lines are ours.
pub fn health(names: &[String]) -> Result<i32> {
    for n in names {
        banger_lib::names::validate("VM", n)?;
        // banger-health would report it as one failed line; a name that
        // is not a VM at all is exit 3 with a message.
        record::load_existing(n)?;
    }
    let mut c = sibling::command("banger-health")?;
    c.arg("check").args(names);
    let e = c.exec();
    Err(Error::failed(format!("running banger-health: {e}")))
}

/// How much of the console log `logs` prints: its last MiB (the whole
/// log is console.log and console.log.1, under the bundle's cap).
const LOGS_TAIL: u64 = 1 << 20;

/// Print the end of the console log, control characters replaced (the
/// guest wrote it: no escape sequence of its reaches the terminal); with
/// `follow`, keep printing what is appended, across rotations.
pub fn logs(name: &str, follow: bool) -> Result<i32> {
    banger_lib::names::validate("VM", name)?;
    record::load_existing(name)?;
    let path = record::vm_dir(name).join("console.log");
    let open = |path: &std::path::Path| banger_lib::state::open_nofollow(path);
    let mut f = match open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !follow => return Ok(0),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            wait_for(&path)?;
            open(&path)
                .map_err(|e| banger_lib::error::io(format!("opening {}", path.display()), e))?
        }
        Err(e) => {
            return Err(banger_lib::error::io(
                format!("opening {}", path.display()),
                e,
            ))
        }
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(LOGS_TAIL)));
    let mut out = std::io::stdout().lock();
    let mut clean = banger_lib::console::Sanitizer::default();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| banger_lib::error::io(format!("reading {}", path.display()), e))?;
        if n > 0 {
            let _ = out.write_all(clean.push(&buf[..n]).as_bytes());
            continue;
        }
        if !follow {
            let _ = out.write_all(clean.finish().as_bytes());
            let _ = out.flush();
            return Ok(0);
        }
        let _ = out.flush();
        // A new boot truncates the log; the logger rotates it to
        // console.log.1 and starts a new one: start over on the new one.
        let pos = f.stream_position().unwrap_or(0);
        match std::fs::symlink_metadata(&path) {
            Ok(m) if !same_file(&f, &m) => {
                // Rotated: what reached the old file since the last read
                // first, then the new one from its start.
                while let Ok(n @ 1..) = f.read(&mut buf) {
                    let _ = out.write_all(clean.push(&buf[..n]).as_bytes());
                }
                if let Ok(nf) = open(&path) {
                    f = nf;
                }
            }
            Ok(m) if m.len() < pos => {
                let _ = f.seek(SeekFrom::Start(0));
            }
            Err(_) => {
                wait_for(&path)?;
                if let Ok(nf) = open(&path) {
                    f = nf;
                }
            }
            _ => {}
        }
        // Until the log grows, shrinks or goes.
        let pos = f.stream_position().unwrap_or(0);
        FOLLOW.poll(Duration::MAX, || {
            (std::fs::symlink_metadata(&path)
                .ok()
                .filter(|m| same_file(&f, m))
                .map(|m| m.len())
                != Some(pos))
            .then_some(())
        });
    }
}

fn same_file(f: &std::fs::File, m: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    f.metadata()
        .is_ok_and(|o| o.ino() == m.ino() && o.dev() == m.dev())
}

/// How often `logs --follow` looks at the console log.
const FOLLOW: Backoff = Backoff::every(Duration::from_millis(200));

fn wait_for(path: &std::path::Path) -> Result<()> {
    FOLLOW.poll(Duration::MAX, || path.exists().then_some(()));
    Ok(())
}
