//! Accept connections and hand each to its own thread, up to a cap, so a
//! flood of idle clients cannot exhaust the guest.

use crate::http::{self, Conn};
use crate::power::System;
use std::io;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// More than enough for a host that polls health; beyond it, 503.
pub const MAX_CONNECTIONS: usize = 16;

pub fn serve_vsock(port: u32, sys: &'static dyn System) -> io::Result<()> {
    let listener = vsock::VsockListener::bind_with_cid_port(vsock::VMADDR_CID_ANY, port)
        .map_err(|e| io::Error::new(e.kind(), format!("listen on vsock port {port}: {e}")))?;
    eprintln!("banger-vsock-agent: listening on vsock port {port}");
    serve(|| listener.accept().map(|(s, _)| s), MAX_CONNECTIONS, sys)
}

pub fn serve_unix(path: &Path, sys: &'static dyn System) -> io::Result<()> {
    let listener = UnixListener::bind(path)
        .map_err(|e| io::Error::new(e.kind(), format!("listen on {}: {e}", path.display())))?;
    eprintln!("banger-vsock-agent: listening on {}", path.display());
    serve(|| listener.accept().map(|(s, _)| s), MAX_CONNECTIONS, sys)
}

/// Decrements the live-connection count however the thread ends.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

pub fn serve<C, A>(mut accept: A, cap: usize, sys: &'static dyn System) -> io::Result<()>
where
    C: Conn + Send + 'static,
    A: FnMut() -> io::Result<C>,
{
    let live = Arc::new(AtomicUsize::new(0));
    loop {
        let mut conn = match accept() {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                eprintln!("banger-vsock-agent: accept: {e}");
                continue;
            }
        };
        if live.fetch_add(1, Ordering::SeqCst) >= cap {
            live.fetch_sub(1, Ordering::SeqCst);
            // Answer without reading: a fresh socket's send buffer takes
            // this at once, and the timeout bounds the worst case.
            let _ = conn.set_write_timeout(Some(Duration::from_secs(1)));
            let _ = http::respond(&mut conn, 503, &http::error_body(503));
            continue;
        }
        let slot = Slot(live.clone());
        let spawned = std::thread::Builder::new()
            .name("conn".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                let _slot = slot;
                if let Err(e) = http::handle(&mut conn, http::READ_DEADLINE, sys) {
                    eprintln!("banger-vsock-agent: connection: {e}");
                }
            });
        if let Err(e) = spawned {
            eprintln!("banger-vsock-agent: spawn: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    use std::sync::mpsc;

    #[test]
    fn connections_over_the_cap_get_503() {
        // Feed the server socket pairs by hand; hold `cap` idle clients open
        // so the next one is over the cap.
        let cap = 2;
        let (tx, rx) = mpsc::channel::<UnixStream>();
        std::thread::spawn(move || {
            static SYS: std::sync::LazyLock<crate::routes::fake::Fake> =
                std::sync::LazyLock::new(Default::default);
            let _ = serve(
                || rx.recv().map_err(|_| io::Error::other("test over")),
                cap,
                &*SYS,
            );
        });
        let mut idle = Vec::new();
        for _ in 0..cap {
            let (s, c) = UnixStream::pair().unwrap();
            tx.send(s).unwrap();
            idle.push(c);
        }
        let (s, mut c) = UnixStream::pair().unwrap();
        tx.send(s).unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.1 503 "), "{out}");

        // Once an idle client is served, a slot frees up again.
        let mut first = idle.remove(0);
        first.write_all(b"GET /healthz HTTP/1.1\r\n\r\n").unwrap();
        let mut out = String::new();
        first.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.1 200 "), "{out}");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let (s, mut c) = UnixStream::pair().unwrap();
            tx.send(s).unwrap();
            c.write_all(b"GET /healthz HTTP/1.1\r\n\r\n").unwrap();
            let mut out = String::new();
            c.read_to_string(&mut out).unwrap();
            if out.starts_with("HTTP/1.1 200 ") {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "slot never freed: {out}"
            );
        }
        drop(tx);
    }
}
