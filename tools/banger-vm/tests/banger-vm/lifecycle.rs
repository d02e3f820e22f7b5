//! banger-vm against stand-in plumbing tools: the lifecycle, undo at every
//! create step, bad input, reconciliation, locks and fan-out.

use crate::common::*;
use banger_lib::proc::{kill, Signal};
use std::time::Duration;

#[test]
fn create_show_stop_start_delete() {
    let fx = Fx::new();
    let rec = fx.create("box", &["--timings", "--nat"]);
    assert_eq!(rec["name"], "box");
    assert_eq!(rec["state"], "running");
    assert_eq!(rec["vmm"], "qemu");
    assert_eq!(rec["image"], "debian");
    assert_eq!(rec["ip"], "172.30.0.10");
    assert_eq!(rec["vsock_cid"], 1010);
    assert_eq!(rec["nat"], true);
    assert_eq!(rec["tap"], "tap-box");
    assert!(rec["timings_ms"]["total"].as_f64().unwrap() > 0.0);
    assert_eq!(rec["isolated"], true, "isolated by default");
    for k in ["disks", "tap", "vmm_start", "healthy", "pin", "ssh"] {
        assert!(rec["timings_ms"][k].is_number(), "{k}: {rec}");
    }
    // The steps in order, through the plumbing: NAT before the guest runs;
    // the waits get the endpoints, they read no record.
    let log = fx.log();
    let mut calls: Vec<&str> = log.lines().collect();
    // DNS is ensured while the guest agent is waited for, and the host
    // keys are pinned, from the agent, while the wait for sshd's banner
    // (which logs in nowhere) runs beside it: in each pair either may log
    // first.
    calls[4..6].sort();
    calls[6..].sort();
    let uds = fx.home.path().join("run/banger/box/vsock.sock");
    assert_eq!(
        calls,
        [
            "banger-image default",
            "banger-net tap acquire --vm box",
            "banger-net nat enable --vm box",
            "banger-qemu start",
            &format!(
                "banger-health wait box --uds {} --port 52 --timeout 180",
                uds.display()
            ),
            "banger-net dns ensure",
            &format!(
                "banger-ssh pin box --uds {} --port 52 --ip 172.30.0.10 --timeout 180 --rekey",
                uds.display()
            ),
            "banger-ssh wait box --ip 172.30.0.10 --timeout 180",
        ]
    );
    // The spec the driver got.
    let spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fx.standin.join("spec-box.json")).unwrap())
            .unwrap();
    assert_eq!(spec["tap"], "tap-box");
    assert_eq!(spec["vsock_cid"], 1010);
    assert_eq!(spec["mem_mib"], 256);
    assert_eq!(spec["drives"][0]["root"], true);
    assert!(spec["cmdline"]
        .as_str()
        .unwrap()
        .contains("ip=172.30.0.10::172.30.0.1:255.255.255.0:box:eth0:off:172.30.0.1"));
    // The VM's own disks (QEMU): qcow2 overlays on the image's files, the
    // work disk as big as --disk.
    let dir = fx.vms_dir().join("box");
    assert_eq!(spec["drives"][0]["format"], "qcow2");
    for (disk, size) in [("rootfs.qcow2", 256u64 << 10), ("work.qcow2", 16 << 20)] {
        let head = std::fs::read(dir.join(disk)).unwrap();
        assert_eq!(&head[..4], b"QFI\xfb", "{disk}");
        let virtual_size = u64::from_be_bytes(head[24..32].try_into().unwrap());
        assert_eq!(virtual_size, size, "{disk}");
    }
    assert_eq!(fx.vm_json("box")["schema"], 1);

    let out = fx.run(&["show", "box"]);
    assert_ok(&out);
    let shown = &json_lines(&out)[0];
    assert_eq!(shown["state"], "running");
    assert!(shown["uptime_s"].is_u64());

    let out = fx.run(&["list"]);
    assert_ok(&out);
    let list = json_lines(&out);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["name"], "box");

    let out = fx.run(&["stop", "box"]);
    assert_ok(&out);
    assert_eq!(
        json_lines(&out),
        [
            serde_json::json!({"name": "box", "ok": true, "state": "stopped",
                            "clean": true, "how": "agent"})
        ]
    );
    assert!(fx.log().contains("banger-qemu stop box --timeout 30"));
    assert!(
        fx.live_vmms().is_empty() || {
            banger_testkit::poll(Duration::from_secs(5), || {
                fx.live_vmms().is_empty().then_some(())
            })
            .is_some()
        }
    );
    assert_eq!(fx.vm_json("box")["pid"], serde_json::Value::Null);
    // Disks and lease stay over a stop.
    assert!(dir.join("work.qcow2").exists());
    assert_eq!(fx.leases(), ["box"]);

    let out = fx.run(&["start", "box"]);
    assert_ok(&out);
    let line = &json_lines(&out)[0];
    assert_eq!(line["ok"], true);
    assert_eq!(line["state"], "running");
    assert_eq!(line["ip"], "172.30.0.10", "the same lease after a restart");

    let out = fx.run(&["ssh", "box", "--", "exit 7"]);
    assert_code(&out, 7);

    let out = fx.run(&["logs", "box"]);
    assert_ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("standin console: box booting"));

    fx.clear_log();
    let out = fx.run(&["delete", "box"]);
    assert_ok(&out);
    assert_eq!(json_lines(&out)[0]["state"], "deleted");
    let log = fx.log();
    // Its disks are going: the VMM is killed, not shut down.
    assert!(log.contains("banger-qemu stop box --kill"), "{log}");
    assert!(log.contains("banger-net nat disable --vm box"), "{log}");
    assert!(log.contains("banger-net tap release --vm box"), "{log}");
    assert!(log.contains("banger-ssh forget box"), "{log}");
    fx.assert_nothing_left("box");

    let out = fx.run(&["show", "box"]);
    assert_code(&out, 3);
}

