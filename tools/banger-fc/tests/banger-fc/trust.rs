//! What banger-fc will not trust: a spec that names the binary to run (on
//! stdin or in a snapshot), and, as root, directories another user can
//! write or a lock planted as a symlink.

use crate::common::{stderr, T};
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A "firecracker" that leaves a mark if anything ever runs it.
fn marking_binary(dir: &Path) -> (PathBuf, PathBuf) {
    let mark = dir.join("ran");
    let bin = dir.join("evil-firecracker");
    std::fs::write(&bin, format!("#!/bin/sh\ntouch {}\n", mark.display())).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    (bin, mark)
}

#[test]
fn a_spec_may_not_name_the_binary_on_stdin_or_in_a_snapshot() {
    let t = T::new();
    let (bin, mark) = marking_binary(t.home.path());
    let mut s = t.spec("box");
    s["binary"] = json!(bin);
    let a = t.start(&s).code(2);
    assert!(
        stderr(&a).contains("may not name the VMM binary"),
        "{}",
        stderr(&a)
    );

    let snap = t.home.path().join("snap");
    std::fs::create_dir(&snap).unwrap();
    std::fs::write(snap.join("spec.json"), s.to_string()).unwrap();
    std::fs::write(snap.join("vmstate"), b"x").unwrap();
    std::fs::write(snap.join("memory"), b"x").unwrap();
    let a = t
        .cmd(&["snapshot", "load", "box", "--dir", snap.to_str().unwrap()])
        .assert()
        .code(2);
    assert!(stderr(&a).contains("binary"), "{}", stderr(&a));
    assert!(!mark.exists(), "the spec's binary ran");
    t.assert_nothing_left("box");
}

/// A directory owned by nobody (uid 65534), as `sudo -E` would hand root.
fn foreign_dir(parent: &Path, name: &str) -> PathBuf {
    let d = parent.join(name);
    std::fs::create_dir(&d).unwrap();
    nix::unistd::chown(&d, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
    d
}

#[test]
fn as_root_a_foreign_runtime_dir_with_a_planted_lock_is_refused() {
    if !banger_testkit::require_root("as_root_a_foreign_runtime_dir_with_a_planted_lock_is_refused")
    {
        return;
    }
    let t0 = T::new();
    let user = foreign_dir(t0.home.path(), "user");
    let canary = t0.home.path().join("canary");
    std::fs::write(&canary, "keep").unwrap();
    let run = user.join("banger/box");
    std::fs::create_dir_all(&run).unwrap();
    std::os::unix::fs::symlink(&canary, run.join("vmm.json.lock")).unwrap();
    let t = T::new().with("XDG_RUNTIME_DIR", user.to_str().unwrap());
    for args in [&["stop", "box"][..], &["start"]] {
        let a = t
            .cmd(args)
            .write_stdin(t.spec("box").to_string())
            .assert()
            .code(4);
        let err = stderr(&a);
        assert!(err.contains(&user.display().to_string()), "{err}");
        assert!(err.contains("XDG_RUNTIME_DIR"), "{err}");
    }
    assert_eq!(std::fs::read_to_string(&canary).unwrap(), "keep");

    // A root-owned runtime dir with the same planted lock: the lock is
    // never opened through the link.
    let t = T::new();
    let run = t.run_dir("box");
    std::fs::create_dir_all(&run).unwrap();
    std::os::unix::fs::symlink(&canary, run.join("vmm.json.lock")).unwrap();
    let a = t.start(&t.spec("box")).failure();
    assert!(stderr(&a).contains("symbolic link"), "{}", stderr(&a));
    assert_eq!(std::fs::read_to_string(&canary).unwrap(), "keep");
    assert!(t.processes().is_empty());
}

#[test]
fn as_root_every_dir_a_variable_points_at_is_checked() {
    if !banger_testkit::require_root("as_root_every_dir_a_variable_points_at_is_checked") {
        return;
    }
    let t = T::new();
    let user = foreign_dir(t.home.path(), "user");
    let open = t.home.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    for var in [
        "XDG_STATE_HOME",
        "XDG_DATA_HOME",
        "XDG_CONFIG_HOME",
        "BANGER_RUNTIME",
    ] {
        for dir in [&user, &open] {
            let a = t.cmd(&["status", "box"]).env(var, dir).assert().code(4);
            let err = stderr(&a);
            assert!(err.contains(&dir.display().to_string()), "{var}: {err}");
        }
    }
}

#[test]
fn as_root_a_snapshot_dir_another_user_can_write_is_refused() {
    if !banger_testkit::require_root("as_root_a_snapshot_dir_another_user_can_write_is_refused") {
        return;
    }
    let t = T::new();
    let snap = foreign_dir(t.home.path(), "snap");
    std::fs::write(snap.join("spec.json"), t.spec("box").to_string()).unwrap();
    let a = t
        .cmd(&["snapshot", "load", "box", "--dir", snap.to_str().unwrap()])
        .assert()
        .code(4);
    assert!(
        stderr(&a).contains(&snap.display().to_string()),
        "{}",
        stderr(&a)
    );
    assert!(t.fake.request_lines().is_empty());
}
