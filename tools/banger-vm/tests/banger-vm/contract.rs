//! Contracts between banger-vm and the real plumbing, without root: the
//! real banger-image (a registered image), banger-fc against the fake
//! firecracker (whose stand-in agent answers on the hybrid vsock) and
//! banger-health feed banger-vm's readers. Only banger-net (it needs root)
//! and banger-ssh's wait (it needs a guest's sshd) stay stand-ins, and
//! their lines are made from banger_lib's types.

use crate::common::*;

fn ext4(path: &std::path::Path, size: u64) {
    std::fs::File::create(path).unwrap().set_len(size).unwrap();
    let ok = std::process::Command::new(banger_lib::hosttools::which("mkfs.ext4").unwrap())
        .args(["-q", "-F"])
        .arg(path)
        .status()
        .unwrap();
    assert!(ok.success());
}

/// The stand-ins but for the real banger-image (an image "debian"
/// registered from two small ext4 files), banger-fc against the fake
/// firecracker, and banger-health.
pub fn real_fc_world() -> (Fx, banger_testkit::fakefc::FakeFc) {
    let mut fx = Fx::new();
    for tool in ["banger-image", "banger-fc", "banger-health"] {
        fx.use_real(tool);
    }
    let fake = banger_testkit::fakefc::FakeFc::new();
    for (k, v) in fake.envs() {
        fx.env.push((k, v.display().to_string()));
    }
    // The fake does not attach a TAP, but the spec must name one that exists.
    fx.env.push(("STANDIN_TAP".into(), "lo".into()));
    let rootfs = fx.standin.join("real-rootfs.ext4");
    let seed = fx.standin.join("real-seed.ext4");
    ext4(&rootfs, 8 << 20);
    ext4(&seed, 8 << 20);
    let mut c = std::process::Command::new(banger_testkit::bin("banger-image"));
    fx.apply(&mut c);
    let out = c
        .args(["register", "--name", "debian", "--rootfs"])
        .arg(&rootfs)
        .arg("--work-seed")
        .arg(&seed)
        .output()
        .unwrap();
    assert_ok(&out);
    (fx, fake)
}

#[test]
fn create_stop_start_delete_through_real_image_fc_and_health() {
    let t = "create_stop_start_delete_through_real_image_fc_and_health";
    if !banger_testkit::require_tool(t, "mkfs.ext4") {
        return;
    }
    let (fx, fake) = real_fc_world();

    let rec = fx.create("box", &["--vmm", "firecracker", "--disk", "16M"]);
    assert_eq!(rec["state"], "running");
    assert_eq!(rec["vmm"], "firecracker");
    assert_eq!(rec["image"], "debian");
    // The VMM record's agent endpoint, kept in the VM record.
    assert_eq!(rec["agent"]["kind"], "vsock");
    assert_eq!(rec["agent"]["port"], 52);
    let log = fx.log();
    assert!(!log.contains("banger-image"), "the real one ran: {log}");
    assert!(!log.contains("banger-health"), "the real one ran: {log}");
    assert!(log.contains("banger-ssh wait box --ip"), "{log}");

    // The real banger-health asks the fake's agent through the VM record.
    let mut c = std::process::Command::new(banger_testkit::bin("banger-health"));
    fx.apply(&mut c);
    let out = c.args(["check", "box"]).output().unwrap();
    assert_ok(&out);
    assert_eq!(json_lines(&out)[0]["status"], "ok");

    // A clean stop through the agent; start again; delete kills.
    let out = fx.run(&["stop", "box"]);
    assert_ok(&out);
    let line = &json_lines(&out)[0];
    assert_eq!(
        (line["clean"].clone(), line["how"].clone()),
        (true.into(), "agent".into()),
        "{line}"
    );
    let out = fx.run(&["start", "box"]);
    assert_ok(&out);
    assert_eq!(json_lines(&out)[0]["state"], "running");
    let out = fx.run(&["delete", "box"]);
    assert_ok(&out);
    let lines = fake.request_lines();
    assert!(lines.iter().any(|l| l == "agent POST /reboot"), "{lines:?}");
    assert!(lines.iter().any(|l| l == "PUT /actions"), "{lines:?}");
    fake.assert_valid();
    fx.assert_nothing_left("box");
}

