//! banger-fc driven against the fake firecracker in a private banger
//! home: the test's harness, shared by the test files.

use assert_cmd::Command;
use banger_testkit::fakefc::FakeFc;
use banger_testkit::Home;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

pub struct T {
    pub home: Home,
    pub fake: FakeFc,
    extra: Vec<(String, String)>,
}

impl T {
    pub fn new() -> T {
        let home = Home::new();
        std::fs::write(home.path().join("vmlinux"), b"kernel").unwrap();
        std::fs::write(home.path().join("rootfs.ext4"), b"rootfs").unwrap();
        T {
            home,
            fake: FakeFc::new(),
            extra: vec![],
        }
    }

    pub fn with(mut self, k: &str, v: &str) -> T {
        self.extra.push((k.into(), v.into()));
        self
    }

    pub fn spec(&self, id: &str) -> Value {
        json!({
            "id": id,
            "kernel": self.home.path().join("vmlinux"),
            "cmdline": "console=ttyS0 reboot=k",
            "vcpus": 2,
            "mem_mib": 256,
            "drives": [{"id": "rootfs", "path": self.home.path().join("rootfs.ext4"), "root": true}],
            "vsock_cid": 3,
        })
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::cargo_bin("banger-fc").unwrap();
        for (k, v) in self.home.envs() {
            c.env(k, v);
        }
        for (k, v) in self.fake.envs() {
            c.env(k, v);
        }
        for (k, v) in &self.extra {
            c.env(k, v);
        }
        c.args(args);
        c
    }

    pub fn start(&self, spec: &Value) -> assert_cmd::assert::Assert {
        self.cmd(&["start"]).write_stdin(spec.to_string()).assert()
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let out = self
            .cmd(args)
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        serde_json::from_slice(&out).unwrap()
    }

    pub fn run_dir(&self, id: &str) -> PathBuf {
        self.home.path().join("run/banger").join(id)
    }

    pub fn vm_dir(&self, id: &str) -> PathBuf {
        self.home.path().join("state/banger/vms").join(id)
    }

    /// Processes whose command line mentions this test's home.
    pub fn processes(&self) -> Vec<u32> {
        let needle = self.home.path().display().to_string();
        let mut pids = vec![];
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&needle)
                && banger_lib::proc::state(pid) != Some('Z')
            {
                pids.push(pid);
            }
        }
        pids
    }

    /// No process and no run dir of VM `id` (its logs stay).
    pub fn assert_nothing_left_but_logs(&self, id: &str) {
        let gone = banger_testkit::poll(std::time::Duration::from_secs(10), || {
            self.processes().is_empty().then_some(())
        });
        assert!(gone.is_some(), "processes left: {:?}", self.processes());
        assert!(!self.run_dir(id).exists());
    }

    /// Nothing of VM `id` is left: no process, no socket, no record, no
    /// run dir, no logs.
    pub fn assert_nothing_left(&self, id: &str) {
        let gone = banger_testkit::poll(std::time::Duration::from_secs(10), || {
            self.processes().is_empty().then_some(())
        });
        assert!(gone.is_some(), "processes left: {:?}", self.processes());
        assert!(
            !self.run_dir(id).exists(),
            "{} left",
            self.run_dir(id).display()
        );
        assert!(
            !self.vm_dir(id).exists(),
            "{} left",
            self.vm_dir(id).display()
        );
    }
}

/// The one JSON line a command that must succeed printed.
pub fn record(a: assert_cmd::assert::Assert) -> Value {
    serde_json::from_slice(&a.success().get_output().stdout.clone()).unwrap()
}

/// The last load the fake got resumed nothing itself: the drives were
/// pointed at the spec's files first, then the VM resumed. Its body.
pub fn assert_loaded_paused_then_resumed(t: &T) -> Value {
    let load = t
        .fake
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.1 == "/snapshot/load")
        .expect("PUT /snapshot/load");
    let body = load.2.expect("a load body");
    assert_eq!(body["resume_vm"], false);
    let lines = t.fake.request_lines();
    let at = lines
        .iter()
        .rposition(|l| l == "PUT /snapshot/load")
        .unwrap();
    let after = &lines[at..(at + 3).min(lines.len())];
    assert_eq!(
        after,
        ["PUT /snapshot/load", "PATCH /drives/rootfs", "PATCH /vm"]
    );
    body
}

pub fn stderr(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stderr).to_string()
}

pub fn exists(p: &Value) -> bool {
    Path::new(p.as_str().unwrap()).exists()
}
