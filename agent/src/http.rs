//! One HTTP/1.1 exchange per connection, written against `Read + Write` so
//! the same code serves vsock in the guest and Unix sockets in tests.
//!
//! A slow or hostile client cannot hold a thread for long: the whole request
//! must arrive within a deadline and fit in a small buffer.

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

/// Requests are a request line and a few headers; anything bigger is abuse.
pub const MAX_REQUEST: usize = 8 * 1024;
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

/// Read one request, answer it, and return the status sent (None when the
/// client went away before sending anything, so there is no one to answer).
pub fn handle<C: Conn>(conn: &mut C, deadline: Duration) -> io::Result<Option<u16>> {
    conn.set_write_timeout(Some(deadline))?;
    let start = Instant::now();
    let mut buf = vec![0u8; MAX_REQUEST];
    let mut len = 0;
    let status = loop {
        let Some(left) = deadline
            .checked_sub(start.elapsed())
            .filter(|d| !d.is_zero())
        else {
            break 408;
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
                break 408
            }
            Err(e) => return Err(e),
        };
        if n == 0 {
            if len == 0 {
                return Ok(None);
            }
            // Half a request then EOF: say so in case the client still reads.
            break 400;
        }
        len += n;
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf[..len]) {
            Ok(httparse::Status::Complete(_)) => {
                break route(req.method.unwrap_or(""), req.path.unwrap_or(""), conn)?
            }
            Ok(httparse::Status::Partial) if len == buf.len() => break 431,
            Ok(httparse::Status::Partial) => continue,
            Err(httparse::Error::TooManyHeaders) => break 431,
            Err(_) => break 400,
        }
    };
    if status != 200 {
        respond(conn, status, &error_body(status))?;
    }
    Ok(Some(status))
}

fn route<C: Conn>(method: &str, target: &str, conn: &mut C) -> io::Result<u16> {
    let path = target.split(['?', '#']).next().unwrap_or("");
    if method == "GET" && path == "/healthz" {
        let body = serde_json::to_vec(&crate::health::collect()).map_err(io::Error::other)?;
        respond(conn, 200, &body)?;
        Ok(200)
    } else {
        Ok(404)
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

pub fn error_body(status: u16) -> Vec<u8> {
    serde_json::json!({ "status": "error", "error": reason(status).to_lowercase() })
        .to_string()
        .into_bytes()
}

/// Every response closes the connection: one request per connection keeps
/// the per-connection thread short-lived.
pub fn respond<W: Write>(w: &mut W, status: u16, body: &[u8]) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reason(status),
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
    use std::os::unix::net::UnixStream;
    use std::thread;

    /// Serve one connection on a socket pair; send `request`, return the
    /// status the handler reports and the raw response the client read.
    fn exchange(request: &[u8], deadline: Duration) -> (Option<u16>, String) {
        let (mut server, mut client) = UnixStream::pair().unwrap();
        let handler = thread::spawn(move || handle(&mut server, deadline).unwrap());
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
    fn other_paths_and_methods_are_404() {
        for req in [
            &b"GET / HTTP/1.1\r\n\r\n"[..],
            b"GET /healthz/x HTTP/1.1\r\n\r\n",
            b"POST /healthz HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        ] {
            let (status, resp) = exchange(req, READ_DEADLINE);
            assert_eq!(status, Some(404));
            assert!(resp.starts_with("HTTP/1.1 404 Not Found\r\n"), "{resp}");
            assert_eq!(body(&resp)["error"], "not found");
        }
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
        let handler = thread::spawn(move || handle(&mut server, READ_DEADLINE).unwrap());
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
        assert_eq!(handle(&mut server, READ_DEADLINE).unwrap(), None);
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
        let handler = thread::spawn(move || handle(&mut server, READ_DEADLINE).unwrap());
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
        let handler =
            thread::spawn(move || handle(&mut server, Duration::from_millis(200)).unwrap());
        client.write_all(b"GET /hea").unwrap();
        let mut out = String::new();
        client.read_to_string(&mut out).unwrap();
        assert_eq!(handler.join().unwrap(), Some(408));
        assert!(out.starts_with("HTTP/1.1 408 "), "{out}");
    }

    #[test]
    fn request_split_across_writes_is_assembled() {
        let (mut server, mut client) = UnixStream::pair().unwrap();
        let handler = thread::spawn(move || handle(&mut server, READ_DEADLINE).unwrap());
        for part in [&b"GE"[..], b"T /heal", b"thz HTTP/1.1\r\n", b"\r\n"] {
            client.write_all(part).unwrap();
            client.flush().unwrap();
        }
        let mut out = String::new();
        client.read_to_string(&mut out).unwrap();
        assert_eq!(handler.join().unwrap(), Some(200));
    }
}
