//! The host side of Firecracker's hybrid vsock (also spoken by
//! vhost-device-vsock): connect to the Unix socket, `CONNECT PORT\n`,
//! read `OK N\n`; after that the stream is the guest's port.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Instant;

/// Long enough for `OK 4294967295\n` and a little noise; a reply past this
/// without a newline is garbage.
const MAX_REPLY: usize = 64;

/// Why a handshake failed, in words a user can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The socket file is missing or nobody listens on it: the VMM is gone.
    NoSocket(String),
    /// The VMM closed the connection: nothing listens on that guest port.
    Refused,
    /// The VMM said something that is not `OK N`.
    Garbage(String),
    /// No reply in time.
    Timeout,
    Io(String),
}

impl Failure {
    pub fn message(&self, uds: &Path, port: u32) -> String {
        match self {
            Failure::NoSocket(why) => format!(
                "cannot connect to {}: {why} (is the VM running?)",
                uds.display()
            ),
            Failure::Refused => format!(
                "vsock CONNECT {port} refused: nothing listens on port {port} in the guest (agent not started yet?)"
            ),
            Failure::Garbage(reply) => {
                format!("vsock CONNECT {port}: unexpected reply {reply:?}")
            }
            Failure::Timeout => format!("vsock CONNECT {port}: no reply in time"),
            Failure::Io(why) => format!("vsock CONNECT {port}: {why}"),
        }
    }
}

/// Connect and handshake before `deadline`; the stream keeps a read
/// timeout of what is left, so a later read cannot hang forever either.
pub fn connect(uds: &Path, port: u32, deadline: Instant) -> Result<UnixStream, Failure> {
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or(Failure::Timeout)
    };
    let mut s = UnixStream::connect(uds).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
            Failure::NoSocket(e.to_string())
        }
        _ => Failure::Io(format!("connecting to {}: {e}", uds.display())),
    })?;
    s.set_write_timeout(Some(left()?)).map_err(io_failure)?;
    s.write_all(format!("CONNECT {port}\n").as_bytes())
        .map_err(|e| match e.kind() {
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => Failure::Refused,
            _ if timed_out(&e) => Failure::Timeout,
            _ => io_failure(e),
        })?;
    // Byte by byte: whatever follows the OK line belongs to the guest.
    let mut reply = Vec::new();
    loop {
        s.set_read_timeout(Some(left()?)).map_err(io_failure)?;
        let mut b = [0u8; 1];
        match s.read(&mut b) {
            Ok(0) if reply.is_empty() => return Err(Failure::Refused),
            Ok(0) => return Err(Failure::Garbage(lossy(&reply))),
            Ok(_) if b[0] == b'\n' => break,
            Ok(_) => {
                reply.push(b[0]);
                if reply.len() > MAX_REPLY {
                    return Err(Failure::Garbage(lossy(&reply)));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if timed_out(&e) => return Err(Failure::Timeout),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset && reply.is_empty() => {
                return Err(Failure::Refused)
            }
            Err(e) => return Err(io_failure(e)),
        }
    }
    let text = lossy(&reply);
    match text.strip_prefix("OK ") {
        Some(n) if n.trim_end_matches('\r').parse::<u32>().is_ok() => {}
        _ => return Err(Failure::Garbage(text)),
    }
    let rest = left()?;
    s.set_read_timeout(Some(rest)).map_err(io_failure)?;
    s.set_write_timeout(Some(rest)).map_err(io_failure)?;
    Ok(s)
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn timed_out(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

fn io_failure(e: io::Error) -> Failure {
    Failure::Io(e.to_string())
}

#[cfg(test)]
fn after(d: std::time::Duration) -> Instant {
    Instant::now() + d
}

#[cfg(test)]
mod tests {
    use super::*;
    use banger_testkit::fakevsock::{Behaviour, FakeVsock};
    use std::time::Duration;

    #[test]
    fn ok_reply_hands_over_the_stream() {
        let fake = FakeVsock::start(Behaviour::Echo);
        let mut s = connect(fake.path(), 52, after(Duration::from_secs(5))).unwrap();
        s.write_all(b"ping\n").unwrap();
        let mut got = [0u8; 5];
        s.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"ping\n");
        assert_eq!(fake.ports(), vec!["CONNECT 52".to_string()]);
    }

    #[test]
    fn closed_connection_is_refused() {
        let fake = FakeVsock::start(Behaviour::Refuse);
        let e = connect(fake.path(), 52, after(Duration::from_secs(5))).unwrap_err();
        assert_eq!(e, Failure::Refused);
        assert!(e
            .message(fake.path(), 52)
            .contains("nothing listens on port 52"));
    }

    #[test]
    fn garbage_reply_is_named() {
        let fake = FakeVsock::start(Behaviour::Reply("HELLO THERE\n".into()));
        let e = connect(fake.path(), 52, after(Duration::from_secs(5))).unwrap_err();
        assert_eq!(e, Failure::Garbage("HELLO THERE".into()));
        let fake = FakeVsock::start(Behaviour::Reply("OK notanumber\n".into()));
        assert!(matches!(
            connect(fake.path(), 52, after(Duration::from_secs(5))),
            Err(Failure::Garbage(_))
        ));
    }

    #[test]
    fn endless_reply_is_garbage_not_a_hang() {
        let fake = FakeVsock::start(Behaviour::Reply("y".repeat(4096)));
        assert!(matches!(
            connect(fake.path(), 52, after(Duration::from_secs(5))),
            Err(Failure::Garbage(_))
        ));
    }

    #[test]
    fn silent_vmm_times_out() {
        let fake = FakeVsock::start(Behaviour::Hang);
        let e = connect(fake.path(), 52, after(Duration::from_millis(200))).unwrap_err();
        assert_eq!(e, Failure::Timeout);
    }

    #[test]
    fn missing_socket_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("none.sock");
        let e = connect(&path, 52, after(Duration::from_secs(1))).unwrap_err();
        assert!(matches!(e, Failure::NoSocket(_)));
        assert!(e.message(&path, 52).contains("none.sock"));
    }
}
