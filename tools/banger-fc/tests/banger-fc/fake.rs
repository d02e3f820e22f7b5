//! banger-fc against the fake firecracker: every request it sends is
//! checked against Firecracker's OpenAPI document, and every failure path
//! must leave no process, socket, record or file behind.

use crate::common::{exists, stderr, T};
use banger_testkit::fakefc::env;
use serde_json::{json, Value};

#[test]
fn full_lifecycle_with_valid_requests() {
    let t = T::new();
    let out = t
        .start(&t.spec("box"))
        .success()
        .get_output()
        .stdout
        .clone();
    let rec: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(rec["vmm"], "firecracker");
    assert_eq!(rec["vmm_version"], "Firecracker v1.16.1");
    assert!(banger_lib::proc::is_alive(
        rec["pid"].as_u64().unwrap() as u32,
        rec["pid_start_time"].as_u64().unwrap()
    ));
    assert!(exists(&rec["api_socket"]) && exists(&rec["vsock_uds"]));
    let kept: Value =
        serde_json::from_slice(&std::fs::read(t.run_dir("box").join("vmm.json")).unwrap()).unwrap();
    assert_eq!(kept, rec);
    assert_eq!(
        t.fake.request_lines(),
        [
            "PUT /logger",
            "PUT /serial",
            "PUT /machine-config",
            "PUT /boot-source",
            "PUT /drives/rootfs",
            "PUT /vsock",
            "PUT /actions"
        ]
    );
    let reqs = t.fake.requests();
    assert_eq!(
        reqs[3].2.as_ref().unwrap()["boot_args"],
        "console=ttyS0 reboot=k"
    );
    // The console went to console.log (through the FIFO and its logger,
    // so it lands a moment later), Firecracker's own output to vmm.log.
    let console_log = rec["console_log"].as_str().unwrap();
    let console = banger_testkit::poll(std::time::Duration::from_secs(10), || {
        let c = std::fs::read_to_string(console_log).unwrap_or_default();
        c.contains("Command line: console=ttyS0").then_some(c)
    })
    .unwrap_or_else(|| std::fs::read_to_string(console_log).unwrap_or_default());
    assert!(console.contains("Command line: console=ttyS0"), "{console}");
    let vmm_log = std::fs::read_to_string(rec["vmm_log"].as_str().unwrap()).unwrap();
    assert!(vmm_log.contains("Running Firecracker"), "{vmm_log}");
    assert!(!console.contains("Running Firecracker"));

    assert_eq!(t.json(&["status", "box"])["state"], "running");
    assert_eq!(t.json(&["pause", "box"])["state"], "paused");
    assert_eq!(t.json(&["status", "box"])["state"], "paused");
    assert_eq!(t.json(&["resume", "box"])["state"], "running");
    let cfg = t.json(&["status", "box", "--config"]);
    assert_eq!(cfg["config"]["machine-config"]["vcpu_count"], 2);

    let snap = t.home.path().join("snap");
    let s = t.json(&["snapshot", "create", "box", "--dir", snap.to_str().unwrap()]);
    assert_eq!(s["state"], "running", "resumed after the snapshot");
    assert!(snap.join("vmstate").is_file() && snap.join("memory").is_file());
    // Refuses to overwrite.
    let a = t
        .cmd(&["snapshot", "create", "box", "--dir", snap.to_str().unwrap()])
        .assert()
        .code(5);
    assert!(stderr(&a).contains("already exists"));

    assert_eq!(
        rec["agent"],
        json!({"kind": "vsock", "uds": rec["vsock_uds"], "port": 52})
    );
    let stop = t.json(&["stop", "box"]);
    assert_eq!(stop["how"], "agent");
    assert!(!exists(&rec["api_socket"]) && !exists(&rec["vsock_uds"]));
    assert!(!t.run_dir("box").exists());
    // Idempotent.
    assert_eq!(
        t.json(&["stop", "box"]),
        json!({"id": "box", "stopped": true, "how": "not_running", "clean": false,
               "synced": false})
    );
    t.cmd(&["status", "box"]).assert().code(3);
    t.cmd(&["pause", "box"]).assert().code(3);

    let loaded = t.json(&["snapshot", "load", "box", "--dir", snap.to_str().unwrap()]);
    assert_ne!(loaded["pid"], rec["pid"]);
    assert_eq!(t.json(&["status", "box"])["state"], "running");
    assert!(t.fake.request_lines().ends_with(&[
        "PUT /logger".into(),
        "PUT /snapshot/load".into(),
        "PATCH /drives/rootfs".into(),
        "PATCH /vm".into(),
        "GET /".into()
    ]));
    t.json(&["stop", "box"]);
    t.fake.assert_valid();
    // The console logger ends with the VMM it served.
    t.assert_nothing_left_but_logs("box");
}

