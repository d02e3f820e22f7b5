//! Wait for sshd: connect to port 22 and read its identification banner,
//! which proves more than an open port (sshd answers only once it runs).

use crate::target::Vm;
use banger_lib::wait::{Backoff, ByDeadline};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Once connected, sshd is running: its banner comes when the forked
/// child has re-executed sshd and loaded its keys, seconds under TCG on a
/// loaded host. Hanging up sooner starts that work over, so an attempt
/// waits this long (within the overall deadline) before it gives up.
const ATTEMPT: Duration = Duration::from_secs(15);
/// The connect alone gets much less: a SYN sent before the guest's network
/// answers is retransmitted only at 1, 3, 7, 15 s, so a long connect
/// timeout waits out that schedule (26 s in a benchmark run) where a new
/// connect gets through at once.
const CONNECT: Duration = Duration::from_secs(3);
/// 20 ms doubling to 100 ms: a refused connect costs nothing, while a
/// long pause is added to every create (with 2 s, up to ~1.5 s after sshd
/// was already listening; with 250 ms, 125 ms on average).
const BACKOFF: Backoff = Backoff::new(Duration::from_millis(20), Duration::from_millis(100));

/// The banner, or why not, within `timeout` all told: a guest that drips
/// one byte at a time is cut off at the deadline, not per read.
pub fn banner(addr: SocketAddr, timeout: Duration) -> Result<String, String> {
    let deadline = Instant::now() + timeout;
    let s = TcpStream::connect_timeout(&addr, timeout.min(CONNECT))
        .map_err(|e| format!("{addr}: {e}"))?;
    // RFC 4253: the server may send other lines before `SSH-`.
    let mut r = BufReader::new(ByDeadline::new(s, deadline)).take(8192);
    let mut line = String::new();
    loop {
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) => return Err(format!("{addr}: closed before the ssh banner")),
            Ok(_) if line.starts_with("SSH-") => return Ok(line.trim_end().to_string()),
            Ok(_) => {}
            Err(e) => return Err(format!("{addr}: no ssh banner: {e}")),
        }
    }
}

/// Poll with backoff until sshd answers or `timeout` passes.
pub fn wait(vm: &Vm, timeout: Duration) -> (bool, Value) {
    let start = Instant::now();
    let ip = match vm.running_ip() {
        Ok(ip) => ip.to_string(),
        Err(e) => {
            return (
                false,
                json!({"name": vm.name, "ok": false, "error": e.message}),
            )
        }
    };
    let addr = match ip.parse::<std::net::IpAddr>() {
        Ok(a) => SocketAddr::new(a, 22),
        Err(_) => {
            let e = format!("{}'s record has a bad ip: {ip}", vm.name);
            return (
                false,
                json!({"name": vm.name, "ok": false, "ip": ip, "error": e}),
            );
        }
    };
    let deadline = start + timeout;
    let mut last = String::new();
    let got = BACKOFF.poll_until(Some(deadline), || {
        let left = deadline.saturating_duration_since(Instant::now());
        banner(addr, left.min(ATTEMPT).max(Duration::from_millis(10)))
            .map_err(|e| last = e)
            .ok()
    });
    let waited_ms = start.elapsed().as_millis() as u64;
    match got {
        Some(b) => (
            true,
            json!({"name": vm.name, "ok": true, "ip": ip, "banner": b, "waited_ms": waited_ms}),
        ),
        None => {
            let error = format!(
                "sshd did not answer within {:.0}s: {last}",
                timeout.as_secs_f64()
            );
            (
                false,
                json!({"name": vm.name, "ok": false, "ip": ip, "error": error, "waited_ms": waited_ms}),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;

    fn serve(reply: &'static [u8]) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            if let Ok((mut c, _)) = l.accept() {
                let _ = c.write_all(reply);
            }
        });
        addr
    }

    #[test]
    fn reads_the_banner_after_other_lines() {
        let addr = serve(b"hello\r\nSSH-2.0-OpenSSH_9.2\r\n");
        assert_eq!(
            banner(addr, Duration::from_secs(5)).unwrap(),
            "SSH-2.0-OpenSSH_9.2"
        );
    }

    #[test]
    fn no_banner_is_an_error() {
        let addr = serve(b"HTTP/1.1 400 Bad Request\r\n");
        assert!(banner(addr, Duration::from_secs(5))
            .unwrap_err()
            .contains("closed before"));
    }
}
