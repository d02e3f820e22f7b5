//! A fake hybrid vsock for the unit tests: what Firecracker or
//! vhost-device-vsock expose on the host, with a chosen behaviour after
//! `CONNECT PORT\n`.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug)]
pub enum Behaviour {
    /// `OK`, then answer one HTTP request with this status and body.
    Http(u16, String),
    /// `OK`, then write these bytes and close.
    Raw(Vec<u8>),
    /// `OK`, then echo bytes back.
    Echo,
    /// Close without a reply: nothing listens on the guest port.
    Refuse,
    /// Write this and close.
    Reply(String),
    /// Accept, read the CONNECT line, never answer.
    Hang,
}

pub struct FakeVsock {
    _dir: tempfile::TempDir,
    path: PathBuf,
    /// The CONNECT lines, then each HTTP request line, in order.
    lines: Arc<Mutex<Vec<String>>>,
}

impl FakeVsock {
    pub fn start(behaviour: Behaviour) -> FakeVsock {
        let dir = tempfile::Builder::new()
            .prefix("fv")
            .tempdir_in("/tmp")
            .unwrap();
        let path = dir.path().join("v.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let l = lines.clone();
        // The thread ends with the test process; held connections stay
        // open until then, as a hung VMM would keep them.
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                if let Some(c) = serve(conn, behaviour.clone(), &l) {
                    held.push(c);
                }
            }
        });
        FakeVsock {
            _dir: dir,
            path,
            lines,
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
}

fn serve(conn: UnixStream, behaviour: Behaviour, lines: &Mutex<Vec<String>>) -> Option<UnixStream> {
    let mut reader = BufReader::new(conn.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    lines.lock().unwrap().push(line.trim_end().to_string());
    let mut w = &conn;
    let read_head = |reader: &mut BufReader<UnixStream>| {
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
    };
    match behaviour {
        Behaviour::Refuse => None,
        Behaviour::Hang => Some(conn),
        Behaviour::Reply(text) => {
            let _ = w.write_all(text.as_bytes());
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
            read_head(&mut reader);
            let _ = w.write_all(&bytes);
            None
        }
        Behaviour::Http(status, body) => {
            w.write_all(b"OK 1073741824\n").ok()?;
            read_head(&mut reader);
            let _ = write!(
                w,
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            None
        }
    }
}
