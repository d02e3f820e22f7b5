//! fake-firecracker: Firecracker v1.16.1's command line and API, without a
//! guest. See banger_testkit::fakefc for what it checks and the
//! environment variables that make it fail.

use banger_testkit::fakefc::{env, openapi::Api, vmm::Effect, vmm::Vmm, vmm::VERSION};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

struct Args {
    api_sock: PathBuf,
    id: String,
    log_path: Option<PathBuf>,
}

/// Firecracker exits 153 on a bad command line.
const ARG_ERROR: i32 = 153;

fn parse_args() -> Args {
    const WITH_VALUE: &[&str] = &[
        "api-sock",
        "id",
        "seccomp-filter",
        "start-time-us",
        "start-time-cpu-us",
        "parent-cpu-time-us",
        "config-file",
        "metadata",
        "log-path",
        "level",
        "module",
        "metrics-path",
        "describe-snapshot",
        "http-api-max-payload-size",
        "mmds-size-limit",
    ];
    const FLAGS: &[&str] = &[
        "no-seccomp",
        "no-api",
        "show-level",
        "show-log-origin",
        "boot-timer",
        "snapshot-version",
        "enable-pci",
    ];
    let mut a = Args {
        api_sock: PathBuf::from("/run/firecracker.socket"),
        id: "anonymous-instance".into(),
        log_path: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let Some(name) = arg.strip_prefix("--") else {
            arg_error(&format!("Found argument '{arg}' which wasn't expected"));
        };
        if name == "version" {
            // FAKE_FC_VERSION: pretend to be another release (version checks).
            let v = std::env::var("FAKE_FC_VERSION").unwrap_or_else(|_| VERSION.into());
            println!("Firecracker v{v}\n");
            std::process::exit(0);
        }
        if name == "help" {
            println!("fake-firecracker: Firecracker v{VERSION}'s command line, for tests");
            std::process::exit(0);
        }
        if FLAGS.contains(&name) {
            continue;
        }
        if !WITH_VALUE.contains(&name) {
            arg_error(&format!("Found argument '{arg}' which wasn't expected"));
        }
        let Some(v) = it.next() else {
            arg_error(&format!("The argument '{arg}' requires a value"));
        };
        match name {
            "api-sock" => a.api_sock = PathBuf::from(v),
            "id" => a.id = v,
            "log-path" => a.log_path = Some(PathBuf::from(v)),
            _ => {}
        }
    }
    let id_ok =
        (1..=64).contains(&a.id.len()) && a.id.chars().all(|c| c == '-' || c.is_alphanumeric());
    if !id_ok {
        arg_error(&format!("Invalid instance ID: {:?}", a.id));
    }
    a
}

fn arg_error(msg: &str) -> ! {
    eprintln!("Arguments parsing error: {msg}");
    std::process::exit(ARG_ERROR)
}

/// Where log lines go: the logger's file once configured, else stdout
/// (as in Firecracker).
struct Logger {
    id: String,
    file: Option<std::fs::File>,
}

impl Logger {
    fn log(&mut self, msg: &str) {
        let line = format!(
            "{} [{}:fc_api] {msg}\n",
            banger_lib::proc::now_rfc3339(),
            self.id
        );
        match &mut self.file {
            Some(f) => {
                let _ = f.write_all(line.as_bytes());
            }
            None => {
                let _ = std::io::stdout().write_all(line.as_bytes());
                let _ = std::io::stdout().flush();
            }
        }
    }

    fn set_path(&mut self, p: &str) {
        // Firecracker opens it without O_APPEND or truncation.
        self.file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(p)
            .ok();
    }
}

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v == "1")
}

/// Whether a request matches one of the comma-separated patterns in `var`.
fn matches(var: &str, method: &str, path: &str, body: &str) -> bool {
    let Ok(patterns) = std::env::var(var) else {
        return false;
    };
    patterns.split(',').any(|p| {
        let mut w = p.split_whitespace();
        let (Some(m), Some(pp)) = (w.next(), w.next()) else {
            return false;
        };
        m.eq_ignore_ascii_case(method) && pp == path && w.all(|word| body.contains(word))
    })
}

