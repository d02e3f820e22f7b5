//! Golden snapshots and clones through the real banger-fc (against the
//! fake firecracker, whose stand-in agent takes `POST /identity`), the
//! real banger-image and banger-health: what a snapshot records, that
//! each clone gets its own disks, lease and identity, and that every bad
//! input is a clear error that leaves nothing behind.

use crate::common::*;
use crate::contract::real_fc_world;
use std::path::PathBuf;

fn snapshots_dir(fx: &Fx) -> PathBuf {
    fx.vms_dir().parent().unwrap().join("snapshots")
}

/// The bodies of the agent's `POST /identity` requests so far.
fn identities(fake: &banger_testkit::fakefc::FakeFc) -> Vec<serde_json::Value> {
    fake.agent_requests()
        .into_iter()
        .filter(|(m, p, _)| m == "POST" && p == "/identity")
        .map(|(_, _, b)| b)
        .collect()
}

#[test]
fn snapshot_then_two_clones_each_with_its_own_identity() {
    let t = "snapshot_then_two_clones_each_with_its_own_identity";
    if !banger_testkit::require_tool(t, "mkfs.ext4") {
        return;
    }
    let (fx, fake) = real_fc_world();
    let src = fx.create(
        "box",
        &["--vmm", "firecracker", "--disk", "16M", "--no-jailer"],
    );

    let out = fx.run(&["snapshot", "box", "--as", "gold"]);
    assert_ok(&out);
    let snap = &json_lines(&out)[0];
    assert_eq!(
        (&snap["name"], &snap["source"], &snap["vmm"], &snap["image"]),
        (
            &"gold".into(),
            &"box".into(),
            &"firecracker".into(),
            &"debian".into()
        ),
        "{snap}"
    );
    assert!(snap["bytes"].as_u64().unwrap() > 0, "{snap}");
    assert_eq!(snap["no_jailer"], true, "{snap}");
    let dir = snapshots_dir(&fx).join("gold");
    for f in [
        "snapshot.json",
        "vmstate",
        "memory",
        "rootfs.ext4",
        "work.ext4",
    ] {
        assert!(dir.join(f).is_file(), "no {f} in the snapshot");
    }
    // The source runs on, and the agent synced its disks first.
    assert_eq!(fx.vm_json("box")["state"], "running");
    assert_eq!(fx.vm_json("box")["pid"], src["pid"]);
    let lines = fake.request_lines();
    let sync = lines.iter().position(|l| l == "agent POST /sync").unwrap();
    let create = lines
        .iter()
        .position(|l| l == "PUT /snapshot/create")
        .unwrap();
    assert!(sync < create, "{lines:?}");
    let out = fx.run(&["snapshots"]);
    assert_ok(&out);
    assert_eq!(json_lines(&out)[0]["name"], "gold");
    // One name, one snapshot.
    assert_code(&fx.run(&["snapshot", "box", "--as", "gold"]), 5);

    let mut clones = Vec::new();
    for name in ["c1", "c2"] {
        let out = fx.run(&["create", "--name", name, "--from", "gold", "--timings"]);
        assert_ok(&out);
        let rec = json_lines(&out).remove(0);
        assert_eq!(
            (&rec["state"], &rec["from_snapshot"], &rec["vmm"]),
            (&"running".into(), &"gold".into(), &"firecracker".into()),
            "{rec}"
        );
        assert!(rec["timings_ms"]["identity"].is_number(), "{rec}");
        // Its source ran without the jailer: so does it (the state names
        // host paths).
        assert_eq!(rec["no_jailer"], true, "{rec}");
        // Its own disks, copies of the snapshot's.
        let root = PathBuf::from(rec["disks"]["rootfs"].as_str().unwrap());
        assert!(root.starts_with(fx.vms_dir().join(name)), "{rec}");
        assert!(root.is_file());
        clones.push(rec);
    }
    let [c1, c2] = [&clones[0], &clones[1]];
    for k in ["ip", "mac", "vsock_cid", "name"] {
        assert_ne!(c1[k], c2[k], "{k}");
        assert_ne!(c1[k], src[k], "{k}");
    }
    // Each clone's agent got its own identity, as its record says.
    let ids = identities(&fake);
    assert_eq!(ids.len(), 2, "{ids:?}");
    for (id, rec) in ids.iter().zip([c1, c2]) {
        assert_eq!(id["hostname"], rec["name"]);
        assert_eq!(id["address"], rec["ip"]);
        assert_eq!(id["mac"], rec["mac"]);
        assert_eq!(id["prefix"], rec["prefix"]);
        assert_eq!(id["gateway"], rec["gateway"]);
        assert_eq!(id["machine_id"].as_str().unwrap().len(), 32);
        assert_eq!(id["entropy"].as_str().unwrap().len(), 128);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        let sent = id["time_ns"].as_u64().unwrap();
        assert!(now - sent < 120_000_000_000, "time_ns {sent} vs {now}");
    }
    assert_ne!(ids[0]["machine_id"], ids[1]["machine_id"]);
    assert_ne!(ids[0]["entropy"], ids[1]["entropy"]);
    // Each its own ed25519 host key, made on the host: the PEM body on one
    // line, the public blob ed25519's, and neither file left behind.
    for id in &ids {
        let private = id["host_key"]["private"].as_str().unwrap();
        assert!(private.starts_with("b3BlbnNzaC1rZXktdjE"), "{id}"); // openssh-key-v1
        assert!(!private.contains('\n') && !private.contains('-'), "{id}");
        let public = id["host_key"]["public"].as_str().unwrap();
        assert!(public.starts_with("AAAAC3NzaC1lZDI1NTE5"), "{id}");
    }
    assert_ne!(ids[0]["host_key"], ids[1]["host_key"]);
    for c in ["c1", "c2"] {
        let left: Vec<_> = std::fs::read_dir(fx.vms_dir().join(c))
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("hostkey"))
            .collect();
        assert!(left.is_empty(), "{c}: {left:?}");
    }
    // Each restore put its own disks under the snapshot's vmstate.
    let patched: Vec<String> = fake
        .requests()
        .into_iter()
        .filter(|(m, p, _)| m == "PATCH" && p == "/drives/rootfs")
        .filter_map(|(_, _, b)| b?["path_on_host"].as_str().map(String::from))
        .collect();
    for name in ["c1", "c2"] {
        let own = fx.vms_dir().join(name).join("rootfs.ext4");
        assert!(
            patched.iter().any(|p| std::path::Path::new(p) == own),
            "{name}: {patched:?}"
        );
    }

    // A snapshot taken with an agent from before host_key: it refuses the
    // field (400, nothing changed), and the identity is sent again
    // without it, for the agent to make its own key.
    let out = fx.run_with(
        &["create", "--name", "c3", "--from", "gold"],
        &[("FAKE_FC_AGENT", "old_identity")],
    );
    assert_ok(&out);
    let ids = identities(&fake);
    let c3: Vec<_> = ids.iter().filter(|b| b["hostname"] == "c3").collect();
    assert_eq!(c3.len(), 2, "{c3:?}");
    assert!(c3[0].get("host_key").is_some() && c3[1].get("host_key").is_none());
    assert_eq!(c3[0]["machine_id"], c3[1]["machine_id"]);
    assert_ok(&fx.run(&["delete", "c3"]));
    fx.assert_nothing_left("c3");

    // rm while no clone is being made; the clones stay whole.
    let out = fx.run(&["snapshots", "rm", "gold"]);
    assert_ok(&out);
    assert!(!dir.exists());
    assert!(json_lines(&fx.run(&["snapshots"])).is_empty());
    assert_code(&fx.run(&["snapshots", "rm", "gold"]), 3);
    let out = fx.run(&["stop", "c1"]);
    assert_ok(&out);
    assert_ok(&fx.run(&["start", "c1"]));
    assert_ok(&fx.run(&["delete", "c1", "c2", "box"]));
    fake.assert_valid();
    for n in ["box", "c1", "c2"] {
        fx.assert_nothing_left(n);
    }
}

