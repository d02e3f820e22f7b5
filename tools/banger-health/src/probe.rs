//! One health check: GET /healthz through banger_lib::agent (handshake,
//! bounded request), and the result line, whatever happened.

use banger_lib::agent::{self, Endpoint};
use serde_json::{json, Map, Value};
use std::path::Path;
use std::time::{Duration, Instant};

/// The outcome of one check, as its JSON line.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub ok: bool,
    pub line: Map<String, Value>,
}

impl Outcome {
    pub fn down(name: &str, error: String) -> Outcome {
        let mut line = Map::new();
        line.insert("name".into(), name.into());
        line.insert("ok".into(), false.into());
        line.insert("error".into(), error.into());
        Outcome { ok: false, line }
    }

    pub fn error(&self) -> Option<&str> {
        self.line.get("error").and_then(Value::as_str)
    }
}

pub fn check(name: &str, uds: &Path, port: u32, timeout: Duration) -> Outcome {
    let start = Instant::now();
    let ep = Endpoint::Vsock {
        uds: uds.to_path_buf(),
        port,
    };
    let result = agent::request(&ep, "GET", "/healthz", timeout);
    let latency_ms = (start.elapsed().as_secs_f64() * 100_000.0).round() / 100.0;

    let mut line = Map::new();
    line.insert("name".into(), name.into());
    line.insert("ok".into(), false.into());
    let ok = match result {
        Err(e) => {
            line.insert("error".into(), e.message.into());
            false
        }
        Ok(resp) => {
            line.insert("http_status".into(), resp.status.into());
            line.insert("latency_ms".into(), json!(latency_ms));
            let status = resp.body.get("status").and_then(Value::as_str);
            let ok = resp.status == 200 && status == Some("ok");
            if resp.status != 200 {
                line.insert(
                    "error".into(),
                    format!("the agent answered HTTP {}", resp.status).into(),
                );
            } else if !ok {
                line.insert(
                    "error".into(),
                    format!("the agent reports status {}", resp.body["status"]).into(),
                );
            }
            if let (true, Value::Object(fields)) = (resp.status == 200, resp.body) {
                for (k, v) in fields {
                    if !line.contains_key(&k) {
                        line.insert(k, v);
                    }
                }
            }
            ok
        }
    };
    line.insert("ok".into(), ok.into());
    line.insert("uds".into(), uds.display().to_string().into());
    line.insert("port".into(), port.into());
    Outcome { ok, line }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakevsock::{healthy_body, Behaviour, FakeVsock};

    const T: Duration = Duration::from_secs(5);

    #[test]
    fn healthy_agent_merges_its_fields() {
        let fake = FakeVsock::start(Behaviour::Http(200, healthy_body()));
        let o = check("box", fake.path(), 52, T);
        assert!(o.ok, "{:?}", o.line);
        assert_eq!(o.line["status"], "ok");
        assert_eq!(o.line["http_status"], 200);
        assert_eq!(o.line["hostname"], "box");
        assert_eq!(o.line["uptime_s"], 42);
        assert_eq!(o.line["port"], 52);
        assert!(o.line["latency_ms"].as_f64().unwrap() >= 0.0);
        assert!(o.line.get("error").is_none());
        assert_eq!(fake.ports(), vec!["CONNECT 52"]);
    }

    #[test]
    fn agent_fields_cannot_override_ours() {
        let fake = FakeVsock::start(Behaviour::Http(
            200,
            r#"{"status":"ok","name":"evil","ok":"yes"}"#.into(),
        ));
        let o = check("box", fake.path(), 52, T);
        assert_eq!(o.line["name"], "box");
        assert_eq!(o.line["ok"], true);
    }

    #[test]
    fn http_error_is_not_ok() {
        let fake = FakeVsock::start(Behaviour::Http(404, r#"{"error":"not found"}"#.into()));
        let o = check("box", fake.path(), 52, T);
        assert!(!o.ok);
        assert_eq!(o.line["http_status"], 404);
        assert!(o.error().unwrap().contains("HTTP 404"));
    }

    #[test]
    fn unhealthy_status_is_not_ok() {
        let fake = FakeVsock::start(Behaviour::Http(200, r#"{"status":"degraded"}"#.into()));
        let o = check("box", fake.path(), 52, T);
        assert!(!o.ok);
        assert!(o.error().unwrap().contains("degraded"));
    }

    #[test]
    fn handshake_failures_are_reasons() {
        let fake = FakeVsock::start(Behaviour::Refuse);
        let o = check("box", fake.path(), 7, T);
        assert!(!o.ok);
        assert!(
            o.error().unwrap().contains("CONNECT 7 refused"),
            "{:?}",
            o.line
        );

        fake.set(Behaviour::Reply("NOPE\n".into()));
        let o = check("box", fake.path(), 7, T);
        assert!(
            o.error().unwrap().contains("unexpected reply \"NOPE\""),
            "{:?}",
            o.line
        );

        fake.set(Behaviour::Hang);
        let o = check("box", fake.path(), 7, Duration::from_millis(200));
        assert!(
            o.error().unwrap().contains("no reply in time"),
            "{:?}",
            o.line
        );
    }

    #[test]
    fn agent_that_hangs_after_ok_times_out() {
        // OK, then the "agent" echoes: it never sends an HTTP response.
        let fake = FakeVsock::start(Behaviour::Echo);
        let o = check("box", fake.path(), 52, Duration::from_millis(300));
        assert!(!o.ok);
        assert!(o.error().is_some(), "{:?}", o.line);
    }
}
