//! The real build, as root: the cached Debian test image (built once into
//! target/guest/ by banger_testkit::image::debian) holds what the guest
//! contract needs, checked in the ext4 files with debugfs; a failing build
//! leaves nothing behind.

use crate::common::{image as image_cmd, lines};
use banger_testkit::{image, require_root, require_tool, Home};
use predicates::str::contains;
use std::path::Path;
use std::process::Command;

fn debugfs(fs: &Path, request: &str) -> String {
    let o = Command::new(banger_lib::hosttools::which("debugfs").unwrap())
        .args(["-R", request])
        .arg(fs)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn can_build(test: &str) -> bool {
    require_root(test) && require_tool(test, "debootstrap") && require_tool(test, "debugfs")
}

#[test]
fn live_root_built_image_meets_the_guest_contract() {
    let test = "live_root_built_image_meets_the_guest_contract";
    if !can_build(test) {
        return;
    }
    let img = image::debian();
    let pubkey = std::fs::read_to_string(img.ssh_key.with_extension("pub")).unwrap();
    let r = &img.rootfs;

    let sshd = debugfs(r, "cat /etc/ssh/sshd_config.d/banger.conf");
    assert!(sshd.contains("PermitRootLogin prohibit-password"), "{sshd}");
    assert!(sshd.contains("PasswordAuthentication no"), "{sshd}");
    assert_eq!(debugfs(r, "cat /etc/ssh/authorized_keys/root"), pubkey);
    // Host keys are made per guest on first boot, never baked in.
    assert!(!debugfs(r, "ls /etc/ssh").contains("ssh_host_"));
    let passwd = debugfs(r, "cat /etc/passwd");
    assert!(
        passwd
            .lines()
            .any(|l| l.starts_with("root:") && l.ends_with(":/bin/bash")),
        "{passwd}"
    );
    let fstab = debugfs(r, "cat /etc/fstab");
    assert!(fstab.contains("/dev/vdb  /root  ext4"), "{fstab}");
    let wants = debugfs(r, "ls /etc/systemd/system/multi-user.target.wants");
    for unit in [
        "banger-ipconfig.service",
        "banger-vsock-agent.service",
        "banger-fix-root.service",
        "banger-ssh-hostkey.service",
        "ssh.service",
    ] {
        assert!(wants.contains(unit), "{unit} not enabled: {wants}");
    }
    assert!(debugfs(r, "ls /etc/systemd/system/getty.target.wants").contains("serial-getty@ttyS0"));
    assert!(
        debugfs(r, "cat /etc/systemd/system/banger-vsock-agent.service")
            .contains("banger-vsock-agent")
    );
    let agent_len = std::fs::metadata(&img.agent).unwrap().len();
    assert!(
        debugfs(r, "stat /usr/local/bin/banger-vsock-agent")
            .contains(&format!("Size: {agent_len}")),
        "the agent in the image is not the one built"
    );
    assert!(debugfs(r, "cat /usr/local/sbin/banger-ipconfig").contains("ip=CLIENT"));
    for tool in [
        "/usr/bin/tmux",
        "/usr/bin/curl",
        "/usr/bin/less",
        "/usr/sbin/sshd",
        "/usr/sbin/ip",
    ] {
        assert!(
            debugfs(r, &format!("stat {tool}")).contains("Inode:"),
            "{tool} missing"
        );
    }
    // The build's scratch files are gone.
    assert!(!debugfs(r, "ls /tmp").contains("banger"));

    // The work seed is /root: the key, and mode 0700.
    let w = &img.work_seed;
    assert_eq!(debugfs(w, "cat /.ssh/authorized_keys"), pubkey);
    assert!(
        debugfs(w, "stat /").contains("Mode:  0700"),
        "{}",
        debugfs(w, "stat /")
    );

    // The record, read through the tool.
    let out = Command::new(banger_testkit::bin("banger-image"))
        .args(["verify", "debian"])
        .env("XDG_DATA_HOME", &img.data_home)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(banger_testkit::bin("banger-image"))
        .args(["show", "debian"])
        .env("XDG_DATA_HOME", &img.data_home)
        .output()
        .unwrap();
    let rec = &lines(&out.stdout)[0];
    assert_eq!(rec["managed"], true);
    assert_eq!(rec["from"], "debian:bookworm");
    assert_eq!(rec["profile"], "default");
    assert_eq!(rec["rootfs"], img.rootfs.to_str().unwrap());
}

/// A build that fails at any stage removes the half-made image.
#[test]
fn live_root_failed_build_leaves_nothing() {
    let test = "live_root_failed_build_leaves_nothing";
    if !can_build(test) {
        return;
    }
    let _serial = banger_testkit::serial();
    let home = Home::new();
    let key = home.path().join("k.pub");
    std::fs::write(&key, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI test\n").unwrap();
    image_cmd(&home)
        .args([
            "build",
            "--name",
            "broken",
            "--packages",
            "banger-no-such-package",
        ])
        .arg("--pubkey")
        .arg(&key)
        .arg("--agent")
        .arg(&key)
        .timeout(std::time::Duration::from_secs(900))
        .assert()
        .code(1)
        .stderr(contains("failed at stage debootstrap"))
        .stderr(contains("banger-no-such-package"));
    let images = home.path().join("data/banger/images");
    let left: Vec<_> = std::fs::read_dir(&images)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name())
                .filter(|n| n != ".locks")
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "left behind: {left:?}");
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(
        !mounts.contains(home.path().to_str().unwrap()),
        "mounts left behind"
    );
    image_cmd(&home).args(["show", "broken"]).assert().code(3);
}

/// The dev profile names what it cannot fetch, before debootstrap.
#[test]
fn live_root_dev_profile_fails_early_without_its_registries() {
    let test = "live_root_dev_profile_fails_early_without_its_registries";
    if !can_build(test) {
        return;
    }
    let home = Home::new();
    let key = home.path().join("k.pub");
    std::fs::write(&key, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI test\n").unwrap();
    image_cmd(&home)
        .args(["build", "--name", "dev", "--profile", "dev"])
        .arg("--pubkey")
        .arg(&key)
        .arg("--agent")
        .arg(&key)
        .env("BANGER_NPM_REGISTRY", "http://127.0.0.1:9")
        .assert()
        .code(4)
        .stderr(contains("failed at stage check"))
        .stderr(contains("@jdxcode/mise"))
        .stderr(contains("opencode-ai"));
    assert!(!home.path().join("data/banger/images/dev").exists());
    assert!(!home.path().join("data/banger/images/.build-dev").exists());
}
