//! banger-fc under a jailer: the fake firecracker behind the strict fake
//! jailer (banger_testkit::fakefc::jailer_binary), as root. The jailed
//! process runs as the VMM user, chrooted in the jail, in its own pid
//! namespace; the API and vsock sockets are reached through the chroot;
//! stop leaves nothing of the jail. Snapshots and suspends are written in
//! the jail and moved out as root's; a restore loads them in a new jail.

use crate::common::{record, stderr, T};
use banger_lib::vmmuser;
use banger_testkit::fakefc::env;
use serde_json::{json, Value};
use std::os::unix::fs::MetadataExt;
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
    let rec = record(t.start(&t.spec("box")));
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
    let rec = record(
        t.cmd(&["start", "--no-jailer"])
            .write_stdin(t.spec("box").to_string())
            .assert(),
    );
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

/// The process of `rec` runs as the VMM user, rooted in its jail, in a
/// pid namespace of its own.
fn assert_jailed(rec: &Value) -> PathBuf {
    let user = vmmuser::lookup(vmmuser::DEFAULT).unwrap();
    let jail = PathBuf::from(rec["jail"].as_str().expect("a jail in the record"));
    let pid = rec["pid"].as_u64().unwrap() as u32;
    assert_eq!(status_field(pid, "Uid:"), vec![user.uid.to_string(); 4]);
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/root")).unwrap(),
        jail.join("root")
    );
    let ns = |p: &str| std::fs::read_link(format!("/proc/{p}/ns/pid")).unwrap();
    assert_ne!(ns(&pid.to_string()), ns("self"));
    jail
}

/// Root's alone, as `suspend` and `snapshot create` leave their files.
fn assert_roots_0600(f: &Path) {
    let m = std::fs::symlink_metadata(f).unwrap();
    assert!(m.is_file(), "{}", f.display());
    assert_eq!(
        (m.uid(), m.gid(), m.mode() & 0o7777),
        (0, 0, 0o600),
        "{}",
        f.display()
    );
}

/// The body of the last request to `path`.
fn last_body(t: &T, path: &str) -> Value {
    t.fake
        .requests()
        .iter()
        .rev()
        .find(|r| r.1 == path)
        .and_then(|r| r.2.clone())
        .unwrap_or_else(|| panic!("no request to {path}"))
}

#[test]
fn jailed_suspend_then_restore_in_a_new_jail_as_root() {
    let test = "jailed_suspend_then_restore_in_a_new_jail_as_root";
    let Some((t, _log)) = jailed(test) else {
        return;
    };
    let user = vmmuser::lookup(vmmuser::DEFAULT).unwrap();
    let rec = record(t.start(&t.spec("box")));
    let jail = assert_jailed(&rec);
    let dir = t.home.path().join("box.suspend");
    let s = t.json(&["suspend", "box", "--to", dir.to_str().unwrap()]);
    assert_eq!(s["state"], "suspended", "{s}");
    // Firecracker wrote in its chroot; the files are root's now, out of it.
    let create = last_body(&t, "/snapshot/create");
    assert_eq!(create["snapshot_path"], "/snapshot/vmstate");
    assert_eq!(create["mem_file_path"], "/snapshot/memory");
    for f in ["vmstate", "memory"] {
        assert_roots_0600(&dir.join(f));
    }
    assert!(dir.join("spec.json").is_file());
    assert!(dir.join("jailed").is_file(), "no jailed mark");
    assert!(!t.home.path().join("box.suspend.part").exists());
    assert!(!jail.exists(), "the jail {} is left", jail.display());
    assert!(!banger_lib::proc::is_alive(
        rec["pid"].as_u64().unwrap() as u32,
        rec["pid_start_time"].as_u64().unwrap()
    ));

    // --no-jailer cannot load it: its vmstate names the jail's drives.
    let a = t
        .cmd(&["restore", "--from", dir.to_str().unwrap(), "--no-jailer"])
        .write_stdin(t.spec("box").to_string())
        .assert()
        .code(2);
    assert!(stderr(&a).contains("under the jailer"), "{}", stderr(&a));
    assert!(!jail.exists());

    let back = record(
        t.cmd(&["restore", "--from", dir.to_str().unwrap()])
            .write_stdin(t.spec("box").to_string())
            .assert(),
    );
    assert_eq!(assert_jailed(&back), jail);
    assert_eq!(t.json(&["status", "box"])["state"], "running");
    let load = last_body(&t, "/snapshot/load");
    assert_eq!(load["snapshot_path"], "/vmstate");
    assert_eq!(load["mem_backend"]["backend_path"], "/memory");
    assert_eq!(load["vsock_override"]["uds_path"], "/vsock.sock");
    assert_eq!(crate::common::assert_loaded_paused_then_resumed(&t), load);
    assert_eq!(
        last_body(&t, "/drives/rootfs")["path_on_host"],
        "/drive-rootfs"
    );
    // The state in the jail: a copy the VMM user reads and cannot write
    // (root's 0600 original is not its to read); the original is as it was.
    for f in ["vmstate", "memory"] {
        let inside = std::fs::metadata(jail.join("root").join(f)).unwrap();
        assert_eq!(
            (inside.uid(), inside.gid(), inside.mode() & 0o7777),
            (0, user.gid.as_raw(), 0o440),
            "{f}"
        );
        assert_ne!(inside.ino(), std::fs::metadata(dir.join(f)).unwrap().ino());
        assert_roots_0600(&dir.join(f));
    }
    // The restored VM is paused and resumed like any jailed VM.
    assert_eq!(t.json(&["pause", "box"])["state"], "paused");
    assert_eq!(t.json(&["resume", "box"])["state"], "running");

    t.json(&["stop", "box", "--timeout", "5"]);
    assert!(!jail.exists(), "the jail {} is left", jail.display());
    assert!(dir.join("memory").is_file(), "the saved state went");
    t.assert_nothing_left_but_logs("box");
    t.fake.assert_valid();
}

