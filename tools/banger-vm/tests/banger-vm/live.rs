//! The whole flow with real tools and a real guest under QEMU: verify.sh
//! --nat (create, ssh, health, DNS, stop, start, the work disk kept a file,
//! suspend and resume with a process and a file in /tmp, NAT to an
//! upstream namespace, delete, nothing left), run in network
//! namespaces verify.sh makes; on the way, banger-health check and
//! banger-ssh alone: the agent answers with the ip= hostname, `uname -r` is
//! the bundle kernel's, failing remote exit codes come back unchanged; the
//! disks are qcow2 overlays on the image's files (unchanged after delete),
//! the guest grew the work disk's filesystem from the 1G seed to the 2G
//! disk, and `image rm` is refused while the VM exists; a server in the
//! guest answers through `vm forward NAME 18000:8000` on the namespace's
//! loopback, a taken host port is exit 5, nothing is left.
//! verify.sh runs in a world of its own: the test's DNS daemon (a stand-in
//! process) and net.json are untouched afterwards.
//! Then BANGER_SOAK_BOOTED (default 2) booted create/ssh/delete cycles,
//! each followed by the leak check.
//! Root only (skipped otherwise, required under CI=true); five guest boots
//! plus restarts, ~3 min under TCG. `make test-live` runs it alone.

use std::process::Command;

#[test]
fn verify_sh_with_nat_under_qemu_as_root() {
    let t = "verify_sh_with_nat_under_qemu_as_root";
    if !banger_testkit::require_root(t) {
        return;
    }
    for tool in ["qemu-system-x86_64", "debootstrap", "jq", "ip", "nft"] {
        if !banger_testkit::require_tool(t, tool) {
            return;
        }
    }
    let _serial = banger_testkit::serial();
    let image = banger_testkit::image::debian();
    // banger's own kernel with no initramfs, as `make runtime-local`
    // installs it (the packaged kernel and initramfs boot this image in
    // banger-image's boot test).
    let kernel = banger_testkit::guest::built_kernel();
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
    bundle["kernel"] = kernel.vmlinux.display().to_string().into();
    // Not in this runtime dir: the bundle then boots no initramfs.
    bundle["initrd"] = "initrd.img".into();
    bundle["agent_path"] = image.agent.display().to_string().into();
    bundle["ssh_key"] = image.ssh_key.display().to_string().into();
    bundle["vmm"] = "qemu".into();
    bundle["memory_mib"] = 512.into();
    bundle["vcpus"] = 1.into();
    // Twice the image's 1G work seed: verify.sh checks that /root's
    // filesystem fills the disk, which only the guest's online grow makes so.
    bundle["disk_size"] = "2G".into();
    std::fs::write(runtime.join("bundle.json"), bundle.to_string()).unwrap();

    // The guest must run this kernel (build-kernel.sh records its release).
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(kernel.dir.join("kernel.json")).unwrap())
            .unwrap();
    let release = meta["kernel_release"].as_str().unwrap().to_string();

    // The caller's world as verify.sh must leave it: a live DNS daemon
    // (a stand-in process named in its pid file) and a net.json with a
    // pool entry. verify.sh works in a world of its own.
    let mut daemon = Command::new("sleep").arg("3600").spawn().unwrap();
    let pid = daemon.id();
    let run = home.path().join("run/banger");
    let state = home.path().join("state/banger");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::create_dir_all(&state).unwrap();
    let pid_file = serde_json::json!({
        "pid": pid,
        "start_time": banger_lib::proc::start_time(pid).unwrap(),
        "listen": "172.30.0.1:53",
        "forward": true,
    });
    std::fs::write(run.join("net-dns.json"), pid_file.to_string()).unwrap();
    let net_json = r#"{"schema":1,"forwarding_was_off":false,"leases":[],"pool":["tap-pool-0"],"uplink":null}"#;
    std::fs::write(state.join("net.json"), net_json).unwrap();

    // Booted create/ssh/delete cycles after the flow: 2 here, `make soak`
    // asks for more.
    let soak = std::env::var("BANGER_SOAK_BOOTED").unwrap_or_else(|_| "2".into());
    let mut verify = Command::new(banger_testkit::workspace_root().join("verify.sh"));
    verify
        .args(["--nat", "--vmm", "qemu", "--soak", &soak])
        .env("VERIFY_KERNEL_RELEASE", &release)
        .env("BANGER_BIN", &bin)
        .env("BANGER_RUNTIME", &runtime);
    home.apply(&mut verify);
    let out = verify.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    eprintln!("{err}");
    let daemon_alive = daemon.try_wait().unwrap().is_none();
    let _ = daemon.kill();
    let _ = daemon.wait();
    assert!(out.status.success(), "verify.sh failed:\n{err}");
    assert!(daemon_alive, "verify.sh stopped the caller's DNS daemon");
    assert_eq!(
        std::fs::read_to_string(state.join("net.json")).unwrap(),
        net_json,
        "verify.sh changed the caller's net.json"
    );
    assert!(err.contains("verify: private world"), "{err}");
    assert!(err.contains("verify: all good"), "{err}");
    assert!(err.contains(&format!("guest kernel {release}")), "{err}");
    // The port forward steps ran (in the namespaces, not skipped).
    assert!(
        err.contains("verify: vm forward: a server on the guest's port 8000 answers"),
        "{err}"
    );
    assert!(
        err.contains("verify: vm forward: a host port a socket holds is exit 5"),
        "{err}"
    );
}
