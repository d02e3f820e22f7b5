//! What a killed command leaves, and gc: a create SIGKILLed after each of
//! its steps in turn leaves a record `vm list` shows as creating; `gc
//! --dry-run` reports it and changes nothing; `gc` then leaves nothing
//! (record, disks, lease, NAT element, VMM, dirs) and never touches a
//! healthy VM or a create that is still at work. start, stop and delete
//! killed at each of their calls in turn are finished by the next command.

use crate::common::*;
use std::process::Stdio;

fn gc_lines(fx: &Fx, args: &[&str]) -> Vec<serde_json::Value> {
    let out = fx.run(args);
    assert_ok(&out);
    json_lines(&out)
}

/// Kill `create --name box --nat` outright while it waits in `hang_at`.
fn kill_create_at(fx: &Fx, hang_at: &str) {
    // Only this create's calls in the log from here on.
    fx.clear_log();
    let mut child = fx
        .cmd(&["create", "--name", "box", "--nat"])
        .env("HANG_AT", hang_at)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_call(fx, hang_at);
    child.kill().unwrap();
    child.wait().unwrap();
    fx.kill_hang();
}

#[test]
fn a_create_killed_after_each_step_is_found_and_removed_by_gc() {
    // Each call below comes after one more step of create has made
    // something: disks and record, then the lease, then the NAT element,
    // then the VMM.
    for hang_at in [
        "banger-net tap acquire",
        "banger-net nat enable",
        "banger-qemu start",
        "banger-net dns ensure",
    ] {
        let fx = Fx::new();
        fx.create("keep", &["--nat"]);
        kill_create_at(&fx, hang_at);

        let listed = json_lines(&fx.run(&["list", "--json"]));
        let vmm_started = hang_at.contains("dns");
        let want = if vmm_started { "running" } else { "creating" };
        assert!(
            listed
                .iter()
                .any(|v| v["name"] == "box" && v["state"] == want),
            "{hang_at}: {listed:?}"
        );

        let dry = gc_lines(&fx, &["gc", "--dry-run"]);
        if vmm_started {
            // A VM whose VMM runs is a VM, not a leftover: delete is the
            // way to remove it.
            assert!(dry.is_empty(), "{hang_at}: {dry:?}");
            assert_ok(&fx.run(&["delete", "box"]));
        } else {
            assert_eq!(dry.len(), 1, "{hang_at}: {dry:?}");
            assert_eq!(dry[0]["what"], "unfinished-create");
            assert_eq!(dry[0]["vm"], "box");
            assert_eq!(dry[0]["removed"], false);
            assert!(
                fx.vms_dir().join("box/vm.json").exists(),
                "dry run removed it"
            );
            let start = fx.run(&["start", "box"]);
            assert_code(&start, 5);
            assert!(
                stderr(&start).contains("banger vm delete box"),
                "{}",
                stderr(&start)
            );

            let done = gc_lines(&fx, &["gc"]);
            assert_eq!(done.len(), 1, "{hang_at}: {done:?}");
            assert_eq!(done[0]["removed"], true, "{done:?}");
        }
        assert!(gc_lines(&fx, &["gc", "--dry-run"]).is_empty());
        // Nothing of box is left, and keep is as it was.
        assert!(!fx.vms_dir().join("box").exists(), "{hang_at}: VM dir left");
        assert_eq!(fx.leases(), ["keep"], "{hang_at}");
        assert_eq!(fx.nats(), ["keep"], "{hang_at}");
        assert_eq!(
            fx.live_vmms().len(),
            1,
            "{hang_at}: VMMs {:?}",
            fx.live_vmms()
        );
        assert_eq!(fx.vm_json("keep")["state"], "running");
        assert_ok(&fx.run(&["delete", "keep"]));
        fx.assert_nothing_left("keep");
        fx.assert_nothing_left("box");
    }
}

