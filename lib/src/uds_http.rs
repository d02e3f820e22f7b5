//! HTTP/1.1 over a Unix stream socket with ureq: Firecracker's API socket,
//! and the guest agent through the hybrid vsock.
//!
//! ureq speaks HTTP over whatever [`Transport`] a connector hands it; this
//! module's connector hands it a `UnixStream` made by a closure. The closure
//! is the seam: for Firecracker's API it just connects to the socket; for
//! the hybrid vsock it also does the `CONNECT PORT\n` / `OK N\n` handshake
//! before any HTTP is spoken.
//!
//! Every request opens a fresh connection (no pooling): the handshake must
//! run per stream, and Firecracker is happy either way.
//!
//! ```no_run
//! use banger_lib::uds_http::UdsClient;
//! use std::io::{BufRead, BufReader, Write};
//! use std::os::unix::net::UnixStream;
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! // Firecracker's API socket.
//! let fc = UdsClient::new("/run/banger/box/api.sock");
//! let r = fc.request("PUT", "/actions",
//!     Some(&serde_json::json!({"action_type": "InstanceStart"})),
//!     Duration::from_secs(5))?;
//! if !r.ok() {
//!     eprintln!("firecracker said {}: {}", r.status, r.fault_message());
//! }
//!
//! // The guest agent behind a hybrid vsock: handshake in the closure.
//! let agent = UdsClient::with_connect(Arc::new(|| {
//!     let mut s = UnixStream::connect("/run/banger/box/vsock.sock")?;
//!     s.set_read_timeout(Some(Duration::from_secs(2)))?;
//!     s.write_all(b"CONNECT 52\n")?;
//!     let mut line = String::new();
//!     // Read byte by byte so nothing after the OK line is swallowed.
//!     BufReader::with_capacity(1, &s).read_line(&mut line)?;
//!     if !line.starts_with("OK ") {
//!         return Err(std::io::Error::other(format!("vsock handshake: {line:?}")));
//!     }
//!     Ok(s)
//! }));
//! let health = agent.request("GET", "/healthz", None, Duration::from_secs(3))?;
//! println!("{} {}", health.status, health.body["hostname"]);
//! # Ok::<(), banger_lib::Error>(())
//! ```

use crate::error::{Error, Kind, Result};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, LazyBuffers, NextTimeout, Transport,
};

/// Makes one connected stream, ready for HTTP.
pub type ConnectFn = Arc<dyn Fn() -> io::Result<UnixStream> + Send + Sync>;

/// An HTTP client whose every connection is a Unix stream socket.
#[derive(Clone)]
pub struct UdsClient {
    connect: ConnectFn,
    /// For messages only.
    label: String,
    /// The most bytes read of a response's headers, and of its body.
    limit: usize,
}

/// ureq's own caps (64 KiB of headers, 10 MB of body), as `limit` starts.
const DEFAULT_LIMIT: usize = 10 * 1024 * 1024;
const DEFAULT_HEADER_LIMIT: usize = 64 * 1024;

/// A response: the status and the body, parsed as JSON when it is JSON,
/// else a JSON string holding the text (`Null` when empty).
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub body: serde_json::Value,
}

impl Response {
    /// 2xx.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// Firecracker's `fault_message`, else the body as text.
    pub fn fault_message(&self) -> String {
        match &self.body {
            serde_json::Value::Object(m) => match m.get("fault_message") {
                Some(serde_json::Value::String(s)) => s.clone(),
                _ => self.body.to_string(),
            },
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => format!("HTTP {}", self.status),
            other => other.to_string(),
        }
    }
}

impl UdsClient {
    /// A client for the socket at `path`.
    pub fn new(path: impl Into<PathBuf>) -> UdsClient {
        let path: PathBuf = path.into();
        let label = path.display().to_string();
        UdsClient {
            connect: Arc::new(move || UnixStream::connect(&path)),
            label,
            limit: DEFAULT_LIMIT,
        }
    }

