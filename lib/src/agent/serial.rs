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

/// Connect and resync before `deadline`; the stream keeps read and write
/// timeouts of what is left. The error is a message a user can act on.
pub fn connect(uds: &Path, deadline: Instant) -> Result<UnixStream, String> {
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                format!(
                    "the guest agent did not answer on the serial port {} in time (agent not started yet?)",
                    uds.display()
                )
            })
    };
    let mut s = UnixStream::connect(uds).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => format!(
            "cannot connect to {}: {e} (is the VM running?)",
            uds.display()
        ),
        _ => format!("connecting to {}: {e}", uds.display()),
    })?;
    let io_err = |e: io::Error| match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => left()
            .err()
            .unwrap_or_else(|| format!("serial port {}: {e}", uds.display())),
        _ => format!("serial port {}: {e}", uds.display()),
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
                return Err(format!(
                    "serial port {}: the VMM closed the connection before the agent answered",
                    uds.display()
                ))
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
                return Err(format!(
                    "serial port {}: the agent sent data before the request",
                    uds.display()
                ));
            }
            break;
        }
        if total > MAX_SKIP {
            return Err(format!(
                "serial port {}: over {MAX_SKIP} bytes without the agent's answer",
                uds.display()
            ));
        }
        // Keep only what could still hold the start of the ack.
        if seen.len() > 2 * needle.len() {
            let keep = seen.len() - needle.len();
            seen.drain(..keep);
        }
    }
    let rest = left()?;
    s.set_read_timeout(Some(rest)).map_err(io_err)?;
    s.set_write_timeout(Some(rest)).map_err(io_err)?;
    Ok(s)
}
