//! Firecracker's API over its Unix socket: a refused request becomes an
//! error carrying Firecracker's own `fault_message`.

use banger_lib::uds_http::UdsClient;
use banger_lib::{Error, Result};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// Most requests answer in milliseconds; InstanceStart and snapshots take
/// longer (a full snapshot writes all of guest memory).
pub const QUICK: Duration = Duration::from_secs(10);
pub const SLOW: Duration = Duration::from_secs(120);

pub struct Api {
    client: UdsClient,
}

impl Api {
    pub fn new(socket: &Path) -> Api {
        Api {
            client: UdsClient::new(socket),
        }
    }

    /// One request; a non-2xx answer is an error with the fault message.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<Value> {
        let r = self.client.request(method, path, body, timeout)?;
        if r.ok() {
            Ok(r.body)
        } else {
            Err(Error::failed(format!(
                "firecracker refused {method} {path} (HTTP {}): {}",
                r.status,
                r.fault_message()
            )))
        }
    }

    pub fn put(&self, path: &str, body: Value) -> Result<()> {
        self.call("PUT", path, Some(&body), QUICK).map(drop)
    }

    /// `GET /` state: `Running`, `Paused` or `Not started`.
    pub fn state(&self, timeout: Duration) -> Result<String> {
        let v = self.call("GET", "/", None, timeout)?;
        Ok(v["state"].as_str().unwrap_or("unknown").to_string())
    }
}
