//! `snapshot create --disk` and `restore` of a clone against the fake
//! firecracker: the snapshot's vmstate names the disk copies, never the
//! source VM's own files, and a restored VM runs on the files of its spec.

use crate::common::{stderr, T};
use assert_cmd::Command;
use banger_lib::records::SnapshotLine;
use banger_testkit::fakefc::env;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// The test's VM with a second, writable drive `work`.
fn two_drive_spec(t: &T, id: &str) -> Value {
    let work = t.home.path().join(format!("{id}-work.ext4"));
    std::fs::write(&work, format!("work of {id}")).unwrap();
    let mut s = t.spec(id);
    s["drives"]
        .as_array_mut()
        .unwrap()
        .push(json!({"id": "work", "path": work}));
    s
}

/// `snapshot create ID --dir DIR`, a `--disk ID=DEST` per disk, then `extra`.
fn snapshot_create(
    t: &T,
    id: &str,
    dir: &Path,
    disks: &[(&str, &Path)],
    extra: &[&str],
) -> Command {
    let mut args: Vec<String> = vec!["snapshot".into(), "create".into(), id.into()];
    args.extend(["--dir".into(), dir.display().to_string()]);
    for (drive, dest) in disks {
        args.extend(["--disk".into(), format!("{drive}={}", dest.display())]);
    }
    args.extend(extra.iter().map(|e| e.to_string()));
    t.cmd(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// The one SnapshotLine a `snapshot create` that must succeed printed.
fn snapshot_line(mut c: Command) -> SnapshotLine {
    let out = c.assert().success().get_output().stdout.clone();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.lines().count(), 1, "one line: {text}");
    serde_json::from_str(&text).unwrap()
}

/// The (method path, body) of each request after the first `skip`.
fn since(t: &T, skip: usize) -> Vec<(String, Value)> {
    t.fake.requests()[skip..]
        .iter()
        .map(|(m, p, b)| (format!("{m} {p}"), b.clone().unwrap_or(Value::Null)))
        .collect()
}

fn drive_paths(config: &Value) -> Vec<(String, PathBuf)> {
    config["drives"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["drive_id"].as_str().unwrap().to_string(),
                PathBuf::from(d["path_on_host"].as_str().unwrap()),
            )
        })
        .collect()
}

fn path_of(spec: &Value, i: usize) -> PathBuf {
    PathBuf::from(spec["drives"][i]["path"].as_str().unwrap())
}

