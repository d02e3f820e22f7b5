//! A real guest under QEMU (TCG where there is no hardware KVM): the
//! make-kernel.sh kernel and its initramfs-only mode with the guest agent
//! added, in a network namespace with a TAP. Proves the boot, the agent
//! on its virtio-serial port, suspend and restore, and that stop leaves
//! no process, socket or TAP. Also compares the record keys of
//! banger-qemu and banger-fc.

use crate::common::{agent, run_json};
use banger_testkit::{guest, Home, NetNs};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const BOOT: Duration = Duration::from_secs(180);

/// `pid` runs as `uid` (real, effective, saved and filesystem ids), and
/// under a seccomp filter when `seccomp`.
fn assert_unprivileged(pid: u32, uid: u32, seccomp: bool) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .unwrap_or_default()
            .split_whitespace()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert_eq!(field("Uid:"), vec![uid.to_string(); 4], "{status}");
    assert!(!field("Gid:").contains(&"0".to_string()), "{status}");
    assert!(field("Groups:").iter().all(|g| g != "0"), "{status}");
    if seccomp {
        assert_eq!(field("Seccomp:"), vec!["2"], "{status}");
    }
}

#[test]
fn live_tcg_guest_boots_with_its_agent_suspends_and_stops_clean_as_root() {
    let t = "live_tcg_guest_boots_with_its_agent_suspends_and_stops_clean_as_root";
    if !banger_testkit::require_root(t) || !banger_testkit::require_tool(t, "qemu-system-x86_64") {
        return;
    }
    let k = guest::kernel();
    let home = Home::new();
    let agent_bin = banger_testkit::image::agent();
    let initrd = home.path().join("initrd.img");
    guest::initrd_with(
        &k.initrd,
        &[(agent_bin.as_path(), "bin/banger-vsock-agent")],
        &initrd,
    );

    let _serial = banger_testkit::serial();
    let ns = NetNs::new();
    // A root-owned TAP: banger-qemu attaches it and hands QEMU the fd.
    let user = banger_lib::vmmuser::lookup(banger_lib::vmmuser::DEFAULT).unwrap();
    ns.sh("ip tuntap add dev bqtap0 mode tap && ip link set bqtap0 up");
    let spec = json!({
        "id": "livebox", "kernel": k.vmlinux, "initrd": initrd,
        "cmdline": "console=ttyS0 ip=172.31.9.2::172.31.9.1:255.255.255.0:livebox:eth0:off",
        "vcpus": 1, "mem_mib": 256, "tap": "bqtap0", "mac": "06:00:ac:1f:09:02",
        "vsock_cid": 7,
    });
    let qemu = |args: &[&str]| {
        let mut c = ns.command(banger_testkit::bin("banger-qemu"));
        home.apply(&mut c).args(args);
        c
    };
    let rec = run_json(qemu(&["start"]), Some(&spec));
    assert_eq!(rec["vmm"], "qemu");
    assert_eq!(rec["accel"], "tcg");
    let console = PathBuf::from(rec["console_log"].as_str().unwrap());
    assert_eq!(rec["agent"]["kind"], "serial", "{rec}");
    assert!(rec.get("helper_pid").is_none(), "{rec}");
    let uds = PathBuf::from(rec["agent"]["uds"].as_str().unwrap());

    let booted = banger_testkit::poll(BOOT, || {
        let text = std::fs::read_to_string(&console).unwrap_or_default();
        text.contains(guest::INITRAMFS_READY).then_some(())
    });
    assert!(
        booted.is_some(),
        "no {:?} on the console within {BOOT:?}:\n{}",
        guest::INITRAMFS_READY,
        std::fs::read_to_string(&console).unwrap_or_default()
    );
    let pid = rec["pid"].as_u64().unwrap() as u32;
    assert_unprivileged(pid, user.uid.as_raw(), true);
    let argv = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let argv: Vec<String> = argv
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let sandbox = argv.iter().position(|a| a == "-sandbox").expect("-sandbox");
    for deny in ["obsolete", "elevateprivileges", "spawn", "resourcecontrol"] {
        let want = format!("{deny}=deny");
        assert!(argv[sandbox + 1].contains(&want), "{want} not in {argv:?}");
    }
    // Started as the user: no -runas (setuid from root) and no -daemonize.
    assert!(!argv.iter().any(|a| a == "-runas" || a == "-daemonize"));
    let status = run_json(qemu(&["status", "livebox"]), None);
    assert_eq!(status["state"], "running");
    assert_eq!(status["helper_alive"], Value::Null);
    assert!(!argv.iter().any(|a| a.contains("vhost")), "{argv:?}");

    // The agent starts after the ready line: poll for its answer.
    let health = banger_testkit::poll(Duration::from_secs(60), || {
        agent(&rec, "GET", "/healthz").filter(|(s, _)| *s == 200)
    });
    let (_, body) = health.expect("no /healthz answer on the agent's serial port");
    assert_eq!(body["hostname"], "livebox", "{body}");

    // eth0 is on the TAP (busybox ping: iputils may be missing).
    ns.sh("ip addr add 172.31.9.1/24 dev bqtap0");
    let pinged = banger_testkit::poll(Duration::from_secs(60), || {
        ns.try_sh("busybox ping -c1 -W1 172.31.9.2")
            .status
            .success()
            .then_some(())
    });
    assert!(
        pinged.is_some(),
        "the guest does not answer ping on the TAP"
    );

    let paused = run_json(qemu(&["pause", "livebox"]), None);
    assert_eq!(paused["state"], "paused");
    assert_eq!(
        run_json(qemu(&["status", "livebox"]), None)["state"],
        "paused"
    );
    run_json(qemu(&["resume", "livebox"]), None);

    // Suspend: a process and a file in /tmp, QEMU gone, restore, both
    // still there (the same process, not a new one).
    let (st, made) = init(
        &rec,
        "sleep 100000 </dev/null >/dev/null 2>&1 & echo $! >/tmp/sleeper; \
         echo before-suspend >/tmp/marker; cat /tmp/sleeper",
    );
    assert_eq!(st, 0, "{made}");
    let sleeper = made.trim().to_string();
    let state_file = home.path().join("livebox.state");
    let s = run_json(
        qemu(&["suspend", "livebox", "--to", &state_file.to_string_lossy()]),
        None,
    );
    assert_eq!(s["state"], "suspended", "{s}");
    assert!(s["bytes"].as_u64().unwrap() > 1 << 20, "{s}");
    assert!(!banger_lib::proc::is_alive(
        pid,
        rec["pid_start_time"].as_u64().unwrap()
    ));
    assert!(!uds.exists() && !uds.parent().unwrap().exists());
    assert!(!Path::new(&format!("{}.part", state_file.display())).exists());
    let back = run_json(
        qemu(&["restore", "--from", &state_file.to_string_lossy()]),
        Some(&spec),
    );
    assert_ne!(back["pid"], rec["pid"]);
    let health = banger_testkit::poll(Duration::from_secs(60), || {
        agent(&back, "GET", "/healthz").filter(|(s, _)| *s == 200)
    });
    assert!(health.is_some(), "no agent after the restore");
    let (st, seen) = init(
        &back,
        &format!("kill -0 {sleeper} && cat /tmp/marker && cat /tmp/sleeper"),
    );
    assert_eq!(st, 0, "{seen}");
    assert_eq!(seen, format!("before-suspend\n{sleeper}\n"));
    // The guest's network came back with it.
    let rec = back;
    let pid = rec["pid"].as_u64().unwrap() as u32;
    let starts = [rec["pid_start_time"].as_u64().unwrap()];
    let pids = [pid];

    // The agent's POST /shutdown: busybox init powers the guest off (the
    // ACPI button would be acpid's `poweroff -f`, which says nothing).
    let stopped = run_json(qemu(&["stop", "livebox", "--timeout", "60"]), None);
    assert_eq!(
        stopped,
        json!({"id": "livebox", "stopped": true, "how": "agent", "clean": true, "synced": true})
    );
    // The console logger drains what QEMU wrote last as QEMU ends.
    let said = banger_testkit::poll(Duration::from_secs(10), || {
        let said = std::fs::read_to_string(&console).unwrap_or_default();
        said.contains("Requesting system poweroff").then_some(said)
    });
    assert!(
        said.is_some(),
        "{}",
        std::fs::read_to_string(&console).unwrap_or_default()
    );
    for (pid, start) in pids.iter().zip(starts) {
        assert!(
            !banger_lib::proc::is_alive(*pid, start),
            "pid {pid} outlived stop"
        );
    }
    for sock in [&rec["qmp_socket"], &rec["agent"]["uds"]] {
        let p = Path::new(sock.as_str().unwrap());
        assert!(!p.exists(), "{} left behind", p.display());
    }
    let run_dir = uds.parent().unwrap();
    assert!(!run_dir.exists(), "{} left behind", run_dir.display());
    // The TAP stays the caller's (banger-net's); QEMU must have let go of
    // it, so deleting it works and leaves none.
    ns.sh("ip link del bqtap0");
    assert!(!ns.sh("ip -o link").contains("bqtap0"));
}

