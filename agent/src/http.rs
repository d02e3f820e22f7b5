//! One HTTP/1.1 exchange per connection, written against `Read + Write` so
//! the same code serves vsock in the guest and Unix sockets in tests.
//!
//! A slow or hostile client cannot hold a thread for long: the whole request
//! must arrive within a deadline and fit in a small buffer. What each path
//! does is in routes.rs.

use crate::power::System;
use crate::routes::{self, Reply};
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

/// A request's head: a request line and a few headers; anything bigger is
/// abuse.
pub const MAX_REQUEST: usize = 8 * 1024;
/// A body: only `POST /init` (a script in JSON, which may escape every
/// byte of it as \u00XX) and `POST /identity` (identity.rs bounds its
/// own far lower) have one.
pub const MAX_BODY: usize = 6 * crate::init::MAX_SCRIPT + 4096;
/// The whole request must arrive within this, however it is dripped in.
pub const READ_DEADLINE: Duration = Duration::from_secs(5);
const MAX_HEADERS: usize = 32;

/// A stream whose reads and writes can be bounded in time.
pub trait Conn: Read + Write {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;
    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;
}

impl Conn for std::os::unix::net::UnixStream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        std::os::unix::net::UnixStream::set_read_timeout(self, timeout)
    }
    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        std::os::unix::net::UnixStream::set_write_timeout(self, timeout)
    }
}

impl Conn for vsock::VsockStream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        vsock::VsockStream::set_read_timeout(self, timeout)
    }
    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        vsock::VsockStream::set_write_timeout(self, timeout)
    }
}

/// A request line we will answer, with its body.
struct Request {
    method: String,
    target: String,
    body: Vec<u8>,
}

enum Incoming {
    /// The client went away before sending anything.
    Gone,
    /// Answer with this error status.
    Bad(u16),
    Request(Request),
}

/// Read one request, answer it, then do what the answer promised (a power
/// request signals init only after its reply is written). Returns the
/// status sent, or None when the client went away before sending anything,
/// so there is no one to answer.
pub fn handle<C: Conn>(
    conn: &mut C,
    deadline: Duration,
    sys: &dyn System,
) -> io::Result<Option<u16>> {
    conn.set_write_timeout(Some(deadline))?;
    let reply = match read_request(conn, deadline)? {
        Incoming::Gone => return Ok(None),
        Incoming::Bad(status) => Reply::error(status),
        Incoming::Request(req) => routes::route(&req.method, &req.target, &req.body, sys),
    };
    respond_with(conn, reply.status, reply.allow, &reply.body)?;
    if let Some(sig) = reply.then_signal {
        if let Err(e) = sys.signal_init(sig) {
            eprintln!("banger-vsock-agent: signalling init ({sig}): {e}");
        }
    }
    Ok(Some(reply.status))
}

/// Read until the head (within MAX_REQUEST bytes) and a body of
/// Content-Length bytes (within MAX_BODY) are in, within the deadline. Reading the body rather than leaving it unread means
/// closing the socket does not reset the client before it reads the reply.
fn read_request<C: Conn>(conn: &mut C, deadline: Duration) -> io::Result<Incoming> {
    let start = Instant::now();
    // Grown to the head plus Content-Length once the head is in.
    let mut buf = vec![0u8; MAX_REQUEST];
    let mut len = 0;
    loop {
        let Some(left) = deadline
            .checked_sub(start.elapsed())
            .filter(|d| !d.is_zero())
        else {
            return Ok(Incoming::Bad(408));
        };
        conn.set_read_timeout(Some(left))?;
        let n = match conn.read(&mut buf[len..]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(Incoming::Bad(408))
            }
            Err(e) => return Err(e),
        };
        if n == 0 {
            if len == 0 {
                return Ok(Incoming::Gone);
            }
            // Half a request then EOF: say so in case the client still reads.
            return Ok(Incoming::Bad(400));
        }
        len += n;
        match parse(&buf[..len]) {
            Parsed::More if len == buf.len() => return Ok(Incoming::Bad(431)),
            Parsed::More => continue,
            Parsed::Need(total) => {
                if buf.len() < total {
                    buf.resize(total, 0);
                }
                continue;
            }
            Parsed::Bad(status) => return Ok(Incoming::Bad(status)),
            Parsed::Done(req) => return Ok(Incoming::Request(req)),
        }
    }
}

