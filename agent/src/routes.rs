//! The agent's endpoints: which path takes which method, and the reply.
//!
//! | method | path      | reply                                      |
//! |--------|-----------|--------------------------------------------|
//! | GET    | /healthz  | 200, guest facts (health.rs)               |
//! | GET    | /hostkeys | 200, `{"keys":[...]}`: ssh host keys (hostkeys.rs) |
//! | POST   | /sync     | 200 `{"status":"ok","synced":true}`        |
//! | POST   | /shutdown | 202 `{"status":"ok","action":"poweroff"}`  |
//! | POST   | /reboot   | 202 `{"status":"ok","action":"reboot"}`    |
//! | POST   | /init     | 200 `{"status":"ok","exit":N,"output":..,"truncated":b}` |
//! | POST   | /identity | 200 `{"status":"ok","hostname":..,"address":..,"keys":[...]}` |
//!
//! `/init` takes `{"name","script","env"?}` (init.rs); a body it cannot
//! read is 400. `/identity` takes a snapshot clone's new identity
//! (identity.rs): a bad field is 400 naming it, a step that fails 500
//! `{"status":"error","step":..,"error":..}`.
//! A known path with another method is 405 with `Allow`; anything else 404.

use crate::power::{self, Power, System};
use libc::c_int;
use serde_json::json;

/// (path, the one method it takes)
pub const ROUTES: &[(&str, &str)] = &[
    ("/healthz", "GET"),
    ("/hostkeys", "GET"),
    ("/sync", "POST"),
    ("/shutdown", "POST"),
    ("/reboot", "POST"),
    ("/init", "POST"),
    ("/identity", "POST"),
];

#[derive(Debug, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
    /// The `Allow` header of a 405.
    pub allow: Option<&'static str>,
    /// A signal for init, sent only once the reply has been written: the
    /// host learns the guest accepted before the guest starts going down.
    pub then_signal: Option<c_int>,
}

impl Reply {
    fn bytes(status: u16, body: Vec<u8>) -> Reply {
        Reply {
            status,
            body,
            allow: None,
            then_signal: None,
        }
    }

    pub fn json(status: u16, body: serde_json::Value) -> Reply {
        Reply::bytes(status, body.to_string().into_bytes())
    }

    pub fn error(status: u16) -> Reply {
        Reply::bytes(status, error_body(status))
    }
}

pub fn route(method: &str, target: &str, body: &[u8], sys: &dyn System) -> Reply {
    let path = target.split(['?', '#']).next().unwrap_or("");
    let Some(&(path, allowed)) = ROUTES.iter().find(|(p, _)| *p == path) else {
        return Reply::error(404);
    };
    if method != allowed {
        return Reply {
            allow: Some(allowed),
            ..Reply::error(405)
        };
    }
    match path {
        "/healthz" => Reply::bytes(
            200,
            serde_json::to_vec(&crate::health::collect()).unwrap_or_default(),
        ),
        "/hostkeys" => Reply::bytes(
            200,
            serde_json::to_vec(&crate::hostkeys::collect(std::path::Path::new(
                crate::hostkeys::DIR,
            )))
            .unwrap_or_default(),
        ),
        "/sync" => {
            sys.sync();
            Reply::json(200, json!({"status": "ok", "synced": true}))
        }
        "/shutdown" => power(Power::Poweroff, sys),
        "/reboot" => power(Power::Reboot, sys),
        "/init" => init(body, sys),
        "/identity" => crate::identity::handle(body, sys, &crate::identity::Files::real()),
        _ => Reply::error(404),
    }
}

fn init(body: &[u8], sys: &dyn System) -> Reply {
    let bad = |e: String| Reply::json(400, json!({"status": "error", "error": e}));
    let req: crate::init::InitRequest = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return bad(format!("bad init request: {e}")),
    };
    if let Err(e) = crate::init::check(&req) {
        return bad(e);
    }
    match sys.run_init(&req) {
        Ok(ran) => Reply::json(
            200,
            json!({"status": "ok", "exit": ran.exit,
                   "output": String::from_utf8_lossy(&ran.output), "truncated": ran.truncated}),
        ),
        Err(e) => Reply::json(
            500,
            json!({"status": "error", "error": format!("cannot run {}: {e}", req.name)}),
        ),
    }
}

