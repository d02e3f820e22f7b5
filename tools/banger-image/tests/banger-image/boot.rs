//! The built image boots: plain QEMU (TCG, `-M microvm`) with the guest
//! kernel from rootfs/make-kernel.sh, inside a network namespace with a
//! TAP. Checks the guest contract from the inside over ssh: the ip=
//! network and hostname, key-only root login with bash, the work disk at
//! /root, the nested-/root repair, and the agent's service running; ip=
//! applied by banger's initramfs, so the image's banger-ipconfig is skipped.
//! (Health over vsock is banger-health's and banger-vm's live tests.)

use banger_testkit::{guest, image, poll, require_root, require_tool, NetNs};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

fn tcg_clock_args() -> String {
    // Under TCG on microvm the kernel cannot calibrate its timers; give it
    // the rates (see banger-qemu's accel.rs).
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let khz = cpuinfo
        .lines()
        .find(|l| l.starts_with("cpu MHz"))
        .and_then(|l| l.split(':').nth(1))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|m| (m * 1000.0).round() as u64)
        .unwrap_or(2_000_000);
    format!("tsc_early_khz={khz} lapic_timer_period=4000000")
}

/// A work seed in the old layout: its /root held inside the disk.
fn nested_work_seed(dir: &Path, pubkey: &Path) -> std::path::PathBuf {
    let src = dir.join("seed");
    std::fs::create_dir_all(src.join("root/.ssh")).unwrap();
    std::fs::copy(pubkey, src.join("root/.ssh/authorized_keys")).unwrap();
    std::fs::write(src.join("root/marker"), "from the old layout\n").unwrap();
    let out = dir.join("work.ext4");
    let st = Command::new(banger_lib::hosttools::which("mkfs.ext4").unwrap())
        .args(["-q", "-F", "-d"])
        .arg(&src)
        .arg(&out)
        .arg("64M")
        .status()
        .unwrap();
    assert!(st.success());
    out
}

#[test]
fn live_root_image_boots_under_qemu_with_ssh_network_and_work_disk() {
    let t = "live_root_image_boots_under_qemu_with_ssh_network_and_work_disk";
    if !require_root(t)
        || !require_tool(t, "qemu-system-x86_64")
        || !require_tool(t, "debootstrap")
        || !require_tool(t, "ssh")
    {
        return;
    }
    let _serial = banger_testkit::serial();
    let img = image::debian();
    let kernel = guest::kernel();
    let tmp = tempfile::tempdir().unwrap();
    // The image is never written: boot a copy.
    let rootfs = tmp.path().join("rootfs.ext4");
    let st = Command::new("cp")
        .args(["--sparse=always"])
        .arg(&img.rootfs)
        .arg(&rootfs)
        .status()
        .unwrap();
    assert!(st.success());
    let work = nested_work_seed(tmp.path(), &img.ssh_key.with_extension("pub"));
    let console = tmp.path().join("console.log");

    let ns = NetNs::new();
    ns.sh(
        "ip tuntap add tap0 mode tap && ip addr add 172.30.9.1/24 dev tap0 && ip link set tap0 up",
    );
    let cmdline = format!(
        "console=ttyS0 root=/dev/vda rw reboot=k panic=-1 {} ip=172.30.9.2::172.30.9.1:255.255.255.0:imgtest:eth0:off:172.30.9.1",
        tcg_clock_args()
    );
    let drive = |id: &str, p: &Path| format!("id={id},file={},format=raw,if=none", p.display());
    let mut qemu = ns
        .command("qemu-system-x86_64")
        .args([
            "-M", "microvm", "-accel", "tcg", "-cpu", "max", "-m", "512", "-smp", "1",
        ])
        .args(["-nodefaults", "-no-user-config", "-display", "none"])
        .arg("-serial")
        .arg(format!("file:{}", console.display()))
        .arg("-kernel")
        .arg(&kernel.vmlinux)
        .arg("-initrd")
        .arg(&kernel.initrd)
        .args(["-append", &cmdline])
        .args(["-drive", &drive("root", &rootfs)])
        .args(["-device", "virtio-blk-device,drive=root"])
        .args(["-drive", &drive("work", &work)])
        .args(["-device", "virtio-blk-device,drive=work"])
        .args(["-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no"])
        .args(["-device", "virtio-net-device,netdev=n0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting qemu");

    let ssh = |cmd: &str| banger_testkit::guest::ssh(&ns, &img.ssh_key, "172.30.9.2", cmd);
    let up = poll(Duration::from_secs(600), || {
        if let Ok(Some(_)) = qemu.try_wait() {
            return Some(false);
        }
        ssh("true").status.success().then_some(true)
    });
    let report = || std::fs::read_to_string(&console).unwrap_or_default();
    assert_eq!(
        up,
        Some(true),
        "the guest never took an ssh login; console:\n{}",
        report()
    );

    let out = ssh(
        "hostname; echo $SHELL; cat /etc/resolv.conf; findmnt -n -o SOURCE /root; \
         cat /root/marker; test -e /root/root && echo nested; \
         ip -4 -o addr show dev eth0 | awk '{print $4}'; ip route show default; \
         systemctl is-active banger-vsock-agent ssh; \
         systemctl show -p ConditionResult --value banger-ipconfig; \
         systemctl --failed --no-legend --plain | wc -l",
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(lines[0], "imgtest", "{text}");
    assert_eq!(lines[1], "/bin/bash", "{text}");
    assert_eq!(lines[2], "nameserver 172.30.9.1", "{text}");
    assert_eq!(lines[3], "/dev/vdb", "{text}");
    assert_eq!(
        lines[4], "from the old layout",
        "repair did not move /root/root up: {text}"
    );
    assert!(!text.contains("nested"), "{text}");
    assert_eq!(lines[5], "172.30.9.2/24", "{text}");
    assert!(
        lines[6].starts_with("default via 172.30.9.1 dev eth0"),
        "{text}"
    );
    assert_eq!(&lines[7..9], ["active", "active"], "{text}");
    // banger's initramfs applied ip= (address, route, hostname,
    // resolv.conf above), so banger-ipconfig's condition skipped it.
    assert_eq!(lines[9], "no", "banger-ipconfig ran: {text}");
    assert_eq!(lines[10], "0", "failed units: {text}");
    // Passwords are refused outright.
    let o = ns
        .command("ssh")
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "ConnectTimeout=5",
            "root@172.30.9.2",
            "true",
        ])
        .output()
        .unwrap();
    let _ = qemu.kill();
    let _ = qemu.wait();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("Permission denied"),
        "{err}\nconsole:\n{}",
        report()
    );
}
