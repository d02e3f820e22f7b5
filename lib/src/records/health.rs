//! What banger-health prints for one guest (`check`, `wait`), and the
//! agent's `GET /healthz` body it is made from. The agent is a guest
//! program: its body is hostile input, read into this closed type with
//! every string bounded by the caller's size cap.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The guest agent's `GET /healthz` answer. Unknown fields are ignored
/// (a newer agent may say more), never passed on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentHealth {
    pub status: String,
    #[serde(default)]
    pub hostname: Option<String>,
    #[serde(default)]
    pub uptime_s: Option<u64>,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub load: Option<[f64; 3]>,
    #[serde(default)]
    pub mem_available_kib: Option<u64>,
}

/// One guest's health line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthLine {
    pub name: String,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The agent's HTTP status, when it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    /// From the agent's answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_s: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<[f64; 3]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_available_kib: Option<u64>,
    /// Where the agent was asked: the host side of its channel and port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uds: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
}

impl HealthLine {
    /// A line for a guest that could not be asked, or did not answer well.
    pub fn down(name: &str, error: impl Into<String>) -> HealthLine {
        HealthLine {
            name: name.into(),
            ok: false,
            error: Some(error.into()),
            http_status: None,
            latency_ms: None,
            status: None,
            hostname: None,
            uptime_s: None,
            version: None,
            load: None,
            mem_available_kib: None,
            uds: None,
            port: None,
        }
    }

    /// Fill in what the agent said.
    pub fn with_agent(mut self, a: AgentHealth) -> HealthLine {
        self.status = Some(a.status);
        self.hostname = a.hostname;
        self.uptime_s = a.uptime_s;
        self.version = a.version;
        self.load = a.load;
        self.mem_available_kib = a.mem_available_kib;
        self
    }
}