#[test]
fn jailed_golden_snapshot_restores_a_clone_in_its_own_jail_as_root() {
    let test = "jailed_golden_snapshot_restores_a_clone_in_its_own_jail_as_root";
    let Some((t, _log)) = jailed(test) else {
        return;
    };
    let src = record(t.start(&t.spec("src")));
    let src_jail = assert_jailed(&src);
    let gold = t.home.path().join("gold");
    let root_copy = gold.join("rootfs.ext4");
    let before = t.fake.requests().len();
    let line = t.json(&[
        "snapshot",
        "create",
        "src",
        "--dir",
        gold.to_str().unwrap(),
        "--disk",
        &format!("rootfs={}", root_copy.display()),
    ]);
    assert_eq!(line["state"], "running", "{line}");
    assert_eq!(line["disks"][0]["path"], json!(root_copy));
    assert_eq!(std::fs::read(&root_copy).unwrap(), b"rootfs");
    // No drive is moved: the vmstate names the chroot's /drive-rootfs,
    // which in a clone's jail is the clone's own disk.
    let lines: Vec<String> = t.fake.request_lines()[before..].to_vec();
    assert_eq!(
        lines,
        ["GET /", "PATCH /vm", "PUT /snapshot/create", "PATCH /vm"]
    );
    let state: Value =
        serde_json::from_slice(&std::fs::read(gold.join("vmstate")).unwrap()).unwrap();
    assert_eq!(
        state["config"]["drives"][0]["path_on_host"],
        "/drive-rootfs"
    );
    for f in ["vmstate", "memory"] {
        assert_roots_0600(&gold.join(f));
    }
    assert!(gold.join("jailed").is_file());
    assert!(
        !src_jail.join("root/snapshot").exists(),
        "the outbox is left"
    );
    assert_eq!(t.json(&["status", "src"])["state"], "running");

    // The clone: its own copy of the golden disk, its own jail.
    let clone_disk = t.home.path().join("clone-rootfs.ext4");
    std::fs::copy(&root_copy, &clone_disk).unwrap();
    let mut spec = t.spec("clone");
    spec["drives"][0]["path"] = json!(clone_disk);
    let clone = record(
        t.cmd(&["restore", "--from", gold.to_str().unwrap()])
            .write_stdin(spec.to_string())
            .assert(),
    );
    let clone_jail = assert_jailed(&clone);
    assert_ne!(clone_jail, src_jail);
    assert_eq!(
        clone_jail,
        t.home
            .path()
            .join("state/banger/jail/fake-firecracker/clone")
    );
    let drive = std::fs::metadata(clone_jail.join("root/drive-rootfs")).unwrap();
    assert_eq!(
        drive.ino(),
        std::fs::metadata(&clone_disk).unwrap().ino(),
        "the clone's jail holds the clone's disk"
    );
    assert_ne!(
        drive.ino(),
        std::fs::metadata(&root_copy).unwrap().ino(),
        "the clone runs on the golden copy"
    );
    assert_eq!(t.json(&["status", "clone"])["state"], "running");
    assert_eq!(t.json(&["status", "src"])["state"], "running");

    t.json(&["stop", "clone", "--timeout", "5"]);
    t.json(&["stop", "src", "--timeout", "5"]);
    for j in [&src_jail, &clone_jail] {
        assert!(!j.exists(), "the jail {} is left", j.display());
    }
    for f in ["vmstate", "memory", "spec.json", "jailed", "rootfs.ext4"] {
        assert!(gold.join(f).is_file(), "{f} went with the VMs");
    }
    t.assert_nothing_left_but_logs("src");
    t.assert_nothing_left_but_logs("clone");
    t.fake.assert_valid();
}

