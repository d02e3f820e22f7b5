//! A minimal QMP client: one connection per operation, newline-delimited
//! JSON, capabilities negotiated, asynchronous events skipped.

use banger_lib::{Error, Result};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

fn request_text(command: &str, args: Option<Value>) -> String {
    let mut req = json!({ "execute": command });
    if let Some(a) = args {
        req["arguments"] = a;
    }
    let mut text = req.to_string();
    text.push('\n');
    text
}

/// Write all of `data` on `sock`, the first bytes carrying `fd`
/// (SCM_RIGHTS). The control message is laid out by hand, as the CMSG_*
/// macros would: a `cmsghdr` (length, level, type), then the descriptor,
/// padded to the word size.
fn send_with_fd(
    sock: &UnixStream,
    data: &[u8],
    fd: std::os::fd::BorrowedFd,
) -> std::io::Result<()> {
    use nix::libc;
    use std::os::fd::AsRawFd;
    let word = std::mem::size_of::<usize>();
    let header = std::mem::size_of::<libc::cmsghdr>();
    let int = std::mem::size_of::<libc::c_int>();
    let len = header + int;
    let space = header + int.div_ceil(word) * word;
    let mut control = Vec::with_capacity(space);
    control.extend_from_slice(&len.to_ne_bytes());
    control.extend_from_slice(&libc::SOL_SOCKET.to_ne_bytes());
    control.extend_from_slice(&libc::SCM_RIGHTS.to_ne_bytes());
    control.extend_from_slice(&fd.as_raw_fd().to_ne_bytes());
    control.resize(space, 0);
    let mut iov = libc::iovec {
        iov_base: data.as_ptr().cast_mut().cast(),
        iov_len: data.len(),
    };
    // SAFETY: msghdr is plain data, for which all zeroes is a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: every pointer in msg points into iov, data and control,
    // which outlive the call; the kernel only reads them.
    let sent = unsafe { libc::sendmsg(sock.as_raw_fd(), &raw const msg, libc::MSG_NOSIGNAL) };
    if sent < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut w = sock;
    w.write_all(&data[sent as usize..])
}

/// The longest QMP line read: replies banger asks for are a few hundred
/// bytes; a runaway one must not grow without bound.
const MAX_LINE: u64 = 1 << 20;

pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    /// Connect, read the greeting and leave capabilities negotiation mode.
    pub fn connect(path: &Path, timeout: Duration) -> Result<Qmp> {
        let fail = |e: std::io::Error| Error::failed(format!("QMP socket {}: {e}", path.display()));
        let stream = UnixStream::connect(path).map_err(fail)?;
        stream.set_read_timeout(Some(timeout)).map_err(fail)?;
        stream.set_write_timeout(Some(timeout)).map_err(fail)?;
        let writer = stream.try_clone().map_err(fail)?;
        let mut q = Qmp {
            reader: BufReader::new(stream),
            writer,
        };
        let greeting = q.read()?;
        if greeting.get("QMP").is_none() {
            return Err(Error::failed(format!(
                "{} is not a QMP socket (greeting {greeting})",
                path.display()
            )));
        }
        q.execute("qmp_capabilities", None)?;
        Ok(q)
    }

    fn read(&mut self) -> Result<Value> {
        let mut line = String::new();
        let n = std::io::Read::take(&mut self.reader, MAX_LINE)
            .read_line(&mut line)
            .map_err(|e| Error::failed(format!("reading from QMP: {e}")))?;
        if n == 0 {
            return Err(Error::failed("QMP closed the connection"));
        }
        if !line.ends_with('\n') && n as u64 == MAX_LINE {
            return Err(Error::failed(format!(
                "QMP sent a line over {MAX_LINE} bytes; not reading on"
            )));
        }
        serde_json::from_str(&line)
            .map_err(|e| Error::failed(format!("QMP sent bad JSON ({e}): {}", line.trim())))
    }

    /// Run a command; its `return` value, or its `error` as a failure.
    pub fn execute(&mut self, command: &str, args: Option<Value>) -> Result<Value> {
        let text = request_text(command, args);
        self.writer
            .write_all(text.as_bytes())
            .map_err(|e| Error::failed(format!("writing to QMP: {e}")))?;
        self.reply(command)
    }

    /// Run a command with `fd` passed along (SCM_RIGHTS), as `getfd`
    /// takes it: QEMU, which opens nothing by path, gets a file this way.
    pub fn execute_with_fd(
        &mut self,
        command: &str,
        args: Option<Value>,
        fd: std::os::fd::BorrowedFd,
    ) -> Result<Value> {
        let text = request_text(command, args);
        send_with_fd(&self.writer, text.as_bytes(), fd)
            .map_err(|e| Error::failed(format!("writing to QMP (with a descriptor): {e}")))?;
        self.reply(command)
    }

    fn reply(&mut self, command: &str) -> Result<Value> {
        loop {
            let reply = self.read()?;
            if let Some(r) = reply.get("return") {
                return Ok(r.clone());
            }
            if let Some(e) = reply.get("error") {
                let desc = e.get("desc").and_then(Value::as_str).unwrap_or("unknown");
                return Err(Error::failed(format!("QMP {command}: {desc}")));
            }
            // Anything else is an event ({"event": ...}): not our answer.
        }
    }

    /// `query-status`'s run state, snake_case (running, paused, shutdown...).
    pub fn run_state(&mut self) -> Result<String> {
        let r = self.execute("query-status", None)?;
        Ok(r.get("status")
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .replace('-', "_"))
    }

    /// `query-version` as `qemu-system-x86_64 --version` says it:
    /// `QEMU emulator version 7.2.19 (Debian 1:7.2+dfsg-7+deb12u18+b3)`.
    pub fn version(&mut self) -> Result<String> {
        let r = self.execute("query-version", None)?;
        let n = |k: &str| r["qemu"][k].as_u64().unwrap_or(0);
        let mut v = format!(
            "QEMU emulator version {}.{}.{}",
            n("major"),
            n("minor"),
            n("micro")
        );
        match r.get("package").and_then(Value::as_str).map(str::trim) {
            Some(p) if !p.is_empty() => v.push_str(&format!(" ({p})")),
            _ => {}
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    /// A fake QMP server answering a script of replies, one per request,
    /// with an event before each to prove events are skipped.
    fn serve(path: &Path, replies: Vec<&'static str>) -> std::thread::JoinHandle<Vec<Value>> {
        let l = UnixListener::bind(path).unwrap();
        std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            let mut w = s.try_clone().unwrap();
            let mut r = BufReader::new(s);
            writeln!(w, r#"{{"QMP": {{"version": {{}}, "capabilities": []}}}}"#).unwrap();
            let mut got = Vec::new();
            for reply in replies {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap() == 0 {
                    break;
                }
                got.push(serde_json::from_str(&line).unwrap());
                writeln!(w, r#"{{"event": "RESUME", "data": {{}}}}"#).unwrap();
                writeln!(w, "{reply}").unwrap();
            }
            got
        })
    }

    #[test]
    fn negotiates_then_runs_commands_skipping_events() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("qmp.sock");
        let server = serve(
            &p,
            vec![
                r#"{"return": {}}"#,
                r#"{"return": {"status": "guest-panicked", "running": false}}"#,
                r#"{"error": {"class": "GenericError", "desc": "no way"}}"#,
                r#"{"return": {"qemu": {"micro": 19, "minor": 2, "major": 7}, "package": "Debian 1:7.2"}}"#,
                r#"{"return": {"qemu": {"micro": 0, "minor": 0, "major": 9}, "package": ""}}"#,
            ],
        );
        let mut q = Qmp::connect(&p, Duration::from_secs(5)).unwrap();
        assert_eq!(q.run_state().unwrap(), "guest_panicked");
        let e = q.execute("stop", None).unwrap_err();
        assert_eq!(e.message, "QMP stop: no way");
        assert_eq!(
            q.version().unwrap(),
            "QEMU emulator version 7.2.19 (Debian 1:7.2)"
        );
        assert_eq!(q.version().unwrap(), "QEMU emulator version 9.0.0");
        drop(q);
        let got = server.join().unwrap();
        assert_eq!(got[0]["execute"], "qmp_capabilities");
        assert_eq!(got[1]["execute"], "query-status");
        assert_eq!(got[2]["execute"], "stop");
    }

    #[test]
    fn an_endless_line_is_cut_at_the_cap() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("qmp.sock");
        let l = UnixListener::bind(&p).unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            // A greeting that never ends.
            let chunk = vec![b'x'; 64 << 10];
            while s.write_all(&chunk).is_ok() {}
        });
        let e = Qmp::connect(&p, Duration::from_secs(5)).err().unwrap();
        assert!(e.message.contains("over 1048576 bytes"), "{}", e.message);
    }

    #[test]
    fn missing_socket_is_a_clear_failure() {
        let e = Qmp::connect(Path::new("/nonexistent/qmp.sock"), Duration::from_secs(1))
            .err()
            .unwrap();
        assert!(e.message.contains("/nonexistent/qmp.sock"), "{}", e.message);
    }
}