enum Parsed {
    More,
    /// The head is in; the whole request is this many bytes.
    Need(usize),
    Bad(u16),
    Done(Request),
}

fn parse(buf: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head = match req.parse(buf) {
        Ok(httparse::Status::Complete(head)) => head,
        Ok(httparse::Status::Partial) => return Parsed::More,
        Err(httparse::Error::TooManyHeaders) => return Parsed::Bad(431),
        Err(_) => return Parsed::Bad(400),
    };
    let body = match body_len(req.headers) {
        Ok(n) => n,
        Err(status) => return Parsed::Bad(status),
    };
    if body > MAX_BODY {
        return Parsed::Bad(413);
    }
    if buf.len() < head + body {
        return Parsed::Need(head + body);
    }
    Parsed::Done(Request {
        method: req.method.unwrap_or("").to_string(),
        target: req.path.unwrap_or("").to_string(),
        body: buf[head..head + body].to_vec(),
    })
}

/// Content-Length, 0 when absent. A chunked body is not taken (501): no
/// endpoint needs one, and its length is unknown until it has all arrived.
fn body_len(headers: &[httparse::Header]) -> Result<usize, u16> {
    let mut len = None;
    for h in headers {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(501);
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            let v = std::str::from_utf8(h.value).map_err(|_| 400u16)?.trim();
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(400);
            }
            // Too many digits to fit is too large, not malformed.
            let n = v.parse::<usize>().unwrap_or(usize::MAX);
            if len.is_some_and(|l| l != n) {
                return Err(400);
            }
            len = Some(n);
        }
    }
    Ok(len.unwrap_or(0))
}

pub fn error_body(status: u16) -> Vec<u8> {
    routes::error_body(status)
}

/// Every response closes the connection: one request per connection keeps
/// the per-connection thread short-lived.
pub fn respond<W: Write>(w: &mut W, status: u16, body: &[u8]) -> io::Result<()> {
    respond_with(w, status, None, body)
}

