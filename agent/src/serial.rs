//! The agent on a virtio-serial port (`org.banger.agent`), QEMU's agent
//! channel: the same HTTP as on vsock, one request at a time over the one
//! byte stream the port is.
//!
//! A port is not a listener: the host side (QEMU's Unix socket chardev)
//! connects and disconnects, and the guest only sees bytes, plus "host
//! not connected" (a read of 0, POLLHUP). A host that went away
//! mid-request can leave bytes in the guest's buffer, and a reply the
//! guest writes after the host went away is held back (the port blocks
//! writes while the host is gone) and reaches the next host. So every
//! exchange starts with a resync:
//!
//! ```text
//! host:  \nBANGER-SYNC <nonce>\n          (nonce: 1-64 of [0-9A-Za-z])
//! guest: BANGER-ACK <nonce>\n
//! host:  one HTTP/1.1 request (a body only with Content-Length)
//! guest: one HTTP/1.1 response (Content-Length, Connection: close)
//! host:  disconnects
//! ```
//!
//! The guest drops whatever comes before a sync line (a sync line is
//! recognised at the start of a line, and the host's leading newline ends
//! whatever half line a gone host left). A sync line that arrives while a
//! request is being read ends that request (the host that sent it is
//! gone): the guest answers what it has (400, which the new host skips)
//! and starts over from the new sync. The host drops everything before
//! its own nonce's ack, so a stale reply never passes for its own.
//! Banger's JSON bodies carry no raw newline, so the marker cannot occur
//! inside one. Everything is bounded: the request as on vsock (size,
//! 5 s), the sync line's length, and each write's time.

use crate::http::{self, Conn};
use crate::power::System;
use std::cell::Cell;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The port's name (`-device virtserialport,name=...`).
pub const PORT_NAME: &str = "org.banger.agent";
/// What starts a host's exchange, at the start of a line.
pub const SYNC: &[u8] = b"BANGER-SYNC ";
/// The guest's answer to a sync: `BANGER-ACK <nonce>\n`.
pub const ACK: &str = "BANGER-ACK ";
/// The longest nonce taken.
pub const MAX_NONCE: usize = 64;
/// How long a write may wait for the host to take it.
const WRITE_DEADLINE: Duration = Duration::from_secs(5);

/// The guest side of a port, as the serve loop uses it.
pub trait Port {
    /// Wait up to `timeout` for bytes. `Ok(0)`: the host is not connected
    /// (and nothing is buffered); `Err(TimedOut)`: nothing came in time.
    fn read_for(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize>;
    /// Write some of `buf` within `timeout`; `Err(BrokenPipe)` when the
    /// host is not connected.
    fn write_for(&mut self, buf: &[u8], timeout: Duration) -> io::Result<usize>;
}

/// Where the port's device is: udev's `/dev/virtio-ports/NAME` link, else
/// the `vportNpM` whose sysfs name is NAME (no udev in the initramfs).
pub fn find_port() -> Option<PathBuf> {
    let link = Path::new("/dev/virtio-ports").join(PORT_NAME);
    if link.exists() {
        return Some(link);
    }
    let dir = std::fs::read_dir("/sys/class/virtio-ports").ok()?;
    for e in dir.flatten() {
        let name = std::fs::read_to_string(e.path().join("name")).unwrap_or_default();
        if name.trim_end() == PORT_NAME {
            let dev = Path::new("/dev").join(e.file_name());
            if dev.exists() {
                return Some(dev);
            }
        }
    }
    None
}

/// A virtio-serial port's character device, non-blocking, waited on with
/// poll(2).
pub struct Device {
    file: File,
}

impl Device {
    pub fn open(path: &Path) -> io::Result<Device> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)?;
        Ok(Device { file })
    }

    /// poll(2) for `events` up to `timeout`; the revents, 0 on timeout.
    fn poll(&self, events: libc::c_short, timeout: Duration) -> io::Result<libc::c_short> {
        let mut pfd = libc::pollfd {
            fd: self.file.as_raw_fd(),
            events,
            revents: 0,
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
        // SAFETY: one valid pollfd, for the duration of the call.
        let n = unsafe { libc::poll(&raw mut pfd, 1, ms) };
        match n {
            -1 => Err(io::Error::last_os_error()),
            0 => Ok(0),
            _ => Ok(pfd.revents),
        }
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "no data in time")
}

