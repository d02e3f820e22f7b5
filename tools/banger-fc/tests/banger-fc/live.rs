//! banger-fc against a real Firecracker, gated: set BANGER_FIRECRACKER to
//! a firecracker binary (v1.16 or newer) and BANGER_KERNEL to an ELF vmlinux (default:
//! the runtime bundle's). On PVM hosts a guest does not finish booting, so
//! this checks the process and API path: start, pause, snapshot, stop,
//! load, stop, and that no firecracker is left behind.

use assert_cmd::Command;
use banger_testkit::Home;
use serde_json::{json, Value};
use std::path::PathBuf;

fn gate(test: &str) -> Option<(PathBuf, PathBuf)> {
    // The one test CI may skip: CI has no Firecracker binary (see
    // ARCHITECTURE.md, "Tests").
    let Some(fc) = std::env::var_os("BANGER_FIRECRACKER").filter(|v| !v.is_empty()) else {
        banger_testkit::skip(
            test,
            "no real Firecracker (set BANGER_FIRECRACKER to a firecracker binary to run it)",
        );
        return None;
    };
    let kernel = match std::env::var_os("BANGER_KERNEL").filter(|v| !v.is_empty()) {
        Some(k) => PathBuf::from(k),
        None => {
            let b = banger_lib::config::Bundle::load().ok()?;
            b.path(&b.kernel)
        }
    };
    if !kernel.is_file() {
        banger_testkit::skip_or_fail(
            test,
            &format!("no ELF kernel at {} (set BANGER_KERNEL)", kernel.display()),
        );
        return None;
    }
    if !banger_testkit::require_root(test) {
        return None;
    }
    Some((PathBuf::from(fc), kernel))
}

fn run(home: &Home, args: &[&str], stdin: Option<&Value>) -> Value {
    let mut c = Command::cargo_bin("banger-fc").unwrap();
    for (k, v) in home.envs() {
        c.env(k, v);
    }
    c.args(args);
    if let Some(s) = stdin {
        c.write_stdin(s.to_string());
    }
    let out = c.assert().success().get_output().stdout.clone();
    serde_json::from_slice(&out).unwrap()
}

fn alive(rec: &Value) -> bool {
    banger_lib::proc::is_alive(
        rec["pid"].as_u64().unwrap() as u32,
        rec["pid_start_time"].as_u64().unwrap(),
    )
}

#[test]
fn live_real_firecracker_start_pause_snapshot_stop() {
    // banger-fc runs the gate's BANGER_FIRECRACKER (a spec cannot name it).
    let Some((_fc, kernel)) = gate("live_real_firecracker_start_pause_snapshot_stop") else {
        return;
    };
    let _serial = banger_testkit::serial();
    let home = Home::new();
    let rootfs = home.path().join("rootfs.ext4");
    std::fs::File::create(&rootfs)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let spec = json!({
        "id": "live", "kernel": kernel, "cmdline": "console=ttyS0 reboot=k panic=1",
        "vcpus": 1, "mem_mib": 128, "vsock_cid": 3,
        "drives": [{"id": "rootfs", "path": rootfs, "root": true}],
    });
    let rec = run(&home, &["start"], Some(&spec));
    assert!(alive(&rec));
    // Any Firecracker banger-fc supports (v1.16 or newer; start refuses
    // older ones).
    let version = rec["vmm_version"].as_str().unwrap();
    let minor: Option<(u64, u64)> = version
        .trim_start_matches("Firecracker v")
        .split(['.', '-'])
        .take(2)
        .map(|n| n.parse().ok())
        .collect::<Option<Vec<u64>>>()
        .map(|v| (v[0], v[1]));
    assert!(minor.is_some_and(|v| v >= (1, 16)), "{rec}");
    assert_eq!(run(&home, &["status", "live"], None)["state"], "running");
    assert_eq!(run(&home, &["pause", "live"], None)["state"], "paused");
    let snap = home.path().join("snap");
    run(
        &home,
        &[
            "snapshot",
            "create",
            "live",
            "--dir",
            snap.to_str().unwrap(),
        ],
        None,
    );
    let stop = run(&home, &["stop", "live", "--timeout", "1"], None);
    assert_ne!(stop["how"], "already_dead", "{stop}");
    assert!(!alive(&rec));
    let loaded = run(
        &home,
        &["snapshot", "load", "live", "--dir", snap.to_str().unwrap()],
        None,
    );
    assert!(alive(&loaded));
    assert_eq!(run(&home, &["status", "live"], None)["state"], "running");
    run(&home, &["stop", "live", "--timeout", "1"], None);
    assert!(!alive(&loaded));
    assert!(!home.path().join("run/banger/live").exists());
}
