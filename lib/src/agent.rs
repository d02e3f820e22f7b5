//! The host side of banger-vsock-agent: where a VM's agent is reached
//! (`Endpoint`, kept in the VMM record: Firecracker's hybrid vsock, or
//! QEMU's virtio-serial port) and one bounded HTTP request to it.
//! banger-health asks `GET /healthz`; the VMM drivers ask `POST /shutdown`,
//! `/reboot` and `/sync` when they stop a VM.
//!
//! The guest is untrusted: a request is bounded in time (the whole
//! exchange, handshake included) and in size (the reply).
//!
//! ```no_run
//! use banger_lib::agent::{self, Endpoint};
//! use std::time::Duration;
//!
//! let ep = Endpoint::Vsock { uds: "/run/banger/box/vsock.sock".into(), port: 52 };
//! let r = agent::request(&ep, "GET", "/healthz", Duration::from_secs(3))?;
//! println!("{} {}", r.status, r.body["hostname"]);
//! # Ok::<(), banger_lib::Error>(())
//! ```

pub mod handshake;
pub mod serial;

use crate::error::{Error, Result};
use crate::uds_http::UdsClient;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// An agent's answer: its HTTP status and JSON body.
pub use crate::uds_http::Response as Reply;

/// The agent's vsock port when nothing says otherwise (bundle.json's
/// `agent_port` default).
pub const DEFAULT_PORT: u32 = 52;

/// The largest reply read from an agent (headers, and body apiece). Its
/// answers are a few hundred bytes; anything past this is a hostile guest.
pub const MAX_REPLY: usize = 64 * 1024;

/// Where a VM's agent is reached from the host. Stored in the VMM record
/// as `{"kind":"vsock","uds":PATH,"port":52}` (Firecracker) or
/// `{"kind":"serial","uds":PATH}` (QEMU's virtio-serial port).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Endpoint {
    /// A hybrid vsock (Firecracker's, or vhost-device-vsock's): connect to
    /// `uds`, `CONNECT PORT\n`, read `OK N\n`, then the stream is the
    /// guest's port.
    Vsock { uds: PathBuf, port: u32 },
    /// The virtio-serial port `org.banger.agent` behind QEMU's Unix socket
    /// chardev: `\nBANGER-SYNC NONCE\n`, `BANGER-ACK NONCE\n`, then one
    /// HTTP exchange (see `serial`).
    Serial { uds: PathBuf },
}

impl Endpoint {
    /// For messages: `vsock port 52 on /run/banger/box/vsock.sock`.
    pub fn describe(&self) -> String {
        match self {
            Endpoint::Vsock { uds, port } => format!("vsock port {port} on {}", uds.display()),
            Endpoint::Serial { uds } => format!("serial port on {}", uds.display()),
        }
    }

    /// The host socket, whichever the channel.
    pub fn uds(&self) -> &std::path::Path {
        match self {
            Endpoint::Vsock { uds, .. } | Endpoint::Serial { uds } => uds,
        }
    }

    /// The vsock port; none for a serial port.
    pub fn port(&self) -> Option<u32> {
        match self {
            Endpoint::Vsock { port, .. } => Some(*port),
            Endpoint::Serial { .. } => None,
        }
    }
}

/// One request to the agent, the whole exchange within `timeout`, a reply
/// over [`MAX_REPLY`] refused. Any HTTP status is a `Reply`; an error means
/// no usable answer (no socket, nothing listening, garbage, too slow, too
/// big), with the handshake's own words when that is what failed.
pub fn request(ep: &Endpoint, method: &str, path: &str, timeout: Duration) -> Result<Reply> {
    request_with(ep, method, path, None, MAX_REPLY, timeout)
}

/// The largest reply to `POST /init`: the agent keeps 256 KiB of a script's
/// output, which JSON may escape to six bytes apiece.
pub const MAX_INIT_REPLY: usize = 6 * 256 * 1024 + 4096;

