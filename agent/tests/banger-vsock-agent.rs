//! The built agent, serving on a real Unix socket.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn get(sock: &std::path::Path, request: &[u8]) -> String {
    let mut s = UnixStream::connect(sock).unwrap();
    s.write_all(request).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn serves_healthz_on_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("agent.sock");
    let agent = Agent(
        Command::new(env!("CARGO_BIN_EXE_banger-vsock-agent"))
            .arg("--unix")
            .arg(&sock)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while UnixStream::connect(&sock).is_err() {
        assert!(Instant::now() < deadline, "agent never listened");
        std::thread::yield_now();
    }
    // A client that goes away mid-response costs it an EPIPE, not its
    // life: SIGPIPE is ignored (std does that before main).
    let status = std::fs::read_to_string(format!("/proc/{}/status", agent.0.id())).unwrap();
    let ignored = status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .map(|m| u64::from_str_radix(m.trim(), 16).unwrap())
        .unwrap();
    const SIGPIPE: u32 = 13;
    assert_ne!(ignored & (1 << (SIGPIPE - 1)), 0, "SigIgn: {ignored:x}");

    let resp = get(&sock, b"GET /healthz HTTP/1.1\r\nHost: agent\r\n\r\n");
    assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"), "{resp}");
    let body: serde_json::Value =
        serde_json::from_str(resp.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(body["status"], "ok");
    assert!(body["uptime_s"].as_u64().is_some());

    // The host keys are this machine's /etc/ssh ones, without comments.
    let resp = get(&sock, b"GET /hostkeys HTTP/1.1\r\n\r\n");
    assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"), "{resp}");
    let body: serde_json::Value =
        serde_json::from_str(resp.split_once("\r\n\r\n").unwrap().1).unwrap();
    let keys = body["keys"].as_array().unwrap();
    if let Ok(pubkey) = std::fs::read_to_string("/etc/ssh/ssh_host_ed25519_key.pub") {
        let want: Vec<&str> = pubkey.split_whitespace().take(2).collect();
        assert!(keys.contains(&want.join(" ").into()), "{keys:?}");
    }
    assert!(get(&sock, b"POST /hostkeys HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405 "));

    // A bad request does not take the agent down.
    assert!(get(&sock, b"\x00\x01\x02\r\n\r\n").starts_with("HTTP/1.1 400 "));
    assert!(get(&sock, b"GET /nope HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404 "));
    assert!(get(&sock, b"GET /healthz HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200 "));

    // sync(2) is harmless on the host; /shutdown and /reboot are not, so
    // only their wrong method is tried here (the unit tests fake init).
    let resp = get(&sock, b"POST /sync HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}");
    assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"), "{resp}");
    assert!(resp.ends_with(r#"{"status":"ok","synced":true}"#), "{resp}");
    let resp = get(&sock, b"GET /shutdown HTTP/1.1\r\n\r\n");
    assert!(resp.starts_with("HTTP/1.1 405 "), "{resp}");
    assert!(resp.contains("\r\nAllow: POST\r\n"), "{resp}");
}

#[test]
fn bad_flag_exits_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_banger-vsock-agent"))
        .arg("--port")
        .arg("zero")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--port"));
}
