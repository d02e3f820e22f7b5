//! banger-health as a command, against fake hybrid vsock sockets and fake
//! VM records.

use assert_cmd::Command;
use banger_testkit::fakevsock::{healthy_body, Behaviour, FakeVsock};
use banger_testkit::Home;
use serde_json::Value;
use std::path::Path;

fn cmd(home: &Home) -> Command {
    let mut c = Command::new(banger_testkit::bin("banger-health"));
    for (k, v) in home.envs() {
        c.env(k, v);
    }
    c
}

fn lines(out: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// A VM record the way banger-vm writes it (the fields we read).
/// A VM record as banger-vm writes it (made from banger_lib's type).
fn vm(home: &Home, name: &str, state: &str, uds: Option<&Path>) {
    let rec = banger_testkit::records::vm(name, state, Some("172.30.0.2"), uds);
    banger_testkit::records::store_vm(&home.path().join("state"), &rec);
}

#[test]
fn check_uds_healthy() {
    let home = Home::new();
    let fake = FakeVsock::start(Behaviour::Http(200, healthy_body()));
    let out = cmd(&home)
        .args(["check", "--uds"])
        .arg(fake.path())
        .args(["--port", "1234"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let l = lines(&out.stdout);
    assert_eq!(l.len(), 1);
    assert_eq!(l[0]["ok"], true);
    assert_eq!(l[0]["status"], "ok");
    assert_eq!(l[0]["hostname"], "box");
    assert_eq!(l[0]["port"], 1234);
    assert!(l[0]["latency_ms"].is_number());
    assert_eq!(fake.ports(), vec!["CONNECT 1234"]);
}

#[test]
fn port_defaults_to_the_bundle() {
    let home = Home::new();
    let fake = FakeVsock::start(Behaviour::Http(200, healthy_body()));
    cmd(&home)
        .args(["check", "--uds"])
        .arg(fake.path())
        .assert()
        .success();
    assert_eq!(fake.ports(), vec!["CONNECT 52"]);
}

#[test]
fn check_uds_failures_exit_1_with_a_reason() {
    let home = Home::new();
    for (behaviour, want) in [
        (Behaviour::Refuse, "refused"),
        (Behaviour::Reply("garbage\n".into()), "unexpected reply"),
        (Behaviour::Hang, "no reply in time"),
        (Behaviour::Http(404, "{}".into()), "HTTP 404"),
    ] {
        let fake = FakeVsock::start(behaviour);
        let out = cmd(&home)
            .args(["check", "--timeout", "0.3", "--uds"])
            .arg(fake.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{want}: {out:?}");
        let l = lines(&out.stdout);
        assert_eq!(l[0]["ok"], false);
        let err = l[0]["error"].as_str().unwrap();
        assert!(err.contains(want), "{want}: {err}");
    }
}

#[test]
fn check_names_fans_out_one_line_each() {
    let home = Home::new();
    let good = FakeVsock::start(Behaviour::Http(200, healthy_body()));
    let refusing = FakeVsock::start(Behaviour::Refuse);
    vm(&home, "good", "running", Some(good.path()));
    vm(&home, "noagent", "running", Some(refusing.path()));
    vm(&home, "off", "stopped", Some(good.path()));
    vm(&home, "nosock", "running", None);
    let out = cmd(&home)
        .args(["check", "good", "noagent", "off", "nosock", "ghost"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let l = lines(&out.stdout);
    let names: Vec<&str> = l.iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["good", "noagent", "off", "nosock", "ghost"]);
    assert_eq!(l[0]["ok"], true);
    for (v, want) in l[1..].iter().zip([
        "refused",
        "off is stopped",
        "vsock_uds",
        "no VM named ghost",
    ]) {
        assert_eq!(v["ok"], false);
        assert!(v["error"].as_str().unwrap().contains(want), "{want}: {v}");
    }
    // Each failure is also said on stderr.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("banger-health: error: ghost: no VM named ghost"),
        "{err}"
    );
    assert!(err.contains("banger-health: error: off: "), "{err}");
}

#[test]
fn check_of_one_unknown_vm_is_not_found() {
    let home = Home::new();
    let out = cmd(&home).args(["check", "ghost"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no VM named ghost"), "{err}");
    assert_eq!(lines(&out.stdout)[0]["ok"], false);
}

#[test]
fn all_healthy_exits_0() {
    let home = Home::new();
    let a = FakeVsock::start(Behaviour::Http(200, healthy_body()));
    let b = FakeVsock::start(Behaviour::Http(200, healthy_body()));
    vm(&home, "a", "running", Some(a.path()));
    vm(&home, "b", "running", Some(b.path()));
    let out = cmd(&home).args(["check", "a", "b"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(lines(&out.stdout).len(), 2);
}

#[test]
fn usage_errors_exit_2() {
    let home = Home::new();
    cmd(&home).arg("check").assert().code(2);
    cmd(&home)
        .args(["check", "a", "--uds", "/x"])
        .assert()
        .code(2);
    cmd(&home).args(["check", "Bad/Name"]).assert().code(2);
    cmd(&home)
        .args(["check", "a", "--port", "0"])
        .assert()
        .code(2);
    cmd(&home)
        .args(["wait", "a", "--timeout", "-1"])
        .assert()
        .code(2);
}

#[test]
fn wait_returns_once_healthy() {
    let home = Home::new();
    // Refuses at first, as a booting guest does, then answers.
    let fake = FakeVsock::start(Behaviour::Refuse);
    vm(&home, "box", "running", Some(fake.path()));
    let child = std::process::Command::new(banger_testkit::bin("banger-health"))
        .envs(home.envs())
        .args(["wait", "box", "--timeout", "30"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    banger_testkit::poll(std::time::Duration::from_secs(20), || {
        (!fake.ports().is_empty()).then_some(())
    })
    .expect("wait never tried");
    fake.set(Behaviour::Http(200, healthy_body()));
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let l = lines(&out.stdout);
    assert_eq!(l.len(), 1);
    assert_eq!(l[0]["ok"], true);
}

#[test]
fn wait_gives_up_at_the_timeout() {
    let home = Home::new();
    let fake = FakeVsock::start(Behaviour::Refuse);
    let out = cmd(&home)
        .args(["wait", "--timeout", "0.5", "--uds"])
        .arg(fake.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let l = lines(&out.stdout);
    assert_eq!(l[0]["ok"], false);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not healthy after"), "{err}");
    assert!(err.contains("hint:"), "{err}");
}

#[test]
fn wait_fails_fast_for_missing_or_stopped_vms() {
    let home = Home::new();
    cmd(&home)
        .args(["wait", "ghost", "--timeout", "600"])
        .assert()
        .code(3)
        .stderr(predicates::str::contains("no VM named ghost"));
    vm(&home, "off", "stopped", None);
    let out = cmd(&home)
        .args(["wait", "off", "--timeout", "600"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("off is stopped"));
}

/// The real agent (serving a Unix socket) behind the fake hybrid vsock:
/// the HTTP both sides speak agrees.
#[test]
fn check_against_the_real_agent() {
    let home = Home::new();
    let dir = tempfile::Builder::new()
        .prefix("ag")
        .tempdir_in("/tmp")
        .unwrap();
    let sock = dir.path().join("agent.sock");
    let mut agent = std::process::Command::new(banger_testkit::bin("banger-vsock-agent"))
        .arg("--unix")
        .arg(&sock)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    banger_testkit::poll(std::time::Duration::from_secs(10), || {
        std::os::unix::net::UnixStream::connect(&sock).ok()
    })
    .expect("the agent never listened");
    let fake = FakeVsock::start(Behaviour::Proxy(sock.clone()));
    vm(&home, "box", "running", Some(fake.path()));
    let out = cmd(&home).args(["check", "box"]).output().unwrap();
    let _ = agent.kill();
    let _ = agent.wait();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let l = lines(&out.stdout);
    assert_eq!(l[0]["ok"], true);
    assert_eq!(l[0]["http_status"], 200);
    assert_eq!(l[0]["version"], env!("CARGO_PKG_VERSION"));
    assert!(l[0]["mem_available_kib"].as_u64().is_some());
    assert_eq!(l[0]["load"].as_array().unwrap().len(), 3);
}