#[test]
fn a_failing_create_step_undoes_everything_before_it() {
    let cases = [
        ("banger-image default", "image", 3),
        ("banger-net tap acquire", "tap", 1),
        ("banger-qemu start", "vmm start", 4),
        ("banger-net nat enable", "nat", 1),
        ("banger-health wait", "healthy", 1),
        ("banger-ssh pin", "pin", 1),
        ("banger-ssh wait", "ssh", 1),
    ];
    // A create that fails after pinning forgets the keys again.
    let fx = Fx::new();
    let out = fx.run_with(
        &["create", "--name", "box"],
        &[("FAIL_AT", "banger-ssh wait")],
    );
    assert_code(&out, 1);
    let log = fx.log();
    let pin = log.find("banger-ssh pin box").expect("pinned");
    assert!(log[pin..].contains("banger-ssh forget box"), "{log}");
    for (fail_at, step, code) in cases {
        let fx = Fx::new();
        let out = fx.run_with(
            &["create", "--name", "box", "--nat"],
            &[("FAIL_AT", fail_at), ("FAIL_CODE", &code.to_string())],
        );
        assert_code(&out, code);
        let err = stderr(&out);
        assert!(
            err.contains(&format!("create box failed at step {step}:")),
            "{fail_at}: {err}"
        );
        assert!(err.contains("injected failure"), "{err}");
        assert!(err.contains("hint: this is a stand-in"), "{err}");
        // Undoing only what was made: no failed undo of a step that never ran.
        assert!(!err.contains("warning"), "{fail_at}: {err}");
        assert!(out.stdout.is_empty());
        fx.assert_nothing_left("box");
        // And the name is free again.
        fx.create("box", &[]);
    }
}

#[test]
fn the_vmm_dying_during_boot_is_undone() {
    let fx = Fx::new();
    let out = fx.run_with(&["create", "--name", "box"], &[("KILL_VMM_AT_HEALTH", "1")]);
    assert_code(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("failed at step healthy"), "{err}");
    // The console tail is shown before the log is removed.
    assert!(err.contains("standin console: box booting"), "{err}");
    fx.assert_nothing_left("box");
}

#[test]
fn the_ssh_wait_runs_beside_the_pin_and_ends_with_a_failed_one() {
    let fx = Fx::new();
    let pidfile = fx.standin.join("ssh-wait.pid");
    let out = fx.run_with(
        &["create", "--name", "box"],
        &[
            ("PIN_FAIL", "1"),
            ("SSH_WAIT_PID", pidfile.to_str().unwrap()),
        ],
    );
    assert_code(&out, 1);
    assert!(
        stderr(&out).contains("failed at step pin"),
        "{}",
        stderr(&out)
    );
    // The wait for sshd had begun while the pin step ran...
    let pid = banger_lib::proc::read_pid_file(&pidfile).expect("the ssh wait began with the pin");
    // ...and the failed create did not leave it polling.
    let gone = banger_testkit::poll(Duration::from_secs(10), || {
        matches!(banger_lib::proc::state(pid), None | Some('Z')).then_some(())
    });
    assert!(
        gone.is_some(),
        "banger-ssh wait (pid {pid}) outlived the create"
    );
    fx.assert_nothing_left("box");
}

