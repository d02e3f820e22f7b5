//! banger-qemu stop with a real guest under QEMU: the make-kernel.sh
//! initramfs-only guest without the agent, whose busybox acpid powers off
//! on the ACPI power button. No TAP, so no network namespace.

use banger_testkit::{guest, Home};
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const BOOT: Duration = Duration::from_secs(180);
/// What the guest kernel prints when it powers off (rather than being
/// killed).
const POWER_DOWN: &str = "reboot: Power down";

fn gate(test: &str) -> bool {
    banger_testkit::require_tool(test, "qemu-system-x86_64")
}

fn qemu(home: &Home, args: &[&str], stdin: Option<&Value>) -> Output {
    let mut c = Command::new(banger_testkit::bin("banger-qemu"));
    home.apply(&mut c)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawning banger-qemu");
    let text = stdin.map(Value::to_string).unwrap_or_default();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), text.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn json_line(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "banger-qemu failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON line")
}

/// Start the initramfs guest with no agent behind its port, and wait
/// until it is up (acpid runs).
fn boot(home: &Home, id: &str) -> Value {
    let k = guest::kernel();
    let spec = json!({
        "id": id, "kernel": k.vmlinux, "initrd": k.initrd, "cmdline": "console=ttyS0",
        "vcpus": 1, "mem_mib": 256, "vsock_cid": 9,
    });
    let rec = json_line(&qemu(home, &["start"], Some(&spec)));
    let up = banger_testkit::poll(BOOT, || {
        console(&rec).contains(guest::INITRAMFS_READY).then_some(())
    });
    assert!(
        up.is_some(),
        "the guest did not come up:\n{}",
        console(&rec)
    );
    rec
}

fn console(rec: &Value) -> String {
    std::fs::read_to_string(rec["console_log"].as_str().unwrap()).unwrap_or_default()
}

/// QEMU is gone, and the run dir with it.
fn assert_gone(rec: &Value) {
    let pid = rec["pid"].as_u64().unwrap() as u32;
    let start = rec["pid_start_time"].as_u64().unwrap();
    assert!(
        !banger_lib::proc::is_alive(pid, start),
        "pid {pid} outlived stop"
    );
    let run_dir = Path::new(rec["qmp_socket"].as_str().unwrap())
        .parent()
        .unwrap();
    assert!(!run_dir.exists(), "{} left behind", run_dir.display());
}

#[test]
fn live_stop_without_an_agent_presses_the_power_button() {
    if !gate("live_stop_without_an_agent_presses_the_power_button") {
        return;
    }
    let _serial = banger_testkit::serial();
    let home = Home::new();
    let rec = boot(&home, "pwr");
    assert!(rec["agent"].is_object(), "{rec}");
    let out = qemu(&home, &["stop", "pwr", "--timeout", "120"], None);
    let line = json_line(&out);
    assert_eq!(
        line,
        json!({"id": "pwr", "stopped": true, "how": "acpi", "clean": true, "synced": true})
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(console(&rec).contains(POWER_DOWN), "{}", console(&rec));
    assert_gone(&rec);
}

#[test]
fn live_stop_kill_ends_qemu_without_asking_the_guest() {
    if !gate("live_stop_kill_ends_qemu_without_asking_the_guest") {
        return;
    }
    let _serial = banger_testkit::serial();
    let home = Home::new();
    let rec = boot(&home, "kil");
    let out = qemu(&home, &["stop", "kil", "--kill"], None);
    assert_eq!(
        json_line(&out),
        json!({"id": "kil", "stopped": true, "how": "killed", "clean": false, "synced": false})
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!console(&rec).contains(POWER_DOWN), "{}", console(&rec));
    assert_gone(&rec);
}

/// A paused guest hears no power button: stop lets it run first, so it
/// still shuts down cleanly instead of sitting out the timeout.
#[test]
fn live_stop_of_a_paused_guest_wakes_it_first() {
    if !gate("live_stop_of_a_paused_guest_wakes_it_first") {
        return;
    }
    let _serial = banger_testkit::serial();
    let home = Home::new();
    let rec = boot(&home, "psd");
    assert_eq!(
        json_line(&qemu(&home, &["pause", "psd"], None))["state"],
        "paused"
    );
    assert_eq!(
        json_line(&qemu(&home, &["status", "psd"], None))["state"],
        "paused"
    );
    let out = qemu(&home, &["stop", "psd", "--timeout", "120"], None);
    assert_eq!(
        json_line(&out),
        json!({"id": "psd", "stopped": true, "how": "acpi", "clean": true, "synced": true})
    );
    assert!(console(&rec).contains(POWER_DOWN), "{}", console(&rec));
    assert_gone(&rec);
}