#[test]
fn gc_finds_dirs_and_leases_without_a_record() {
    let fx = Fx::new();
    fx.create("keep", &["--no-start"]);
    // What older versions or a kill before any record left: a VM dir with
    // a disk, a runtime dir, a lease nobody owns.
    let dir = fx.vms_dir().join("olddisk");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("rootfs.ext4"), b"x").unwrap();
    let run = fx.home.path().join("run/banger/oldrun");
    std::fs::create_dir_all(&run).unwrap();
    let lease = std::fs::read_to_string(fx.standin.join("leases/keep")).unwrap();
    std::fs::write(
        fx.standin.join("leases/ghost"),
        lease.replace("\"vm\":\"keep\"", "\"vm\":\"ghost\""),
    )
    .unwrap();

    let dry = gc_lines(&fx, &["gc", "--dry-run"]);
    let what: Vec<(String, String)> = dry
        .iter()
        .map(|l| {
            (
                l["vm"].as_str().unwrap().into(),
                l["what"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        what,
        [
            ("ghost".to_string(), "lease".to_string()),
            ("olddisk".into(), "vm-dir".into()),
            ("oldrun".into(), "run-dir".into()),
        ],
        "{dry:?}"
    );
    assert!(dir.exists() && run.exists());

    let done = gc_lines(&fx, &["gc"]);
    assert!(done.iter().all(|l| l["removed"] == true), "{done:?}");
    assert!(!dir.exists() && !run.exists());
    assert_eq!(fx.leases(), ["keep"]);
    assert_eq!(fx.vm_json("keep")["state"], "created");
    // The porcelain: banger gc is banger vm gc, then banger net gc.
    let mut c = std::process::Command::new(banger_testkit::bin("banger"));
    c.args(["gc", "--dry-run"]);
    fx.apply(&mut c);
    let out = c.output().unwrap();
    assert_ok(&out);
    assert!(json_lines(&out).is_empty());
}

#[test]
fn gc_leaves_a_create_at_work_alone() {
    let fx = Fx::new();
    let child = fx
        .cmd(&["create", "--name", "busy"])
        .env("HANG_AT", "banger-net tap acquire")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_call(&fx, "banger-net tap acquire");
    assert!(gc_lines(&fx, &["gc"]).is_empty());
    assert!(fx.vms_dir().join("busy/vm.json").exists());
    // Let it fail: it undoes itself.
    fx.kill_hang();
    let out = child.wait_with_output().unwrap();
    assert_code(&out, 1);
    fx.assert_nothing_left("busy");
}

#[test]
fn gc_finds_a_jail_without_a_record_and_banger_fc_removes_it() {
    let fx = Fx::new();
    fx.use_real("banger-fc");
    // What a VM killed under the jailer, with its record gone, leaves.
    let jail = fx.home.path().join("state/banger/jail/firecracker/oldjail");
    std::fs::create_dir_all(jail.join("root/run")).unwrap();
    std::fs::write(jail.join("root/drive-rootfs"), b"x").unwrap();
    let dry = gc_lines(&fx, &["gc", "--dry-run"]);
    assert_eq!(dry.len(), 1, "{dry:?}");
    assert_eq!(
        (&dry[0]["vm"], &dry[0]["what"]),
        (&"oldjail".into(), &"jail".into())
    );
    assert!(jail.exists());
    let done = gc_lines(&fx, &["gc"]);
    assert!(done.iter().all(|l| l["removed"] == true), "{done:?}");
    assert!(!jail.exists() && !jail.parent().unwrap().exists());
    assert!(gc_lines(&fx, &["gc", "--dry-run"]).is_empty());
}

/// `n` VMMs run, once the ones just killed are gone.
fn assert_vmms(fx: &Fx, n: usize, ctx: &str) {
    let ok = banger_testkit::poll(std::time::Duration::from_secs(10), || {
        (fx.live_vmms().len() == n).then_some(())
    });
    assert!(ok.is_some(), "{ctx}: VMMs {:?}", fx.live_vmms());
}

/// VMM `pid` is gone, once its kill has landed.
fn assert_dead(fx: &Fx, pid: u32, ctx: &str) {
    let ok = banger_testkit::poll(std::time::Duration::from_secs(10), || {
        (!fx.live_vmms().contains(&pid)).then_some(())
    });
    assert!(ok.is_some(), "{ctx}: VMM {pid} still runs");
}

/// A start killed after its driver started the VMM but before the record
/// said so: the record says stopped while a VMM runs for it.
fn plant_stray_vmm(fx: &Fx, name: &str) -> u32 {
    let mut rec = fx.vm_json(name);
    rec["state"] = "stopped".into();
    let path = fx.vms_dir().join(name).join("vm.json");
    std::fs::write(&path, serde_json::to_string(&rec).unwrap()).unwrap();
    rec["pid"].as_u64().unwrap() as u32
}

#[test]
fn a_vmm_the_record_does_not_account_for_is_killed_by_gc_and_by_start() {
    let fx = Fx::new();
    fx.create("keep", &[]);
    fx.create("box", &[]);
    let pid = plant_stray_vmm(&fx, "box");
    assert!(fx.live_vmms().contains(&pid));

    let dry = gc_lines(&fx, &["gc", "--dry-run"]);
    assert_eq!(dry.len(), 1, "{dry:?}");
    assert_eq!(dry[0]["what"], "vmm");
    assert_eq!(dry[0]["vm"], "box");
    assert_eq!(dry[0]["removed"], false);
    assert!(fx.live_vmms().contains(&pid), "a dry run killed it");

    let done = gc_lines(&fx, &["gc"]);
    assert_eq!(done.len(), 1, "{done:?}");
    assert_eq!(done[0]["removed"], true, "{done:?}");
    assert_dead(&fx, pid, "gc");
    assert_vmms(&fx, 1, "keep's VMM went too");
    assert_eq!(fx.vm_json("box")["state"], "stopped");
    assert_eq!(fx.vm_json("keep")["state"], "running");
    assert!(gc_lines(&fx, &["gc", "--dry-run"]).is_empty());

    // The next command on the VM does the same before its own work.
    assert_ok(&fx.run(&["start", "box"]));
    let pid = plant_stray_vmm(&fx, "box");
    let start = fx.run(&["start", "box"]);
    assert_ok(&start);
    assert!(stderr(&start).contains("killing VMM"), "{}", stderr(&start));
    assert_dead(&fx, pid, "start");
    assert_vmms(&fx, 2, "start");
    assert_eq!(fx.vm_json("box")["state"], "running");

    assert_ok(&fx.run(&["delete", "box", "keep"]));
    fx.assert_nothing_left("box");
    fx.assert_nothing_left("keep");
}

#[test]
fn a_start_waits_for_the_driver_a_killed_start_left_at_work() {
    let fx = Fx::new();
    fx.create("keep", &[]);
    fx.create("box", &[]);
    assert_ok(&fx.run(&["stop", "box"]));
    // A start killed while its driver holds the driver's lock, starting
    // the VMM; the driver goes on (tools that make something finish).
    let go = fx.standin.join("go");
    let mut killed = fx
        .cmd(&["start", "box"])
        .env("DRIVER_HOLD", &go)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let held = go.with_extension("held");
    let got = banger_testkit::poll(std::time::Duration::from_secs(30), || {
        held.exists().then_some(())
    });
    assert!(
        got.is_some(),
        "the driver never took its lock: {}",
        fx.log()
    );
    killed.kill().unwrap();
    killed.wait().unwrap();
    // The next start waits for that driver before it judges what runs
    // for the VM: it finds the VMM the driver made and kills it, and only
    // then starts its own.
    let next = fx
        .cmd(&["start", "box"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::fs::write(&go, "").unwrap();
    let out = next.wait_with_output().unwrap();
    assert_ok(&out);
    assert!(stderr(&out).contains("killing VMM"), "{}", stderr(&out));
    assert_vmms(&fx, 2, "the killed start's VMM went");
    assert_eq!(fx.vm_json("box")["state"], "running");
    assert_ok(&fx.run(&["delete", "box", "keep"]));
    fx.assert_nothing_left("box");
    fx.assert_nothing_left("keep");
}

/// The calls `args` makes, in order, each once.
fn calls_of(fx: &Fx, args: &[&str]) -> Vec<String> {
    fx.clear_log();
    assert_ok(&fx.run(args));
    let mut calls: Vec<String> = Vec::new();
    for l in fx.log().lines() {
        if !calls.iter().any(|c| c == l) {
            calls.push(l.to_string());
        }
    }
    assert!(!calls.is_empty(), "{args:?} called nothing");
    calls
}

/// Kill `args` outright while it waits in `call` (its effect not made).
fn kill_at(fx: &Fx, args: &[&str], call: &str) {
    fx.clear_log();
    let mut child = fx
        .cmd(args)
        .env("HANG_AT", call)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_call(fx, call);
    child.kill().unwrap();
    child.wait().unwrap();
    fx.kill_hang();
}

#[test]
fn start_stop_and_delete_killed_at_each_call_are_finished_by_the_next() {
    let fx = Fx::new();
    fx.create("keep", &["--nat"]);
    fx.create("box", &["--nat"]);
    assert_ok(&fx.run(&["stop", "box"]));
    let starts = calls_of(&fx, &["start", "box"]);
    let stops = calls_of(&fx, &["stop", "box"]);
    for call in &starts {
        // Stopped, killed while starting: the next start boots it.
        kill_at(&fx, &["start", "box"], call);
        let again = fx.run(&["start", "box"]);
        assert_ok(&again);
        assert_eq!(fx.vm_json("box")["state"], "running", "{call}");
        assert_vmms(&fx, 2, &format!("start killed at {call}"));
        assert!(gc_lines(&fx, &["gc", "--dry-run"]).is_empty(), "{call}");
        assert_ok(&fx.run(&["stop", "box"]));
    }
    assert_ok(&fx.run(&["start", "box"]));
    for call in &stops {
        // Running, killed while stopping: the next stop stops it.
        kill_at(&fx, &["stop", "box"], call);
        assert_ok(&fx.run(&["stop", "box"]));
        assert_eq!(fx.vm_json("box")["state"], "stopped", "{call}");
        assert_vmms(&fx, 1, &format!("stop killed at {call}"));
        assert!(gc_lines(&fx, &["gc", "--dry-run"]).is_empty(), "{call}");
        assert_ok(&fx.run(&["start", "box"]));
    }
    let deletes = {
        fx.create("gone", &["--nat"]);
        calls_of(&fx, &["delete", "gone"])
    };
    for call in &deletes {
        // Killed while deleting: the next delete (or gc) removes the rest.
        fx.create("gone", &["--nat"]);
        kill_at(&fx, &["delete", "gone"], call);
        let again = fx.run(&["delete", "gone"]);
        assert!(
            again.status.success() || again.status.code() == Some(3),
            "delete killed at {call}: {}",
            stderr(&again)
        );
        assert_ok(&fx.run(&["gc"]));
        assert!(!fx.vms_dir().join("gone").exists(), "{call}: VM dir left");
        assert_eq!(fx.leases(), ["box", "keep"], "{call}");
        assert_eq!(fx.nats(), ["box", "keep"], "{call}");
        assert_vmms(&fx, 2, &format!("delete killed at {call}"));
        assert!(!fx.home.path().join("run/banger/gone").exists(), "{call}");
    }
    assert_eq!(fx.vm_json("keep")["state"], "running");
    assert_eq!(fx.leases(), ["box", "keep"]);
    assert_ok(&fx.run(&["delete", "box", "keep"]));
    fx.assert_nothing_left("box");
    fx.assert_nothing_left("keep");
}

#[test]
fn saved_states_no_record_points_at_are_found_and_removed() {
    let fx = Fx::new();
    fx.create("box", &[]);
    // A suspend killed while saving (Firecracker's part dir) and one killed
    // after the save, before the record said suspended.
    let dir = fx.vms_dir().join("box");
    std::fs::create_dir(dir.join("suspended.part")).unwrap();
    std::fs::write(dir.join("suspended.part/mem"), b"x").unwrap();
    std::fs::write(dir.join("suspended"), b"state").unwrap();

    let dry = gc_lines(&fx, &["gc", "--dry-run"]);
    assert_eq!(dry.len(), 2, "{dry:?}");
    assert!(dry
        .iter()
        .all(|l| l["what"] == "saved-state" && l["vm"] == "box" && l["removed"] == false));
    assert!(dir.join("suspended").exists(), "a dry run removed it");

    let done = gc_lines(&fx, &["gc"]);
    assert_eq!(done.len(), 2, "{done:?}");
    assert!(done.iter().all(|l| l["removed"] == true), "{done:?}");
    assert!(!dir.join("suspended").exists());
    assert!(!dir.join("suspended.part").exists());
    assert_eq!(fx.vm_json("box")["state"], "running");
    assert!(gc_lines(&fx, &["gc", "--dry-run"]).is_empty());
    assert_ok(&fx.run(&["delete", "box"]));
    fx.assert_nothing_left("box");
}