#[test]
fn bad_names_images_and_sizes() {
    let fx = Fx::new();
    for bad in ["Box", "a_b", "../x", "-a", "", "0", "42", "1-2"] {
        let out = fx.run(&["create", &format!("--name={bad}")]);
        assert_code(&out, 2);
        assert!(stderr(&out).contains("invalid VM name"), "{}", stderr(&out));
    }
    for (args, code) in [
        (vec!["--disk", "8X"], 2),
        (vec!["--vcpus", "0"], 2),
        (vec!["--memory", "16"], 2),
        (vec!["--image", "Nope!"], 2),
        (vec!["--image", "nope"], 3),
    ] {
        let mut a = vec!["create", "--name", "box"];
        a.extend(args.iter());
        let out = fx.run(&a);
        assert_code(&out, code);
    }
    assert!(fx.log().lines().all(|l| l == "banger-image show nope"));
    assert!(!fx.vms_dir().join("box").exists());
    assert!(fx.leases().is_empty());
    // Unknown VMs.
    for verb in ["show", "logs", "ssh"] {
        assert_code(&fx.run(&[verb, "ghost"]), 3);
    }
    let out = fx.run(&["stop", "ghost"]);
    assert_code(&out, 3);
    assert_eq!(json_lines(&out)[0]["ok"], false);
    assert!(!fx.vms_dir().join("ghost").exists());
}

#[test]
fn duplicate_name_is_a_conflict_and_changes_nothing() {
    let fx = Fx::new();
    let first = fx.create("box", &[]);
    fx.clear_log();
    let out = fx.run(&["create", "--name", "box"]);
    assert_code(&out, 5);
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    assert_eq!(fx.log(), "", "nothing was called");
    assert_eq!(fx.vm_json("box")["pid"], first["pid"]);
    assert_eq!(fx.leases(), ["box"]);
}

#[test]
fn a_dead_vmm_is_reconciled_to_crashed_and_start_works() {
    let fx = Fx::new();
    let rec = fx.create("box", &[]);
    let pid = u32::try_from(rec["pid"].as_u64().unwrap()).unwrap();
    kill(pid, Signal::SIGKILL).unwrap();
    let crashed = banger_testkit::poll(Duration::from_secs(10), || {
        let out = fx.run(&["list"]);
        let l = json_lines(&out);
        (l[0]["state"] == "crashed").then_some(())
    });
    assert!(crashed.is_some());
    assert_eq!(fx.vm_json("box")["state"], "crashed");
    assert_eq!(fx.leases(), ["box"], "a crash keeps the lease");
    let out = fx.run(&["start", "box"]);
    assert_ok(&out);
    assert_eq!(json_lines(&out)[0]["state"], "running");
    assert_ne!(fx.vm_json("box")["pid"], rec["pid"]);
}

#[test]
fn settings_of_a_running_vm_need_a_stop() {
    let fx = Fx::new();
    fx.create("box", &[]);
    let out = fx.run(&["set", "box", "--vcpus", "2"]);
    assert_code(&out, 5);
    assert!(
        stderr(&out).contains("banger vm stop box"),
        "{}",
        stderr(&out)
    );
    // NAT toggles while running.
    assert_ok(&fx.run(&["set", "--nat", "box"]));
    assert_eq!(fx.nats(), ["box"]);
    assert_ok(&fx.run(&["set", "--no-nat", "box"]));
    assert!(fx.nats().is_empty());
    assert_ok(&fx.run(&["stop", "box"]));
    let out = fx.run(&["set", "box", "--vcpus", "1", "--memory", "512"]);
    assert_ok(&out);
    assert_eq!(fx.vm_json("box")["vcpus"], 1);
    assert_eq!(fx.vm_json("box")["memory_mib"], 512);
    // More than the host has is refused, and nothing changes.
    for args in [["--vcpus", "99"], ["--memory", "99999999"]] {
        let out = fx.run(&["set", "box", args[0], args[1]]);
        assert_code(&out, 2);
        assert!(stderr(&out).contains("this host"), "{}", stderr(&out));
        assert!(stderr(&out).contains("hint: "), "{}", stderr(&out));
    }
    assert_eq!(fx.vm_json("box")["memory_mib"], 512);
    assert_code(&fx.run(&["set", "box"]), 2);
    assert_code(&fx.run(&["set", "box", "--isolate", "--no-isolate"]), 2);
    // ssh into a stopped VM.
    let out = fx.run(&["ssh", "box"]);
    assert_code(&out, 5);
    assert!(stderr(&out).contains("banger vm start box"));
}

