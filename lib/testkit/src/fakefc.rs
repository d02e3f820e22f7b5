//! The fake firecracker: a stand-in for Firecracker v1.16.1 that serves
//! its API on the `--api-sock` socket, keeps its state machine, and checks
//! every request against Firecracker's own OpenAPI document
//! (`../shared/firecracker/firecracker.yaml`, or `BANGER_FC_OPENAPI`).
//!
//! A request that does not validate gets Firecracker's 400
//! `{"fault_message"}` and a line in the violations file, which the test
//! then asserts is empty ([`FakeFc::assert_valid`]).
//!
//! Behaviour is steered by environment variables (see [`env`]); a
//! `PATTERN` is `METHOD PATH` optionally followed by a word that must occur
//! in the body, e.g. `PUT /actions InstanceStart` or `PUT /drives/rootfs`.
//!
//! ```no_run
//! let fake = banger_testkit::fakefc::FakeFc::new();
//! let mut cmd = std::process::Command::new("banger-fc");
//! fake.apply(&mut cmd).env(banger_testkit::fakefc::env::FAIL, "PUT /vsock");
//! // ... run it, then:
//! fake.assert_valid();
//! ```

pub mod openapi;
pub mod vmm;

use serde_json::Value;
use std::path::{Path, PathBuf};

/// The environment variables the fake reads.
pub mod env {
    /// Append one line per schema violation to this file.
    pub const VIOLATIONS: &str = "FAKE_FC_VIOLATIONS";
    /// Append one JSON line `{"method","path","body"}` per request.
    pub const REQUESTS: &str = "FAKE_FC_REQUESTS";
    /// `PATTERN[,PATTERN]`: answer these with 400 and an injected fault.
    pub const FAIL: &str = "FAKE_FC_FAIL";
    /// `PATTERN`: exit(1) on this request without answering.
    pub const DIE: &str = "FAKE_FC_DIE";
    /// `PATTERN`: never answer this request (keep running);
    /// `startup`: never create the API socket.
    pub const HANG: &str = "FAKE_FC_HANG";
    /// Milliseconds to wait before answering each request (API and
    /// agent), so a test can act while one is in flight.
    pub const SLOW_MS: &str = "FAKE_FC_SLOW_MS";
    /// `1`: answer InstanceStart, then exit as if the guest crashed.
    pub const EXIT_AFTER_START: &str = "FAKE_FC_EXIT_AFTER_START";
    /// `1`: accept SendCtrlAltDel but keep running (a guest that ignores it).
    pub const IGNORE_CTRL_ALT_DEL: &str = "FAKE_FC_IGNORE_CTRL_ALT_DEL";
    /// `1`: ignore SIGTERM too, so only SIGKILL ends it.
    pub const IGNORE_SIGTERM: &str = "FAKE_FC_IGNORE_SIGTERM";
    /// The guest port the fake's "agent" answers on the hybrid vsock
    /// (default 52): `CONNECT 52\n` gets `OK N\n`, then `GET /healthz`,
    /// `POST /sync` (200, synced), `POST /reboot` (202, then the fake
    /// exits, as Firecracker does when its guest reboots with reboot=k)
    /// and `POST /shutdown` (202, then the guest is halted: it answers
    /// nothing more, ignores Ctrl+Alt+Del, and the fake lives on, as
    /// Firecracker does on x86), `POST /identity` (200 with no keys: a
    /// clone's new identity, taken as given). Each request is logged to
    /// REQUESTS with `"agent": true` and its JSON body.
    pub const AGENT_PORT: &str = "FAKE_FC_AGENT_PORT";
    /// The fake agent's behaviour: `absent` (nothing listens on its port),
    /// `hang` (`OK`, then never an answer), `ignore_shutdown` (202 to
    /// /reboot and /shutdown, but the guest stays up), `refuse_identity`
    /// (500 to /identity, at its `hostkeys` step), `old_identity` (400 to
    /// an /identity with `host_key`, as an agent from before that field).
    pub const AGENT: &str = "FAKE_FC_AGENT";
}

