//! A guest's serial console, bounded: the VMM writes into a FIFO, a small
//! banger-owned logger process copies it into `console.log` and keeps that
//! file under a cap, and everything that shows console text reads a
//! bounded tail with control characters replaced.
//!
//! Why a FIFO and a logger: QEMU's file chardev and Firecracker's
//! `serial_out_path` both open a path and write to it for as long as the
//! guest runs, with no size limit, and a guest can print gigabytes.
//! Truncating or rotating a file another process keeps writing cannot
//! bound it between two looks; reading every byte as it comes can. A FIFO
//! is a path either VMM opens like a file (also from inside a chroot, as
//! root or not), and the writer blocks rather than losing output when the
//! logger is briefly behind. The logger runs as the driver's hidden
//! `console-log` verb (same binary, no new program to install), in its own
//! session, and ends when the VMM it was told about dies.
//!
//! The cap is split in two halves: when `console.log` reaches half of it,
//! it becomes `console.log.1` (replacing the older one) and a new
//! `console.log` starts, so the two together never hold more than the cap
//! and the newest output is always kept.

use crate::error::{io, Error, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

/// The default cap of a VM's console log (bundle key `console_log_max_mib`).
pub const DEFAULT_MAX_MIB: u32 = 16;

/// The hidden verb both drivers run the logger as.
pub const VERB: &str = "console-log";

/// Where a VM's VMM writes its console: `STATE/vms/ID/console.fifo`,
/// beside the default console log and on the filesystem of a Firecracker
/// jail (which hard-links it in).
pub fn fifo_path(id: &str) -> PathBuf {
    crate::paths::vms_dir().join(id).join("console.fifo")
}

/// Where the driver notes the logger of a running VM, so the cleanup
/// after its VMM is gone knows the logger is gone too.
fn pid_path(fifo: &Path) -> PathBuf {
    fifo.with_file_name("console.pid")
}

/// The logger's pid file, a record like the others.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct LoggerPid {
    schema: u64,
    pid: u32,
    start_time: u64,
}

/// After VM `id`'s VMM is gone: its logger drains and ends by itself
/// (it watches the VMM twice a second); wait for that, kill a logger that
/// does not, and remove the pid file. So a stop leaves no process.
pub fn end_logger(id: &str) {
    let path = pid_path(&fifo_path(id));
    if let Ok(Some(p)) = crate::state::load::<LoggerPid>(&path) {
        if !crate::proc::wait_gone(p.pid, p.start_time, Duration::from_secs(5)) {
            crate::proc::terminate(p.pid, p.start_time);
        }
    }
    let _ = std::fs::remove_file(&path);
}

/// The cap from the bundle and config, in bytes.
pub fn max_bytes() -> u64 {
    let mib = crate::config::Bundle::load()
        .map(|b| b.console_log_max_mib)
        .unwrap_or(DEFAULT_MAX_MIB);
    u64::from(mib.max(1)) << 20
}

/// The hidden `console-log` verb's arguments (both drivers take it).
#[derive(clap::Args, Debug, Clone)]
pub struct LogArgs {
    #[arg(long)]
    pub fifo: PathBuf,
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long)]
    pub max_bytes: u64,
}

/// The driver's handle on a running logger.
#[derive(Debug)]
pub struct Logger {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    fifo: PathBuf,
}

