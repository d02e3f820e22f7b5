//! banger-fc against a real Firecracker, gated: set BANGER_FIRECRACKER to
//! a firecracker binary (v1.16 or newer) and BANGER_KERNEL to an ELF vmlinux (default:
//! the runtime bundle's). On PVM hosts a guest does not finish booting, so
//! this checks the process and API path: start, pause, snapshot with a
//! disk copy, a clone restored from it on its own disk, stop, load, stop, and that no firecracker is left behind. With BANGER_JAILER
//! set to a real jailer too, the jailed VMM's uid, chroot and pid
//! namespace; a jailed golden snapshot and a clone in its own jail;
//! suspend and restore into a new jail; and that stop leaves no jail.

use assert_cmd::Command;
use banger_testkit::Home;
use serde_json::{json, Value};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

fn gate(test: &str) -> Option<(PathBuf, PathBuf)> {
    // The one test CI may skip: CI has no Firecracker binary (see
    // ARCHITECTURE.md, "Tests").
    let Some(fc) = std::env::var_os("BANGER_FIRECRACKER").filter(|v| !v.is_empty()) else {
        banger_testkit::skip(
            test,
            "no real Firecracker (set BANGER_FIRECRACKER to a firecracker binary to run it)",
        );
        return None;
    };
    let kernel = match std::env::var_os("BANGER_KERNEL").filter(|v| !v.is_empty()) {
        Some(k) => PathBuf::from(k),
        None => {
            let b = banger_lib::config::Bundle::load().ok()?;
            b.path(&b.kernel)
        }
    };
    if !kernel.is_file() {
        banger_testkit::skip_or_fail(
            test,
            &format!("no ELF kernel at {} (set BANGER_KERNEL)", kernel.display()),
        );
        return None;
    }
    if !banger_testkit::require_root(test) {
        return None;
    }
    Some((PathBuf::from(fc), kernel))
}

fn run(home: &Home, args: &[&str], stdin: Option<&Value>) -> Value {
    let mut c = Command::cargo_bin("banger-fc").unwrap();
    for (k, v) in home.envs() {
        c.env(k, v);
    }
    c.args(args);
    if let Some(s) = stdin {
        c.write_stdin(s.to_string());
    }
    let out = c.assert().success().get_output().stdout.clone();
    serde_json::from_slice(&out).unwrap()
}

/// A VM of 128 MiB with an empty 64 MiB root disk in `home`: enough for
/// Firecracker to start, pause and save it (the guest need not boot).
fn tiny_spec(home: &Home, id: &str, kernel: &Path) -> Value {
    let rootfs = home.path().join(format!("{id}.ext4"));
    std::fs::File::create(&rootfs)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    json!({
        "id": id, "kernel": kernel, "cmdline": "console=ttyS0 reboot=k panic=1",
        "vcpus": 1, "mem_mib": 128, "vsock_cid": 3,
        "drives": [{"id": "rootfs", "path": rootfs, "root": true}],
    })
}

/// The root drive's host path in `status --config`.
fn drive_path(status: &Value) -> Value {
    status["config"]["drives"][0]["path_on_host"].clone()
}

fn alive(rec: &Value) -> bool {
    banger_lib::proc::is_alive(
        rec["pid"].as_u64().unwrap() as u32,
        rec["pid_start_time"].as_u64().unwrap(),
    )
}