#[test]
fn clones_refuse_bad_input_and_leave_nothing() {
    let t = "clones_refuse_bad_input_and_leave_nothing";
    if !banger_testkit::require_tool(t, "mkfs.ext4") {
        return;
    }
    let (fx, fake) = real_fc_world();
    fx.create(
        "box",
        &["--vmm", "firecracker", "--disk", "16M", "--no-jailer"],
    );
    // Not running: nothing to snapshot.
    assert_ok(&fx.run(&["stop", "box"]));
    let out = fx.run(&["snapshot", "box", "--as", "gold"]);
    assert_code(&out, 5);
    assert!(!snapshots_dir(&fx).join("gold").exists());
    assert_code(&fx.run(&["snapshot", "nobox", "--as", "gold"]), 3);
    assert_code(&fx.run(&["snapshot", "box", "--as", "Bad_Name"]), 2);
    assert_ok(&fx.run(&["start", "box"]));
    assert_ok(&fx.run(&["snapshot", "box", "--as", "gold"]));

    // No such snapshot: exit 3, nothing made.
    let out = fx.run(&["create", "--name", "c1", "--from", "nope"]);
    assert_code(&out, 3);
    assert!(
        stderr(&out).contains("no snapshot named nope"),
        "{}",
        stderr(&out)
    );
    fx.assert_nothing_left("c1");
    // What the snapshot fixed cannot be chosen again.
    for extra in [
        &["--vcpus", "3"][..],
        &["--memory", "64"],
        &["--disk", "1G"],
        &["--vmm", "qemu"],
        &["--image", "debian"],
        &["--no-start"],
    ] {
        let mut args = vec!["create", "--name", "c1", "--from", "gold"];
        args.extend_from_slice(extra);
        let out = fx.run(&args);
        assert_code(&out, 2);
        fx.assert_nothing_left("c1");
    }
    // The name is taken.
    assert_code(&fx.run(&["create", "--name", "box", "--from", "gold"]), 5);

    // A kernel other than the one it was taken with: exit 5, nothing made.
    let snap: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(snapshots_dir(&fx).join("gold/snapshot.json")).unwrap(),
    )
    .unwrap();
    let kernel = PathBuf::from(snap["kernel"].as_str().unwrap());
    let mtime = std::fs::metadata(&kernel).unwrap().modified().unwrap();
    let f = std::fs::File::options().write(true).open(&kernel).unwrap();
    f.set_modified(mtime + std::time::Duration::from_secs(60))
        .unwrap();
    let out = fx.run(&["create", "--name", "c1", "--from", "gold"]);
    assert_code(&out, 5);
    assert!(
        stderr(&out).contains("changed since it was taken"),
        "{}",
        stderr(&out)
    );
    fx.assert_nothing_left("c1");
    f.set_modified(mtime).unwrap();
    drop(f);

    // An agent that cannot take the new identity: the create fails at
    // that step and undoes everything (VMM, lease, disks, record).
    let out = fx.run_with(
        &["create", "--name", "c1", "--from", "gold"],
        &[("FAKE_FC_AGENT", "refuse_identity")],
    );
    assert_code(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("failed at step identity"), "{err}");
    assert!(err.contains("hostkeys"), "{err}");
    fx.assert_nothing_left("c1");

    // The state file gone from under the snapshot: the restore fails, the
    // clone is undone, the snapshot's record stays.
    let state = snapshots_dir(&fx).join("gold/vmstate");
    std::fs::rename(&state, state.with_extension("away")).unwrap();
    let out = fx.run(&["create", "--name", "c1", "--from", "gold"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("failed at step vmm start"),
        "{}",
        stderr(&out)
    );
    fx.assert_nothing_left("c1");
    std::fs::rename(state.with_extension("away"), &state).unwrap();

    // A snapshot dir without its record (a killed `vm snapshot`): gc
    // removes it, and only it.
    let half = snapshots_dir(&fx).join("half");
    std::fs::create_dir_all(&half).unwrap();
    std::fs::write(half.join("memory"), b"x").unwrap();
    let out = fx.run(&["gc"]);
    assert_ok(&out);
    let lines = json_lines(&out);
    assert!(
        lines
            .iter()
            .any(|l| l["what"] == "snapshot" && l["removed"] == true),
        "{lines:?}"
    );
    assert!(!half.exists());
    assert!(snapshots_dir(&fx).join("gold/snapshot.json").is_file());

    assert_ok(&fx.run(&["delete", "box"]));
    assert_ok(&fx.run(&["snapshots", "rm", "gold"]));
    fake.assert_valid();
    fx.assert_nothing_left("box");
}