#[test]
fn snapshot_create_with_disks_then_a_clone_runs_on_its_own_copies() {
    let t = T::new();
    let spec = two_drive_spec(&t, "src");
    t.start(&spec).success();
    let snap = t.home.path().join("golden");
    let (root_copy, work_copy) = (snap.join("rootfs.ext4"), snap.join("work.ext4"));
    let before = t.fake.requests().len();
    let disks = [
        ("rootfs", root_copy.as_path()),
        ("work", work_copy.as_path()),
    ];
    let line = snapshot_line(snapshot_create(&t, "src", &snap, &disks, &[]));
    assert_eq!(line.id, "src");
    assert_eq!(line.state, "running");
    assert_eq!(line.dir, snap.canonicalize().unwrap());
    assert!(line.bytes > 0);
    assert_eq!(line.vmm_version, "Firecracker v1.16.1");
    let disks: Vec<(&str, &Path)> = line
        .disks
        .iter()
        .map(|d| (d.id.as_str(), d.path.as_path()))
        .collect();
    assert_eq!(
        disks,
        [
            ("rootfs", root_copy.as_path()),
            ("work", work_copy.as_path())
        ]
    );
    assert_eq!(std::fs::read(&root_copy).unwrap(), b"rootfs");
    assert_eq!(std::fs::read(&work_copy).unwrap(), b"work of src");

    // Paused, drives on the copies, snapshot, drives back, resumed.
    let reqs = since(&t, before);
    let lines: Vec<&str> = reqs.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        lines,
        [
            "GET /",
            "PATCH /vm",
            "PATCH /drives/rootfs",
            "PATCH /drives/work",
            "PUT /snapshot/create",
            "PATCH /drives/rootfs",
            "PATCH /drives/work",
            "PATCH /vm"
        ]
    );
    assert_eq!(reqs[1].1["state"], "Paused");
    assert_eq!(reqs[2].1["path_on_host"], json!(root_copy));
    assert_eq!(reqs[3].1["path_on_host"], json!(work_copy));
    assert_eq!(reqs[4].1["snapshot_type"], "Full");
    assert_eq!(reqs[5].1["path_on_host"], json!(path_of(&spec, 0)));
    assert_eq!(reqs[6].1["path_on_host"], json!(path_of(&spec, 1)));
    assert_eq!(reqs[7].1["state"], "Resumed");
    // The fake's vmstate is its config: it names the copies ...
    let state: Value =
        serde_json::from_slice(&std::fs::read(snap.join("vmstate")).unwrap()).unwrap();
    assert_eq!(
        drive_paths(&state["config"]),
        [
            ("rootfs".to_string(), root_copy.clone()),
            ("work".to_string(), work_copy.clone())
        ]
    );
    // ... while the source runs on its own files again.
    let cfg = t.json(&["status", "src", "--config"]);
    assert_eq!(
        drive_paths(&cfg["config"]),
        [
            ("rootfs".to_string(), path_of(&spec, 0)),
            ("work".to_string(), path_of(&spec, 1))
        ]
    );
    assert_eq!(cfg["state"], "running");

    // A clone: its own copies of the snapshot's disks, its own spec.
    let mut clone = two_drive_spec(&t, "clone");
    let own_root = t.home.path().join("clone-rootfs.ext4");
    std::fs::copy(&root_copy, &own_root).unwrap();
    std::fs::copy(&work_copy, path_of(&clone, 1)).unwrap();
    clone["drives"][0]["path"] = json!(own_root);
    let before = t.fake.requests().len();
    let rec = crate::common::record(
        t.cmd(&["restore", "--from", snap.to_str().unwrap()])
            .write_stdin(clone.to_string())
            .assert(),
    );
    assert_eq!(rec["id"], "clone");
    let reqs = since(&t, before);
    let lines: Vec<&str> = reqs.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        &lines[..5],
        [
            "PUT /logger",
            "PUT /snapshot/load",
            "PATCH /drives/rootfs",
            "PATCH /drives/work",
            "PATCH /vm"
        ]
    );
    assert_eq!(reqs[1].1["resume_vm"], false);
    assert!(reqs[1].1.get("track_dirty_pages").is_none());
    assert_eq!(reqs[2].1["path_on_host"], json!(own_root));
    assert_eq!(reqs[3].1["path_on_host"], json!(path_of(&clone, 1)));
    assert_eq!(reqs[4].1["state"], "Resumed");
    let cfg = t.json(&["status", "clone", "--config"]);
    assert_eq!(cfg["state"], "running");
    assert_eq!(
        drive_paths(&cfg["config"]),
        [
            ("rootfs".to_string(), own_root),
            ("work".to_string(), path_of(&clone, 1))
        ]
    );
    t.json(&["stop", "clone"]);
    t.json(&["stop", "src"]);
    t.fake.assert_valid();
    t.assert_nothing_left_but_logs("src");
}

#[test]
fn snapshot_create_refuses_bad_disk_asks_before_pausing() {
    let t = T::new();
    t.start(&two_drive_spec(&t, "box")).success();
    let snap = t.home.path().join("snap");
    let before = t.fake.requests().len();
    let data = snap.join("data.ext4");
    let a = snapshot_create(&t, "box", &snap, &[("data", &data)], &[])
        .assert()
        .code(2);
    assert!(stderr(&a).contains("no drive \"data\""), "{}", stderr(&a));
    let taken = t.home.path().join("taken.ext4");
    std::fs::write(&taken, b"mine").unwrap();
    let a = snapshot_create(&t, "box", &snap, &[("work", &taken)], &[])
        .assert()
        .code(5);
    assert!(stderr(&a).contains("already exists"), "{}", stderr(&a));
    assert_eq!(std::fs::read(&taken).unwrap(), b"mine");
    // Not ID=DEST, or DEST relative: clap refuses it.
    t.cmd(&["snapshot", "create", "box", "--dir", "/x", "--disk", "work"])
        .assert()
        .code(2);
    t.cmd(&[
        "snapshot", "create", "box", "--dir", "/x", "--disk", "work=rel",
    ])
    .assert()
    .code(2);
    assert!(
        !since(&t, before).iter().any(|r| r.0.starts_with("PATCH")),
        "paused or patched: {:?}",
        since(&t, before)
    );
    assert!(!snap.exists());
    assert_eq!(t.json(&["status", "box"])["state"], "running");
    t.json(&["stop", "box"]);
    t.fake.assert_valid();
}