/// `request` with a JSON body and a reply limit of the caller's.
pub fn request_with(
    ep: &Endpoint,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
    limit: usize,
    timeout: Duration,
) -> Result<Reply> {
    let deadline = Instant::now() + timeout;
    // The handshake runs inside ureq's connect; keep its message, which
    // says more than ureq's wrapping of it.
    let failed: Arc<Mutex<Option<String>>> = Arc::default();
    let client = match ep {
        Endpoint::Vsock { uds, port } => {
            let (uds, port, failed) = (uds.clone(), *port, failed.clone());
            UdsClient::with_connect(Arc::new(move || {
                handshake::connect(&uds, port, deadline).map_err(|f| {
                    let msg = f.message(&uds, port);
                    *failed.lock().unwrap() = Some(msg.clone());
                    std::io::Error::other(msg)
                })
            }))
        }
        Endpoint::Serial { uds } => {
            let (uds, failed) = (uds.clone(), failed.clone());
            UdsClient::with_connect(Arc::new(move || {
                serial::connect(&uds, deadline).map_err(|msg| {
                    *failed.lock().unwrap() = Some(msg.clone());
                    std::io::Error::other(msg)
                })
            }))
        }
    }
    .label(ep.describe())
    .limit(limit);
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1));
    client
        .request(method, path, body, left)
        .map_err(|e| match failed.lock().unwrap().take() {
            Some(msg) => Error { message: msg, ..e },
            None => e,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use banger_testkit::fakevsock::{Behaviour, FakeVsock};

    fn ep(fake: &FakeVsock) -> Endpoint {
        Endpoint::Vsock {
            uds: fake.path().to_path_buf(),
            port: 52,
        }
    }

    const T: Duration = Duration::from_secs(5);

    #[test]
    fn endpoint_json_is_tagged_by_kind() {
        let e = Endpoint::Vsock {
            uds: "/run/banger/box/vsock.sock".into(),
            port: 52,
        };
        let text = serde_json::to_string(&e).unwrap();
        assert_eq!(
            text,
            r#"{"kind":"vsock","uds":"/run/banger/box/vsock.sock","port":52}"#
        );
        assert_eq!(serde_json::from_str::<Endpoint>(&text).unwrap(), e);
        assert!(serde_json::from_str::<Endpoint>(r#"{"kind":"carrier-pigeon"}"#).is_err());
        assert!(serde_json::from_str::<Endpoint>(r#"{"kind":"vsock","uds":"/x"}"#).is_err());
    }

    #[test]
    fn ok_reply_is_status_and_json() {
        let fake = FakeVsock::start(Behaviour::Http(
            202,
            r#"{"status":"ok","action":"poweroff"}"#.into(),
        ));
        let r = request(&ep(&fake), "POST", "/shutdown", T).unwrap();
        assert_eq!(r.status, 202);
        assert!(r.ok());
        assert_eq!(r.body["action"], "poweroff");
        assert_eq!(fake.lines(), ["CONNECT 52", "POST /shutdown HTTP/1.1"]);
    }

    #[test]
    fn an_http_error_is_a_reply_not_an_error() {
        let fake = FakeVsock::start(Behaviour::Http(404, r#"{"status":"error"}"#.into()));
        let r = request(&ep(&fake), "POST", "/sync", T).unwrap();
        assert_eq!(r.status, 404);
        assert!(!r.ok());
    }

    #[test]
    fn refused_connect_names_the_port() {
        let fake = FakeVsock::start(Behaviour::Refuse);
        let e = request(&ep(&fake), "POST", "/shutdown", T).unwrap_err();
        assert!(
            e.message.contains("nothing listens on port 52"),
            "{}",
            e.message
        );
    }

    #[test]
    fn missing_socket_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let ep = Endpoint::Vsock {
            uds: dir.path().join("none.sock"),
            port: 52,
        };
        let e = request(&ep, "GET", "/healthz", T).unwrap_err();
        assert!(e.message.contains("none.sock"), "{}", e.message);
    }

    #[test]
    fn garbage_is_an_error() {
        let fake = FakeVsock::start(Behaviour::Reply("HELLO\n".into()));
        let e = request(&ep(&fake), "GET", "/healthz", T).unwrap_err();
        assert!(e.message.contains("unexpected reply"), "{}", e.message);
        let fake = FakeVsock::start(Behaviour::Raw(b"this is not HTTP\r\n\r\n".to_vec()));
        assert!(request(&ep(&fake), "GET", "/healthz", T).is_err());
    }

    #[test]
    fn silence_times_out_within_the_timeout() {
        // Before OK, and after OK (the agent never answers HTTP).
        for b in [Behaviour::Hang, Behaviour::Echo] {
            let fake = FakeVsock::start(b);
            let start = Instant::now();
            let e =
                request(&ep(&fake), "POST", "/shutdown", Duration::from_millis(300)).unwrap_err();
            assert!(
                start.elapsed() < Duration::from_secs(3),
                "took {:?}",
                start.elapsed()
            );
            assert!(!e.message.is_empty());
        }
    }

    /// A guest behind a serial socket: per connection, read the sync line,
    /// write `stale` then the ack, read the request head, answer `reply`.
    fn serial_guest(stale: &'static [u8], reply: &'static str) -> (tempfile::TempDir, PathBuf) {
        use std::io::{BufRead, BufReader, Write};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.sock");
        let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let s = s.unwrap();
                let mut w = s.try_clone().unwrap();
                let mut r = BufReader::new(s);
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                assert_eq!(line, "\n");
                line.clear();
                r.read_line(&mut line).unwrap();
                let nonce = line.strip_prefix("BANGER-SYNC ").unwrap().trim_end();
                w.write_all(stale).unwrap();
                writeln!(w, "BANGER-ACK {nonce}").unwrap();
                loop {
                    line.clear();
                    if r.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                        break;
                    }
                }
                write!(
                    w,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                    reply.len()
                )
                .unwrap();
            }
        });
        (dir, path)
    }

    #[test]
    fn serial_endpoint_syncs_and_skips_a_stale_reply() {
        let stale = b"HTTP/1.1 200 OK\r\nContent-Length: 19\r\n\r\n{\"hostname\":\"old\"}";
        let (_dir, path) = serial_guest(stale, r#"{"hostname":"new"}"#);
        let ep = Endpoint::Serial { uds: path };
        for _ in 0..2 {
            let r = request(&ep, "GET", "/healthz", T).unwrap();
            assert_eq!(r.body["hostname"], "new");
        }
        let text = serde_json::to_string(&ep).unwrap();
        assert!(text.starts_with(r#"{"kind":"serial","uds":"#), "{text}");
        assert_eq!(serde_json::from_str::<Endpoint>(&text).unwrap(), ep);
        assert_eq!(ep.port(), None);
    }

    /// A port whose first connection never sees the ack (QEMU's throttled
    /// port) is tried again on a new connection, within the timeout.
    #[test]
    fn serial_handshake_tries_again_on_a_new_connection() {
        use std::io::{BufRead, BufReader, Write};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.sock");
        let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for (n, s) in l.incoming().enumerate() {
                let s = s.unwrap();
                if n == 0 {
                    held.push(s);
                    continue;
                }
                let mut w = s.try_clone().unwrap();
                let mut r = BufReader::new(s);
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                line.clear();
                r.read_line(&mut line).unwrap();
                let nonce = line.strip_prefix("BANGER-SYNC ").unwrap().trim_end();
                writeln!(w, "BANGER-ACK {nonce}").unwrap();
                loop {
                    line.clear();
                    if r.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                        break;
                    }
                }
                let body = r#"{"status":"ok"}"#;
                write!(
                    w,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .unwrap();
            }
        });
        let r = request(&Endpoint::Serial { uds: path }, "GET", "/healthz", T).unwrap();
        assert_eq!(r.body["status"], "ok");
    }

    #[test]
    fn serial_silence_and_absence_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let ep = Endpoint::Serial {
            uds: dir.path().join("none.sock"),
        };
        let e = request(&ep, "GET", "/healthz", T).unwrap_err();
        assert!(e.message.contains("is the VM running"), "{}", e.message);
        // A socket nobody answers on (QEMU with no agent in the guest).
        let path = dir.path().join("mute.sock");
        let _l = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let start = Instant::now();
        let e = request(
            &Endpoint::Serial { uds: path },
            "GET",
            "/healthz",
            Duration::from_millis(300),
        )
        .unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(3));
        assert!(e.message.contains("did not answer"), "{}", e.message);
    }

    #[test]
    fn oversize_reply_is_refused() {
        let big = format!(r#"{{"status":"ok","junk":"{}"}}"#, "x".repeat(MAX_REPLY));
        let fake = FakeVsock::start(Behaviour::Http(200, big));
        let e = request(&ep(&fake), "GET", "/healthz", T).unwrap_err();
        assert!(e.message.contains("larger than"), "{}", e.message);
        // An endless header is refused too, not read forever.
        let mut endless = b"HTTP/1.1 200 OK\r\nX-Junk: ".to_vec();
        endless.extend(std::iter::repeat_n(b'y', 4 * MAX_REPLY));
        let fake = FakeVsock::start(Behaviour::Raw(endless));
        assert!(request(&ep(&fake), "GET", "/healthz", T).is_err());
    }
}