/// suspend and resume through the real banger-fc (against the fake) and
/// banger-health: the VMM goes and comes back with the same endpoint; a
/// missing state is exit 3 and leaves the VM suspended; start resumes;
/// stop discards.
#[test]
fn suspend_resume_through_real_fc_and_health() {
    let t = "suspend_resume_through_real_fc_and_health";
    if !banger_testkit::require_tool(t, "mkfs.ext4") {
        return;
    }
    let (fx, fake) = real_fc_world();
    let rec = fx.create(
        "box",
        &["--vmm", "firecracker", "--disk", "16M", "--no-jailer"],
    );
    assert_eq!(rec["state"], "running");

    let out = fx.run(&["suspend", "box"]);
    assert_ok(&out);
    let line = &json_lines(&out)[0];
    assert_eq!(
        (&line["ok"], &line["state"]),
        (&true.into(), &"suspended".into()),
        "{line}"
    );
    let vm = fx.vm_json("box");
    assert_eq!(vm["state"], "suspended");
    assert!(vm["pid"].is_null() && vm["agent"].is_null(), "{vm}");
    let saved = std::path::PathBuf::from(vm["suspend"]["path"].as_str().unwrap());
    assert!(saved.join("vmstate").is_file(), "{}", saved.display());
    assert_eq!(
        vm["suspend"]["synced"], true,
        "the agent synced first: {vm}"
    );
    assert!(fx.live_vmms().is_empty(), "the VMM outlived suspend");
    // health says it is not running, without asking anything.
    let mut c = std::process::Command::new(banger_testkit::bin("banger-health"));
    fx.apply(&mut c);
    let out = c.args(["check", "box"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("box is suspended"));

    // Another kernel than the one it was saved with: exit 5, still
    // suspended, nothing started (a change of its mtime stands for one).
    let kernel = std::path::PathBuf::from(vm["kernel"].as_str().unwrap());
    let mtime = std::fs::metadata(&kernel).unwrap().modified().unwrap();
    let f = std::fs::File::options().write(true).open(&kernel).unwrap();
    f.set_modified(mtime + std::time::Duration::from_secs(60))
        .unwrap();
    let out = fx.run(&["resume", "box"]);
    assert_code(&out, 5);
    assert!(
        stderr(&out).contains("changed since it was suspended"),
        "{}",
        stderr(&out)
    );
    assert_eq!(fx.vm_json("box")["state"], "suspended");
    assert!(fx.live_vmms().is_empty());
    f.set_modified(mtime).unwrap();
    drop(f);

    // Without its state: exit 3, still suspended, nothing started.
    let away = saved.with_extension("away");
    std::fs::rename(&saved, &away).unwrap();
    let out = fx.run(&["resume", "box"]);
    assert_code(&out, 3);
    assert!(stderr(&out).contains("is missing"), "{}", stderr(&out));
    assert_eq!(fx.vm_json("box")["state"], "suspended");
    assert!(fx.live_vmms().is_empty());
    std::fs::rename(&away, &saved).unwrap();

    let out = fx.run(&["resume", "box"]);
    assert_ok(&out);
    let line = &json_lines(&out)[0];
    assert_eq!(line["state"], "running", "{line}");
    assert_eq!(line["agent"], rec["agent"]);
    assert_eq!(line["tap"], rec["tap"]);
    assert_eq!(line["vsock_cid"], rec["vsock_cid"]);
    assert!(!saved.exists(), "the state outlived the resume");
    assert!(fx.vm_json("box").get("suspend").is_none());
    let lines = fake.request_lines();
    assert!(lines.iter().any(|l| l == "PUT /snapshot/load"), "{lines:?}");

    // start resumes a suspended VM; stop discards one.
    assert_ok(&fx.run(&["suspend", "box"]));
    let out = fx.run(&["start", "box"]);
    assert_ok(&out);
    assert_eq!(json_lines(&out)[0]["state"], "running");
    assert!(!saved.exists());
    assert_ok(&fx.run(&["suspend", "box"]));
    let out = fx.run(&["set", "--vcpus", "1", "box"]);
    assert_code(&out, 5);
    let out = fx.run(&["stop", "box"]);
    assert_ok(&out);
    let line = &json_lines(&out)[0];
    assert_eq!(
        (&line["state"], &line["how"]),
        (&"stopped".into(), &"discarded".into()),
        "{line}"
    );
    assert!(!saved.exists());
    // Not running: nothing to suspend.
    assert_code(&fx.run(&["suspend", "box"]), 5);
    // What a suspend killed before its record said so leaves: start
    // removes it rather than ever loading it.
    let vm_dir = saved.parent().unwrap().to_path_buf();
    std::fs::write(&saved, b"stale").unwrap();
    std::fs::create_dir_all(vm_dir.join("suspended.part")).unwrap();
    let out = fx.run(&["start", "box"]);
    assert_ok(&out);
    assert_eq!(json_lines(&out)[0]["state"], "running");
    assert!(!saved.exists() && !vm_dir.join("suspended.part").exists());
    assert_ok(&fx.run(&["delete", "box"]));
    fake.assert_valid();
    fx.assert_nothing_left("box");
}
