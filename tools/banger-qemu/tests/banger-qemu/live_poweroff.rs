//! A real Debian guest (the test image) under QEMU powers itself off when
//! asked, without losing writes (issue 12, "Stop loses data"):
//!
//! 1. the guest agent's `POST /shutdown` (its virtio-serial port): a file
//!    written after `POST /sync` and never synced by hand is on the disk,
//!    and both filesystems were unmounted clean;
//! 2. `POST /sync` alone puts a file on the disk (a copy taken while the
//!    guest runs has it); then the ACPI power button alone (QMP
//!    `system_powerdown`, no agent): the image's acpid powers off, the
//!    disks are clean again.
//!
//! In both cases QEMU must exit by itself, long before any stop would fall
//! back to killing it. The test drives banger-qemu `start` and talks QMP and
//! the agent itself, so it checks the guest, not a driver's stop policy;
//! `stop` only cleans up after a QEMU that is already gone. Two boots under
//! TCG (~1 min); root only, in a network namespace, serialized.

use crate::common::{agent, run_json};
use banger_testkit::{guest, Home, NetNs};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BOOT: Duration = Duration::from_secs(180);
/// How long a guest may take from the request to QEMU's exit. A stop's
/// fallback is to kill the VMM after its timeout; a clean poweroff under
/// TCG takes a few seconds, so this is generous and still far from "hung".
const POWEROFF: Duration = Duration::from_secs(60);
/// The most read back from the guest or QEMU on one connection.
const MAX_REPLY: u64 = 64 * 1024;

const GUEST_IP: &str = "172.31.12.2";
const HOST_IP: &str = "172.31.12.1";
const TAP: &str = "bqpwr0";

/// QMP: greeting, capabilities, then `command`; the reply to it.
fn qmp(sock: &Path, command: &str) -> Value {
    let mut s = UnixStream::connect(sock).expect("connecting to QMP");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap().take(MAX_REPLY));
    let mut reply = |s: &mut UnixStream, cmd: Option<&str>| -> Value {
        if let Some(cmd) = cmd {
            writeln!(s, "{}", json!({ "execute": cmd })).unwrap();
        }
        loop {
            let mut line = String::new();
            assert!(r.read_line(&mut line).unwrap() > 0, "QMP closed");
            let v: Value = serde_json::from_str(&line).expect("QMP speaks JSON");
            // Events may come before the reply; the greeting has "QMP".
            if v.get("event").is_none() {
                return v;
            }
        }
    };
    assert!(reply(&mut s, None).get("QMP").is_some());
    assert!(reply(&mut s, Some("qmp_capabilities"))
        .get("return")
        .is_some());
    reply(&mut s, Some(command))
}

/// Wait for QEMU (pid, start time) to exit on its own; how long it took.
fn exits_by_itself(rec: &Value, what: &str, console: &Path) -> Duration {
    let pid = rec["pid"].as_u64().unwrap() as u32;
    let start = rec["pid_start_time"].as_u64().unwrap();
    let t0 = Instant::now();
    assert!(
        banger_lib::proc::wait_gone(pid, start, POWEROFF),
        "QEMU still runs {POWEROFF:?} after {what}; console:\n{}",
        tail(console)
    );
    t0.elapsed()
}

fn tail(console: &Path) -> String {
    let text = std::fs::read_to_string(console).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// The disk was unmounted clean: no journal left to replay.
fn assert_clean(disk: &Path, console: &Path) {
    let out = Command::new("dumpe2fs")
        .arg("-h")
        .arg(disk)
        .output()
        .expect("running dumpe2fs (apt-get install e2fsprogs)");
    assert!(out.status.success(), "dumpe2fs -h {}", disk.display());
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    assert_eq!(
        field("Filesystem state:"),
        "clean",
        "{} not clean; console:\n{}",
        disk.display(),
        tail(console)
    );
    let features = field("Filesystem features:");
    assert!(
        !features.contains("needs_recovery"),
        "{} has a journal to replay ({features}); console:\n{}",
        disk.display(),
        tail(console)
    );
}

fn copy_disk(from: &Path, to: &Path) {
    let st = Command::new("cp")
        .args(["--sparse=always", "--reflink=auto"])
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success(), "copying {}", from.display());
}

