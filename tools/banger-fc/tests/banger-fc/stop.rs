//! banger-fc stop against the fake firecracker and its fake guest agent:
//! the agent's reboot first, Ctrl+Alt+Del when it does not answer, and
//! past the timeout the agent's sync, then signals.

use crate::common::T;
use banger_testkit::fakefc::env;
use serde_json::{json, Value};

/// Start VM `id`; return how many requests the fake had got by then.
fn started(t: &T, spec: &Value) -> usize {
    t.start(spec).success();
    t.fake.request_lines().len()
}

/// Run stop; its result line and stderr.
fn stop(t: &T, args: &[&str]) -> (Value, String) {
    let a = t.cmd(args).assert().success();
    let out = a.get_output();
    let line = serde_json::from_slice(&out.stdout).expect("one JSON line");
    (line, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The requests since the first `from`, agent ones as `agent METHOD PATH`;
/// the `GET /` with which a stop first looks whether the guest is paused
/// (to let it run) is left out: it changes nothing.
fn since(t: &T, from: usize) -> Vec<String> {
    t.fake.request_lines()[from..]
        .iter()
        .filter(|l| *l != "GET /")
        .cloned()
        .collect()
}

/// The action_type of every PUT /actions the fake got.
fn actions(t: &T) -> Vec<String> {
    t.fake
        .requests()
        .into_iter()
        .filter(|(m, p, _)| m == "PUT" && p == "/actions")
        .map(|(_, _, b)| b.unwrap()["action_type"].as_str().unwrap().to_string())
        .collect()
}

fn result(how: &str, clean: bool, synced: bool) -> Value {
    json!({"id": "box", "stopped": true, "how": how, "clean": clean, "synced": synced})
}

#[test]
fn the_agent_reboots_the_guest_and_nothing_else_is_sent() {
    let t = T::new();
    let n = started(&t, &t.spec("box"));
    let (line, err) = stop(&t, &["stop", "box"]);
    assert_eq!(line, result("agent", true, true));
    assert_eq!(since(&t, n), ["agent POST /reboot"]);
    // A running guest is only looked at, never resumed.
    assert_eq!(t.fake.request_lines()[n..], ["GET /", "agent POST /reboot"]);
    assert_eq!(actions(&t), ["InstanceStart"], "no SendCtrlAltDel");
    assert!(err.is_empty(), "{err}");
    t.assert_nothing_left_but_logs("box");
    t.fake.assert_valid();
}

#[test]
fn the_agent_port_comes_from_the_spec() {
    let t = T::new().with(env::AGENT_PORT, "1024");
    let mut spec = t.spec("box");
    spec["agent_port"] = json!(1024);
    let out = t.start(&spec).success().get_output().stdout.clone();
    let rec: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(rec["agent"]["port"], 1024);
    assert_eq!(stop(&t, &["stop", "box"]).0["how"], "agent");
    t.assert_nothing_left_but_logs("box");
}

#[test]
fn without_an_agent_ctrl_alt_del_stops_the_guest() {
    let t = T::new().with(env::AGENT, "absent");
    started(&t, &t.spec("box"));
    let (line, err) = stop(&t, &["stop", "box"]);
    assert_eq!(line, result("ctrl_alt_del", true, true));
    assert_eq!(actions(&t), ["InstanceStart", "SendCtrlAltDel"]);
    assert!(err.is_empty(), "{err}");
    t.assert_nothing_left_but_logs("box");
    t.fake.assert_valid();
}

#[test]
fn a_vm_without_vsock_gets_ctrl_alt_del_at_once() {
    let t = T::new();
    let mut spec = t.spec("box");
    spec.as_object_mut().unwrap().remove("vsock_cid");
    let n = started(&t, &spec);
    let (line, _) = stop(&t, &["stop", "box"]);
    assert_eq!(line, result("ctrl_alt_del", true, true));
    assert_eq!(since(&t, n), ["PUT /actions"]);
    t.fake.assert_valid();
}

#[test]
fn an_agent_that_never_answers_costs_its_short_timeout_only() {
    let t = T::new().with(env::AGENT, "hang");
    started(&t, &t.spec("box"));
    // Were the agent given the whole timeout, the stop would end killed.
    let (line, _) = stop(&t, &["stop", "box", "--timeout", "10"]);
    assert_eq!(line, result("ctrl_alt_del", true, true));
    t.assert_nothing_left_but_logs("box");
    t.fake.assert_valid();
}

#[test]
fn a_guest_that_ignores_everything_is_synced_then_killed() {
    let t = T::new()
        .with(env::AGENT, "ignore_shutdown")
        .with(env::IGNORE_CTRL_ALT_DEL, "1");
    let n = started(&t, &t.spec("box"));
    let (line, err) = stop(&t, &["stop", "box", "--timeout", "1"]);
    assert_eq!(line, result("killed", false, true));
    // Reboot, Ctrl+Alt+Del at half the timeout, then the sync.
    assert_eq!(
        since(&t, n),
        ["agent POST /reboot", "PUT /actions", "agent POST /sync"]
    );
    assert_eq!(actions(&t), ["InstanceStart", "SendCtrlAltDel"]);
    assert!(
        err.contains(
            "banger-fc: warning: VM box did not shut down within 1 s; killed it (disks synced first)"
        ),
        "{err}"
    );
    t.assert_nothing_left_but_logs("box");
    t.fake.assert_valid();
}

#[test]
fn without_an_agent_a_kill_warns_that_writes_may_be_lost() {
    let t = T::new()
        .with(env::AGENT, "absent")
        .with(env::IGNORE_CTRL_ALT_DEL, "1");
    started(&t, &t.spec("box"));
    let (line, err) = stop(&t, &["stop", "box", "--timeout", "1"]);
    assert_eq!(line, result("killed", false, false));
    assert!(
        err.contains("killed it (the agent did not answer, unsynced writes may be lost)"),
        "{err}"
    );
    t.assert_nothing_left_but_logs("box");
}

#[test]
fn kill_asks_the_guest_nothing() {
    let t = T::new();
    let n = started(&t, &t.spec("box"));
    let (line, err) = stop(&t, &["stop", "box", "--kill"]);
    assert_eq!(line, result("killed", false, false));
    assert!(since(&t, n).is_empty(), "{:?}", since(&t, n));
    assert!(err.is_empty(), "a requested kill is no surprise: {err}");
    t.assert_nothing_left_but_logs("box");
}

#[test]
fn timeout_zero_syncs_and_kills_at_once() {
    let t = T::new();
    let n = started(&t, &t.spec("box"));
    let (line, err) = stop(&t, &["stop", "box", "--timeout", "0"]);
    assert_eq!(line, result("killed", false, true));
    assert_eq!(since(&t, n), ["agent POST /sync"]);
    assert!(
        err.contains("within 0 s; killed it (disks synced first)"),
        "{err}"
    );
    t.assert_nothing_left_but_logs("box");
}

#[test]
fn a_powered_off_guest_leaves_firecracker_running() {
    // Why stop asks for a reboot: the fake does what Firecracker does on
    // x86 when its guest powers off, which is to keep running.
    let t = T::new();
    started(&t, &t.spec("box"));
    let rec: Value =
        serde_json::from_slice(&std::fs::read(t.run_dir("box").join("vmm.json")).unwrap()).unwrap();
    let ep: banger_lib::agent::Endpoint = serde_json::from_value(rec["agent"].clone()).unwrap();
    let r = banger_lib::agent::request(&ep, "POST", "/shutdown", std::time::Duration::from_secs(5))
        .unwrap();
    assert_eq!(r.status, 202);
    let (pid, st) = (
        rec["pid"].as_u64().unwrap() as u32,
        rec["pid_start_time"].as_u64().unwrap(),
    );
    assert!(banger_lib::proc::is_alive(pid, st));
    assert!(
        banger_lib::agent::request(&ep, "GET", "/healthz", std::time::Duration::from_secs(2))
            .is_err(),
        "a halted guest does not answer"
    );
    // Nothing in the guest handles Ctrl+Alt+Del either: only the kill.
    let (line, _) = stop(&t, &["stop", "box", "--timeout", "1"]);
    assert_eq!(line, result("killed", false, false));
    t.assert_nothing_left_but_logs("box");
}
