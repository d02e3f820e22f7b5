//! suspend, resume, snapshot and create --from killed outright (SIGKILL
//! to the command's whole process group, as a closed terminal or the OOM
//! killer would) after each request their driver has sent the VMM (the
//! fake firecracker logs each as it gets it), through the real banger-fc.
//! The next command finishes the job: the guest runs (never left paused),
//! or is suspended with a state that was never loaded; a half-made
//! snapshot or clone goes; nothing is left that gc would find. And a
//! suspended VM outlives a host reboot (its runtime dir gone).

use crate::common::*;
use crate::contract::real_fc_world;
use banger_testkit::fakefc::FakeFc;
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::Duration;

/// Run `args` in a process group of its own and SIGKILL the group once
/// the fake has seen `at` more requests (the fake answers each after a
/// pause, so the kill lands while that one is in flight); false when it
/// finished first.
fn kill_after(fx: &Fx, fake: &FakeFc, args: &[&str], at: usize) -> bool {
    let before = fake.request_lines().len();
    let mut child = fx
        .cmd(args)
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pgid = nix::unistd::Pid::from_raw(child.id().cast_signed());
    let hit = banger_testkit::poll(Duration::from_secs(60), || {
        if fake.request_lines().len() >= before + at {
            return Some(true);
        }
        child.try_wait().unwrap().map(|_| false)
    });
    let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
    child.wait().unwrap();
    hit == Some(true)
}

/// The requests `args` makes when it runs through.
fn requests_of(fx: &Fx, fake: &FakeFc, args: &[&str]) -> usize {
    let before = fake.request_lines().len();
    assert_ok(&fx.run(args));
    fake.request_lines().len() - before
}

/// The driver's own view: the guest is running, not paused.
fn assert_guest_runs(fx: &Fx, name: &str, ctx: &str) {
    let mut c = std::process::Command::new(banger_testkit::bin("banger-fc"));
    fx.apply(&mut c);
    let out = c.args(["status", name]).output().unwrap();
    assert_ok(&out);
    let st = &json_lines(&out)[0];
    assert_eq!(st["state"], "running", "{ctx}: {st}");
}

fn assert_no_gc(fx: &Fx, ctx: &str) {
    let out = fx.run(&["gc", "--dry-run"]);
    assert_ok(&out);
    assert!(
        json_lines(&out).is_empty(),
        "{ctx}: gc finds {:?}",
        json_lines(&out)
    );
}

/// The real-Firecracker world with a running VM `box`, each of whose
/// requests takes a moment: a kill lands while one is in flight.
fn slow_fc_box() -> (Fx, FakeFc) {
    let (mut fx, fake) = real_fc_world();
    fx.env.push(("FAKE_FC_SLOW_MS".into(), "30".into()));
    fx.create(
        "box",
        &["--vmm", "firecracker", "--disk", "16M", "--no-jailer"],
    );
    (fx, fake)
}

#[test]
fn suspend_and_resume_killed_after_each_request_are_finished_by_the_next() {
    let t = "suspend_and_resume_killed_after_each_request_are_finished_by_the_next";
    if !banger_testkit::require_tool(t, "mkfs.ext4") {
        return;
    }
    let (fx, fake) = slow_fc_box();
    let saved = fx.vms_dir().join("box/suspended");
    let suspends = requests_of(&fx, &fake, &["suspend", "box"]);
    let resumes = requests_of(&fx, &fake, &["resume", "box"]);
    for at in 1..=suspends {
        let ctx = format!("suspend killed after request {at} of {suspends}");
        kill_after(&fx, &fake, &["suspend", "box"], at);
        let rec = json_lines(&fx.run(&["show", "box"])).remove(0);
        assert!(rec.get("pending").is_none(), "{ctx}: {rec}");
        match rec["state"].as_str().unwrap() {
            "running" => {
                assert_guest_runs(&fx, "box", &ctx);
                assert!(!saved.exists(), "{ctx}: a state outlived the resumed guest");
            }
            "suspended" => {
                assert!(saved.exists(), "{ctx}");
                assert_ok(&fx.run(&["resume", "box"]));
            }
            other => panic!(
                "{ctx}: box is {other}: {rec}\nvms/box: {:?}",
                std::fs::read_dir(fx.vms_dir().join("box"))
                    .unwrap()
                    .map(|e| e.unwrap().file_name())
                    .collect::<Vec<_>>()
            ),
        }
        assert_no_gc(&fx, &ctx);
    }
    for at in 1..=resumes {
        let ctx = format!("resume killed after request {at} of {resumes}");
        assert_ok(&fx.run(&["suspend", "box"]));
        kill_after(&fx, &fake, &["resume", "box"], at);
        let rec = json_lines(&fx.run(&["show", "box"])).remove(0);
        assert!(rec.get("pending").is_none(), "{ctx}: {rec}");
        match rec["state"].as_str().unwrap() {
            // Adopted: the VMM that restored it runs it, the state is spent.
            "running" => {
                assert!(!saved.exists(), "{ctx}: the state outlived its restore");
                assert_guest_runs(&fx, "box", &ctx);
            }
            // Not restored yet: the next resume does it.
            "suspended" => assert_ok(&fx.run(&["resume", "box"])),
            other => panic!("{ctx}: box is {other}"),
        }
        assert_no_gc(&fx, &ctx);
    }
    // A host reboot: every VMM gone, the runtime dir (a tmpfs) empty. The
    // saved state and the record are on disk: resume works.
    assert_ok(&fx.run(&["suspend", "box"]));
    std::fs::remove_dir_all(fx.home.path().join("run/banger")).unwrap();
    let out = fx.run(&["resume", "box"]);
    assert_ok(&out);
    assert_eq!(json_lines(&out)[0]["state"], "running");
    assert_guest_runs(&fx, "box", "after a reboot");
    assert!(!saved.exists());
    assert_ok(&fx.run(&["delete", "box"]));
    fake.assert_valid();
    fx.assert_nothing_left("box");
}