#[test]
fn fan_out_prints_one_line_per_vm_and_fails_if_any_failed() {
    let fx = Fx::new();
    fx.create("a", &["--no-wait"]);
    fx.create("b", &["--no-wait"]);
    let out = fx.run(&["stop", "a", "ghost", "b", "a"]);
    assert_code(&out, 1);
    let mut lines = json_lines(&out);
    lines.sort_by_key(|l| l["name"].as_str().unwrap().to_string());
    assert_eq!(lines.len(), 3, "duplicates run once");
    assert_eq!(
        lines[0],
        serde_json::json!({"name":"a","ok":true,"state":"stopped","clean":true,"how":"agent"})
    );
    assert_eq!(lines[1]["name"], "b");
    assert_eq!(lines[1]["ok"], true);
    assert_eq!(lines[2]["name"], "ghost");
    assert_eq!(lines[2]["ok"], false);
    assert!(lines[2]["error"]
        .as_str()
        .unwrap()
        .contains("no VM named ghost"));
    let out = fx.run(&["start", "a", "b", "--no-wait"]);
    assert_ok(&out);
    assert_eq!(json_lines(&out).len(), 2);
    let out = fx.run(&["delete", "a", "b"]);
    assert_ok(&out);
    fx.assert_nothing_left("a");
    fx.assert_nothing_left("b");
}

#[test]
fn delete_keeps_the_record_when_cleanup_fails_unless_forced() {
    let fx = Fx::new();
    fx.create("box", &[]);
    let out = fx.run_with(&["delete", "box"], &[("FAIL_AT", "banger-net tap release")]);
    assert_code(&out, 1);
    assert!(stderr(&out).contains("record is kept"), "{}", stderr(&out));
    assert!(fx.vms_dir().join("box/vm.json").exists());
    assert_eq!(fx.vm_json("box")["state"], "stopped");
    let out = fx.run_with(
        &["delete", "--force", "box"],
        &[("FAIL_AT", "banger-net tap release")],
    );
    assert_ok(&out);
    let line = &json_lines(&out)[0];
    assert!(line["warnings"][0]
        .as_str()
        .unwrap()
        .contains("tap release"));
    assert!(!fx.vms_dir().join("box").exists());
}