pub fn respond_with<W: Write>(
    w: &mut W,
    status: u16,
    allow: Option<&str>,
    body: &[u8],
) -> io::Result<()> {
    let allow = allow.map(|a| format!("Allow: {a}\r\n")).unwrap_or_default();
    let head = format!(
        "HTTP/1.1 {status} {}\r\n{allow}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        routes::reason(status),
        body.len()
    );
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    w.write_all(&out)?;
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::power::{SYSTEMD_POWEROFF, SYSTEMD_REBOOT};
    use crate::routes::fake::Fake;
    use std::os::unix::net::UnixStream;
    use std::sync::{Arc, Mutex};
    use std::thread;

    /// Serve one connection on a socket pair; send `request`, return the
    /// status the handler reports and the raw response the client read.
    fn exchange(request: &[u8], deadline: Duration) -> (Option<u16>, String) {
        let (mut server, mut client) = UnixStream::pair().unwrap();
        let handler =
            thread::spawn(move || handle(&mut server, deadline, &Fake::default()).unwrap());
        client.write_all(request).unwrap();
        let mut out = String::new();
        client.read_to_string(&mut out).unwrap();
        (handler.join().unwrap(), out)
    }

    fn body(resp: &str) -> serde_json::Value {
        serde_json::from_str(resp.split_once("\r\n\r\n").unwrap().1).unwrap()
    }

    #[test]
    fn healthz_answers_ok_with_guest_facts() {
        let (status, resp) = exchange(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", READ_DEADLINE);
        assert_eq!(status, Some(200));
        assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"), "{resp}");
        assert!(resp.contains("Content-Type: application/json\r\n"));
        let v = body(&resp);
        assert_eq!(v["status"], "ok");
        for key in [
            "hostname",
            "uptime_s",
            "version",
            "load",
            "mem_available_kib",
        ] {
            assert!(v.get(key).is_some(), "missing {key}: {v}");
        }
        assert_eq!(v["load"].as_array().unwrap().len(), 3);
        assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn query_string_is_ignored() {
        let (status, _) = exchange(b"GET /healthz?verbose=1 HTTP/1.1\r\n\r\n", READ_DEADLINE);
        assert_eq!(status, Some(200));
    }

    #[test]
    fn other_paths_are_404() {
        for req in [
            &b"GET / HTTP/1.1\r\n\r\n"[..],
            b"GET /healthz/x HTTP/1.1\r\n\r\n",
            b"POST /nope HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
            b"POST /shutdown/now HTTP/1.1\r\n\r\n",
        ] {
            let (status, resp) = exchange(req, READ_DEADLINE);
            assert_eq!(status, Some(404));
            assert!(resp.starts_with("HTTP/1.1 404 Not Found\r\n"), "{resp}");
            assert!(!resp.contains("Allow:"), "{resp}");
            assert_eq!(body(&resp)["error"], "not found");
        }
    }

    #[test]
    fn wrong_method_is_405_with_allow_on_the_wire() {
        for (req, allow) in [
            (
                &b"POST /healthz HTTP/1.1\r\nContent-Length: 0\r\n\r\n"[..],
                "GET",
            ),
            (b"PUT /healthz HTTP/1.1\r\n\r\n", "GET"),
            (b"GET /sync HTTP/1.1\r\n\r\n", "POST"),
            (b"GET /shutdown HTTP/1.1\r\n\r\n", "POST"),
            (b"DELETE /shutdown HTTP/1.1\r\n\r\n", "POST"),
            (b"GET /reboot?now=1 HTTP/1.1\r\n\r\n", "POST"),
        ] {
            let sys = Fake::default();
            let (status, resp) = exchange_with(req, &sys);
            assert_eq!(status, Some(405), "{resp}");
            assert!(
                resp.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
                "{resp}"
            );
            assert!(resp.contains(&format!("\r\nAllow: {allow}\r\n")), "{resp}");
            assert_eq!(body(&resp)["error"], "method not allowed");
            assert_eq!(sys.events(), ["reply"], "{resp}");
        }
    }

    /// Like `exchange`, with the given guest and a recording connection:
    /// the log gets a "reply" entry when the response is written, so tests
    /// see effects in order with it.
    fn exchange_with(request: &[u8], sys: &Fake) -> (Option<u16>, String) {
        let (server, mut client) = UnixStream::pair().unwrap();
        let mut conn = Recording {
            inner: server,
            log: sys.log.clone(),
        };
        let sys2 = sys.clone();
        let handler = thread::spawn(move || handle(&mut conn, READ_DEADLINE, &sys2).unwrap());
        client.write_all(request).unwrap();
        let mut out = String::new();
        client.read_to_string(&mut out).unwrap();
        (handler.join().unwrap(), out)
    }

    struct Recording {
        inner: UnixStream,
        log: Arc<Mutex<Vec<String>>>,
    }

    impl Read for Recording {
        fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
            self.inner.read(b)
        }
    }

    impl Write for Recording {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.log.lock().unwrap().push("reply".into());
            self.inner.write(b)
        }
        fn flush(&mut self) -> io::Result<()> {
            self.inner.flush()
        }
    }

    impl Conn for Recording {
        fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
            self.inner.set_read_timeout(t)
        }
        fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
            self.inner.set_write_timeout(t)
        }
    }

    #[test]
    fn sync_answers_200_after_syncing() {
        let sys = Fake::default();
        let (status, resp) = exchange_with(b"POST /sync HTTP/1.1\r\nHost: x\r\n\r\n", &sys);
        assert_eq!(status, Some(200));
        assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"), "{resp}");
        assert_eq!(
            body(&resp),
            serde_json::json!({"status": "ok", "synced": true})
        );
        assert_eq!(sys.events(), ["sync", "reply"]);
    }

    #[test]
    fn shutdown_and_reboot_reply_202_then_signal_init() {
        for (req, systemd, action, sig) in [
            (
                &b"POST /shutdown HTTP/1.1\r\n\r\n"[..],
                true,
                "poweroff",
                SYSTEMD_POWEROFF,
            ),
            (
                b"POST /shutdown HTTP/1.0\r\n\r\n",
                false,
                "poweroff",
                libc::SIGUSR2,
            ),
            (
                b"POST /reboot HTTP/1.1\r\n\r\n",
                true,
                "reboot",
                SYSTEMD_REBOOT,
            ),
            (
                b"POST /reboot HTTP/1.1\r\n\r\n",
                false,
                "reboot",
                libc::SIGTERM,
            ),
        ] {
            let sys = Fake {
                systemd,
                ..Fake::default()
            };
            let (status, resp) = exchange_with(req, &sys);
            assert_eq!(status, Some(202), "{resp}");
            assert!(resp.starts_with("HTTP/1.1 202 Accepted\r\n"), "{resp}");
            assert_eq!(
                body(&resp),
                serde_json::json!({"status": "ok", "action": action})
            );
            // May we, sync, the whole reply in one write, and only then the signal.
            assert_eq!(
                sys.events(),
                ["signal 0", "sync", "reply", &format!("signal {sig}")]
            );
        }
    }

    #[test]
    fn shutdown_without_permission_is_500_and_signals_nothing() {
        let sys = Fake {
            refuse: true,
            ..Fake::default()
        };
        let (status, resp) = exchange_with(b"POST /shutdown HTTP/1.1\r\n\r\n", &sys);
        assert_eq!(status, Some(500));
        assert!(resp.starts_with("HTTP/1.1 500 "), "{resp}");
        assert!(body(&resp)["error"]
            .as_str()
            .unwrap()
            .contains("cannot signal init"));
        assert_eq!(sys.events(), ["reply"]);
    }

    #[test]
    fn a_body_is_read_and_ignored() {
        // The body arrives with the head or after it; either way it is read
        // (so closing does not reset the client) and does not change the
        // answer.
        let sys = Fake::default();
        let (status, resp) = exchange_with(
            b"POST /sync HTTP/1.1\r\nContent-Length: 11\r\n\r\n{\"now\":true}",
            &sys,
        );
        assert_eq!(status, Some(200), "{resp}");
        assert_eq!(sys.events(), ["sync", "reply"]);

        // A head whose body is cut short is not answered as if complete.
        let sys = Fake::default();
        let (mut server, mut client) = UnixStream::pair().unwrap();
        let sys2 = sys.clone();
        let handler = thread::spawn(move || handle(&mut server, READ_DEADLINE, &sys2).unwrap());
        client
            .write_all(b"POST /sync HTTP/1.1\r\nContent-Length: 4\r\n\r\nab")
            .unwrap();
        client.shutdown(std::net::Shutdown::Write).unwrap();
        let mut out = String::new();
        client.read_to_string(&mut out).unwrap();
        assert_eq!(handler.join().unwrap(), Some(400), "{out}");
        assert!(sys.events().is_empty());
    }

    #[test]
    fn a_body_that_never_arrives_times_out() {
        let (mut server, mut client) = UnixStream::pair().unwrap();
        let handler = thread::spawn(move || {
            handle(&mut server, Duration::from_millis(200), &Fake::default()).unwrap()
        });
        client
            .write_all(b"POST /shutdown HTTP/1.1\r\nContent-Length: 5\r\n\r\nab")
            .unwrap();
        let mut out = String::new();
        client.read_to_string(&mut out).unwrap();
        assert_eq!(handler.join().unwrap(), Some(408), "{out}");
    }

    #[test]
    fn bad_or_oversized_bodies_are_refused_before_any_effect() {
        let big = format!("{}", MAX_BODY + 1);
        for (headers, want) in [
            (format!("Content-Length: {big}\r\n"), 413),
            (
                "Content-Length: 99999999999999999999999\r\n".to_string(),
                413,
            ),
            ("Content-Length: -1\r\n".to_string(), 400),
            ("Content-Length: 1e3\r\n".to_string(), 400),
            ("Content-Length:\r\n".to_string(), 400),
            (
                "Content-Length: 1\r\nContent-Length: 2\r\n".to_string(),
                400,
            ),
            ("Transfer-Encoding: chunked\r\n".to_string(), 501),
        ] {
            let sys = Fake::default();
            let req = format!("POST /shutdown HTTP/1.1\r\n{headers}\r\n");
            let (status, resp) = exchange_with(req.as_bytes(), &sys);
            assert_eq!(status, Some(want), "{headers:?}: {resp}");
            assert!(resp.starts_with(&format!("HTTP/1.1 {want} ")), "{resp}");
            assert_eq!(sys.events(), ["reply"], "{headers:?}");
        }
        // The same length twice is one length.
        let sys = Fake::default();
        let (status, _) = exchange_with(
            b"POST /sync HTTP/1.1\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\nab",
            &sys,
        );
        assert_eq!(status, Some(200));
    }

    #[test]
    fn malformed_is_400() {
        for req in [
            &b"GARBAGE\x01\x02 / HTTP/1.1\r\n\r\n"[..],
            b"GET /healthz HTTP/9\r\n\r\n",
            b"GET /healthz FOO/1.1\r\n\r\n",
        ] {
            let (status, resp) = exchange(req, READ_DEADLINE);
            assert_eq!(status, Some(400), "{req:?}");
            assert!(resp.starts_with("HTTP/1.1 400 "), "{resp}");
        }
    }

    #[test]
    fn truncated_request_then_eof_is_400() {
        let (mut server, mut client) = UnixStream::pair().unwrap();
        let handler =
            thread::spawn(move || handle(&mut server, READ_DEADLINE, &Fake::default()).unwrap());
        client.write_all(b"GET /healthz HTTP/1.1\r\nHost").unwrap();
        client.shutdown(std::net::Shutdown::Write).unwrap();
        let mut out = String::new();
        client.read_to_string(&mut out).unwrap();
        assert_eq!(handler.join().unwrap(), Some(400));
        assert!(out.starts_with("HTTP/1.1 400 "));
    }

    #[test]
    fn silent_client_that_leaves_gets_nothing() {
        let (mut server, client) = UnixStream::pair().unwrap();
        drop(client);
        assert_eq!(
            handle(&mut server, READ_DEADLINE, &Fake::default()).unwrap(),
            None
        );
    }

    #[test]
    fn oversized_request_is_431() {
        let mut req = b"GET /healthz HTTP/1.1\r\n".to_vec();
        while req.len() <= MAX_REQUEST {
            req.extend_from_slice(
                b"X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
            );
        }
        // The handler stops reading at the cap; the client must not block
        // writing the rest, so it writes from another thread.
        let (mut server, mut client) = UnixStream::pair().unwrap();
        let handler =
            thread::spawn(move || handle(&mut server, READ_DEADLINE, &Fake::default()).unwrap());
        let mut writer = client.try_clone().unwrap();
        let w = thread::spawn(move || {
            let _ = writer.write_all(&req);
        });
        let mut out = String::new();
        let _ = client.read_to_string(&mut out);
        assert_eq!(handler.join().unwrap(), Some(431));
        assert!(out.starts_with("HTTP/1.1 431 "), "{out}");
        drop(client);
        w.join().unwrap();
    }

    #[test]
    fn too_many_headers_is_431() {
        let mut req = b"GET /healthz HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            req.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        req.extend_from_slice(b"\r\n");
        let (status, _) = exchange(&req, READ_DEADLINE);
        assert_eq!(status, Some(431));
    }

    #[test]
    fn slow_client_is_cut_off_at_the_deadline() {
        // The client sends half a request line and then nothing: the handler
        // must give up at the deadline rather than wait forever.
        let (mut server, mut client) = UnixStream::pair().unwrap();
        let handler = thread::spawn(move || {
            handle(&mut server, Duration::from_millis(200), &Fake::default()).unwrap()
        });
        client.write_all(b"GET /hea").unwrap();
        let mut out = String::new();
        client.read_to_string(&mut out).unwrap();
        assert_eq!(handler.join().unwrap(), Some(408));
        assert!(out.starts_with("HTTP/1.1 408 "), "{out}");
    }

    #[test]
    fn request_split_across_writes_is_assembled() {
        let (mut server, mut client) = UnixStream::pair().unwrap();
        let handler =
            thread::spawn(move || handle(&mut server, READ_DEADLINE, &Fake::default()).unwrap());
        for part in [&b"GE"[..], b"T /heal", b"thz HTTP/1.1\r\n", b"\r\n"] {
            client.write_all(part).unwrap();
            client.flush().unwrap();
        }
        let mut out = String::new();
        client.read_to_string(&mut out).unwrap();
        assert_eq!(handler.join().unwrap(), Some(200));
    }
}