#[test]
fn a_failed_snapshot_removes_the_copies_and_puts_the_drives_back() {
    let t = T::new().with(env::FAIL, "PUT /snapshot/create");
    let spec = two_drive_spec(&t, "box");
    t.start(&spec).success();
    let snap = t.home.path().join("snap");
    let copy = snap.join("work.ext4");
    let before = t.fake.requests().len();
    let a = snapshot_create(&t, "box", &snap, &[("work", &copy)], &[])
        .assert()
        .code(1);
    assert!(stderr(&a).contains("/snapshot/create"), "{}", stderr(&a));
    assert!(!copy.exists(), "the disk copy is left");
    assert!(!snap.exists(), "the snapshot dir is left");
    let reqs = since(&t, before);
    let lines: Vec<&str> = reqs.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        lines,
        [
            "GET /",
            "PATCH /vm",
            "PATCH /drives/work",
            "PUT /snapshot/create",
            "PATCH /drives/work",
            "PATCH /vm"
        ]
    );
    assert_eq!(reqs[4].1["path_on_host"], json!(path_of(&spec, 1)));
    assert_eq!(reqs[5].1["state"], "Resumed");
    let cfg = t.json(&["status", "box", "--config"]);
    assert_eq!(cfg["state"], "running");
    assert_eq!(drive_paths(&cfg["config"])[1].1, path_of(&spec, 1));
    t.json(&["stop", "box"]);
    t.fake.assert_valid();
}

#[test]
fn a_paused_vm_stays_paused_and_plain_snapshots_print_the_line() {
    let t = T::new();
    t.start(&t.spec("box")).success();
    t.json(&["pause", "box"]);
    let snap = t.home.path().join("snap");
    let line = snapshot_line(snapshot_create(&t, "box", &snap, &[], &[]));
    assert_eq!(line.state, "paused");
    assert!(line.disks.is_empty());
    assert_eq!(t.json(&["status", "box"])["state"], "paused");
    assert!(!t
        .fake
        .request_lines()
        .iter()
        .any(|l| l.starts_with("PATCH /drives")));
    t.json(&["stop", "box", "--kill"]);
    t.fake.assert_valid();
}

#[test]
fn diff_snapshots_need_dirty_page_tracking() {
    let t = T::new();
    t.start(&t.spec("plain")).success();
    let snap = t.home.path().join("snap");
    let before = t.fake.requests().len();
    let a = snapshot_create(&t, "plain", &snap, &[], &["--diff"])
        .assert()
        .code(2);
    assert!(stderr(&a).contains("--track-dirty-pages"), "{}", stderr(&a));
    assert!(!since(&t, before).iter().any(|r| r.0 == "PATCH /vm"));
    assert!(!snap.exists());
    t.json(&["stop", "plain"]);

    let out = t
        .cmd(&["start", "--track-dirty-pages"])
        .write_stdin(t.spec("dirty").to_string())
        .assert()
        .success();
    drop(out);
    let machine = t
        .fake
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.1 == "/machine-config")
        .unwrap();
    assert_eq!(machine.2.unwrap()["track_dirty_pages"], true);
    let before = t.fake.requests().len();
    let line = snapshot_line(snapshot_create(&t, "dirty", &snap, &[], &["--diff"]));
    assert_eq!(line.state, "running");
    let create = since(&t, before)
        .into_iter()
        .find(|r| r.0 == "PUT /snapshot/create")
        .unwrap();
    assert_eq!(create.1["snapshot_type"], "Diff");
    t.json(&["stop", "dirty"]);

    // Loaded with tracking, the VM can take Diff snapshots again.
    let before = t.fake.requests().len();
    t.json(&[
        "snapshot",
        "load",
        "dirty",
        "--dir",
        snap.to_str().unwrap(),
        "--track-dirty-pages",
    ]);
    let load = since(&t, before)
        .into_iter()
        .find(|r| r.0 == "PUT /snapshot/load")
        .unwrap();
    assert_eq!(load.1["track_dirty_pages"], true);
    let snap2 = t.home.path().join("snap2");
    snapshot_line(snapshot_create(&t, "dirty", &snap2, &[], &["--diff"]));
    t.json(&["stop", "dirty"]);
    t.fake.assert_valid();
}