/// A paused guest hears no shutdown request: stop lets it run first, so
/// its agent powers it off cleanly instead of the timeout and a kill.
#[test]
fn stop_of_a_paused_vm_wakes_it_and_stops_it_through_its_agent() {
    let t = T::new();
    t.start(&t.spec("box")).success();
    assert_eq!(t.json(&["pause", "box"])["state"], "paused");
    let stop = t.json(&["stop", "box", "--timeout", "30"]);
    assert_eq!(
        (&stop["how"], &stop["clean"]),
        (&json!("agent"), &json!(true)),
        "{stop}"
    );
    let lines = t.fake.request_lines();
    let resumed = lines.iter().rposition(|l| l == "PATCH /vm").unwrap();
    let asked = lines
        .iter()
        .rposition(|l| l == "agent POST /reboot")
        .unwrap();
    assert!(resumed < asked, "{lines:?}");
    t.fake.assert_valid();
    t.assert_nothing_left_but_logs("box");
}

#[test]
fn a_running_vm_is_a_conflict() {
    let t = T::new();
    t.start(&t.spec("one")).success();
    let a = t.start(&t.spec("one")).code(5);
    assert!(stderr(&a).contains("already running"), "{}", stderr(&a));
    t.json(&["stop", "one"]);
    t.assert_nothing_left_but_logs("one");
    t.fake.assert_valid();
}

#[test]
fn bad_specs_spawn_nothing() {
    let t = T::new();
    let mut s = t.spec("bad");
    s["colour"] = json!("red");
    let a = t.start(&s).code(2);
    assert!(stderr(&a).contains("colour"), "{}", stderr(&a));
    let mut s = t.spec("bad");
    s["kernel"] = json!(t.home.path().join("nope"));
    t.start(&s).code(3);
    let mut s = t.spec("bad");
    s["tap"] = json!("bngr-nosuch9");
    s["mac"] = json!("06:00:ac:1e:00:02");
    t.start(&s).code(3);
    let mut s = t.spec("bad");
    s["api_socket"] = json!(format!("/tmp/{}", "s".repeat(110)));
    t.start(&s).code(2);
    t.cmd(&["start"]).write_stdin("not json").assert().code(2);
    // Firecracker takes raw disks only: a qcow2 overlay is refused first.
    let mut s = t.spec("bad");
    let disk = t.home.path().join("rootfs.qcow2");
    std::fs::write(&disk, b"QFI\xfb").unwrap();
    s["drives"] = json!([{"id": "rootfs", "path": disk, "root": true, "format": "qcow2"}]);
    let a = t.start(&s).code(2);
    assert!(
        stderr(&a).contains("Firecracker takes raw disk files only"),
        "{}",
        stderr(&a)
    );
    assert!(stderr(&a).contains("banger-qemu"), "{}", stderr(&a));
    assert!(t.fake.requests().is_empty());
    t.assert_nothing_left("bad");
}

/// `start --print-argv` prints the firecracker command line and the API
/// requests start would make, InstanceStart last, and starts nothing.
#[test]
fn print_argv_prints_the_process_and_requests_and_starts_nothing() {
    let t = T::new();
    let out = t
        .cmd(&["start", "--print-argv", "--no-jailer"])
        .write_stdin(t.spec("box").to_string())
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let lines: Vec<serde_json::Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let p: banger_lib::records::ProcessLine = serde_json::from_value(lines[0].clone()).unwrap();
    assert_eq!(p.process, "firecracker");
    assert_eq!(p.args[0], "--api-sock");
    assert_eq!(p.args[2..], ["--id".to_string(), "box".into()]);
    let reqs: Vec<banger_lib::records::RequestLine> = lines[1..]
        .iter()
        .map(|l| serde_json::from_value(l.clone()).unwrap())
        .collect();
    let paths: Vec<&str> = reqs.iter().map(|r| r.path.as_str()).collect();
    assert!(paths.contains(&"/boot-source"), "{paths:?}");
    assert!(paths.contains(&"/machine-config"), "{paths:?}");
    assert_eq!(paths.last(), Some(&"/actions"));
    assert_eq!(reqs.last().unwrap().body["action_type"], "InstanceStart");
    assert!(t.fake.requests().is_empty());
    t.assert_nothing_left("box");
}