impl Logger {
    /// Make a fresh FIFO at `fifo` and start the logger copying it into
    /// `log`; returns once the logger has the FIFO open, so the VMM's open
    /// does not wait. `stderr` takes the logger's own complaints.
    pub fn start(fifo: &Path, log: &Path, max_bytes: u64, stderr: Option<File>) -> Result<Logger> {
        if let Some(dir) = fifo.parent() {
            crate::paths::ensure_dir(dir)?;
        }
        match std::fs::remove_file(fifo) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io(format!("removing {}", fifo.display()), e))
            }
            _ => {}
        }
        nix::unistd::mkfifo(fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .map_err(|e| io(format!("making {}", fifo.display()), e.into()))?;
        if let Some(dir) = log.parent() {
            crate::paths::ensure_dir(dir)?;
        }
        let exe = std::env::current_exe().map_err(|e| io("finding this program", e))?;
        let mut cmd = Command::new(exe);
        cmd.arg(VERB)
            .arg("--fifo")
            .arg(fifo)
            .arg("--out")
            .arg(log)
            .arg("--max-bytes")
            .arg(max_bytes.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr.map_or_else(Stdio::null, Stdio::from));
        // Its own session: a Ctrl-C at the terminal that ran the start
        // must not end the console of a VM that keeps running.
        // SAFETY: the closure runs between fork and exec, where only
        // async-signal-safe calls are sound; setsid(2) is one, and nix's
        // wrapper allocates nothing.
        unsafe {
            cmd.pre_exec(|| Ok(nix::unistd::setsid().map(drop)?));
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| io("starting the console logger", e))?;
        let stdin = child.stdin.take();
        let mut ready = String::new();
        let out = child.stdout.take().expect("piped");
        let _ = BufReader::new(out).take(64).read_line(&mut ready);
        let logger = Logger {
            child: Some(child),
            stdin,
            fifo: fifo.to_path_buf(),
        };
        if ready.trim() != "ready" {
            return Err(Error::failed(format!(
                "the console logger for {} did not start",
                log.display()
            )));
        }
        Ok(logger)
    }

    /// The FIFO the VMM writes to (root's, 0600: a VMM run as another
    /// user needs it chowned to that user).
    pub fn fifo(&self) -> &Path {
        &self.fifo
    }

    /// Tell the logger which VMM it serves (it ends when that one does)
    /// and let it run on its own.
    pub fn watch(mut self, pid: u32, start_time: u64) {
        if let Some(c) = &self.child {
            let me = c.id();
            if let Some(st) = crate::proc::start_time(me) {
                let rec = LoggerPid {
                    schema: crate::state::SCHEMA,
                    pid: me,
                    start_time: st,
                };
                if let Err(e) = crate::state::store(&pid_path(&self.fifo), &rec) {
                    eprintln!("warning: {e}");
                }
            }
        }
        if let Some(mut s) = self.stdin.take() {
            // A logger that died must not take this command with it.
            let _ = crate::proc::ignore_signal(nix::sys::signal::Signal::SIGPIPE);
            let _ = writeln!(s, "{pid} {start_time}");
            let _ = crate::proc::default_signal(nix::sys::signal::Signal::SIGPIPE);
        }
        // Not waited for: it outlives this command, like the VMM.
        self.child = None;
    }
}

impl Drop for Logger {
    /// A start that failed: the logger hears its stdin close and ends.
    fn drop(&mut self) {
        drop(self.stdin.take());
        if let Some(mut c) = self.child.take() {
            let ended = crate::wait::poll(Duration::from_secs(2), || {
                c.try_wait().ok().flatten().map(drop)
            });
            if ended.is_none() {
                let _ = c.kill();
                let _ = c.wait();
            }
            let _ = std::fs::remove_file(&self.fifo);
        }
    }
}

/// The logger itself (the drivers' hidden `console-log` verb): copy the
/// FIFO into `out` under the cap for as long as the VMM lives. Its stdin
/// carries `PID START_TIME` of the VMM; closed before that, the start
/// failed and it ends.
pub fn run_logger(args: &LogArgs) -> Result<i32> {
    let (fifo, out, max_bytes) = (&args.fifo, &args.out, args.max_bytes);
    // Read and write: the open never waits for a writer, and a VMM that
    // closes and reopens its console (Firecracker's stand-in does) is no
    // end of file. The VMM's own death is. Non-blocking, so a drain stops.
    let pipe = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(fifo)
        .map_err(|e| io(format!("opening {}", fifo.display()), e))?;
    let mut log = Capped::open(out, max_bytes)?;
    {
        let mut so = std::io::stdout().lock();
        let _ = writeln!(so, "ready");
        let _ = so.flush();
    }
    let stdin = std::io::stdin();
    let mut told = String::new();
    let mut stdin_open = true;
    let mut vmm: Option<(u32, u64)> = None;
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let (pipe_ready, stdin_ready) = {
            let mut fds = vec![PollFd::new(pipe.as_fd(), PollFlags::POLLIN)];
            let si = stdin.as_fd();
            if stdin_open {
                fds.push(PollFd::new(si, PollFlags::POLLIN));
            }
            // With a VMM to watch, look at it twice a second.
            let timeout = if vmm.is_some() {
                PollTimeout::from(500u16)
            } else {
                PollTimeout::NONE
            };
            match poll(&mut fds, timeout) {
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(io("waiting for console output", e.into())),
                Ok(_) => {}
            }
            let any = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
            (any(&fds[0]), fds.get(1).is_some_and(any))
        };
        if pipe_ready {
            copy(&pipe, &mut log, &mut buf)?;
        }
        if stdin_ready {
            let mut b = [0u8; 64];
            let n = nix::unistd::read(&stdin, &mut b).unwrap_or(0);
            if n == 0 {
                stdin_open = false;
                if vmm.is_none() {
                    // The start gave up before naming its VMM.
                    while copy(&pipe, &mut log, &mut buf)? == Got::Data {}
                    return Ok(0);
                }
            } else if told.len() < 64 {
                told.push_str(&String::from_utf8_lossy(&b[..n]));
                let mut it = told.split_whitespace().map(str::parse::<u64>);
                if let (Some(Ok(pid)), Some(Ok(st))) = (it.next(), it.next()) {
                    vmm = u32::try_from(pid).ok().map(|p| (p, st));
                }
            }
        }
        if let Some((pid, st)) = vmm {
            if !crate::proc::is_alive(pid, st) {
                // Whatever it wrote before it died, then done.
                while copy(&pipe, &mut log, &mut buf)? == Got::Data {}
                return Ok(0);
            }
        }
    }
}