#[test]
fn jailed_snapshot_and_restore_failures_leave_nothing_as_root() {
    let test = "jailed_snapshot_and_restore_failures_leave_nothing_as_root";
    let Some((t, _log)) = jailed(test) else {
        return;
    };
    // A Firecracker that fails every snapshot.
    let rec = record(
        t.cmd(&["start"])
            .env(env::FAIL, "PUT /snapshot/create")
            .write_stdin(t.spec("box").to_string())
            .assert(),
    );
    let jail = assert_jailed(&rec);
    // No files, no outbox, the VM runs on.
    let snap = t.home.path().join("snap");
    t.cmd(&["snapshot", "create", "box", "--dir", snap.to_str().unwrap()])
        .assert()
        .code(1);
    assert!(!snap.exists(), "{} left", snap.display());
    assert!(!jail.join("root/snapshot").exists(), "the outbox is left");
    assert_eq!(t.json(&["status", "box"])["state"], "running");
    // And a suspend: DIR.part goes, the VM runs on, in its jail.
    let dir = t.home.path().join("box.suspend");
    t.cmd(&["suspend", "box", "--to", dir.to_str().unwrap()])
        .assert()
        .code(1);
    assert!(!dir.exists() && !t.home.path().join("box.suspend.part").exists());
    assert!(!jail.join("root/snapshot").exists(), "the outbox is left");
    assert_eq!(t.json(&["status", "box"])["state"], "running");
    t.json(&["stop", "box", "--kill"]);

    t.start(&t.spec("box")).success();
    t.json(&["suspend", "box", "--to", dir.to_str().unwrap()]);
    // The load fails: no process, no jail, no record; the state stays.
    let a = t
        .cmd(&["restore", "--from", dir.to_str().unwrap()])
        .env(env::FAIL, "PUT /snapshot/load")
        .write_stdin(t.spec("box").to_string())
        .assert()
        .code(1);
    assert!(stderr(&a).contains("injected failure"), "{}", stderr(&a));
    assert!(!jail.exists(), "the jail {} is left", jail.display());
    assert!(!t
        .home
        .path()
        .join("state/banger/jail/fake-firecracker")
        .exists());
    t.assert_nothing_left_but_logs("box");
    t.cmd(&["status", "box"]).assert().code(3);
    for f in ["vmstate", "memory", "spec.json", "jailed"] {
        assert!(dir.join(f).is_file(), "{f} went");
    }
    // Without a jailer it is a prerequisite, not a run as root.
    let a = t
        .cmd(&["restore", "--from", dir.to_str().unwrap()])
        .env("BANGER_JAILER", t.home.path().join("no-jailer"))
        .write_stdin(t.spec("box").to_string())
        .assert()
        .code(4);
    assert!(stderr(&a).contains("jailer"), "{}", stderr(&a));
    t.assert_nothing_left_but_logs("box");
    t.fake.assert_valid();
}

/// A snapshot of a VM run without the jailer names host paths: it loads
/// without the jailer, as before, even where one is found.
#[test]
fn an_unjailed_snapshot_restores_unjailed_as_root() {
    let test = "an_unjailed_snapshot_restores_unjailed_as_root";
    let Some((t, log)) = jailed(test) else {
        return;
    };
    t.cmd(&["start", "--no-jailer"])
        .write_stdin(t.spec("box").to_string())
        .assert()
        .success();
    let dir = t.home.path().join("box.suspend");
    t.json(&["suspend", "box", "--to", dir.to_str().unwrap()]);
    assert!(!dir.join("jailed").exists());
    let back = record(
        t.cmd(&["restore", "--from", dir.to_str().unwrap()])
            .write_stdin(t.spec("box").to_string())
            .assert(),
    );
    assert!(back.get("jail").is_none(), "{back}");
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "", "the jailer ran");
    assert_eq!(
        last_body(&t, "/snapshot/load")["snapshot_path"],
        json!(dir.join("vmstate"))
    );
    t.json(&["stop", "box", "--kill"]);
    t.assert_nothing_left_but_logs("box");
    t.fake.assert_valid();
}