#[test]
fn missing_firecracker_is_a_prerequisite() {
    let t = T::new().with("BANGER_FIRECRACKER", "/nonexistent/firecracker");
    let a = t.start(&t.spec("nofc")).code(4);
    let e = stderr(&a);
    assert!(
        e.contains("firecracker is missing") && e.contains("hint:"),
        "{e}"
    );
    t.assert_nothing_left("nofc");
}

#[test]
fn a_firecracker_older_than_supported_is_a_prerequisite() {
    let t = T::new().with("FAKE_FC_VERSION", "1.9.2");
    let a = t.start(&t.spec("old")).code(4);
    let e = stderr(&a);
    assert!(
        e.contains("Firecracker v1.9") && e.contains("v1.16 or newer"),
        "{e}"
    );
    t.assert_nothing_left("old");
    assert!(t.fake.requests().is_empty(), "nothing was started");
    // A newer one is fine.
    let t = T::new().with("FAKE_FC_VERSION", "1.17.0-dev");
    let out = t
        .start(&t.spec("new"))
        .success()
        .get_output()
        .stdout
        .clone();
    let rec: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(rec["vmm_version"], "Firecracker v1.17.0-dev");
    t.json(&["stop", "new", "--kill"]);
    t.assert_nothing_left_but_logs("new");
}

#[test]
fn refused_request_shows_fault_and_cleans_up() {
    let t = T::new().with(env::FAIL, "PUT /drives/rootfs");
    let a = t.start(&t.spec("f1")).code(1);
    let e = stderr(&a);
    assert!(e.contains("injected failure for PUT /drives/rootfs"), "{e}");
    assert!(e.contains("firecracker's last words"), "{e}");
    t.assert_nothing_left("f1");
    t.fake.assert_valid();
}

#[test]
fn death_at_instance_start_cleans_up() {
    let t = T::new().with(env::DIE, "PUT /actions InstanceStart");
    t.start(&t.spec("f2")).code(1);
    t.assert_nothing_left("f2");
    t.fake.assert_valid();
}

#[test]
fn a_hung_api_times_out_and_cleans_up() {
    let t = T::new().with(env::HANG, "PUT /boot-source");
    let a = t.start(&t.spec("f3")).code(1);
    assert!(stderr(&a).contains("no answer within"), "{}", stderr(&a));
    t.assert_nothing_left("f3");
}

#[test]
fn stale_sockets_are_replaced() {
    let t = T::new();
    let run = t.run_dir("st");
    std::fs::create_dir_all(&run).unwrap();
    // A socket file nobody listens on, as a crashed firecracker leaves it.
    drop(std::os::unix::net::UnixListener::bind(run.join("api.sock")).unwrap());
    drop(std::os::unix::net::UnixListener::bind(run.join("vsock.sock")).unwrap());
    t.start(&t.spec("st")).success();
    t.json(&["stop", "st"]);
    t.assert_nothing_left_but_logs("st");
}

#[test]
fn a_vmm_that_ignores_sigterm_gets_sigkill() {
    let t = T::new()
        .with(env::IGNORE_CTRL_ALT_DEL, "1")
        .with(env::IGNORE_SIGTERM, "1");
    t.start(&t.spec("s2")).success();
    assert_eq!(t.json(&["stop", "s2", "--kill"])["how"], "killed");
    t.assert_nothing_left_but_logs("s2");
    t.fake.assert_valid();
}

#[test]
fn a_crashed_vm_shows_dead_and_stops_clean() {
    let t = T::new().with(env::EXIT_AFTER_START, "1");
    let out = t.start(&t.spec("c1")).success().get_output().stdout.clone();
    let rec: Value = serde_json::from_slice(&out).unwrap();
    let (pid, st) = (
        rec["pid"].as_u64().unwrap() as u32,
        rec["pid_start_time"].as_u64().unwrap(),
    );
    banger_testkit::poll(std::time::Duration::from_secs(10), || {
        (!banger_lib::proc::is_alive(pid, st)).then_some(())
    })
    .expect("the fake exits after start");
    let s = t.json(&["status", "c1"]);
    assert_eq!(
        (s["alive"].clone(), s["state"].clone()),
        (json!(false), json!("dead"))
    );
    t.cmd(&["pause", "c1"]).assert().code(3);
    let stop = t.json(&["stop", "c1"]);
    assert_eq!(
        (&stop["how"], &stop["clean"]),
        (&json!("already_dead"), &json!(false))
    );
    t.assert_nothing_left_but_logs("c1");
}