impl Port for Device {
    fn read_for(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            // With the host gone the port reports POLLIN|POLLHUP and a
            // read of 0 (virtio_console), so this never waits then.
            let left = deadline.saturating_duration_since(Instant::now());
            match self.poll(libc::POLLIN, left) {
                Ok(0) => return Err(timed_out()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            match self.file.read(buf) {
                Ok(n) => return Ok(n),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
                    ) =>
                {
                    if Instant::now() >= deadline {
                        return Err(timed_out());
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn write_for(&mut self, buf: &[u8], timeout: Duration) -> io::Result<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let revents = match self.poll(libc::POLLOUT, left) {
                Ok(0) => return Err(timed_out()),
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if revents & libc::POLLOUT == 0 && revents & libc::POLLHUP != 0 {
                return Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "the host is not connected",
                ));
            }
            match self.file.write(buf) {
                Ok(n) => return Ok(n),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
                    ) =>
                {
                    if Instant::now() >= deadline {
                        return Err(timed_out());
                    }
                    // POLLOUT without room: do not spin on it.
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Find the port, open it and serve it for ever; while there is no port
/// (a guest booted by Firecracker never has one), look again now and then.
pub fn serve_forever(sys: &'static dyn System) {
    let mut said = false;
    loop {
        if let Some(path) = find_port() {
            match Device::open(&path) {
                Ok(mut dev) => {
                    eprintln!("banger-vsock-agent: serving {}", path.display());
                    said = false;
                    serve(&mut dev, sys, Idle::default());
                }
                Err(e) if !said => {
                    eprintln!("banger-vsock-agent: opening {}: {e}", path.display());
                    said = true;
                }
                Err(_) => {}
            }
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// How long to wait between looks at a port whose host is not connected:
/// from `first`, doubling, up to `longest` (a new host is answered within
/// that).
#[derive(Clone, Copy)]
pub struct Idle {
    pub first: Duration,
    pub longest: Duration,
}

impl Default for Idle {
    fn default() -> Idle {
        Idle {
            first: Duration::from_millis(5),
            longest: Duration::from_millis(50),
        }
    }
}

/// Serve one port until it fails for good (the device went away).
/// Returns the error that ended it.
pub fn serve<P: Port>(port: &mut P, sys: &dyn System, idle: Idle) -> io::Error {
    let mut conn = Stream::new(port);
    loop {
        let nonce = match conn.await_sync(idle) {
            Ok(n) => n,
            Err(e) => return e,
        };
        let ack = format!("{ACK}{nonce}\n");
        conn.set_write_timeout(Some(WRITE_DEADLINE)).ok();
        if conn.write_all(ack.as_bytes()).is_err() {
            continue;
        }
        conn.begin_request();
        if let Err(e) = http::handle(&mut conn, http::READ_DEADLINE, sys) {
            if !matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            ) {
                eprintln!("banger-vsock-agent: serial port: {e}");
            }
        }
    }
}

/// The port as one request's connection: reads stop at a new sync line
/// (end of stream, with the line kept for `await_sync`) or when the host
/// goes away.
struct Stream<'a, P: Port> {
    port: &'a mut P,
    /// Read from the port, not yet consumed.
    pending: Vec<u8>,
    /// The next byte of the stream starts a line.
    at_line_start: bool,
    /// A sync line is at the front of `pending`: reads end here.
    resync: bool,
    /// The host went away: reads end until the next `await_sync`.
    gone: bool,
    read_timeout: Cell<Option<Duration>>,
    write_timeout: Cell<Option<Duration>>,
}

/// Where a sync marker starts in `buf`, and whether it is only a prefix
/// that more bytes would complete. `at_line_start`: buf[0] starts a line.
fn find_sync(buf: &[u8], at_line_start: bool) -> Option<(usize, bool)> {
    (0..buf.len())
        .filter(|&i| {
            if i == 0 {
                at_line_start
            } else {
                buf[i - 1] == b'\n'
            }
        })
        .find_map(|i| {
            let rest = &buf[i..];
            if rest.starts_with(SYNC) {
                Some((i, false))
            } else if SYNC.starts_with(rest) {
                Some((i, true))
            } else {
                None
            }
        })
}

fn valid_nonce(n: &[u8]) -> bool {
    !n.is_empty() && n.len() <= MAX_NONCE && n.iter().all(u8::is_ascii_alphanumeric)
}

impl<'a, P: Port> Stream<'a, P> {
    fn new(port: &'a mut P) -> Stream<'a, P> {
        Stream {
            port,
            pending: Vec::new(),
            at_line_start: true,
            resync: false,
            gone: false,
            read_timeout: Cell::new(None),
            write_timeout: Cell::new(None),
        }
    }

    /// Read more from the port into `pending` within `timeout`. Ok(false):
    /// the host is not connected.
    fn fill(&mut self, timeout: Duration) -> io::Result<bool> {
        let mut chunk = [0u8; 4096];
        let n = self.port.read_for(&mut chunk, timeout)?;
        self.pending.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    }

    /// Drop bytes up to the next valid sync line and return its nonce.
    /// Waits as long as it takes; while no host is connected, with a
    /// pause in between looks.
    fn await_sync(&mut self, idle: Idle) -> io::Result<String> {
        self.resync = false;
        self.gone = false;
        let mut pause = idle.first;
        loop {
            match find_sync(&self.pending, self.at_line_start) {
                Some((at, false)) => {
                    self.pending.drain(..at);
                    self.at_line_start = true;
                    let line_max = SYNC.len() + MAX_NONCE + 1;
                    if let Some(nl) = self.pending.iter().take(line_max).position(|&b| b == b'\n') {
                        let nonce = self.pending[SYNC.len()..nl].to_vec();
                        self.pending.drain(..=nl);
                        if valid_nonce(&nonce) {
                            return Ok(String::from_utf8(nonce).expect("ascii"));
                        }
                        continue;
                    }
                    if self.pending.len() >= line_max {
                        // Not a sync line after all: skip its marker.
                        self.pending.drain(..SYNC.len());
                        self.at_line_start = false;
                        continue;
                    }
                }
                Some((at, true)) => {
                    self.pending.drain(..at);
                    self.at_line_start = true;
                }
                None => {
                    if let Some(&last) = self.pending.last() {
                        self.at_line_start = last == b'\n';
                    }
                    self.pending.clear();
                }
            }
            match self.fill(Duration::from_secs(1)) {
                Ok(true) => pause = idle.first,
                Ok(false) => {
                    // No host: what a gone host left is stale.
                    self.pending.clear();
                    self.at_line_start = true;
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(idle.longest);
                }
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn begin_request(&mut self) {
        self.resync = false;
        self.gone = false;
    }
}

impl<P: Port> Read for Stream<'_, P> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let deadline = self.read_timeout.get().map(|t| Instant::now() + t);
        loop {
            if self.resync || self.gone || out.is_empty() {
                return Ok(0);
            }
            let safe = match find_sync(&self.pending, self.at_line_start) {
                Some((0, false)) => {
                    self.resync = true;
                    return Ok(0);
                }
                Some((at, _)) => at,
                None => self.pending.len(),
            };
            if safe > 0 {
                let n = safe.min(out.len());
                out[..n].copy_from_slice(&self.pending[..n]);
                self.pending.drain(..n);
                self.at_line_start = out[n - 1] == b'\n';
                return Ok(n);
            }
            let left = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()),
                None => Duration::from_secs(3600),
            };
            if left.is_zero() {
                return Err(timed_out());
            }
            if !self.fill(left)? {
                self.gone = true;
                return Ok(0);
            }
        }
    }
}

impl<P: Port> Write for Stream<'_, P> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let t = self.write_timeout.get().unwrap_or(WRITE_DEADLINE);
        self.port.write_for(buf, t)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<P: Port> Conn for Stream<'_, P> {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.read_timeout.set(timeout);
        Ok(())
    }
    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.write_timeout.set(timeout);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::fake::Fake;
    use std::collections::VecDeque;
    use std::sync::mpsc;

    /// What the fake host does next, as the guest reads.
    enum Ev {
        Data(Vec<u8>),
        /// The host disconnects: reads return 0 until the next Data.
        Gone,
        /// The device went away: the serve loop ends.
        End,
    }

    /// A port driven by a script; what the guest writes goes to `out`,
    /// and writes fail while the host is gone.
    struct FakePort {
        script: VecDeque<Ev>,
        connected: bool,
        out: mpsc::Sender<Vec<u8>>,
    }

    impl Port for FakePort {
        fn read_for(&mut self, buf: &mut [u8], _timeout: Duration) -> io::Result<usize> {
            match self.script.pop_front() {
                Some(Ev::Data(mut d)) => {
                    self.connected = true;
                    let n = d.len().min(buf.len());
                    buf[..n].copy_from_slice(&d[..n]);
                    if n < d.len() {
                        self.script.push_front(Ev::Data(d.split_off(n)));
                    }
                    Ok(n)
                }
                Some(Ev::Gone) => {
                    self.connected = false;
                    Ok(0)
                }
                Some(Ev::End) | None => Err(io::Error::other("device gone")),
            }
        }
        fn write_for(&mut self, buf: &[u8], _timeout: Duration) -> io::Result<usize> {
            if !self.connected {
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            self.out.send(buf.to_vec()).unwrap();
            Ok(buf.len())
        }
    }

    fn run(script: Vec<Ev>) -> String {
        let (tx, rx) = mpsc::channel();
        let mut port = FakePort {
            script: script.into(),
            connected: false,
            out: tx,
        };
        let idle = Idle {
            first: Duration::from_millis(1),
            longest: Duration::from_millis(1),
        };
        serve(&mut port, &Fake::default(), idle);
        drop(port);
        rx.iter()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .collect()
    }

    fn data(s: &str) -> Ev {
        Ev::Data(s.as_bytes().to_vec())
    }

    const HEALTHZ: &str = "GET /healthz HTTP/1.1\r\n\r\n";

    #[test]
    fn sync_ack_request_response() {
        let out = run(vec![
            data(&format!("\nBANGER-SYNC ab12\n{HEALTHZ}")),
            Ev::Gone,
            Ev::End,
        ]);
        assert!(
            out.starts_with("BANGER-ACK ab12\nHTTP/1.1 200 OK\r\n"),
            "{out}"
        );
    }

    #[test]
    fn stale_bytes_before_a_sync_are_dropped() {
        // A host that left half a request; the next one syncs.
        let out = run(vec![
            data("POST /shutdown HTTP/1.1\r\nConte"),
            Ev::Gone,
            data("garbage with no newline"),
            data(&format!("\nBANGER-SYNC n1\n{HEALTHZ}")),
            Ev::End,
        ]);
        assert!(out.starts_with("BANGER-ACK n1\nHTTP/1.1 200 OK"), "{out}");
        assert_eq!(out.matches("HTTP/1.1").count(), 1, "{out}");
    }

    #[test]
    fn a_sync_mid_request_starts_over() {
        // Host A synced and sent half a request, then host B came (A's
        // disconnect unseen): A's request is answered 400 (before B's
        // ack, which B skips) and B is served.
        let out = run(vec![
            data("\nBANGER-SYNC aaaa\nPOST /sh"),
            data(&format!("\nBANGER-SYNC bbbb\n{HEALTHZ}")),
            Ev::End,
        ]);
        let b = out.find("BANGER-ACK bbbb\n").expect(&out);
        assert!(out[b..].contains("HTTP/1.1 200 OK"), "{out}");
        assert!(out[..b].contains("HTTP/1.1 400 "), "{out}");
    }

    #[test]
    fn a_marker_split_across_reads_is_found() {
        let out = run(vec![
            data("junk\nBANGER-SY"),
            data("NC x9\nGET /healthz HTTP/1.1\r"),
            data("\n\r\n"),
            Ev::End,
        ]);
        assert!(out.starts_with("BANGER-ACK x9\nHTTP/1.1 200 OK"), "{out}");
    }

    #[test]
    fn bad_sync_lines_are_skipped() {
        let long = "a".repeat(MAX_NONCE + 1);
        let out = run(vec![
            data(&format!("\nBANGER-SYNC {long}\n")),
            data("\nBANGER-SYNC bad/nonce\n"),
            data("\nBANGER-SYNC \n"),
            data(&format!("\nBANGER-SYNC ok\n{HEALTHZ}")),
            Ev::End,
        ]);
        assert!(out.starts_with("BANGER-ACK ok\nHTTP/1.1 200 OK"), "{out}");
    }

    #[test]
    fn host_gone_mid_request_resets() {
        let out = run(vec![
            data("\nBANGER-SYNC one\nGET /heal"),
            Ev::Gone,
            data(&format!("\nBANGER-SYNC two\n{HEALTHZ}")),
            Ev::End,
        ]);
        // The first request gets no answer (no host to take it).
        assert_eq!(out.matches("HTTP/1.1").count(), 1, "{out}");
        assert!(out.contains("BANGER-ACK two\nHTTP/1.1 200 OK"), "{out}");
    }

    #[test]
    fn requests_in_a_row_on_one_port() {
        let out = run(vec![
            data(&format!("\nBANGER-SYNC r1\n{HEALTHZ}")),
            Ev::Gone,
            data("\nBANGER-SYNC r2\nPOST /sync HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}"),
            Ev::Gone,
            Ev::End,
        ]);
        let r2 = out.find("BANGER-ACK r2\n").expect(&out);
        assert!(out[..r2].contains("200 OK"), "{out}");
        assert!(out[r2..].contains("\"synced\":true"), "{out}");
    }
}