    /// A client whose connections come from `connect` (which may speak a
    /// handshake first). Give the stream its own read timeout if the
    /// handshake can block: ureq's timeout starts after the closure returns.
    pub fn with_connect(connect: ConnectFn) -> UdsClient {
        UdsClient {
            connect,
            label: "unix socket".into(),
            limit: DEFAULT_LIMIT,
        }
    }

    /// Refuse a response whose headers or body are over `bytes` (for a
    /// peer that is not trusted: the guest agent).
    pub fn limit(mut self, bytes: usize) -> UdsClient {
        self.limit = bytes;
        self
    }

    /// Name the endpoint in error messages (`with_connect` clients).
    pub fn label(mut self, label: impl Into<String>) -> UdsClient {
        self.label = label.into();
        self
    }

    /// The socket path of a `new` client, for messages.
    pub fn describe(&self) -> &str {
        &self.label
    }

    /// Send one request and read the whole response. Any HTTP status is a
    /// `Response`; errors are for not getting one at all (no socket,
    /// refused, timed out, garbled). `path` starts with `/`.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
        timeout: Duration,
    ) -> Result<Response> {
        self.request_inner(method, path, body, timeout)
            .map_err(|e| self.error(method, path, timeout, e))
    }

    fn request_inner(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
        timeout: Duration,
    ) -> std::result::Result<Response, ureq::Error> {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .max_idle_connections(0)
            .max_idle_connections_per_host(0)
            .max_response_header_size(self.limit.min(DEFAULT_HEADER_LIMIT))
            .build();
        let agent = ureq::Agent::with_parts(
            config,
            UdsConnector {
                connect: self.connect.clone(),
            },
            NoResolver,
        );
        let uri = format!("http://localhost{path}");
        let builder = ureq::http::Request::builder()
            .method(method)
            .uri(&uri)
            .header("accept", "application/json");
        let mut resp = match body {
            Some(v) => {
                // A sized body: Firecracker's micro-http wants Content-Length
                // and does not take chunked bodies.
                let bytes = serde_json::to_vec(v).expect("a JSON value serializes");
                let req = builder
                    .header("content-type", "application/json")
                    .body(bytes)
                    .map_err(|e| ureq::Error::Other(Box::new(e)))?;
                agent.run(req)?
            }
            // An empty POST says `Content-Length: 0`: left to itself ureq
            // would send a chunked body, which a server answering after the
            // headers (the guest agent) does not wait for.
            None if !matches!(method, "GET" | "HEAD" | "DELETE") => {
                let req = builder
                    .body(Vec::new())
                    .map_err(|e| ureq::Error::Other(Box::new(e)))?;
                agent.run(req)?
            }
            None => {
                let req = builder
                    .body(())
                    .map_err(|e| ureq::Error::Other(Box::new(e)))?;
                agent.run(req)?
            }
        };
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(self.limit as u64)
            .read_to_string()?;
        let body = if text.trim().is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
        };
        Ok(Response { status, body })
    }

    fn error(&self, method: &str, path: &str, timeout: Duration, e: ureq::Error) -> Error {
        let what = format!("{method} {path} on {}", self.label);
        match e {
            ureq::Error::Timeout(_) => Error::failed(format!(
                "{what}: no answer within {:.1}s",
                timeout.as_secs_f64()
            )),
            ureq::Error::Io(io) => {
                let kind = match io.kind() {
                    io::ErrorKind::NotFound => Kind::NotFound,
                    io::ErrorKind::PermissionDenied => Kind::Prereq,
                    _ => Kind::Failed,
                };
                Error::new(kind, format!("{what}: {io}"))
            }
            other => Error::failed(format!("{what}: {other}")),
        }
    }
}

impl std::fmt::Debug for UdsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdsClient")
            .field("label", &self.label)
            .finish()
    }
}

/// `UdsClient::new(path)` for a path.
impl From<&Path> for UdsClient {
    fn from(p: &Path) -> UdsClient {
        UdsClient::new(p)
    }
}

/// The host part of the URI means nothing here: skip DNS entirely.
#[derive(Debug)]
struct NoResolver;