#[test]
fn the_fake_reports_requests_that_break_the_schema() {
    // Guard the guard: a bad request must be recorded as a violation.
    let t = T::new();
    t.start(&t.spec("v1")).success();
    let sock = t.run_dir("v1").join("api.sock");
    let r = banger_lib::uds_http::UdsClient::new(&sock)
        .request(
            "PUT",
            "/machine-config",
            Some(&json!({"vcpu_count": 1, "mem_size_mib": 128, "colour": "red"})),
            std::time::Duration::from_secs(5),
        )
        .unwrap();
    assert_eq!(r.status, 400);
    assert!(r.fault_message().contains("colour"));
    assert_eq!(t.fake.violations().len(), 1);
    t.json(&["stop", "v1"]);
}

/// suspend: pause, a Full snapshot into DIR (via DIR.part), Firecracker
/// gone; restore from DIR with the spec on stdin: loaded and resumed. Every
/// request validates against the OpenAPI document.
#[test]
fn suspend_and_restore_with_valid_requests() {
    let t = T::new();
    let rec: Value = serde_json::from_slice(
        &t.start(&t.spec("box"))
            .success()
            .get_output()
            .stdout
            .clone(),
    )
    .unwrap();
    let dir = t.home.path().join("box.suspend");
    let s = t.json(&["suspend", "box", "--to", dir.to_str().unwrap()]);
    assert_eq!(s["state"], "suspended", "{s}");
    assert_eq!(s["file"], json!(dir));
    assert_eq!(s["vmm_version"], "Firecracker v1.16.1");
    for f in ["vmstate", "memory", "spec.json"] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    assert!(!t.home.path().join("box.suspend.part").exists());
    assert!(!banger_lib::proc::is_alive(
        rec["pid"].as_u64().unwrap() as u32,
        rec["pid_start_time"].as_u64().unwrap()
    ));
    assert!(!t.run_dir("box").exists());
    assert!(t.fake.request_lines().ends_with(&[
        "GET /".into(),
        "PATCH /vm".into(),
        "PUT /snapshot/create".into(),
    ]));
    // A second suspend of a VM that is not running: exit 3, nothing made.
    let other = t.home.path().join("other");
    t.cmd(&["suspend", "box", "--to", other.to_str().unwrap()])
        .assert()
        .code(3);
    assert!(!other.exists());

    let back: Value = serde_json::from_slice(
        &t.cmd(&["restore", "--from", dir.to_str().unwrap()])
            .write_stdin(t.spec("box").to_string())
            .assert()
            .success()
            .get_output()
            .stdout
            .clone(),
    )
    .unwrap();
    assert_ne!(back["pid"], rec["pid"]);
    assert_eq!(back["agent"], rec["agent"]);
    assert_eq!(t.json(&["status", "box"])["state"], "running");
    // Resumed only after its drives are pointed at the spec's files.
    let body = crate::common::assert_loaded_paused_then_resumed(&t);
    assert_eq!(body["vsock_override"]["uds_path"], rec["vsock_uds"]);
    assert_eq!(body["mem_backend"]["backend_type"], "File");

    // Suspending onto an existing path is a conflict; the VM runs on.
    let a = t
        .cmd(&["suspend", "box", "--to", dir.to_str().unwrap()])
        .assert()
        .code(5);
    assert!(stderr(&a).contains("already exists"));
    assert_eq!(t.json(&["status", "box"])["state"], "running");
    t.json(&["stop", "box"]);
    t.fake.assert_valid();
    t.assert_nothing_left_but_logs("box");
}

#[test]
fn restore_from_a_missing_state_is_not_found_and_leaves_nothing() {
    let t = T::new();
    let dir = t.home.path().join("nothing-here");
    let a = t
        .cmd(&["restore", "--from", dir.to_str().unwrap()])
        .write_stdin(t.spec("box").to_string())
        .assert()
        .code(3);
    assert!(stderr(&a).contains("nothing-here"), "{}", stderr(&a));
    assert!(t.fake.request_lines().is_empty());
    t.assert_nothing_left("box");
}