#[test]
fn snapshot_and_clone_killed_after_each_request_leave_nothing_half_made() {
    let t = "snapshot_and_clone_killed_after_each_request_leave_nothing_half_made";
    if !banger_testkit::require_tool(t, "mkfs.ext4") {
        return;
    }
    let (fx, fake) = slow_fc_box();
    let snaps = fx.vms_dir().parent().unwrap().join("snapshots");
    let takes = requests_of(&fx, &fake, &["snapshot", "box", "--as", "gold"]);
    for at in 1..=takes {
        let ctx = format!("snapshot killed after request {at} of {takes}");
        kill_after(&fx, &fake, &["snapshot", "box", "--as", "half"], at);
        let rec = json_lines(&fx.run(&["show", "box"])).remove(0);
        assert!(rec.get("pending").is_none(), "{ctx}: {rec}");
        assert_eq!(rec["state"], "running", "{ctx}");
        assert_guest_runs(&fx, "box", &ctx);
        // Whole, or not there at all.
        let half = snaps.join("half");
        assert!(
            !half.exists() || half.join("snapshot.json").is_file(),
            "{ctx}: a half-made snapshot is left"
        );
        let _ = fx.run(&["snapshots", "rm", "half"]);
        assert_no_gc(&fx, &ctx);
    }
    // The source's drives are its own again (a kill between the PATCHes
    // to the copies and back must not leave it writing a snapshot's).
    let mut c = std::process::Command::new(banger_testkit::bin("banger-fc"));
    fx.apply(&mut c);
    let out = c.args(["status", "box", "--config"]).output().unwrap();
    assert_ok(&out);
    let cfg = json_lines(&out).remove(0);
    for d in cfg["config"]["drives"].as_array().unwrap() {
        let p = d["path_on_host"].as_str().unwrap();
        assert!(p.contains("/vms/box/"), "box writes {p}");
    }

    let clones = requests_of(&fx, &fake, &["create", "--name", "c0", "--from", "gold"]);
    for at in 1..=clones {
        let ctx = format!("create --from killed after request {at} of {clones}");
        kill_after(
            &fx,
            &fake,
            &["create", "--name", "c1", "--from", "gold"],
            at,
        );
        // A killed create is finished by delete (or gc): all of it goes.
        let out = fx.run(&["delete", "c1"]);
        assert!(
            out.status.success() || out.status.code() == Some(3),
            "{ctx}: {}",
            stderr(&out)
        );
        fx.assert_nothing_left("c1");
        assert!(snaps.join("gold/snapshot.json").is_file(), "{ctx}");
        assert_no_gc(&fx, &ctx);
    }
    // The snapshot still makes clones.
    let c = fx.create("c1", &["--from", "gold"]);
    assert_eq!(c["state"], "running");
    assert_ok(&fx.run(&["delete", "box", "c0", "c1"]));
    assert_ok(&fx.run(&["snapshots", "rm", "gold"]));
    fake.assert_valid();
    for n in ["box", "c0", "c1"] {
        fx.assert_nothing_left(n);
    }
}

/// A clone's host key is made on the host, in the VM's directory, and
/// read and removed at once: a create killed right after ssh-keygen wrote
/// it leaves the key files in that directory, which the delete (or gc)
/// takes with the rest.
#[test]
fn clone_killed_right_after_its_host_key_is_made_leaves_nothing() {
    let t = "clone_killed_right_after_its_host_key_is_made_leaves_nothing";
    if !banger_testkit::require_tool(t, "mkfs.ext4")
        || !banger_testkit::require_tool(t, "ssh-keygen")
    {
        return;
    }
    let (fx, _fake) = slow_fc_box();
    assert_ok(&fx.run(&["snapshot", "box", "--as", "gold"]));
    // An ssh-keygen that does its work, then kills banger-vm (its parent).
    let bin = tempfile::tempdir().unwrap();
    let real = banger_lib::hosttools::which("ssh-keygen").unwrap();
    let wrapper = bin.path().join("ssh-keygen");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\n{} \"$@\" || exit\nkill -9 $PPID\n",
            real.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = fx.run_with(
        &["create", "--name", "c1", "--from", "gold"],
        &[("PATH", &path)],
    );
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(9), "{}", stderr(&out));
    // The kill came after the key was written, before it was removed.
    let key = fx.vms_dir().join("c1/hostkey.new");
    assert!(key.is_file() && key.with_extension("new.pub").is_file());
    let out = fx.run(&["delete", "c1"]);
    assert!(
        out.status.success() || out.status.code() == Some(3),
        "{}",
        stderr(&out)
    );
    fx.assert_nothing_left("c1");
    assert_no_gc(&fx, "clone killed after ssh-keygen");
    // The snapshot still makes clones, with the real ssh-keygen.
    assert_eq!(fx.create("c1", &["--from", "gold"])["state"], "running");
    assert_ok(&fx.run(&["delete", "box", "c1"]));
    assert_ok(&fx.run(&["snapshots", "rm", "gold"]));
    for n in ["box", "c1"] {
        fx.assert_nothing_left(n);
    }
}