/// The shared part of the record both drivers print: banger-vm reads
/// these keys whichever driver ran.
#[test]
fn both_drivers_print_the_same_record_keys() {
    let t = "both_drivers_print_the_same_record_keys";
    if !banger_testkit::require_tool(t, "qemu-system-x86_64") {
        return;
    }
    let k = guest::kernel();
    let home = Home::new();
    let spec = |id: &str| {
        json!({"id": id, "kernel": k.vmlinux, "initrd": k.initrd, "cmdline": "console=ttyS0",
               "vcpus": 1, "mem_mib": 128, "vsock_cid": 3})
    };
    let fake = banger_testkit::fakefc::FakeFc::new();
    let mut fc = Command::new(banger_testkit::bin("banger-fc"));
    home.apply(&mut fc).arg("start");
    fake.apply(&mut fc);
    let fc_rec = run_json(fc, Some(&spec("viafc")));

    let _serial = banger_testkit::serial();
    let mut q = Command::new(banger_testkit::bin("banger-qemu"));
    home.apply(&mut q).arg("start");
    let q_rec = run_json(q, Some(&spec("viaqemu")));

    let keys = |v: &Value| -> std::collections::BTreeSet<String> {
        v.as_object().unwrap().keys().cloned().collect()
    };
    let shared: std::collections::BTreeSet<String> = [
        "schema",
        "id",
        "vmm",
        "accel",
        "pid",
        "pid_start_time",
        "vsock_uds",
        "agent",
        "vmm_version",
        "started_at",
        "vmm_log",
        "console_log",
    ]
    .map(String::from)
    .into();
    let (kf, kq) = (keys(&fc_rec), keys(&q_rec));
    assert!(
        kf.is_superset(&shared),
        "banger-fc lacks {:?}",
        &shared - &kf
    );
    assert!(
        kq.is_superset(&shared),
        "banger-qemu lacks {:?}",
        &shared - &kq
    );
    let only = |a: &std::collections::BTreeSet<String>, b| -> Vec<String> {
        a.difference(b).cloned().collect()
    };
    assert_eq!(only(&kf, &kq), ["api_socket"]);
    assert_eq!(only(&kq, &kf), ["qmp_socket"]);
    // QEMU's agent is its serial port, so it has no vsock socket.
    assert_eq!(q_rec["agent"]["kind"], "serial");
    assert!(q_rec["vsock_uds"].is_null());
    for (rec, driver) in [(&fc_rec, "banger-fc"), (&q_rec, "banger-qemu")] {
        for key in &shared {
            let v = &rec[key.as_str()];
            assert!(
                !v.is_null() || (key == "vsock_uds" && driver == "banger-qemu"),
                "{driver}: {key} is null"
            );
        }
        let mut stop = Command::new(banger_testkit::bin(driver));
        home.apply(&mut stop)
            .args(["stop", rec["id"].as_str().unwrap(), "--timeout", "0"]);
        fake.apply(&mut stop);
        assert_eq!(run_json(stop, None)["stopped"], true);
    }
}

/// Run a script with the agent's `POST /init`: its exit and output.
fn init(rec: &Value, script: &str) -> (i64, String) {
    let ep = crate::common::agent_endpoint(rec);
    let body = json!({"name": "t", "script": script});
    let r = banger_lib::agent::request_with(
        &ep,
        "POST",
        "/init",
        Some(&body),
        banger_lib::agent::MAX_INIT_REPLY,
        Duration::from_secs(60),
    )
    .expect("POST /init");
    assert_eq!(r.status, 200, "{:?}", r.body);
    (
        r.body["exit"].as_i64().unwrap_or(-1),
        r.body["output"].as_str().unwrap_or_default().to_string(),
    )
}