fn append_line(var: &str, line: &str) {
    if let Some(p) = std::env::var_os(var) {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
        {
            let _ = writeln!(f, "{line}");
        }
    }
}

fn slow() {
    if let Some(ms) = std::env::var(env::SLOW_MS)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

fn hang() -> ! {
    loop {
        std::thread::park();
    }
}

struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
    chunked: bool,
}

/// Read one HTTP/1.1 request; None at a clean end of the connection.
fn read_request(r: &mut impl BufRead) -> std::io::Result<Option<Request>> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let mut len = 0usize;
    let mut chunked = false;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            let k = k.trim().to_ascii_lowercase();
            if k == "content-length" {
                len = v.trim().parse().unwrap_or(0);
            }
            if k == "transfer-encoding" {
                chunked = true;
            }
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    Ok(Some(Request {
        method,
        path,
        body,
        chunked,
    }))
}

fn respond(w: &mut impl Write, status: u16, body: Option<&Value>) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        204 => "No Content",
        _ => "Bad Request",
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nServer: Firecracker API\r\nConnection: keep-alive\r\n"
    );
    match body {
        Some(b) => {
            let text = b.to_string();
            out.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{text}",
                text.len()
            ));
        }
        None => out.push_str("\r\n"),
    }
    w.write_all(out.as_bytes())?;
    w.flush()
}

struct Server {
    api: Api,
    vmm: Arc<Mutex<Vmm>>,
    logger: Logger,
    agent_port: u32,
    started: std::time::Instant,
}

impl Server {
    /// One request: record it, check it, maybe inject a failure, run it.
    /// Returns the reply and what to do after sending it.
    fn handle(&mut self, req: &Request) -> (u16, Option<Value>, Effect) {
        let text = String::from_utf8_lossy(&req.body).to_string();
        let body: Option<Value> = if text.trim().is_empty() {
            None
        } else {
            match serde_json::from_str(&text) {
                Ok(v) => Some(v),
                Err(e) => {
                    let msg = format!("{} {}: body is not JSON: {e}", req.method, req.path);
                    append_line(env::VIOLATIONS, &msg);
                    return (400, Some(json!({ "fault_message": msg })), Effect::None);
                }
            }
        };
        append_line(
            env::REQUESTS,
            &json!({"method": req.method, "path": req.path, "body": body}).to_string(),
        );
        self.logger.log(&format!(
            "The API server received a {} request on \"{}\".",
            req.method, req.path
        ));
        if req.chunked {
            let msg = format!(
                "{} {}: chunked bodies are not supported by Firecracker's API server",
                req.method, req.path
            );
            append_line(env::VIOLATIONS, &msg);
            return (400, Some(json!({ "fault_message": msg })), Effect::None);
        }
        let op = match self.api.check(&req.method, &req.path, body.as_ref()) {
            Ok(op) => op,
            Err(e) => {
                append_line(
                    env::VIOLATIONS,
                    &format!("{} {}: {e}", req.method, req.path),
                );
                return (400, Some(json!({ "fault_message": e })), Effect::None);
            }
        };
        slow();
        if matches(env::DIE, &req.method, &req.path, &text) {
            self.logger.log("fake-firecracker: dying as told");
            std::process::exit(1);
        }
        if matches(env::HANG, &req.method, &req.path, &text) {
            self.logger.log("fake-firecracker: hanging as told");
            hang();
        }
        if matches(env::FAIL, &req.method, &req.path, &text) {
            let msg = format!("injected failure for {} {}", req.method, req.path);
            return (400, Some(json!({ "fault_message": msg })), Effect::None);
        }
        let mut vmm = self.vmm.lock().unwrap();
        let reply = vmm.handle(&req.method, &op, body.as_ref());
        if reply.status == 204 && op.template == "/logger" {
            if let Some(p) = body.as_ref().and_then(|b| b["log_path"].as_str()) {
                self.logger.set_path(p);
            }
        }
        if let Some(listener) = vmm.vsock_listener.take() {
            let vmm = self.vmm.clone();
            let (port, started) = (self.agent_port, self.started);
            std::thread::spawn(move || serve_vsock(listener, vmm, port, started));
        }
        if reply.status >= 400 {
            if let Some(b) = &reply.body {
                self.logger.log(&format!(
                    "Received Error. Status code: 400 Bad Request. Message: {}",
                    b["fault_message"]
                ));
            }
        }
        (reply.status, reply.body, reply.effect)
    }

