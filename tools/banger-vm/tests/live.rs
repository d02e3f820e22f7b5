//! The whole flow with real tools and a real guest under QEMU: verify.sh
//! --nat (create, ssh, health, DNS, stop, start, the work disk kept a file,
//! NAT to an upstream namespace, delete, nothing left), run in network
//! namespaces verify.sh makes. Root only; `make test-live` runs it.

use std::path::PathBuf;
use std::process::Command;

/// The guest kernel and initramfs, built once by rootfs/make-kernel.sh
/// into target/guest/kernel/ (it skips the work when that is current).
fn kernel() -> PathBuf {
    let out = banger_testkit::image::guest_dir().join("kernel");
    let script = banger_testkit::workspace_root().join("rootfs/make-kernel.sh");
    let status = Command::new(script).arg(&out).status().unwrap();
    assert!(status.success(), "rootfs/make-kernel.sh failed");
    out
}

#[test]
#[ignore = "live: `make test-live` runs it; in the default run once banger-qemu and banger-ssh land"]
fn verify_sh_with_nat_under_qemu_as_root() {
    let t = "verify_sh_with_nat_under_qemu_as_root";
    if !banger_testkit::require_root(t) {
        return;
    }
    for tool in [
        "qemu-system-x86_64",
        "vhost-device-vsock",
        "debootstrap",
        "jq",
        "ip",
        "nft",
    ] {
        if !banger_testkit::require_tool(t, tool) {
            return;
        }
    }
    let _serial = banger_testkit::serial();
    let image = banger_testkit::image::debian();
    let kernel = kernel();
    let bin = banger_testkit::bin("banger-vm")
        .parent()
        .unwrap()
        .to_path_buf();
    let home = banger_testkit::Home::new();
    image.register(&home);
    // A runtime bundle of our own: this kernel, the key the image trusts.
    let runtime = home.path().join("runtime");
    std::fs::create_dir_all(&runtime).unwrap();
    let mut bundle: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(banger_testkit::workspace_root().join("runtime/bundle.json"))
            .unwrap(),
    )
    .unwrap();
    bundle["kernel"] = kernel.join("vmlinux").display().to_string().into();
    bundle["initrd"] = kernel.join("initrd.img").display().to_string().into();
    bundle["ssh_key"] = image.ssh_key.display().to_string().into();
    bundle["vmm"] = "qemu".into();
    bundle["memory_mib"] = 512.into();
    bundle["vcpus"] = 1.into();
    bundle["disk_size"] = "1G".into();
    std::fs::write(runtime.join("bundle.json"), bundle.to_string()).unwrap();

    let mut verify = Command::new(banger_testkit::workspace_root().join("verify.sh"));
    verify
        .args(["--nat", "--vmm", "qemu"])
        .env("BANGER_BIN", &bin)
        .env("BANGER_RUNTIME", &runtime);
    home.apply(&mut verify);
    let out = verify.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    eprintln!("{err}");
    assert!(out.status.success(), "verify.sh failed:\n{err}");
    assert!(err.contains("verify: all good"), "{err}");
}
