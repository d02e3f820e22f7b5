//! The DNS server as a detached process: `dns ensure` starts it once (a pid
//! file written by the server after it has bound its socket, and a lock so
//! two ensures never start two), `dns stop`, `dns status`.

use crate::netcfg::NetCfg;
use banger_lib::error::ErrorLine;
use banger_lib::{paths, proc, state, Error, Kind, Result};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Serialize, Deserialize)]
pub struct PidFile {
    pub pid: u32,
    pub start_time: u64,
    pub listen: String,
    pub forward: bool,
}

pub use banger_lib::records::DnsLine;

#[derive(Debug, Serialize)]
pub struct StopLine {
    pub was_running: bool,
    pub pid: Option<u32>,
}

pub fn pid_path() -> PathBuf {
    paths::runtime_dir().join("net-dns.json")
}

pub fn lock() -> Result<state::Lock> {
    state::Lock::acquire(
        &paths::runtime_dir().join("net-dns.lock"),
        state::default_lock_timeout(),
    )
}

pub fn default_listen(cfg: &NetCfg) -> SocketAddr {
    SocketAddr::new(cfg.gateway.into(), cfg.dns_port)
}

/// Written by the server itself once its socket is bound.
pub fn write_pid(path: &Path, listen: SocketAddr, forward: bool) -> Result<()> {
    let pid = std::process::id();
    let rec = PidFile {
        pid,
        start_time: proc::start_time(pid).unwrap_or(0),
        listen: listen.to_string(),
        forward,
    };
    state::store(path, &rec)
}

/// The live server, if there is one.
pub fn running() -> Option<PidFile> {
    let text = std::fs::read_to_string(pid_path()).ok()?;
    let p: PidFile = serde_json::from_str(&text).ok()?;
    proc::is_alive(p.pid, p.start_time).then_some(p)
}

pub fn status(cfg: &NetCfg) -> Result<DnsLine> {
    Ok(match running() {
        Some(p) => DnsLine {
            running: true,
            pid: Some(p.pid),
            listen: p.listen,
            started: None,
        },
        None => DnsLine {
            running: false,
            pid: None,
            listen: default_listen(cfg).to_string(),
            started: None,
        },
    })
}

pub fn ensure(cfg: &NetCfg, listen: Option<SocketAddr>, forward: bool) -> Result<DnsLine> {
    let _lock = lock()?;
    if let Some(p) = running() {
        return Ok(DnsLine {
            running: true,
            pid: Some(p.pid),
            listen: p.listen,
            started: Some(false),
        });
    }
    let listen = listen.unwrap_or_else(|| default_listen(cfg));
    let pid_file = pid_path();
    let _ = std::fs::remove_file(&pid_file);
    let log_path = paths::ensure_dir(&paths::state_dir())?.join("net-dns.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| banger_lib::error::io(format!("opening {}", log_path.display()), e))?;
    let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
    let exe = std::env::current_exe().map_err(|e| banger_lib::error::io("finding myself", e))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args([
        "dns",
        "serve",
        "--listen",
        &listen.to_string(),
        "--pid-file",
    ])
    .arg(&pid_file)
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::null())
    .stderr(log)
    // Its error, if it cannot start, is one JSON line in the log.
    .env("BANGER_ERRORS", "json");
    if !forward {
        cmd.arg("--no-forward");
    }
    // Its own session: the server outlives this command and its terminal,
    // and keeps none of the descriptors this command inherited.
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs between fork and exec, where only
    // async-signal-safe calls are sound: it makes syscalls (setsid,
    // close_range or fcntl) and allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid()?;
            banger_lib::proc::cloexec_inherited()
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| banger_lib::error::io("starting the DNS server", e))?;
    let outcome = wait_ready(&mut child, Duration::from_secs(10));
    match outcome {
        Ok(p) => Ok(DnsLine {
            running: true,
            pid: Some(p.pid),
            listen: p.listen,
            started: Some(true),
        }),
        Err(code) => {
            let _ = std::fs::remove_file(&pid_file);
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            let tail = text.get(log_start as usize..).unwrap_or("");
            let err = tail
                .lines()
                .rev()
                .find_map(|l| serde_json::from_str::<ErrorLine>(l).ok())
                .map(ErrorLine::into_error)
                .unwrap_or_else(|| {
                    Error::new(
                        code.map(Kind::from_exit_code).unwrap_or(Kind::Failed),
                        "no message",
                    )
                });
            let message = format!("the DNS server did not start: {}", err.message);
            Err(err.reword(message))
        }
    }
}

/// Wait for the child to write its pid file, or to die (its exit code).
fn wait_ready(
    child: &mut std::process::Child,
    timeout: Duration,
) -> std::result::Result<PidFile, Option<i32>> {
    let ready = banger_lib::wait::poll(timeout, || {
        if let Some(p) = running().filter(|p| p.pid == child.id()) {
            return Some(Ok(p));
        }
        match child.try_wait() {
            Ok(Some(status)) => Some(Err(status.code())),
            _ => None,
        }
    });
    ready.unwrap_or_else(|| {
        let _ = child.kill();
        let _ = child.wait();
        Err(None)
    })
}

pub fn stop() -> Result<StopLine> {
    let _lock = lock()?;
    let Some(p) = running() else {
        let _ = std::fs::remove_file(pid_path());
        return Ok(StopLine {
            was_running: false,
            pid: None,
        });
    };
    proc::terminate(p.pid, p.start_time);
    let _ = std::fs::remove_file(pid_path());
    Ok(StopLine {
        was_running: true,
        pid: Some(p.pid),
    })
}
