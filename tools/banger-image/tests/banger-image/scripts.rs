//! The rootfs scripts on their own: the guest's ip= network setup (in a
//! network namespace, with its own UTS namespace and /etc), and the Void
//! path failing early.

use banger_testkit::{require_root, require_tool, workspace_root, NetNs};
use std::process::Command;

#[test]
fn void_fails_early_when_the_mirror_is_unreachable() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("void");
    let o = Command::new("bash")
        .arg(workspace_root().join("rootfs/make-rootfs-void.sh"))
        .arg("--out")
        .arg(&out)
        .args(["--pubkey", "/nonexistent.pub", "--agent", "/nonexistent"])
        // A closed local port: unreachable without leaving the machine.
        .env("VOID_MIRROR", "http://127.0.0.1:9")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("mirror unreachable"), "{err}");
    assert!(!out.exists(), "nothing may be made before the mirror check");
}

#[test]
fn void_verify_refuses_a_missing_image() {
    let o = Command::new("bash")
        .arg(workspace_root().join("rootfs/make-rootfs-void.sh"))
        .args(["--verify", "/nonexistent/rootfs.ext4"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("make rootfs-void"));
}

fn ipconfig(ns: &NetNs, cmdline: &str) -> (tempfile::TempDir, String) {
    let etc = tempfile::tempdir().unwrap();
    std::fs::write(
        etc.path().join("hosts"),
        "127.0.0.1 localhost\n127.0.1.1 old\n",
    )
    .unwrap();
    let cl = etc.path().join("cmdline");
    std::fs::write(&cl, cmdline).unwrap();
    let o = ns
        .command("unshare")
        .args(["-u", "sh"])
        .arg(workspace_root().join("rootfs/banger-ipconfig"))
        .env("BANGER_CMDLINE", &cl)
        .env("BANGER_ETC", etc.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    (etc, String::from_utf8_lossy(&o.stdout).into_owned())
}

#[test]
fn ipconfig_applies_the_kernel_ip_argument_as_root() {
    if !require_root("ipconfig_applies_the_kernel_ip_argument_as_root")
        || !require_tool("ipconfig_applies_the_kernel_ip_argument_as_root", "unshare")
    {
        return;
    }
    let ns = NetNs::new();
    ns.sh("ip link add eth0 type veth peer name eth0p && ip link set eth0p up");
    let (etc, out) = ipconfig(
        &ns,
        "console=ttyS0 reboot=k ip=172.30.0.5::172.30.0.1:255.255.255.0:box:eth0:off:172.30.0.1\n",
    );
    assert!(out.contains("eth0 172.30.0.5/24"), "{out}");
    assert!(ns
        .sh("ip -4 -o addr show dev eth0")
        .contains("172.30.0.5/24"));
    assert!(ns
        .sh("ip route show default")
        .contains("via 172.30.0.1 dev eth0"));
    let read = |f: &str| std::fs::read_to_string(etc.path().join(f)).unwrap();
    assert_eq!(read("hostname"), "box\n");
    assert_eq!(read("hosts"), "127.0.0.1 localhost\n127.0.1.1 box\n");
    assert_eq!(read("resolv.conf"), "nameserver 172.30.0.1\n");

    // A prefix length, no DNS, and a second run: idempotent.
    let (etc2, _) = ipconfig(&ns, "ip=10.9.0.7::10.9.0.1:16:web:eth0:off");
    assert!(ns.sh("ip -4 -o addr show dev eth0").contains("10.9.0.7/16"));
    assert!(!etc2.path().join("resolv.conf").exists());
    // No ip= at all: nothing to do, not an error.
    let (_, out) = ipconfig(&ns, "console=ttyS0");
    assert!(out.contains("no ip="), "{out}");
}