/// A tmpfs mounted for one test, unmounted (lazily) when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &std::path::Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .unwrap();
        assert!(ok.success(), "mounting a tmpfs on {}", at.display());
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// The snapshots dir full (a 256 KiB tmpfs over it): `vm snapshot` fails
/// with a clear error while the disks are copied, the source runs on
/// (not paused, its drives its own), and nothing of the snapshot is left.
/// Root: it mounts the tmpfs.
#[test]
fn a_full_disk_during_a_snapshot_leaves_the_source_running_and_nothing_behind() {
    let t = "a_full_disk_during_a_snapshot_leaves_the_source_running_and_nothing_behind";
    if !banger_testkit::require_root(t) || !banger_testkit::require_tool(t, "mkfs.ext4") {
        return;
    }
    let (fx, fake) = real_fc_world();
    fx.create(
        "box",
        &["--vmm", "firecracker", "--disk", "16M", "--no-jailer"],
    );
    let snaps = snapshots_dir(&fx);
    let full = Tmpfs::mount(&snaps, "256k");
    let out = fx.run(&["snapshot", "box", "--as", "gold"]);
    assert_code(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("snapshot box failed"), "{err}");
    assert!(
        err.contains("No space left") || err.contains("space"),
        "{err}"
    );
    let rec = fx.vm_json("box");
    assert_eq!(rec["state"], "running");
    assert!(rec.get("pending").is_none(), "{rec}");
    let mut c = std::process::Command::new(banger_testkit::bin("banger-fc"));
    fx.apply(&mut c);
    let st = c.args(["status", "box", "--config"]).output().unwrap();
    assert_ok(&st);
    let st = json_lines(&st).remove(0);
    assert_eq!(st["state"], "running", "{st}");
    for d in st["config"]["drives"].as_array().unwrap() {
        let p = d["path_on_host"].as_str().unwrap();
        assert!(p.contains("/vms/box/"), "box writes {p}");
    }
    let left: Vec<_> = std::fs::read_dir(&snaps)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != ".locks")
        .collect();
    assert!(left.is_empty(), "left in the snapshots dir: {left:?}");
    drop(full);
    // With room again, it works.
    assert_ok(&fx.run(&["snapshot", "box", "--as", "gold"]));
    assert_ok(&fx.run(&["snapshots", "rm", "gold"]));
    assert_ok(&fx.run(&["delete", "box"]));
    fake.assert_valid();
    fx.assert_nothing_left("box");
}