impl Resolver for NoResolver {
    fn resolve(
        &self,
        _uri: &ureq::http::Uri,
        _config: &ureq::config::Config,
        _timeout: NextTimeout,
    ) -> std::result::Result<ResolvedSocketAddrs, ureq::Error> {
        let mut addrs = self.empty();
        addrs.push(SocketAddr::from((Ipv4Addr::LOCALHOST, 80)));
        Ok(addrs)
    }
}

struct UdsConnector {
    connect: ConnectFn,
}

impl std::fmt::Debug for UdsConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdsConnector").finish()
    }
}

impl<In: Transport> Connector<In> for UdsConnector {
    type Out = UdsTransport;

    fn connect(
        &self,
        details: &ConnectionDetails,
        _chained: Option<In>,
    ) -> std::result::Result<Option<UdsTransport>, ureq::Error> {
        let stream = (self.connect)()?;
        let config = details.config;
        Ok(Some(UdsTransport {
            stream,
            buffers: LazyBuffers::new(config.input_buffer_size(), config.output_buffer_size()),
        }))
    }
}

#[derive(Debug)]
struct UdsTransport {
    stream: UnixStream,
    buffers: LazyBuffers,
}

fn timed_out(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

impl Transport for UdsTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(
        &mut self,
        amount: usize,
        timeout: NextTimeout,
    ) -> std::result::Result<(), ureq::Error> {
        let timeout = timeout.for_write();
        if timeout.after.is_zero() {
            return Err(ureq::Error::Timeout(timeout.reason));
        }
        self.stream
            .set_write_timeout(timeout.not_zero().map(|d| *d))?;
        let output = &self.buffers.output()[..amount];
        match self.stream.write_all(output) {
            Err(e) if timed_out(&e) => Err(ureq::Error::Timeout(timeout.reason)),
            r => Ok(r?),
        }
    }

    fn await_input(&mut self, timeout: NextTimeout) -> std::result::Result<bool, ureq::Error> {
        let timeout = timeout.for_read();
        if timeout.after.is_zero() {
            return Err(ureq::Error::Timeout(timeout.reason));
        }
        self.stream
            .set_read_timeout(timeout.not_zero().map(|d| *d))?;
        let input = self.buffers.input_append_buf();
        let n = loop {
            match self.stream.read(input) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if timed_out(&e) => return Err(ureq::Error::Timeout(timeout.reason)),
                r => break r?,
            }
        };
        self.buffers.input_appended(n);
        Ok(n > 0)
    }

    fn is_open(&mut self) -> bool {
        // Never pooled (see request_inner), so never asked to be reused.
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::os::unix::net::UnixListener;

    /// A one-connection-at-a-time server: hands each request's head and body
    /// to `answer` and writes back what it returns.
    fn serve(
        listener: UnixListener,
        answer: impl Fn(&str, &str) -> Option<String> + Send + 'static,
    ) -> std::thread::JoinHandle<()> {
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut head = String::new();
                let mut len = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                    if line == "\r\n" {
                        break;
                    }
                    head.push_str(&line);
                }
                let mut body = vec![0; len];
                reader.read_exact(&mut body).unwrap();
                match answer(&head, &String::from_utf8(body).unwrap()) {
                    Some(reply) => {
                        let _ = conn.write_all(reply.as_bytes());
                    }
                    None => return,
                }
            }
        })
    }

    fn reply(status: &str, body: &str) -> String {
        format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: application/json\r\n\r\n{body}",
            body.len()
        )
    }

    #[test]
    fn put_json_and_read_statuses() {
        let t = tempfile::tempdir().unwrap();
        let sock = t.path().join("api.sock");
        let server = serve(UnixListener::bind(&sock).unwrap(), |head, body| {
            let first = head.lines().next().unwrap().to_string();
            Some(match first.as_str() {
                "PUT /machine-config HTTP/1.1" => {
                    assert!(head
                        .to_ascii_lowercase()
                        .contains("content-type: application/json"));
                    let v: serde_json::Value = serde_json::from_str(body).unwrap();
                    assert_eq!(v["vcpu_count"], 2);
                    "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n".into()
                }
                "GET / HTTP/1.1" => reply("200 OK", r#"{"state":"Running"}"#),
                "PUT /actions HTTP/1.1" => {
                    reply("400 Bad Request", r#"{"fault_message":"bad action"}"#)
                }
                _ => reply("404 Not Found", "nope"),
            })
        });
        let c = UdsClient::new(&sock);
        let d = Duration::from_secs(5);
        let r = c
            .request(
                "PUT",
                "/machine-config",
                Some(&serde_json::json!({"vcpu_count": 2})),
                d,
            )
            .unwrap();
        assert_eq!(r.status, 204);
        assert!(r.ok());
        assert_eq!(r.body, serde_json::Value::Null);
        let r = c.request("GET", "/", None, d).unwrap();
        assert_eq!(r.body["state"], "Running");
        let r = c
            .request("PUT", "/actions", Some(&serde_json::json!({})), d)
            .unwrap();
        assert_eq!(r.status, 400);
        assert!(!r.ok());
        assert_eq!(r.fault_message(), "bad action");
        let r = c.request("GET", "/x", None, d).unwrap();
        assert_eq!(r.status, 404);
        assert_eq!(r.fault_message(), "nope");
        drop(c);
        std::fs::remove_file(&sock).unwrap();
        // The server thread blocks in accept; it ends with the process.
        drop(server);
    }

    #[test]
    fn missing_socket_is_not_found() {
        let t = tempfile::tempdir().unwrap();
        let c = UdsClient::new(t.path().join("none.sock"));
        let e = c
            .request("GET", "/", None, Duration::from_secs(1))
            .unwrap_err();
        assert_eq!(e.kind, Kind::NotFound, "{}", e.message);
        assert!(e.message.contains("none.sock"), "{}", e.message);
    }

    #[test]
    fn silent_server_times_out() {
        let t = tempfile::tempdir().unwrap();
        let sock = t.path().join("hang.sock");
        let listener = UnixListener::bind(&sock).unwrap();
        // Accept, hold the connection open, never answer.
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            let conn = listener.accept();
            let _ = rx.recv();
            drop(conn);
        });
        let e = UdsClient::new(&sock)
            .request("GET", "/", None, Duration::from_millis(200))
            .unwrap_err();
        assert!(e.message.contains("no answer within"), "{}", e.message);
        let _ = tx.send(());
    }

    #[test]
    fn connect_closure_can_handshake_first() {
        let t = tempfile::tempdir().unwrap();
        let sock = t.path().join("v.sock");
        let listener = UnixListener::bind(&sock).unwrap();
        std::thread::spawn(move || {
            let (conn, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            assert_eq!(line, "CONNECT 52\n");
            let mut w = &conn;
            w.write_all(b"OK 1073741824\n").unwrap();
            let mut req = String::new();
            while reader.read_line(&mut req).unwrap() > 0 && !req.ends_with("\r\n\r\n") {}
            assert!(req.starts_with("GET /healthz HTTP/1.1"), "{req}");
            w.write_all(reply("200 OK", r#"{"status":"ok"}"#).as_bytes())
                .unwrap();
        });
        let path = sock.clone();
        let c = UdsClient::with_connect(Arc::new(move || {
            let mut s = UnixStream::connect(&path)?;
            s.write_all(b"CONNECT 52\n")?;
            let mut line = String::new();
            BufReader::with_capacity(1, &s).read_line(&mut line)?;
            if !line.starts_with("OK ") {
                return Err(io::Error::other(format!("handshake: {line:?}")));
            }
            Ok(s)
        }))
        .label("vsock port 52");
        let r = c
            .request("GET", "/healthz", None, Duration::from_secs(5))
            .unwrap();
        assert_eq!(r.body["status"], "ok");
    }

    #[test]
    fn failing_closure_is_an_error_with_label() {
        let c = UdsClient::with_connect(Arc::new(|| Err(io::Error::other("handshake refused"))))
            .label("vsock port 52");
        let e = c
            .request("GET", "/healthz", None, Duration::from_secs(1))
            .unwrap_err();
        assert!(e.message.contains("vsock port 52"), "{}", e.message);
        assert!(e.message.contains("handshake refused"), "{}", e.message);
    }
}