/// Sync now, and signal init after the reply. A signal we may not send
/// (not root) is refused up front rather than accepted and never done.
fn power(p: Power, sys: &dyn System) -> Reply {
    let sig = power::init_signal(p, sys.under_systemd());
    if let Err(e) = sys.signal_init(0) {
        return Reply::json(
            500,
            json!({"status": "error", "error": format!("cannot signal init (pid 1): {e}")}),
        );
    }
    sys.sync();
    Reply {
        then_signal: Some(sig),
        ..Reply::json(202, json!({"status": "ok", "action": p.name()}))
    }
}

pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

pub fn error_body(status: u16) -> Vec<u8> {
    json!({ "status": "error", "error": reason(status).to_lowercase() })
        .to_string()
        .into_bytes()
}

#[cfg(test)]
pub mod fake {
    //! A guest whose effects are recorded, never done.
    use crate::power::System;
    use std::collections::BTreeMap;
    use std::io;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    pub struct Fake {
        pub systemd: bool,
        /// Signals init refuses (EPERM), as for a non-root agent.
        pub refuse: bool,
        /// What happened, in order; shared with a recording connection.
        pub log: Arc<Mutex<Vec<String>>>,
        /// The env each script ran with, in order.
        pub envs: Arc<Mutex<Vec<BTreeMap<String, String>>>>,
        /// The one effect that fails: "clock", "entropy", or a script's
        /// name (exit 1); `!` and a script's name: it cannot be started.
        pub fail: Option<&'static str>,
    }

    impl Fake {
        pub fn events(&self) -> Vec<String> {
            self.log.lock().unwrap().clone()
        }
    }

    impl System for Fake {
        fn sync(&self) {
            self.log.lock().unwrap().push("sync".into());
        }
        fn under_systemd(&self) -> bool {
            self.systemd
        }
        fn run_init(&self, r: &crate::init::InitRequest) -> io::Result<crate::init::Ran> {
            self.log.lock().unwrap().push(format!("init {}", r.name));
            self.envs.lock().unwrap().push(r.env.clone());
            if self.fail.and_then(|f| f.strip_prefix('!')) == Some(r.name.as_str()) {
                return Err(io::Error::from_raw_os_error(libc::ENOENT));
            }
            if self.fail == Some(r.name.as_str()) {
                return Ok(crate::init::Ran {
                    exit: 1,
                    output: b"boom\n".to_vec(),
                    truncated: false,
                });
            }
            Ok(crate::init::Ran {
                exit: r.script.trim().parse().unwrap_or(0),
                output: r.script.as_bytes().to_vec(),
                truncated: false,
            })
        }
        fn set_clock(&self, unix_ns: u64) -> io::Result<()> {
            self.log.lock().unwrap().push(format!("clock {unix_ns}"));
            if self.fail == Some("clock") {
                return Err(io::Error::from_raw_os_error(libc::EPERM));
            }
            Ok(())
        }
        fn add_entropy(&self, bytes: &[u8]) -> io::Result<()> {
            self.log
                .lock()
                .unwrap()
                .push(format!("entropy {}", bytes.len()));
            if self.fail == Some("entropy") {
                return Err(io::Error::from_raw_os_error(libc::EPERM));
            }
            Ok(())
        }
        fn signal_init(&self, sig: i32) -> io::Result<()> {
            if self.refuse {
                return Err(io::Error::from_raw_os_error(libc::EPERM));
            }
            self.log.lock().unwrap().push(format!("signal {sig}"));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::Fake;
    use super::*;

    #[test]
    fn every_path_takes_one_method_and_405s_the_rest() {
        for (path, allowed) in ROUTES {
            for method in ["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "get"] {
                let sys = Fake::default();
                let r = route(method, path, body_for(path), &sys);
                if method == *allowed {
                    assert!(
                        matches!(r.status, 200 | 202),
                        "{method} {path}: {}",
                        r.status
                    );
                } else {
                    assert_eq!(r.status, 405, "{method} {path}");
                    assert_eq!(r.allow, Some(*allowed));
                    assert_eq!(r.then_signal, None);
                    assert!(sys.events().is_empty(), "{method} {path} did something");
                }
            }
        }
    }

    #[test]
    fn unknown_paths_are_404_for_any_method() {
        for path in ["/", "/healthz/x", "/sync/", "/Shutdown", "shutdown", ""] {
            for method in ["GET", "POST"] {
                let sys = Fake::default();
                let r = route(method, path, BODY, &sys);
                assert_eq!(r.status, 404, "{method} {path:?}");
                assert_eq!(r.allow, None);
                assert!(sys.events().is_empty());
            }
        }
    }

    /// A body every route takes (only /init and /identity read one).
    const BODY: &[u8] = br#"{"name":"x","script":"0"}"#;

    fn body_for(path: &str) -> &'static [u8] {
        match path {
            "/identity" => crate::identity::tests::GOOD.as_bytes(),
            _ => BODY,
        }
    }

