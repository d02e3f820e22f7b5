//! banger-fc under a jailer: the fake firecracker behind the strict fake
//! jailer (banger_testkit::fakefc::jailer_binary), as root. The jailed
//! process runs as the VMM user, chrooted in the jail, in its own pid
//! namespace; the API and vsock sockets are reached through the chroot;
//! stop leaves nothing of the jail.

use crate::common::T;
use banger_lib::vmmuser;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn jailed(test: &str) -> Option<(T, PathBuf)> {
    if !banger_testkit::require_root(test) {
        return None;
    }
    let t = T::new();
    let log = t.home.path().join("jailer-argv.jsonl");
    std::fs::write(&log, "").unwrap();
    let jailer = banger_testkit::fakefc::jailer_binary();
    let t = t
        .with("BANGER_JAILER", jailer.to_str().unwrap())
        .with("FAKE_JAILER_LOG", log.to_str().unwrap());
    Some((t, log))
}

fn status_field(pid: u32, key: &str) -> Vec<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(key)).unwrap();
    line[key.len()..]
        .split_whitespace()
        .map(String::from)
        .collect()
}

#[test]
fn jailed_firecracker_runs_unprivileged_in_its_chroot_and_leaves_nothing_as_root() {
    let test = "jailed_firecracker_runs_unprivileged_in_its_chroot_and_leaves_nothing_as_root";
    let Some((t, log)) = jailed(test) else {
        return;
    };
    let user = vmmuser::lookup(vmmuser::DEFAULT).unwrap();
    let out = t
        .start(&t.spec("box"))
        .success()
        .get_output()
        .stdout
        .clone();
    let rec: Value = serde_json::from_slice(&out).unwrap();
    let jail = PathBuf::from(rec["jail"].as_str().expect("a jail in the record"));
    let root = jail.join("root");
    assert_eq!(
        jail,
        t.home.path().join("state/banger/jail/fake-firecracker/box")
    );
    // The jailer was given what its documentation asks for.
    let argv: Vec<String> = serde_json::from_str(
        std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let want = [
        "--id".to_string(),
        "box".into(),
        "--exec-file".into(),
        banger_testkit::fakefc::binary().display().to_string(),
        "--uid".into(),
        user.uid.to_string(),
        "--gid".into(),
        user.gid.to_string(),
        "--chroot-base-dir".into(),
        t.home
            .path()
            .join("state/banger/jail")
            .display()
            .to_string(),
    ];
    assert_eq!(argv[..want.len()], want, "{argv:?}");
    let sep = argv.iter().position(|a| a == "--").unwrap();
    assert!(
        argv[..sep].contains(&"--new-pid-ns".to_string()),
        "{argv:?}"
    );
    assert_eq!(argv[sep + 1..], ["--api-sock", "/run/firecracker.socket"]);

    // The process: the VMM user, rooted in the chroot, another pid ns.
    let pid = rec["pid"].as_u64().unwrap() as u32;
    assert_eq!(status_field(pid, "Uid:"), vec![user.uid.to_string(); 4]);
    assert_eq!(status_field(pid, "Gid:"), vec![user.gid.to_string(); 4]);
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/root")).unwrap(),
        root
    );
    let ns = |p: &str| std::fs::read_link(format!("/proc/{p}/ns/pid")).unwrap();
    assert_ne!(ns(&pid.to_string()), ns("self"));
    // Sockets the host reaches through the chroot.
    for (k, inside) in [
        ("api_socket", "run/firecracker.socket"),
        ("vsock_uds", "vsock.sock"),
    ] {
        assert_eq!(Path::new(rec[k].as_str().unwrap()), root.join(inside));
        assert!(root.join(inside).exists(), "{k}");
    }
    // The API requests name paths inside the jail.
    let reqs = t.fake.requests();
    let boot = reqs.iter().find(|r| r.1 == "/boot-source").unwrap();
    assert_eq!(boot.2.as_ref().unwrap()["kernel_image_path"], "/vmlinux");
    let drive = reqs.iter().find(|r| r.1 == "/drives/rootfs").unwrap();
    assert_eq!(drive.2.as_ref().unwrap()["path_on_host"], "/drive-rootfs");
    // The console is the VM's console.log, written from inside.
    let console = std::fs::read_to_string(rec["console_log"].as_str().unwrap()).unwrap();
    assert!(console.contains("Command line: console=ttyS0"), "{console}");
    assert_eq!(t.json(&["status", "box"])["state"], "running");

    // Snapshots of a jailed VM are refused, saying how to get one.
    let snap = t.home.path().join("snap");
    let a = t
        .cmd(&["snapshot", "create", "box", "--dir", snap.to_str().unwrap()])
        .assert()
        .code(2);
    assert!(crate::common::stderr(&a).contains("--no-jailer"));

    let stopped = t.json(&["stop", "box", "--timeout", "5"]);
    assert_eq!(stopped["stopped"], true);
    assert!(!banger_lib::proc::is_alive(
        pid,
        rec["pid_start_time"].as_u64().unwrap()
    ));
    assert!(!jail.exists(), "{} left behind", jail.display());
    assert!(!jail.parent().unwrap().exists(), "the jail's name dir left");
    t.assert_nothing_left_but_logs("box");
    t.fake.assert_valid();
}

