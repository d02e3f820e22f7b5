//! Network namespaces made for one test and removed when it ends, so no
//! test touches the host's own interfaces, addresses or rules.

use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A fresh network namespace, deleted (with every process in it) on drop.
pub struct NetNs {
    pub name: String,
}

impl NetNs {
    /// Create `bt-PID-N`, with loopback up. Needs root.
    pub fn new() -> NetNs {
        let name = format!(
            "bt-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let out = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .expect("running ip netns add");
        assert!(
            out.status.success(),
            "ip netns add {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ns = NetNs { name };
        ns.sh("ip link set lo up");
        ns
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// Run a shell snippet inside the namespace; panic when it fails.
    pub fn sh(&self, script: &str) -> String {
        let out = self.try_sh(script);
        assert!(
            out.status.success(),
            "in netns {}: `{script}` failed: {}{}",
            self.name,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Run a shell snippet inside the namespace, whatever its outcome.
    pub fn try_sh(&self, script: &str) -> Output {
        self.command("sh")
            .args(["-c", script])
            .output()
            .expect("running ip netns exec")
    }

    /// Pids of processes inside the namespace.
    pub fn pids(&self) -> Vec<u32> {
        let out = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
            .expect("ip netns pids");
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }

    /// Join two namespaces with a veth pair: `a_if` in self, `b_if` in `other`.
    pub fn veth(&self, a_if: &str, other: &NetNs, b_if: &str) {
        self.sh(&format!(
            "ip link add {a_if} type veth peer name {b_if} netns {} && ip link set {a_if} up && ip netns exec {} ip link set {b_if} up",
            other.name, other.name
        ));
    }
}

impl Default for NetNs {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        for pid in self.pids() {
            let _ = banger_lib::proc::kill(pid, banger_lib::proc::Signal::SIGKILL);
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}
