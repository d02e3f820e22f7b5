//! A fake hybrid vsock: what Firecracker or vhost-device-vsock expose on the
//! host, with a chosen behaviour after `CONNECT PORT\n`. Shared by the unit
//! tests (through #[path]) and the CLI tests.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug)]
pub enum Behaviour {
    /// `OK`, then answer one HTTP request with this status and body.
    Http(u16, String),
    /// `OK`, then echo bytes back.
    Echo,
    /// Close without a reply: nothing listens on the guest port.
    Refuse,
    /// Write this and close.
    Reply(String),
    /// Accept, read the CONNECT line, never answer.
    Hang,
    /// `OK`, then splice the stream to this Unix socket (a real agent
    /// serving with --unix), as the VMM splices it to the guest's port.
    Proxy(PathBuf),
}

pub fn healthy_body() -> String {
    r#"{"status":"ok","hostname":"box","uptime_s":42,"version":"0.1.0","load":[0.1,0.2,0.3],"mem_available_kib":1000}"#.into()
}

pub struct FakeVsock {
    _dir: tempfile::TempDir,
    path: PathBuf,
    stop: Arc<AtomicBool>,
    lines: Arc<Mutex<Vec<String>>>,
    behaviour: Arc<Mutex<Behaviour>>,
}

impl FakeVsock {
    pub fn start(behaviour: Behaviour) -> FakeVsock {
        let dir = tempfile::Builder::new()
            .prefix("fv")
            .tempdir_in("/tmp")
            .unwrap();
        let path = dir.path().join("v.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let behaviour = Arc::new(Mutex::new(behaviour));
        let (s, l, b) = (stop.clone(), lines.clone(), behaviour.clone());
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { return };
                let behaviour = b.lock().unwrap().clone();
                // Connections that hang stay open until the fake is dropped.
                if let Some(c) = serve(conn, behaviour, &l) {
                    held.push(c);
                }
            }
        });
        FakeVsock {
            _dir: dir,
            path,
            stop,
            lines,
            behaviour,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The CONNECT lines received so far.
    pub fn ports(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    pub fn set(&self, behaviour: Behaviour) {
        *self.behaviour.lock().unwrap() = behaviour;
    }
}

impl Drop for FakeVsock {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so the thread sees the flag.
        let _ = UnixStream::connect(&self.path);
    }
}

fn serve(conn: UnixStream, behaviour: Behaviour, lines: &Mutex<Vec<String>>) -> Option<UnixStream> {
    let mut reader = BufReader::new(conn.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    lines.lock().unwrap().push(line.trim_end().to_string());
    let mut w = &conn;
    match behaviour {
        Behaviour::Refuse => None,
        Behaviour::Hang => Some(conn),
        Behaviour::Reply(text) => {
            let _ = w.write_all(text.as_bytes());
            None
        }
        Behaviour::Proxy(target) => {
            let agent = UnixStream::connect(target).ok()?;
            w.write_all(b"OK 1073741824\n").ok()?;
            let mut to_agent = agent.try_clone().ok()?;
            let up = std::thread::spawn(move || {
                let _ = std::io::copy(&mut reader, &mut to_agent);
                let _ = to_agent.shutdown(std::net::Shutdown::Write);
            });
            let _ = std::io::copy(&mut &agent, &mut w);
            let _ = conn.shutdown(std::net::Shutdown::Both);
            let _ = up.join();
            None
        }
        Behaviour::Echo => {
            w.write_all(b"OK 1073741824\n").ok()?;
            let mut buf = [0u8; 1024];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 || w.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            None
        }
        Behaviour::Http(status, body) => {
            w.write_all(b"OK 1073741824\n").ok()?;
            let mut head = String::new();
            loop {
                let mut l = String::new();
                if reader.read_line(&mut l).ok()? == 0 || l == "\r\n" {
                    break;
                }
                head.push_str(&l);
            }
            let _ = write!(
                w,
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            None
        }
    }
}