#[test]
fn no_jailer_runs_firecracker_as_before_as_root() {
    let test = "no_jailer_runs_firecracker_as_before_as_root";
    let Some((t, log)) = jailed(test) else {
        return;
    };
    let out = t
        .cmd(&["start", "--no-jailer"])
        .write_stdin(t.spec("box").to_string())
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let rec: Value = serde_json::from_slice(&out).unwrap();
    assert!(rec.get("jail").is_none(), "{rec}");
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "", "the jailer ran");
    let pid = rec["pid"].as_u64().unwrap() as u32;
    assert_eq!(status_field(pid, "Uid:"), vec!["0".to_string(); 4]);
    t.json(&["stop", "box", "--kill"]);
    t.assert_nothing_left_but_logs("box");
}

#[test]
fn a_jailed_firecracker_that_never_serves_leaves_no_jail_as_root() {
    let test = "a_jailed_firecracker_that_never_serves_leaves_no_jail_as_root";
    let Some((t, _log)) = jailed(test) else {
        return;
    };
    let t = t.with("FAKE_FC_HANG", "startup");
    let a = t.start(&t.spec("box")).code(1);
    let err = crate::common::stderr(&a);
    assert!(err.contains("did not create its API socket"), "{err}");
    assert!(!t
        .home
        .path()
        .join("state/banger/jail/fake-firecracker")
        .exists());
    t.assert_nothing_left_but_logs("box");
}

#[test]
fn a_failing_jailer_leaves_no_jail_and_shows_its_words_as_root() {
    let test = "a_failing_jailer_leaves_no_jail_and_shows_its_words_as_root";
    if !banger_testkit::require_root(test) {
        return;
    }
    let t = T::new();
    let jailer = t.home.path().join("jailer");
    std::fs::write(
        &jailer,
        "#!/bin/sh\necho 'Jailer error: boom' >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&jailer, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let t = t.with("BANGER_JAILER", jailer.to_str().unwrap());
    let a = t.start(&t.spec("box")).code(1);
    let err = crate::common::stderr(&a);
    assert!(err.contains("the jailer failed"), "{err}");
    assert!(err.contains("Jailer error: boom"), "{err}");
    assert!(!t
        .home
        .path()
        .join("state/banger/jail/fake-firecracker")
        .exists());
    t.assert_nothing_left_but_logs("box");
}

#[test]
fn a_named_jailer_that_is_missing_is_a_prerequisite_as_root() {
    let test = "a_named_jailer_that_is_missing_is_a_prerequisite_as_root";
    if !banger_testkit::require_root(test) {
        return;
    }
    let t = T::new();
    let missing = t.home.path().join("no-jailer");
    let t = t.with("BANGER_JAILER", missing.to_str().unwrap());
    let a = t.start(&t.spec("box")).code(4);
    let err = crate::common::stderr(&a);
    assert!(err.contains("will not run as root"), "{err}");
    assert!(err.contains("--no-jailer"), "{err}");
    assert!(t.fake.requests().is_empty(), "firecracker ran");
    t.assert_nothing_left("box");
}