#[derive(Debug, PartialEq)]
enum Got {
    Data,
    /// Nothing right now (non-blocking).
    Empty,
}

/// One read from the FIFO into the log.
fn copy(pipe: &File, log: &mut Capped, buf: &mut [u8]) -> Result<Got> {
    match nix::unistd::read(pipe, buf) {
        Ok(0) => Ok(Got::Empty),
        Ok(n) => {
            log.write(&buf[..n])?;
            Ok(Got::Data)
        }
        Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => Ok(Got::Empty),
        Err(e) => Err(io("reading the console", e.into())),
    }
}

/// `console.log` kept under half the cap, the older half in `.1`.
struct Capped {
    path: PathBuf,
    file: File,
    size: u64,
    half: u64,
}

fn open_log(path: &Path, new: bool) -> std::io::Result<File> {
    let mut o = OpenOptions::new();
    o.append(true).mode(0o600).custom_flags(libc::O_NOFOLLOW);
    if new {
        o.create_new(true);
    } else {
        o.create(true);
    }
    o.open(path)
}

impl Capped {
    fn open(path: &Path, max_bytes: u64) -> Result<Capped> {
        let file =
            open_log(path, false).map_err(|e| io(format!("opening {}", path.display()), e))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(Capped {
            path: path.to_path_buf(),
            file,
            size,
            half: (max_bytes / 2).max(4096),
        })
    }

    fn write(&mut self, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            if self.size >= self.half {
                self.rotate()?;
            }
            let room = usize::try_from(self.half - self.size).unwrap_or(usize::MAX);
            let n = room.min(data.len());
            self.file
                .write_all(&data[..n])
                .map_err(|e| io(format!("writing {}", self.path.display()), e))?;
            self.size += n as u64;
            data = &data[n..];
        }
        Ok(())
    }

    fn rotate(&mut self) -> Result<()> {
        let old = rotated(&self.path);
        std::fs::rename(&self.path, &old)
            .map_err(|e| io(format!("rotating {}", self.path.display()), e))?;
        self.file = open_log(&self.path, true)
            .map_err(|e| io(format!("opening {}", self.path.display()), e))?;
        self.size = 0;
        Ok(())
    }
}

/// `console.log.1`.
pub fn rotated(log: &Path) -> PathBuf {
    let mut name = log.file_name().unwrap_or_default().to_os_string();
    name.push(".1");
    log.with_file_name(name)
}

/// The last `max` bytes of a file (fewer if it is shorter), read without
/// following a symlink; None when it cannot be opened.
pub fn tail(path: &Path, max: u64) -> Option<Vec<u8>> {
    let mut f = crate::state::open_nofollow(path).ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(max))).ok()?;
    let mut out = Vec::new();
    f.take(max).read_to_end(&mut out).ok()?;
    Some(out)
}