    fn after(&mut self, effect: Effect) {
        match effect {
            Effect::None => {}
            Effect::Started => {
                let (out, args) = {
                    let v = self.vmm.lock().unwrap();
                    let args = v
                        .boot_source
                        .as_ref()
                        .and_then(|b| b["boot_args"].as_str())
                        .unwrap_or("")
                        .to_string();
                    (v.serial_out.clone(), args)
                };
                let banner = format!(
                    "[    0.000000] Linux version 6.1.0-fake (fake-firecracker)\n[    0.000000] Command line: {args}\nfake login: \n"
                );
                match out {
                    Some(p) => {
                        // Firecracker opens it without O_APPEND or truncation.
                        if let Ok(mut f) = std::fs::OpenOptions::new()
                            .create(true)
                            .truncate(false)
                            .write(true)
                            .open(p)
                        {
                            let _ = f.write_all(banner.as_bytes());
                        }
                    }
                    None => {
                        print!("{banner}");
                        let _ = std::io::stdout().flush();
                    }
                }
                self.logger
                    .log("Successfully started microvm that was configured from one single json");
                if env_flag(env::EXIT_AFTER_START) {
                    self.logger
                        .log("fake-firecracker: the guest crashed (as told)");
                    std::process::exit(0);
                }
            }
            Effect::CtrlAltDel => {
                if env_flag(env::IGNORE_CTRL_ALT_DEL) {
                    self.logger
                        .log("fake-firecracker: the guest ignores Ctrl+Alt+Del");
                } else if self.vmm.lock().unwrap().guest_halted {
                    self.logger
                        .log("fake-firecracker: the guest is halted, nothing handles Ctrl+Alt+Del");
                } else {
                    self.logger.log("Vmm is stopping.");
                    // Like Firecracker, the API socket stays behind.
                    std::process::exit(0);
                }
            }
        }
    }
}

/// The guest side of the hybrid vsock: a tiny banger agent on one port.
fn serve_vsock(
    listener: UnixListener,
    vmm: Arc<Mutex<Vmm>>,
    port: u32,
    started: std::time::Instant,
) {
    for conn in listener.incoming() {
        let Ok(conn) = conn else { return };
        let vmm = vmm.clone();
        std::thread::spawn(move || {
            let _ = vsock_conn(conn, vmm, port, started);
        });
    }
}