/// A file's contents on an unmounted ext4 image, read on the host.
fn read_on_disk(disk: &Path, path: &str) -> String {
    let out: Output = Command::new("debugfs")
        .arg("-R")
        .arg(format!("cat {path}"))
        .arg(disk)
        .output()
        .expect("running debugfs (apt-get install e2fsprogs)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn live_debian_guest_powers_off_on_agent_shutdown_and_power_button_as_root() {
    let t = "live_debian_guest_powers_off_on_agent_shutdown_and_power_button_as_root";
    if !banger_testkit::require_root(t) {
        return;
    }
    for tool in [
        "qemu-system-x86_64",
        "debootstrap",
        "ssh",
        "dumpe2fs",
        "debugfs",
        "e2fsck",
    ] {
        if !banger_testkit::require_tool(t, tool) {
            return;
        }
    }
    let _serial = banger_testkit::serial();
    let image = banger_testkit::image::debian();
    // banger's own kernel, no initramfs, as users boot this image: the
    // power button reaches acpid through its built-in ACPI button driver.
    let k = guest::built_kernel();
    let home = Home::new();

    // The VM's own disks; the image is never written.
    let root_disk = home.path().join("rootfs.ext4");
    let work_disk = home.path().join("work.ext4");
    copy_disk(&image.rootfs, &root_disk);
    copy_disk(&image.work_seed, &work_disk);

    let ns = NetNs::new();
    ns.sh(&format!(
        "ip tuntap add dev {TAP} mode tap && ip link set {TAP} up && \
         ip addr add {HOST_IP}/24 dev {TAP}"
    ));
    let spec = |boot: u32| {
        json!({
            "id": "pwrbox", "kernel": k.vmlinux,
            // banger-vm's command line (tools/banger-vm/src/vmm.rs).
            "cmdline": format!("console=ttyS0 reboot=k panic=1 pci=off \
                                ip={GUEST_IP}::{HOST_IP}:255.255.255.0:pwrbox:eth0:off"),
            "vcpus": 1, "mem_mib": 512, "tap": TAP, "mac": "06:00:ac:1f:0c:02",
            "vsock_cid": 12,
            "drives": [
                {"id": "rootfs", "path": root_disk, "read_only": false, "root": true},
                {"id": "work", "path": work_disk, "read_only": false, "root": false},
            ],
            // One console log per boot, so each boot's lines stand alone.
            "console_log": home.path().join(format!("console-{boot}.log")),
        })
    };
    let qemu = |args: &[&str]| {
        let mut c = ns.command(banger_testkit::bin("banger-qemu"));
        home.apply(&mut c).args(args);
        c
    };
    let ssh = |cmd: &str| -> Output { guest::ssh(&ns, &image.ssh_key, GUEST_IP, cmd) };
    let boot = |n: u32| -> (Value, PathBuf) {
        let rec = run_json(qemu(&["start"]), Some(&spec(n)));
        assert_eq!(rec["vmm"], "qemu");
        let console = PathBuf::from(rec["console_log"].as_str().unwrap());
        let t0 = Instant::now();
        let health = banger_testkit::poll(BOOT, || {
            agent(&rec, "GET", "/healthz").filter(|(s, _)| *s == 200)
        });
        assert!(
            health.is_some(),
            "boot {n}: no agent within {BOOT:?}; console:\n{}",
            tail(&console)
        );
        eprintln!("boot {n}: agent answered after {:?}", t0.elapsed());
        (rec, console)
    };
    let clean_up = |rec: &Value| {
        // QEMU is gone already; stop removes its sockets.
        let stopped = run_json(
            qemu(&["stop", rec["id"].as_str().unwrap(), "--timeout", "5"]),
            None,
        );
        assert_eq!(stopped["stopped"], true, "{stopped}");
    };

    // --- 1. POST /shutdown through the agent.
    let (rec, console1) = boot(1);
    let up = banger_testkit::poll(BOOT, || ssh("true").status.success().then_some(()));
    assert!(up.is_some(), "no ssh; console:\n{}", tail(&console1));
    // The root disk only: the work disk's mount at /root gives up after
    // 20 s (fstab nofail), which a loaded TCG host can exceed.
    let out = ssh("echo synced > /var/tmp/synced");
    assert!(out.status.success(), "{out:?}");
    let (status, body) = agent(&rec, "POST", "/sync").expect("POST /sync");
    assert_eq!(
        (status, &body),
        (200, &json!({"status": "ok", "synced": true}))
    );
    // Written after the last sync: only a clean poweroff keeps it.
    let out = ssh("echo unsynced > /var/tmp/unsynced");
    assert!(out.status.success(), "{out:?}");
    let (status, body) = agent(&rec, "POST", "/shutdown").expect("POST /shutdown");
    assert_eq!(
        (status, &body),
        (202, &json!({"status": "ok", "action": "poweroff"}))
    );
    let took = exits_by_itself(&rec, "POST /shutdown", &console1);
    eprintln!("POST /shutdown -> QEMU exit: {took:?}");
    clean_up(&rec);
    assert_clean(&root_disk, &console1);
    assert_clean(&work_disk, &console1);
    assert_eq!(read_on_disk(&root_disk, "/var/tmp/synced"), "synced\n");
    assert_eq!(read_on_disk(&root_disk, "/var/tmp/unsynced"), "unsynced\n");
    assert!(
        tail(&console1).contains("reboot: Power down"),
        "no kernel poweroff on the console:\n{}",
        tail(&console1)
    );

    // --- 2. The power button alone: QMP system_powerdown.
    let (rec, console2) = boot(2);
    let log = std::fs::read_to_string(&console2).unwrap();
    assert!(
        !log.contains("recovery complete") && !log.contains("recovering journal"),
        "boot 2 replayed a journal after POST /shutdown:\n{log}"
    );
    // A button press before anything listens is lost, as on real hardware;
    // the agent is up, but acpid is a separate unit: wait for it.
    let acpid = banger_testkit::poll(BOOT, || {
        let out = ssh("systemctl is-active acpid.service");
        (String::from_utf8_lossy(&out.stdout).trim() == "active").then_some(())
    });
    assert!(
        acpid.is_some(),
        "acpid never ran; console:\n{}",
        tail(&console2)
    );
    // POST /sync alone: a copy of the running VM's disk, which is what a
    // crash now would leave, has the file once its journal is replayed.
    let out = ssh("echo two > /var/tmp/two");
    assert!(out.status.success(), "{out:?}");
    let (status, _) = agent(&rec, "POST", "/sync").expect("POST /sync");
    assert_eq!(status, 200);
    let crash = home.path().join("crash.ext4");
    copy_disk(&root_disk, &crash);
    let st = Command::new("e2fsck")
        .args(["-y", "-E", "journal_only"])
        .arg(&crash)
        .stdout(Stdio::null())
        .status()
        .expect("running e2fsck");
    assert!(st.code().is_some_and(|c| c <= 1), "e2fsck: {st}");
    assert_eq!(read_on_disk(&crash, "/var/tmp/two"), "two\n");
    std::fs::remove_file(&crash).unwrap();

    let qmp_sock = PathBuf::from(rec["qmp_socket"].as_str().unwrap());
    let reply = qmp(&qmp_sock, "system_powerdown");
    assert!(reply.get("return").is_some(), "{reply}");
    let took = exits_by_itself(&rec, "QMP system_powerdown", &console2);
    eprintln!("QMP system_powerdown -> QEMU exit: {took:?}");
    clean_up(&rec);
    assert!(
        tail(&console2).contains("reboot: Power down"),
        "no kernel poweroff on the console:\n{}",
        tail(&console2)
    );
    assert_clean(&root_disk, &console2);
    assert_clean(&work_disk, &console2);

    ns.sh(&format!("ip link del {TAP}"));
}
