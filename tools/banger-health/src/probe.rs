//! One health check: GET /healthz through banger_lib::agent (handshake,
//! bounded request), and the result line, whatever happened.

use banger_lib::agent::{self, Endpoint};
use banger_lib::records::health::{AgentHealth, HealthLine};
use std::time::{Duration, Instant};

/// The outcome of one check, as its line.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub ok: bool,
    pub line: HealthLine,
}

impl Outcome {
    pub fn down(name: &str, error: String) -> Outcome {
        Outcome {
            ok: false,
            line: HealthLine::down(name, error),
        }
    }

    pub fn error(&self) -> Option<&str> {
        self.line.error.as_deref()
    }
}

/// Ask the agent at `ep` (hybrid vsock or serial port) for `GET /healthz`.
/// Its answer is guest input: read into a closed type (bounded by
/// `agent::MAX_REPLY`), never passed on as it came.
pub fn check(name: &str, ep: &Endpoint, timeout: Duration) -> Outcome {
    let start = Instant::now();
    let result = agent::request(ep, "GET", "/healthz", timeout);
    let latency_ms = (start.elapsed().as_secs_f64() * 100_000.0).round() / 100.0;
    let mut line = HealthLine::down(name, "");
    line.uds = Some(ep.uds().to_path_buf());
    line.port = ep.port();
    let ok = match result {
        Err(e) => {
            line.error = Some(e.message);
            false
        }
        Ok(resp) => {
            line.http_status = Some(resp.status);
            line.latency_ms = Some(latency_ms);
            line.error = None;
            if resp.status != 200 {
                line.error = Some(format!("the agent answered HTTP {}", resp.status));
                false
            } else {
                match serde_json::from_value::<AgentHealth>(resp.body) {
                    Ok(h) => {
                        let ok = h.status == "ok";
                        if !ok {
                            line.error = Some(format!("the agent reports status {:?}", h.status));
                        }
                        line = line.with_agent(h);
                        ok
                    }
                    Err(e) => {
                        line.error =
                            Some(format!("the agent's answer is not a health report: {e}"));
                        false
                    }
                }
            }
        }
    };
    line.ok = ok;
    Outcome { ok, line }
}

#[cfg(test)]
mod tests {
    use super::*;
    use banger_testkit::fakevsock::{healthy_body, Behaviour, FakeVsock};

    const T: Duration = Duration::from_secs(5);

    fn vs(fake: &FakeVsock, port: u32) -> Endpoint {
        Endpoint::Vsock {
            uds: fake.path().to_path_buf(),
            port,
        }
    }

    /// The line as its JSON, for asserting on fields by name.
    fn v(o: &Outcome) -> serde_json::Value {
        serde_json::to_value(&o.line).unwrap()
    }

    #[test]
    fn healthy_agent_merges_its_fields() {
        let fake = FakeVsock::start(Behaviour::Http(200, healthy_body()));
        let o = check("box", &vs(&fake, 52), T);
        assert!(o.ok, "{:?}", o.line);
        assert_eq!(v(&o)["status"], "ok");
        assert_eq!(v(&o)["http_status"], 200);
        assert_eq!(v(&o)["hostname"], "box");
        assert_eq!(v(&o)["uptime_s"], 42);
        assert_eq!(v(&o)["port"], 52);
        assert!(v(&o)["latency_ms"].as_f64().unwrap() >= 0.0);
        assert!(v(&o).get("error").is_none());
        assert_eq!(fake.ports(), vec!["CONNECT 52"]);
    }

    #[test]
    fn agent_fields_cannot_override_ours() {
        let fake = FakeVsock::start(Behaviour::Http(
            200,
            r#"{"status":"ok","name":"evil","ok":"yes"}"#.into(),
        ));
        let o = check("box", &vs(&fake, 52), T);
        assert_eq!(v(&o)["name"], "box");
        assert_eq!(v(&o)["ok"], true);
    }

    #[test]
    fn http_error_is_not_ok() {
        let fake = FakeVsock::start(Behaviour::Http(404, r#"{"error":"not found"}"#.into()));
        let o = check("box", &vs(&fake, 52), T);
        assert!(!o.ok);
        assert_eq!(v(&o)["http_status"], 404);
        assert!(o.error().unwrap().contains("HTTP 404"));
    }

    #[test]
    fn unhealthy_status_is_not_ok() {
        let fake = FakeVsock::start(Behaviour::Http(200, r#"{"status":"degraded"}"#.into()));
        let o = check("box", &vs(&fake, 52), T);
        assert!(!o.ok);
        assert!(o.error().unwrap().contains("degraded"));
    }

    #[test]
    fn handshake_failures_are_reasons() {
        let fake = FakeVsock::start(Behaviour::Refuse);
        let o = check("box", &vs(&fake, 7), T);
        assert!(!o.ok);
        assert!(
            o.error().unwrap().contains("CONNECT 7 refused"),
            "{:?}",
            o.line
        );

        fake.set(Behaviour::Reply("NOPE\n".into()));
        let o = check("box", &vs(&fake, 7), T);
        assert!(
            o.error().unwrap().contains("unexpected reply \"NOPE\""),
            "{:?}",
            o.line
        );

        fake.set(Behaviour::Hang);
        let o = check("box", &vs(&fake, 7), Duration::from_millis(200));
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
        let o = check("box", &vs(&fake, 52), Duration::from_millis(300));
        assert!(!o.ok);
        assert!(o.error().is_some(), "{:?}", o.line);
    }
}