#[test]
fn live_real_firecracker_start_pause_snapshot_stop() {
    // banger-fc runs the gate's BANGER_FIRECRACKER (a spec cannot name it).
    let Some((_fc, kernel)) = gate("live_real_firecracker_start_pause_snapshot_stop") else {
        return;
    };
    let _serial = banger_testkit::serial();
    let home = Home::new();
    let spec = tiny_spec(&home, "live", &kernel);
    // The unjailed path (snapshots of jailed VMs are
    // live_real_jailer_confines_firecracker's), whatever BANGER_JAILER says.
    let rec = run(&home, &["start", "--no-jailer"], Some(&spec));
    assert!(alive(&rec));
    // Any Firecracker banger-fc supports (v1.16 or newer; start refuses
    // older ones).
    let version = rec["vmm_version"].as_str().unwrap();
    let minor: Option<(u64, u64)> = version
        .trim_start_matches("Firecracker v")
        .split(['.', '-'])
        .take(2)
        .map(|n| n.parse().ok())
        .collect::<Option<Vec<u64>>>()
        .map(|v| (v[0], v[1]));
    assert!(minor.is_some_and(|v| v >= (1, 16)), "{rec}");
    assert_eq!(run(&home, &["status", "live"], None)["state"], "running");
    assert_eq!(run(&home, &["pause", "live"], None)["state"], "paused");
    let snap = home.path().join("snap");
    let copy = snap.join("rootfs.ext4");
    let line = run(
        &home,
        &[
            "snapshot",
            "create",
            "live",
            "--dir",
            snap.to_str().unwrap(),
            "--disk",
            &format!("rootfs={}", copy.display()),
        ],
        None,
    );
    assert_eq!(line["state"], "paused", "{line}");
    assert_eq!(line["disks"][0]["path"], json!(copy), "{line}");
    // The vmstate names the copy, not the VM's own disk.
    let vmstate = std::fs::read(snap.join("vmstate")).unwrap();
    let holds = |p: &str| vmstate.windows(p.len()).any(|w| w == p.as_bytes());
    assert!(holds(copy.to_str().unwrap()));
    assert!(!holds(spec["drives"][0]["path"].as_str().unwrap()));
    // Firecracker took the drive updates while paused: the source is back
    // on its own disk.
    let own = drive_path(&run(&home, &["status", "live", "--config"], None));
    assert_eq!(own, spec["drives"][0]["path"]);
    // A clone from the snapshot: a second VM on its own copy of the disk.
    let clone = tiny_spec(&home, "clone", &kernel);
    std::fs::copy(&copy, clone["drives"][0]["path"].as_str().unwrap()).unwrap();
    let crec = run(
        &home,
        &["restore", "--from", snap.to_str().unwrap()],
        Some(&clone),
    );
    assert!(alive(&crec));
    let cstatus = run(&home, &["status", "clone", "--config"], None);
    assert_eq!(cstatus["state"], "running", "{cstatus}");
    assert_eq!(drive_path(&cstatus), clone["drives"][0]["path"]);
    run(&home, &["stop", "clone", "--timeout", "1"], None);
    assert!(!alive(&crec));
    let stop = run(&home, &["stop", "live", "--timeout", "1"], None);
    assert_ne!(stop["how"], "already_dead", "{stop}");
    assert!(!alive(&rec));
    let loaded = run(
        &home,
        &["snapshot", "load", "live", "--dir", snap.to_str().unwrap()],
        None,
    );
    assert!(alive(&loaded));
    assert_eq!(run(&home, &["status", "live"], None)["state"], "running");
    run(&home, &["stop", "live", "--timeout", "1"], None);
    assert!(!alive(&loaded));
    assert!(!home.path().join("run/banger/live").exists());
}

fn status_field(pid: u32, key: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(key)).unwrap();
    line[key.len()..].trim().to_string()
}