/// Console bytes made safe for a terminal: valid UTF-8 kept, every control
/// character but newline and tab shown as `?` (so no escape sequence
/// reaches the terminal), `\r\n` read as a newline, bytes that are not
/// UTF-8 as U+FFFD. Fed in chunks: a character split between two chunks
/// is carried over.
#[derive(Debug, Default)]
pub struct Sanitizer {
    carry: Vec<u8>,
}

impl Sanitizer {
    pub fn push(&mut self, bytes: &[u8]) -> String {
        let mut data = std::mem::take(&mut self.carry);
        data.extend_from_slice(bytes);
        // A `\r` at the end may be half of a `\r\n`.
        if data.last() == Some(&b'\r') {
            data.pop();
            self.carry.push(b'\r');
        }
        let mut out = String::with_capacity(data.len());
        let mut rest: &[u8] = &data;
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    clean_into(s, &mut out);
                    break;
                }
                Err(e) => {
                    let (good, bad) = rest.split_at(e.valid_up_to());
                    clean_into(std::str::from_utf8(good).unwrap_or_default(), &mut out);
                    match e.error_len() {
                        Some(n) => {
                            out.push('\u{FFFD}');
                            rest = &bad[n..];
                        }
                        None => {
                            // An incomplete character at the end.
                            let mut c = bad.to_vec();
                            c.append(&mut self.carry);
                            self.carry = c;
                            break;
                        }
                    }
                }
            }
        }
        out
    }

    /// The end of the input: what was carried, shown safely.
    pub fn finish(&mut self) -> String {
        let carry = std::mem::take(&mut self.carry);
        match carry.as_slice() {
            [] => String::new(),
            [b'\r'] => "?".into(),
            _ if carry.ends_with(b"\r") => "\u{FFFD}?".into(),
            _ => "\u{FFFD}".into(),
        }
    }
}

fn clean_into(s: &str, out: &mut String) {
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' | '\t' => out.push(c),
            '\r' if chars.peek() == Some(&'\n') => {}
            c if c.is_control() => out.push('?'),
            c => out.push(c),
        }
    }
}

/// `Sanitizer` over a whole buffer.
pub fn sanitize(bytes: &[u8]) -> String {
    let mut s = Sanitizer::default();
    let mut out = s.push(bytes);
    out.push_str(&s.finish());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_controls_never_pass() {
        let raw = b"ok\r\n\x1b[2J\x1b]0;title\x07bell\x9b\xc2\x9bcsi\tdone\r";
        let s = sanitize(raw);
        assert!(!s.contains('\x1b') && !s.contains('\x07') && !s.contains('\u{9b}'));
        assert_eq!(s, "ok\n?[2J?]0;title?bell\u{FFFD}?csi\tdone?");
    }

    #[test]
    fn a_character_split_between_chunks_survives() {
        let mut s = Sanitizer::default();
        let e = "é".as_bytes();
        assert_eq!(s.push(&[b'a', e[0]]), "a");
        assert_eq!(s.push(&[e[1], b'b']), "éb");
        assert_eq!(s.push(&[e[0]]), "");
        assert_eq!(s.finish(), "\u{FFFD}");
        assert_eq!(s.push(b"line\r"), "line");
        assert_eq!(s.push(b"\nnext\r"), "\nnext");
        assert_eq!(s.finish(), "?");
    }

    #[test]
    fn the_log_rotates_at_half_the_cap() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("console.log");
        let mut c = Capped::open(&p, 16 << 10).unwrap();
        for i in 0..100u8 {
            c.write(&[b'a' + i % 26; 1000]).unwrap();
        }
        let now = std::fs::metadata(&p).unwrap().len();
        let old = std::fs::metadata(rotated(&p)).unwrap().len();
        assert!(now <= 8 << 10 && old == 8 << 10, "{now} {old}");
        // The newest bytes are at the end of console.log.
        let last = std::fs::read(&p).unwrap();
        assert_eq!(*last.last().unwrap(), b'a' + 99 % 26);
    }

    #[test]
    fn tail_reads_only_the_end() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("f");
        std::fs::write(&p, b"0123456789").unwrap();
        assert_eq!(tail(&p, 4).unwrap(), b"6789");
        assert_eq!(tail(&p, 100).unwrap(), b"0123456789");
        assert!(tail(&t.path().join("none"), 4).is_none());
    }
}
