//! The whole flow with real tools and a real guest under QEMU: verify.sh
//! --nat (create, ssh, health, DNS, stop, start, the work disk kept a file,
//! NAT to an upstream namespace, delete, nothing left), run in network
//! namespaces verify.sh makes. Root only; `make test-live` runs it.

use std::path::PathBuf;
use std::process::Command;

/// The guest: kernel, initrd, rootfs and work seed. From BANGER_TEST_GUEST
/// (a directory holding vmlinux, initrd.img, rootfs.ext4, work-seed.ext4),
/// else target/live-guest/ where the image fixtures cache them.
fn guest() -> Option<PathBuf> {
    let dir = std::env::var_os("BANGER_TEST_GUEST")
        .map(PathBuf::from)
        .unwrap_or_else(|| banger_testkit::workspace_root().join("target/live-guest"));
    ["vmlinux", "rootfs.ext4", "work-seed.ext4"]
        .iter()
        .all(|f| dir.join(f).is_file())
        .then_some(dir)
}

#[test]
#[ignore = "live: `make test-live` runs it until the guest image fixtures land in CI"]
fn verify_sh_with_nat_under_qemu_as_root() {
    let t = "verify_sh_with_nat_under_qemu_as_root";
    if !banger_testkit::require_root(t) {
        return;
    }
    for tool in [
        "qemu-system-x86_64",
        "vhost-device-vsock",
        "jq",
        "ip",
        "nft",
    ] {
        if !banger_testkit::require_tool(t, tool) {
            return;
        }
    }
    let Some(guest) = guest() else {
        banger_testkit::skip_or_fail(
            t,
            "no guest image: set BANGER_TEST_GUEST or build target/live-guest",
        );
        return;
    };
    let _serial = banger_testkit::serial();
    let bin = banger_testkit::bin("banger-vm")
        .parent()
        .unwrap()
        .to_path_buf();
    let home = banger_testkit::Home::new();
    let mut register = Command::new(bin.join("banger-image"));
    register.args(["register", "--name", "debian", "--rootfs"]);
    register.arg(guest.join("rootfs.ext4"));
    register
        .arg("--work-seed")
        .arg(guest.join("work-seed.ext4"));
    register.arg("--kernel").arg(guest.join("vmlinux"));
    if guest.join("initrd.img").is_file() {
        register.arg("--initrd").arg(guest.join("initrd.img"));
    }
    home.apply(&mut register);
    let out = register.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = Command::new(bin.join("banger-image"))
        .args(["default", "debian"])
        .envs(home.envs())
        .output();

    let mut verify = Command::new(banger_testkit::workspace_root().join("verify.sh"));
    verify
        .args(["--nat", "--vmm", "qemu"])
        .env("BANGER_BIN", &bin);
    home.apply(&mut verify);
    let out = verify.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    eprintln!("{err}");
    assert!(out.status.success(), "verify.sh failed:\n{err}");
    assert!(err.contains("verify: all good"), "{err}");
}