    #[test]
    fn init_runs_the_script_and_answers_with_its_exit_and_output() {
        let sys = Fake::default();
        let r = route(
            "POST",
            "/init",
            br#"{"name":"01-a","script":"3","env":{"A":"b"}}"#,
            &sys,
        );
        assert_eq!(r.status, 200);
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            v,
            json!({"status": "ok", "exit": 3, "output": "3", "truncated": false})
        );
        assert_eq!(sys.events(), ["init 01-a"]);
    }

    #[test]
    fn a_bad_init_request_is_400_and_runs_nothing() {
        for body in [
            &b""[..],
            b"{",
            br#"{"name":"a","script":"x","extra":1}"#,
            br#"{"name":"../a","script":"x"}"#,
            br#"{"name":"a","script":"x","env":{"A=B":"c"}}"#,
        ] {
            let sys = Fake::default();
            let r = route("POST", "/init", body, &sys);
            assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(body));
            assert!(sys.events().is_empty());
        }
    }

    #[test]
    fn sync_syncs_and_signals_nobody() {
        let sys = Fake::default();
        let r = route("POST", "/sync", b"", &sys);
        assert_eq!(r.status, 200);
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&r.body).unwrap(),
            json!({"status": "ok", "synced": true})
        );
        assert_eq!(r.then_signal, None);
        assert_eq!(sys.events(), ["sync"]);
    }

    #[test]
    fn shutdown_and_reboot_sync_then_leave_the_signal_for_after_the_reply() {
        for (path, systemd, action, sig) in [
            ("/shutdown", true, "poweroff", power::SYSTEMD_POWEROFF),
            ("/shutdown", false, "poweroff", libc::SIGUSR2),
            ("/reboot", true, "reboot", power::SYSTEMD_REBOOT),
            ("/reboot", false, "reboot", libc::SIGTERM),
        ] {
            let sys = Fake {
                systemd,
                ..Fake::default()
            };
            let r = route("POST", path, b"", &sys);
            assert_eq!(r.status, 202, "{path}");
            assert_eq!(
                serde_json::from_slice::<serde_json::Value>(&r.body).unwrap(),
                json!({"status": "ok", "action": action})
            );
            assert_eq!(r.then_signal, Some(sig), "{path} systemd={systemd}");
            // Only the permission probe so far; the real signal is the
            // caller's, after the reply.
            assert_eq!(sys.events(), ["signal 0", "sync"]);
        }
    }

    #[test]
    fn power_requests_are_refused_when_init_cannot_be_signalled() {
        for path in ["/shutdown", "/reboot"] {
            let sys = Fake {
                refuse: true,
                ..Fake::default()
            };
            let r = route("POST", path, b"", &sys);
            assert_eq!(r.status, 500);
            assert_eq!(r.then_signal, None);
            let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(v["status"], "error");
            assert!(
                v["error"].as_str().unwrap().contains("cannot signal init"),
                "{v}"
            );
            assert!(sys.events().is_empty());
        }
    }
}