/// A real Firecracker behind a real jailer (BANGER_JAILER; the jailer
/// execs Firecracker inside the chroot, so Firecracker must be linked
/// statically): the VMM runs as the VMM user, chrooted in its jail, in a
/// pid namespace of its own, its API answers through the chroot; a golden
/// snapshot of it restores a clone in a jail of its own; suspended, it is
/// restored into a new jail; and stop leaves nothing of the jail.
#[test]
fn live_real_jailer_confines_firecracker() {
    let test = "live_real_jailer_confines_firecracker";
    let Some((_fc, kernel)) = gate(test) else {
        return;
    };
    let Some(jailer) = std::env::var_os("BANGER_JAILER").filter(|v| !v.is_empty()) else {
        banger_testkit::skip(
            test,
            "no real jailer (set BANGER_JAILER to a jailer binary to run it)",
        );
        return;
    };
    let _serial = banger_testkit::serial();
    let home = Home::new();
    let spec = tiny_spec(&home, "jailed", &kernel);
    let rec = run(&home, &["start"], Some(&spec));
    eprintln!("jailer {}: {rec}", PathBuf::from(&jailer).display());
    assert!(alive(&rec));
    let jail = assert_jailed(&rec);
    let pid = rec["pid"].as_u64().unwrap() as u32;
    // Filter mode: Firecracker installs its filters on its threads (a
    // static glibc build here gets the empty default policy, still mode 2).
    assert_eq!(status_field(pid, "Seccomp:"), "2");
    assert_eq!(run(&home, &["status", "jailed"], None)["state"], "running");
    assert_eq!(run(&home, &["pause", "jailed"], None)["state"], "paused");

    // A golden snapshot: written in the jail, moved out as root's; its
    // vmstate names the chroot's drive, which a clone's jail makes its own.
    let gold = home.path().join("gold");
    let copy = gold.join("rootfs.ext4");
    let line = run(
        &home,
        &[
            "snapshot",
            "create",
            "jailed",
            "--dir",
            gold.to_str().unwrap(),
            "--disk",
            &format!("rootfs={}", copy.display()),
        ],
        None,
    );
    assert_eq!(line["state"], "paused", "{line}");
    let vmstate = std::fs::read(gold.join("vmstate")).unwrap();
    let holds = |p: &str| vmstate.windows(p.len()).any(|w| w == p.as_bytes());
    assert!(holds("/drive-rootfs"));
    assert!(!holds(spec["drives"][0]["path"].as_str().unwrap()));
    assert!(!holds(copy.to_str().unwrap()));
    for f in ["vmstate", "memory"] {
        let m = std::fs::metadata(gold.join(f)).unwrap();
        assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (0, 0, 0o600), "{f}");
    }
    assert!(!jail.join("root/snapshot").exists(), "the outbox is left");
    let clone = tiny_spec(&home, "clone", &kernel);
    std::fs::copy(&copy, clone["drives"][0]["path"].as_str().unwrap()).unwrap();
    let crec = run(
        &home,
        &["restore", "--from", gold.to_str().unwrap()],
        Some(&clone),
    );
    let clone_jail = assert_jailed(&crec);
    assert_ne!(clone_jail, jail);
    let cstatus = run(&home, &["status", "clone", "--config"], None);
    assert_eq!(cstatus["state"], "running", "{cstatus}");
    assert_eq!(drive_path(&cstatus), "/drive-rootfs");
    let linked = std::fs::metadata(clone_jail.join("root/drive-rootfs")).unwrap();
    let own = std::fs::metadata(clone["drives"][0]["path"].as_str().unwrap()).unwrap();
    assert_eq!((linked.dev(), linked.ino()), (own.dev(), own.ino()));
    run(&home, &["stop", "clone", "--timeout", "1"], None);
    assert!(!alive(&crec));
    assert!(
        !clone_jail.exists(),
        "the jail {} is left",
        clone_jail.display()
    );

    // Suspended from the jail, restored into a new one.
    let saved = home.path().join("jailed.suspend");
    let s = run(
        &home,
        &["suspend", "jailed", "--to", saved.to_str().unwrap()],
        None,
    );
    assert_eq!(s["state"], "suspended", "{s}");
    assert!(!alive(&rec));
    assert!(!jail.exists(), "the jail {} is left", jail.display());
    let back = run(
        &home,
        &["restore", "--from", saved.to_str().unwrap()],
        Some(&spec),
    );
    assert_eq!(assert_jailed(&back), jail);
    assert_eq!(run(&home, &["status", "jailed"], None)["state"], "running");
    let stop = run(&home, &["stop", "jailed", "--timeout", "1"], None);
    assert_ne!(stop["how"], "already_dead", "{stop}");
    assert!(!alive(&back));
    assert!(!jail.exists(), "the jail {} is left", jail.display());
    assert!(!home.path().join("run/banger/jailed").exists());
}

/// The process of `rec` runs as the VMM user, its root the jail's, in a
/// pid namespace of its own; the jail's dir.
fn assert_jailed(rec: &Value) -> PathBuf {
    assert!(alive(rec));
    let pid = rec["pid"].as_u64().unwrap() as u32;
    let jail = PathBuf::from(rec["jail"].as_str().expect("a jail in the record"));
    let user = banger_lib::vmmuser::lookup(banger_lib::vmmuser::DEFAULT).unwrap();
    let uids = status_field(pid, "Uid:");
    assert!(
        uids.split_whitespace()
            .all(|u| u == user.uid.as_raw().to_string()),
        "Uid {uids}"
    );
    // Its root is the jail's (in its own mount namespace, where the
    // jailer pivoted into it, so compared by inode, not by name).
    let (seen, want) = (
        std::fs::metadata(format!("/proc/{pid}/root/")).unwrap(),
        std::fs::metadata(jail.join("root")).unwrap(),
    );
    assert_eq!((seen.dev(), seen.ino()), (want.dev(), want.ino()));
    assert_ne!(
        std::fs::read_link(format!("/proc/{pid}/ns/pid")).unwrap(),
        std::fs::read_link("/proc/self/ns/pid").unwrap(),
        "not in a pid namespace of its own"
    );
    jail
}
