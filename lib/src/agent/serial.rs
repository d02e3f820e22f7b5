//! The host side of the agent's virtio-serial port (QEMU): connect to the
//! chardev's Unix socket, send `\nBANGER-SYNC NONCE\n`, skip whatever comes
//! before `BANGER-ACK NONCE\n` (a reply the guest wrote for an earlier
//! host that went away), then the stream is one HTTP exchange. The guest
//! side and why is agent/src/serial.rs. QEMU takes one connection at a
//! time: a second client waits in the listen backlog until the first is
//! done, within its own deadline.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Instant;

/// The most bytes skipped before the ack: the largest reply the guest may
/// still owe an earlier host, and some.
pub const MAX_SKIP: usize = super::MAX_INIT_REPLY + 64 * 1024;

/// A fresh nonce: 16 hex digits from the kernel's random pool.
fn nonce() -> String {
    let mut b = [0u8; 8];
    let got = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    if got.is_err() {
        // Unique enough to tell this exchange from an earlier one.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64;
        b = (t ^ (u64::from(std::process::id()) << 32)).to_le_bytes();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// How long the first try waits for the ack before trying again on a new
/// connection; each later try waits twice as long.
const FIRST_TRY: std::time::Duration = std::time::Duration::from_millis(1500);

/// Connect and resync before `deadline`; the stream keeps read and write
/// timeouts of what is left. The error is a message a user can act on.
///
/// A try that gets no ack in its share of the time is given up and the
/// next one made on a new connection: QEMU 7.2 can leave a virtio-serial
/// port's guest-to-host side throttled when the guest wrote to a client
/// that had just gone, until the next client disconnects, so one
/// connection may never see the guest's answer while the next does.
/// Nothing has been asked of the guest before the ack, so trying again
/// repeats nothing.
pub fn connect(uds: &Path, deadline: Instant) -> Result<UnixStream, String> {
    let mut wait = FIRST_TRY;
    loop {
        let try_until = (Instant::now() + wait).min(deadline);
        match try_once(uds, try_until, deadline) {
            Err(Try::Silent) if try_until < deadline => wait *= 2,
            Err(Try::Silent) => return Err(silent(uds)),
            Err(Try::Failed(msg)) => return Err(msg),
            Ok(s) => return Ok(s),
        }
    }
}

fn silent(uds: &Path) -> String {
    format!(
        "the guest agent did not answer on the serial port {} in time (agent not started yet?)",
        uds.display()
    )
}

/// Why one try failed: no ack in time (try again), or for good.
enum Try {
    Silent,
    Failed(String),
}

/// One connection: the sync sent, the ack awaited until `try_until`; the
/// stream's timeouts then run to `deadline`.
fn try_once(uds: &Path, try_until: Instant, deadline: Instant) -> Result<UnixStream, Try> {
    let left = || {
        try_until
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or(Try::Silent)
    };
    let mut s = UnixStream::connect(uds).map_err(|e| {
        Try::Failed(match e.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => format!(
                "cannot connect to {}: {e} (is the VM running?)",
                uds.display()
            ),
            _ => format!("connecting to {}: {e}", uds.display()),
        })
    })?;
    let io_err = |e: io::Error| match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Try::Silent,
        _ => Try::Failed(format!("serial port {}: {e}", uds.display())),
    };
    let n = nonce();
    s.set_write_timeout(Some(left()?)).map_err(io_err)?;
    s.write_all(format!("\nBANGER-SYNC {n}\n").as_bytes())
        .map_err(io_err)?;
    let needle = format!("BANGER-ACK {n}\n").into_bytes();
    let mut seen: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut total = 0usize;
    loop {
        s.set_read_timeout(Some(left()?)).map_err(io_err)?;
        let got = match s.read(&mut chunk) {
            Ok(0) => {
                return Err(Try::Failed(format!(
                    "serial port {}: the VMM closed the connection before the agent answered",
                    uds.display()
                )))
            }
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(e)),
        };
        total += got;
        let from = seen.len().saturating_sub(needle.len() - 1);
        seen.extend_from_slice(&chunk[..got]);
        if let Some(at) = seen[from..]
            .windows(needle.len())
            .position(|w| w == needle.as_slice())
        {
            let end = from + at + needle.len();
            if end != seen.len() {
                return Err(Try::Failed(format!(
                    "serial port {}: the agent sent data before the request",
                    uds.display()
                )));
            }
            break;
        }
        if total > MAX_SKIP {
            return Err(Try::Failed(format!(
                "serial port {}: over {MAX_SKIP} bytes without the agent's answer",
                uds.display()
            )));
        }
        // Keep only what could still hold the start of the ack.
        if seen.len() > 2 * needle.len() {
            let keep = seen.len() - needle.len();
            seen.drain(..keep);
        }
    }
    let rest = deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
        .ok_or(Try::Silent)?;
    s.set_read_timeout(Some(rest)).map_err(io_err)?;
    s.set_write_timeout(Some(rest)).map_err(io_err)?;
    Ok(s)
}