#[test]
fn a_held_lock_makes_a_command_wait_then_give_up() {
    let fx = Fx::new();
    fx.create("box", &[]);
    let lock = banger_lib::state::Lock::acquire(
        &fx.vms_dir().join("box/vm.json.lock"),
        Duration::from_secs(1),
    )
    .unwrap();
    let out = fx.run_with(&["stop", "box"], &[("BANGER_LOCK_TIMEOUT", "0.3")]);
    assert_code(&out, 5);
    assert!(stderr(&out).contains("locked"), "{}", stderr(&out));
    assert_eq!(fx.vm_json("box")["state"], "running");
    // A waiting command goes on as soon as the lock is free.
    let mut waiter = fx
        .cmd(&["stop", "box"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    drop(lock);
    assert!(waiter.wait().unwrap().success());
    assert_eq!(fx.vm_json("box")["state"], "stopped");
}

#[test]
fn a_killed_create_leaves_no_stale_lock_and_delete_cleans_up() {
    let fx = Fx::new();
    let mut child = fx
        .cmd(&["create", "--name", "box"])
        .env("HANG_AT", "banger-health wait")
        .spawn()
        .unwrap();
    wait_for_call(&fx, "banger-health wait box");
    child.kill().unwrap();
    child.wait().unwrap();
    fx.kill_hang();
    // Not waited on: the kernel dropped the dead command's lock.
    let out = fx.run_with(&["delete", "box"], &[("BANGER_LOCK_TIMEOUT", "2")]);
    assert_ok(&out);
    fx.assert_nothing_left("box");
}

#[test]
fn ctrl_c_during_create_undoes_everything() {
    for hang_at in ["banger-health wait", "banger-net tap acquire"] {
        let fx = Fx::new();
        let child = fx
            .cmd(&["create", "--name", "box", "--nat"])
            .env("HANG_AT", hang_at)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        wait_for_call(&fx, hang_at);
        kill(child.id(), Signal::SIGINT).unwrap();
        if hang_at.contains("tap") {
            // A step that makes something is let finish, then undone.
            fx.kill_hang();
        }
        let out = child.wait_with_output().unwrap();
        assert_code(&out, 1);
        let err = stderr(&out);
        assert!(err.contains("interrupted"), "{err}");
        fx.assert_nothing_left("box");
    }
}

#[test]
fn creates_of_different_vms_run_in_parallel() {
    let fx = Fx::new();
    let children: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|n| {
            fx.cmd(&["create", "--name", n, "--no-wait"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        assert_ok(&c.wait_with_output().unwrap());
    }
    assert_eq!(fx.leases(), ["a", "b", "c"]);
    let out = fx.run(&["list"]);
    let ips: std::collections::HashSet<String> = json_lines(&out)
        .iter()
        .map(|l| l["ip"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ips.len(), 3);
}

#[test]
fn no_start_makes_a_created_vm_that_start_boots() {
    let fx = Fx::new();
    let rec = fx.create("box", &["--no-start"]);
    assert_eq!(rec["state"], "created");
    assert_eq!(rec["pid"], serde_json::Value::Null);
    assert!(fx.live_vmms().is_empty());
    assert!(!fx.log().contains("start"));
    let out = fx.run(&["start", "box"]);
    assert_ok(&out);
    assert_eq!(json_lines(&out)[0]["state"], "running");
}

/// A QEMU VM's disks are qcow2 overlays on the image's files, named in its
/// record; `spec` prints the spec start would hand the driver, with the
/// drives' formats, and a VM whose backing file is gone does not start:
/// the error names the file, exit 4.
#[test]
fn qemu_disks_are_overlays_and_spec_prints_the_drivers_spec() {
    let fx = Fx::new();
    let rec = fx.create("box", &["--no-start"]);
    let disks: banger_lib::records::Disks = serde_json::from_value(rec["disks"].clone()).unwrap();
    let backing = disks.work_backing.clone().expect("a work overlay");
    assert!(disks.rootfs_backing.is_some());
    for d in [&disks.rootfs, &disks.work] {
        let head = std::fs::read(d).unwrap();
        assert_eq!(&head[..4], b"QFI\xfb", "{} is not qcow2", d.display());
    }
    let out = fx.run(&["spec", "box"]);
    assert_ok(&out);
    let spec = banger_lib::vmspec::VmSpec::parse(&String::from_utf8_lossy(&out.stdout)).unwrap();
    assert_eq!(spec.id, "box");
    let drives: Vec<_> = spec
        .drives
        .iter()
        .map(|d| (d.path.clone(), d.format, d.backing.clone()))
        .collect();
    use banger_lib::vmspec::DiskFormat::Qcow2;
    assert_eq!(
        drives,
        [
            (disks.rootfs.clone(), Qcow2, disks.rootfs_backing.clone()),
            (disks.work.clone(), Qcow2, disks.work_backing.clone())
        ]
    );
    assert_code(&fx.run(&["spec", "nope"]), 3);

    std::fs::rename(&backing, backing.with_extension("moved")).unwrap();
    let out = fx.run(&["start", "box"]);
    assert_code(&out, 4);
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{} is gone", backing.display())),
        "{err}"
    );
    assert!(err.contains("banger vm delete box"), "{err}");
    assert!(fx.live_vmms().is_empty());
    std::fs::rename(backing.with_extension("moved"), &backing).unwrap();
    assert_ok(&fx.run(&["start", "box"]));

    // delete removes the overlays and leaves the image's files as they were.
    let before: Vec<Vec<u8>> = disks
        .backing_files()
        .iter()
        .map(|b| std::fs::read(b).unwrap())
        .collect();
    assert_ok(&fx.run(&["delete", "box"]));
    assert!(!disks.rootfs.exists() && !disks.work.exists());
    let after: Vec<Vec<u8>> = disks
        .backing_files()
        .iter()
        .map(|b| std::fs::read(b).unwrap())
        .collect();
    assert_eq!(before, after);
}

#[test]
fn disk_full_during_create_is_undone_as_root() {
    let t = "disk_full_during_create_is_undone_as_root";
    if !banger_testkit::require_root(t) || !banger_testkit::require_tool(t, "unshare") {
        return;
    }
    let fx = Fx::new();
    // An image bigger than the 2 MiB filesystem the VM's state lives on,
    // for a Firecracker VM (raw copies; a QEMU VM's overlays are small).
    let big = fx.standin.join("big.ext4");
    std::fs::write(&big, vec![0x5a; 4 << 20]).unwrap();
    let line = banger_testkit::records::image_line("big", &big, None);
    std::fs::write(
        fx.standin.join("images/big.json"),
        serde_json::to_string(&line).unwrap(),
    )
    .unwrap();
    let state = fx.home.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    // A private mount namespace: the small tmpfs disappears with it.
    let script = format!(
        "mount -t tmpfs -o size=2m tmpfs {s} && {{ \"$0\" create --name box --image big \
         --vmm firecracker; rc=$?; \
         ls -A {s}/banger/vms; exit $rc; }}",
        s = state.display()
    );
    let mut c = std::process::Command::new("unshare");
    c.args(["-m", "sh", "-c", &script, env!("CARGO_BIN_EXE_banger-vm")]);
    for (k, v) in &fx.env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    assert_code(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("failed at step disks"), "{err}");
    assert!(err.contains("No space left"), "{err}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "",
        "a VM dir was left"
    );
    assert!(fx.leases().is_empty());
    assert!(fx.live_vmms().is_empty());
}

#[test]
fn sizes_and_shapes_the_host_cannot_give_are_usage_errors() {
    let fx = Fx::new();
    for (args, says) in [
        (vec!["--disk", "18446744073709551615"], "bad size"),
        (vec!["--disk", "4096T"], "bad size"),
        (vec!["--disk", "9223372036854775807"], "bad size"),
        (vec!["--disk", "16T"], "bad size"),
        // The image's work seed is 8M; the work disk never shrinks.
        (
            vec!["--disk", "4M"],
            "smaller than the image's work disk (8M)",
        ),
        (vec!["--memory", "99999999"], "more than this host's"),
        (vec!["--vcpus", "999"], "on this host"),
    ] {
        let mut a = vec!["create", "--name", "box"];
        a.extend(args.iter());
        let out = fx.run(&a);
        assert_code(&out, 2);
        let err = stderr(&out);
        assert!(err.contains(says), "{args:?}: {err}");
        // The hint names an option of banger vm.
        let flag = args[0];
        assert!(
            err.lines()
                .any(|l| l.starts_with("hint:") && l.contains(flag)),
            "{args:?}: {err}"
        );
        assert!(
            !err.contains("EFBIG") && !err.contains("File too large"),
            "{err}"
        );
    }
    let log = fx.log();
    assert!(!log.contains("tap acquire"), "{log}");
    assert!(!fx.vms_dir().join("box").exists());
    assert!(fx.leases().is_empty());
    // The smallest size that holds the seed is fine.
    let rec = fx.create("box", &["--disk", "8M", "--no-start"]);
    assert_eq!(rec["disk_size"], 8 << 20);
}

#[test]
fn a_kernel_that_is_a_directory_is_not_a_file() {
    let fx = Fx::new();
    let k = fx.runtime.join("vmlinux");
    std::fs::remove_file(&k).unwrap();
    std::fs::create_dir(&k).unwrap();
    let out = fx.run(&["create", "--name", "box"]);
    assert_code(&out, 4);
    let err = stderr(&out);
    assert!(err.contains("is not a file"), "{err}");
    assert!(!err.contains("does not exist"), "{err}");
    assert!(!fx.vms_dir().join("box").exists());
    assert!(fx.leases().is_empty());
}

#[test]
fn health_of_an_unknown_vm_is_not_found() {
    let fx = Fx::new();
    let out = fx.run(&["health", "ghost"]);
    assert_code(&out, 3);
    assert!(
        stderr(&out).contains("no VM named ghost"),
        "{}",
        stderr(&out)
    );
    assert!(!fx.log().contains("banger-health"), "{}", fx.log());
}

#[test]
fn a_stop_that_had_to_kill_says_so() {
    let fx = Fx::new();
    fx.create("box", &[]);
    let out = fx.run_with(
        &["stop", "--timeout", "5", "box"],
        &[("STOP_HOW", "killed"), ("STOP_SYNCED", "true")],
    );
    assert_ok(&out);
    let line = &json_lines(&out)[0];
    assert_eq!(line["clean"], false);
    assert_eq!(line["how"], "killed");
    let err = stderr(&out);
    assert!(err.contains("did not shut down within 5 s"), "{err}");
    assert!(err.contains("synced"), "{err}");
    assert!(err.contains("banger vm stop --timeout"), "{err}");
    // Stopping a stopped VM is clean and asks nothing.
    fx.clear_log();
    let out = fx.run(&["stop", "box"]);
    assert_eq!(json_lines(&out)[0]["how"], "not_running");
    assert_eq!(fx.log(), "");
}

#[test]
fn restart_is_a_clean_stop_then_start() {
    let fx = Fx::new();
    fx.create("box", &[]);
    fx.clear_log();
    let out = fx.run(&["restart", "box", "--stop-timeout", "12"]);
    assert_ok(&out);
    let line = &json_lines(&out)[0];
    assert_eq!(line["state"], "running");
    assert_eq!(line["clean"], true);
    let log = fx.log();
    let calls: Vec<&str> = log.lines().collect();
    assert_eq!(calls[0], "banger-qemu stop box --timeout 12", "{log}");
    assert!(calls.contains(&"banger-qemu start"), "{log}");
}

#[test]
fn graceful_delete_shuts_the_guest_down_first() {
    let fx = Fx::new();
    fx.create("box", &[]);
    let out = fx.run(&["delete", "--graceful", "--timeout", "7", "box"]);
    assert_ok(&out);
    assert!(
        fx.log().contains("banger-qemu stop box --timeout 7"),
        "{}",
        fx.log()
    );
    fx.assert_nothing_left("box");
    // --timeout alone is for --graceful.
    fx.create("box", &[]);
    assert_code(&fx.run(&["delete", "--timeout", "7", "box"]), 2);
}

#[test]
fn force_delete_removes_a_vm_whose_record_is_corrupt_or_missing() {
    for damage in ["truncate", "remove"] {
        let fx = Fx::new();
        fx.create("box", &["--nat"]);
        let rec = fx.vms_dir().join("box/vm.json");
        match damage {
            "truncate" => std::fs::write(&rec, "{\"schema\": 1, \"name\": \"bo").unwrap(),
            _ => std::fs::remove_file(&rec).unwrap(),
        }
        // Without --force: an error that says what to do; nothing removed.
        let out = fx.run(&["delete", "box"]);
        assert!(!out.status.success(), "{damage}");
        let err = stderr(&out);
        assert!(
            err.contains("banger vm delete --force box"),
            "{damage}: {err}"
        );
        assert!(fx.vms_dir().join("box").exists());
        assert_eq!(fx.leases(), ["box"]);

        let out = fx.run(&["delete", "--force", "box"]);
        assert_ok(&out);
        let line = &json_lines(&out)[0];
        assert_eq!(line["state"], "deleted", "{damage}");
        let removed = line["removed"].to_string();
        for what in ["banger-qemu VMM", "NAT element", "TAP and lease", "vms/box"] {
            assert!(removed.contains(what), "{damage}: {what} not in {removed}");
        }
        fx.assert_nothing_left("box");
    }
}

#[test]
fn a_killed_create_leaves_no_wait_running() {
    for hang_at in ["banger-health wait", "banger-ssh wait"] {
        let fx = Fx::new();
        let mut child = fx
            .cmd(&["create", "--name", "box"])
            .env("HANG_AT", hang_at)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        wait_for_call(&fx, hang_at);
        let hang = fx.standin.join("hang.pid");
        let pid = banger_testkit::poll(Duration::from_secs(10), || {
            banger_lib::proc::read_pid_file(&hang)
        })
        .expect("the wait wrote its pid");
        child.kill().unwrap();
        child.wait().unwrap();
        let gone = banger_testkit::poll(Duration::from_secs(10), || {
            matches!(banger_lib::proc::state(pid), None | Some('Z')).then_some(())
        });
        assert!(gone.is_some(), "{hang_at} (pid {pid}) outlived banger-vm");
        // The VMM stays, detached, as designed; delete cleans up.
        assert_ok(&fx.run(&["delete", "--force", "box"]));
        fx.assert_nothing_left("box");
    }
}

#[test]
fn errors_are_one_json_line_when_asked() {
    let fx = Fx::new();
    let parse = |out: &std::process::Output| -> serde_json::Value {
        let err = stderr(out);
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "one line: {err}");
        serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("not JSON ({e}): {err}"))
    };
    let out = fx.run(&["show", "ghost", "--json-errors"]);
    assert_code(&out, 3);
    let e = parse(&out);
    assert_eq!(e["kind"], "not_found");
    assert_eq!(e["exit"], 3);
    assert_eq!(e["error"], "no VM named ghost");
    assert_eq!(e["hint"], "list the VMs with: banger vm list");
    // A usage error clap finds is one too.
    let out = fx.run(&["create", "--json-errors"]);
    assert_code(&out, 2);
    let e = parse(&out);
    assert_eq!(e["kind"], "usage");
    assert!(e["error"].as_str().unwrap().contains("--name"), "{e}");
    // BANGER_ERRORS=json when stderr is not a terminal (here a pipe).
    let out = fx.run_with(&["show", "ghost"], &[("BANGER_ERRORS", "json")]);
    assert_eq!(parse(&out)["exit"], 3);
    // The human form otherwise.
    let out = fx.run(&["show", "ghost"]);
    assert!(stderr(&out).starts_with("banger-vm: error: no VM named ghost\nhint: "));
}

#[test]
fn isolation_is_the_default_and_set_changes_it_on_the_lease() {
    let fx = Fx::new();
    let rec = fx.create("box", &["--no-isolate"]);
    assert_eq!(rec["isolated"], false);
    assert!(
        fx.log()
            .contains("banger-net tap acquire --vm box --no-isolate"),
        "{}",
        fx.log()
    );
    // show says which.
    let out = fx.run(&["show", "box"]);
    assert_eq!(json_lines(&out)[0]["isolated"], false);
    // set goes to banger-net for a VM with a lease, and the record follows.
    assert_ok(&fx.run(&["set", "--isolate", "box"]));
    assert!(fx.log().contains("banger-net tap set --vm box --isolate"));
    assert_eq!(fx.vm_json("box")["isolated"], true);
    assert_ok(&fx.run(&["set", "box", "--no-isolate"]));
    assert_eq!(fx.vm_json("box")["isolated"], false);
    // The next start acquires the lease with the setting.
    assert_ok(&fx.run(&["stop", "box"]));
    assert_ok(&fx.run(&["set", "box", "--isolate"]));
    assert_ok(&fx.run(&["start", "box"]));
    let last_acquire = fx
        .log()
        .lines()
        .rfind(|l| l.starts_with("banger-net tap acquire"))
        .unwrap()
        .to_string();
    assert_eq!(last_acquire, "banger-net tap acquire --vm box");
    // banger-net's refusal is the set's, and the record keeps its setting.
    let out = fx.run_with(
        &["set", "box", "--no-isolate"],
        &[("FAIL_AT", "banger-net tap set"), ("FAIL_CODE", "4")],
    );
    assert_code(&out, 4);
    assert_eq!(fx.vm_json("box")["isolated"], true);
}

#[test]
fn changed_host_keys_at_start_are_a_warning_not_a_failed_start() {
    let fx = Fx::new();
    fx.create("box", &[]);
    assert_ok(&fx.run(&["stop", "box"]));
    let out = fx.run_with(
        &["start", "box"],
        &[("FAIL_AT", "banger-ssh pin"), ("FAIL_CODE", "5")],
    );
    assert_ok(&out);
    let err = stderr(&out);
    assert!(err.contains("warning: box:"), "{err}");
    assert_eq!(fx.vm_json("box")["state"], "running");
}

#[test]
fn no_jailer_reaches_banger_fc_every_start_and_shows_in_the_record() {
    let fx = Fx::new();
    let rec = fx.create("box", &["--vmm", "firecracker", "--no-jailer"]);
    assert_eq!(rec["no_jailer"], true, "{rec}");
    assert!(
        fx.log().lines().any(|l| l == "banger-fc start --no-jailer"),
        "{}",
        fx.log()
    );
    let show = json_lines(&fx.run(&["show", "box"])).remove(0);
    assert_eq!(show["no_jailer"], true, "{show}");
    fx.clear_log();
    assert_ok(&fx.run(&["stop", "box"]));
    assert_ok(&fx.run(&["start", "box"]));
    assert!(
        fx.log().lines().any(|l| l == "banger-fc start --no-jailer"),
        "{}",
        fx.log()
    );
    // Without it, the driver is asked for nothing and the key is left out.
    let web = fx.create("web", &["--vmm", "firecracker"]);
    assert!(web.get("no_jailer").is_none(), "{web}");
    assert!(
        fx.log().lines().any(|l| l == "banger-fc start"),
        "{}",
        fx.log()
    );
    assert_ok(&fx.run(&["delete", "box", "web"]));
    // It means nothing to QEMU: refused before anything is made.
    let out = fx.run(&["create", "--name", "q", "--vmm", "qemu", "--no-jailer"]);
    assert_code(&out, 2);
    assert!(
        stderr(&out).contains("--vmm firecracker"),
        "{}",
        stderr(&out)
    );
    fx.assert_nothing_left("q");
}

#[test]
fn bad_init_scripts_and_env_are_refused_before_anything_is_made() {
    let fx = Fx::new();
    let script = fx.home.path().join("setup.sh");
    std::fs::write(&script, "echo hi\n").unwrap();
    let s = script.to_str().unwrap();
    let missing = fx.home.path().join("nope.sh");
    let big = fx.home.path().join("big.sh");
    std::fs::write(&big, vec![b'#'; (1 << 20) + 1]).unwrap();
    for (args, code) in [
        (vec!["--init", missing.to_str().unwrap()], 3),
        (vec!["--init", big.to_str().unwrap()], 2),
        (vec!["--init", s, "--no-start"], 2),
        (vec!["--init", s, "--no-wait"], 2),
        (vec!["--env", "A=1"], 2),
        (vec!["--init", s, "--env", "1A=x"], 2),
        (vec!["--keep-failed"], 2),
    ] {
        let mut a = vec!["create", "--name", "box"];
        a.extend(&args);
        let out = fx.run(&a);
        assert_code(&out, code);
        assert!(!stderr(&out).is_empty());
        fx.assert_nothing_left("box");
        assert_eq!(fx.log(), "", "{args:?} called a tool");
    }
}
