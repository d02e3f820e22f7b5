//! A fake hybrid vsock: what Firecracker or vhost-device-vsock expose on the
//! host, with a chosen behaviour after `CONNECT PORT\n`. For every test of
//! code that talks to a guest agent (banger-lib's agent client, banger-health).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug)]
pub enum Behaviour {
    /// `OK`, then answer one HTTP request with this status and body.
    Http(u16, String),
    /// `OK`, then read the request and write these bytes, and close.
    Raw(Vec<u8>),
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

/// What a healthy agent answers to `GET /healthz`.
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
            .expect("temp dir");
        let path = dir.path().join("v.sock");
        let listener = UnixListener::bind(&path).expect("binding the fake vsock");
        let stop = Arc::new(AtomicBool::new(false));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let behaviour = Arc::new(Mutex::new(behaviour));
        let (s, l, b) = (stop.clone(), lines.clone(), behaviour.clone());
        std::thread::spawn(move || {
            // Connections that hang stay open until the fake is dropped,
            // as a hung VMM would keep them.
            let mut held = Vec::new();
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { return };
                let behaviour = b.lock().unwrap().clone();
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
        self.lines()
            .into_iter()
            .filter(|l| l.starts_with("CONNECT"))
            .collect()
    }

    /// Everything received so far: CONNECT lines and HTTP request lines.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Behave otherwise from the next connection on.
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

/// Read an HTTP request head; its first line goes to `lines`.
fn read_head(reader: &mut BufReader<UnixStream>, lines: &Mutex<Vec<String>>) {
    let mut first = None;
    loop {
        let mut l = String::new();
        if reader.read_line(&mut l).unwrap_or(0) == 0 || l == "\r\n" {
            break;
        }
        first.get_or_insert_with(|| l.trim_end().to_string());
    }
    if let Some(f) = first {
        lines.lock().unwrap().push(f);
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
        Behaviour::Raw(bytes) => {
            w.write_all(b"OK 1073741824\n").ok()?;
            read_head(&mut reader, lines);
            let _ = w.write_all(&bytes);
            None
        }
        Behaviour::Http(status, body) => {
            w.write_all(b"OK 1073741824\n").ok()?;
            read_head(&mut reader, lines);
            let _ = write!(
                w,
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            None
        }
    }
}