/// The fake-firecracker binary, (re)built once per test process so it is
/// never stale.
pub fn binary() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| build("fake-firecracker")).clone()
}

/// The fake jailer (src/bin/fake_jailer.rs: the jailer's command line,
/// checked strictly, and its chroot, uid drop and pid namespace), built
/// like `binary`. Point BANGER_JAILER at it.
pub fn jailer_binary() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| build("fake-jailer")).clone()
}

fn build(bin: &str) -> PathBuf {
    let status = std::process::Command::new(env!("CARGO"))
        .args(["build", "--quiet", "-p", "banger-testkit", "--bin", bin])
        .current_dir(crate::workspace_root())
        .status()
        .unwrap_or_else(|e| panic!("running cargo build for {bin}: {e}"));
    assert!(status.success(), "building {bin} failed");
    let p = crate::target_dir().join(bin);
    assert!(p.is_file(), "{} was not built", p.display());
    p
}

/// One fake's bookkeeping for one test: where violations and requests are
/// written, and the environment that points a driver at the fake.
pub struct FakeFc {
    pub dir: tempfile::TempDir,
    pub violations: PathBuf,
    pub requests: PathBuf,
    pub binary: PathBuf,
}

impl FakeFc {
    pub fn new() -> FakeFc {
        let dir = tempfile::Builder::new()
            .prefix("fakefc")
            .tempdir()
            .expect("temp dir");
        FakeFc {
            violations: dir.path().join("violations.txt"),
            requests: dir.path().join("requests.jsonl"),
            binary: binary(),
            dir,
        }
    }

    /// `BANGER_FIRECRACKER` (the fake), the violations and request files,
    /// and the API document's path.
    pub fn envs(&self) -> Vec<(String, PathBuf)> {
        vec![
            ("BANGER_FIRECRACKER".into(), self.binary.clone()),
            (env::VIOLATIONS.into(), self.violations.clone()),
            (env::REQUESTS.into(), self.requests.clone()),
            ("BANGER_FC_OPENAPI".into(), openapi::default_path()),
        ]
    }

    pub fn apply<'a>(&self, cmd: &'a mut std::process::Command) -> &'a mut std::process::Command {
        for (k, v) in self.envs() {
            cmd.env(k, v);
        }
        cmd
    }

    /// Every API request the fake got, in order: (method, path, body).
    pub fn requests(&self) -> Vec<(String, String, Option<Value>)> {
        read_lines(&self.requests)
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["agent"] != true)
            .map(|v| {
                (
                    v["method"].as_str().unwrap_or_default().to_string(),
                    v["path"].as_str().unwrap_or_default().to_string(),
                    Some(v["body"].clone()).filter(|b| !b.is_null()),
                )
            })
            .collect()
    }

    /// The guest agent's requests: method, path and JSON body.
    pub fn agent_requests(&self) -> Vec<(String, String, Value)> {
        read_lines(&self.requests)
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["agent"] == true)
            .map(|v| {
                (
                    v["method"].as_str().unwrap_or_default().to_string(),
                    v["path"].as_str().unwrap_or_default().to_string(),
                    v["body"].clone(),
                )
            })
            .collect()
    }

    /// `METHOD PATH` of every request, for asserting the sequence: API
    /// requests, and the agent's as `agent METHOD PATH`.
    pub fn request_lines(&self) -> Vec<String> {
        read_lines(&self.requests)
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .map(|v| {
                let line = format!(
                    "{} {}",
                    v["method"].as_str().unwrap_or_default(),
                    v["path"].as_str().unwrap_or_default()
                );
                if v["agent"] == true {
                    format!("agent {line}")
                } else {
                    line
                }
            })
            .collect()
    }

    /// The schema violations recorded so far.
    pub fn violations(&self) -> Vec<String> {
        read_lines(&self.violations)
    }

    /// Panic if any request failed the schema check.
    pub fn assert_valid(&self) {
        let v = self.violations();
        assert!(
            v.is_empty(),
            "requests that do not validate against firecracker.yaml:\n{}",
            v.join("\n")
        );
    }
}

impl Default for FakeFc {
    fn default() -> Self {
        Self::new()
    }
}

fn read_lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}