fn vsock_conn(
    conn: UnixStream,
    vmm: Arc<Mutex<Vmm>>,
    port: u32,
    started: std::time::Instant,
) -> std::io::Result<()> {
    let mut r = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let asked: Option<u32> = line
        .strip_prefix("CONNECT ")
        .and_then(|p| p.trim().parse().ok());
    let (up, id) = {
        let v = vmm.lock().unwrap();
        (
            v.state == banger_testkit::fakefc::vmm::State::Running && !v.guest_halted,
            v.id.clone(),
        )
    };
    let mode = std::env::var(env::AGENT).unwrap_or_default();
    if asked != Some(port) || !up || mode == "absent" {
        // Nothing listens on that port in the guest: Firecracker closes.
        return Ok(());
    }
    let mut w = &conn;
    w.write_all(b"OK 1073741824\n")?;
    if mode == "hang" {
        // The guest took the connection but its agent never answers.
        let mut sink = Vec::new();
        let _ = r.read_to_end(&mut sink);
        return Ok(());
    }
    while let Some(req) = read_request(&mut r)? {
        append_line(
            env::REQUESTS,
            &json!({"method": req.method, "path": req.path, "agent": true,
                    "body": serde_json::from_slice::<Value>(&req.body).unwrap_or(Value::Null)})
            .to_string(),
        );
        slow();
        let ignore = mode == "ignore_shutdown";
        let (status, body, after) = match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/healthz") => (
                200,
                json!({"status": "ok", "hostname": id, "uptime_s": started.elapsed().as_secs(),
                       "version": "fake"}),
                None,
            ),
            ("POST", "/sync") => (200, json!({"status": "ok", "synced": true}), None),
            ("POST", "/identity") if mode == "refuse_identity" => (
                500,
                json!({"status": "error", "step": "hostkeys", "error": "exit 1: ssh-keygen: no"}),
                None,
            ),
            // An agent from before host_key: serde's deny_unknown_fields.
            ("POST", "/identity")
                if mode == "old_identity"
                    && serde_json::from_slice::<Value>(&req.body)
                        .is_ok_and(|b| b.get("host_key").is_some()) =>
            {
                (
                    400,
                    json!({"status": "error", "error": "bad identity request: unknown field \
                           `host_key`, expected one of `hostname`, `interface`"}),
                    None,
                )
            }
            ("POST", "/identity") => {
                let b = serde_json::from_slice::<Value>(&req.body).unwrap_or(Value::Null);
                (
                    200,
                    json!({"status": "ok", "hostname": b["hostname"], "address": b["address"],
                           "keys": []}),
                    None,
                )
            }
            ("POST", "/reboot") => (
                202,
                json!({"status": "ok", "action": "reboot"}),
                (!ignore).then_some("reboot"),
            ),
            ("POST", "/shutdown") => (
                202,
                json!({"status": "ok", "action": "poweroff"}),
                (!ignore).then_some("poweroff"),
            ),
            _ => (404, json!({"status": "error", "error": "not found"}), None),
        };
        let text = body.to_string();
        write!(
            w,
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{text}",
            text.len()
        )?;
        w.flush()?;
        match after {
            // A guest rebooting with reboot=k resets through the i8042,
            // and Firecracker exits.
            Some("reboot") => std::process::exit(0),
            // On x86 Firecracker has no ACPI power management: the guest
            // halts and Firecracker lives on.
            Some(_) => {
                vmm.lock().unwrap().guest_halted = true;
                return Ok(());
            }
            None => {}
        }
    }
    Ok(())
}

fn main() {
    let args = parse_args();
    let mut logger = Logger {
        id: args.id.clone(),
        file: None,
    };
    if let Some(p) = &args.log_path {
        logger.set_path(&p.display().to_string());
    }
    if env_flag(env::IGNORE_SIGTERM) {
        let _ = banger_lib::proc::ignore_signal(banger_lib::proc::Signal::SIGTERM);
    }
    let api = match Api::load(&banger_testkit::fakefc::openapi::default_path()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("fake-firecracker: {e}");
            std::process::exit(1);
        }
    };
    logger.log(&format!("Running Firecracker v{VERSION}"));
    if std::env::var(env::HANG).is_ok_and(|v| v == "startup") {
        hang();
    }
    let listener = match UnixListener::bind(&args.api_sock) {
        Ok(l) => l,
        Err(e) => {
            logger.log(&format!(
                "Failed to open the API socket at: {}. Check that it is not already used. {e}",
                args.api_sock.display()
            ));
            eprintln!("Error: RunWithApi(FailedToBindSocket({e}))");
            std::process::exit(1);
        }
    };
    let mut server = Server {
        api,
        vmm: Arc::new(Mutex::new(Vmm::new(&args.id))),
        logger,
        agent_port: std::env::var(env::AGENT_PORT)
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(52),
        started: std::time::Instant::now(),
    };
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        let Ok(read_half) = conn.try_clone() else {
            continue;
        };
        let mut r = BufReader::new(read_half);
        let mut w = &conn;
        while let Ok(Some(req)) = read_request(&mut r) {
            let (status, body, effect) = server.handle(&req);
            if respond(&mut w, status, body.as_ref()).is_err() {
                break;
            }
            server.after(effect);
        }
    }
}
