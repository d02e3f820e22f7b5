//! examples/plumbing-vm.sh reproduces `vm create` / `vm delete` from the
//! plumbing alone (banger-image, banger-net, banger-fc, banger-health). It
//! runs here with the fake firecracker, whose vsock answers like a guest
//! agent, inside a network namespace the test makes.

use banger_testkit::{fakefc::FakeFc, Home, NetNs};
use std::path::Path;
use std::process::{Command, Output};

fn script() -> std::path::PathBuf {
    banger_testkit::workspace_root().join("examples/plumbing-vm.sh")
}

struct Env {
    ns: NetNs,
    home: Home,
    fc: FakeFc,
    path: String,
}

impl Env {
    fn run(&self, args: &[&str]) -> Output {
        let mut c = self.ns.command("sh");
        c.arg(script()).args(args);
        self.home.apply(&mut c);
        self.fc.apply(&mut c);
        c.env("PATH", &self.path)
            .env("VMM", "fc")
            .env("TIMEOUT", "20");
        c.output().unwrap()
    }

    fn tool(&self, tool: &str, args: &[&str]) -> Vec<serde_json::Value> {
        let mut c = self.ns.command(banger_testkit::bin(tool));
        c.args(args);
        self.home.apply(&mut c);
        let out = c.output().unwrap();
        assert!(out.status.success(), "{tool} {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn mkfs(path: &Path) {
    let st = Command::new("mkfs.ext4")
        .args(["-q", "-F"])
        .arg(path)
        .arg("8M")
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn plumbing_script_creates_and_deletes_a_vm_as_root() {
    let test = "plumbing_script_creates_and_deletes_a_vm_as_root";
    if !banger_testkit::require_root(test)
        || !banger_testkit::require_tool(test, "jq")
        || !banger_testkit::require_tool(test, "mkfs.ext4")
    {
        return;
    }
    // Every tool the script calls, built, first on PATH.
    for t in ["banger-image", "banger-net", "banger-fc", "banger-health"] {
        banger_testkit::bin(t);
    }
    let env = Env {
        ns: NetNs::new(),
        home: Home::new(),
        fc: FakeFc::new(),
        path: format!(
            "{}:{}",
            banger_testkit::target_dir().display(),
            std::env::var("PATH").unwrap()
        ),
    };
    let files = env.home.path().join("img");
    std::fs::create_dir_all(&files).unwrap();
    mkfs(&files.join("rootfs.ext4"));
    mkfs(&files.join("seed.ext4"));
    std::fs::write(files.join("vmlinux"), b"\x7fELF fake kernel").unwrap();
    std::fs::write(files.join("initrd.img"), b"fake initrd").unwrap();
    env.tool(
        "banger-image",
        &[
            "register",
            "--name",
            "tiny",
            "--rootfs",
            files.join("rootfs.ext4").to_str().unwrap(),
            "--work-seed",
            files.join("seed.ext4").to_str().unwrap(),
            "--kernel",
            files.join("vmlinux").to_str().unwrap(),
            "--initrd",
            files.join("initrd.img").to_str().unwrap(),
        ],
    );

    // A bad image: the script fails before making anything.
    let out = env.run(&["up", "box", "nosuch"]);
    assert!(!out.status.success());
    assert!(env.tool("banger-net", &["lease", "list"]).is_empty());

    let out = env.run(&["up", "box", "tiny"]);
    assert!(out.status.success(), "{out:?}");
    let vm: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(vm["name"], "box");
    assert_eq!(vm["vmm"], "firecracker");
    let leases = env.tool("banger-net", &["lease", "list"]);
    assert_eq!(leases.len(), 1);
    assert_eq!(leases[0]["ip"], vm["ip"]);
    let pid = vm["pid"].as_u64().unwrap() as u32;
    assert!(banger_lib::proc::state(pid).is_some(), "the VMM runs");
    // The spec the script built was accepted by the (schema-checking) fake,
    // with the lease's TAP and a root drive.
    env.fc.assert_valid();
    let reqs = env.fc.request_lines().join("\n");
    assert!(reqs.contains("/network-interfaces/eth0"), "{reqs}");
    assert!(reqs.contains("/drives/rootfs"), "{reqs}");
    assert!(reqs.contains("/drives/work"), "{reqs}");
    let health = env.tool(
        "banger-health",
        &["check", "--uds", vm["vsock_uds"].as_str().unwrap()],
    );
    assert_eq!(health[0]["ok"], true);

    let out = env.run(&["down", "box"]);
    assert!(out.status.success(), "{out:?}");
    assert!(env.tool("banger-net", &["lease", "list"]).is_empty());
    assert!(
        banger_testkit::poll(std::time::Duration::from_secs(10), || {
            banger_lib::proc::state(pid).is_none().then_some(())
        })
        .is_some(),
        "the VMM is gone"
    );
    let dir = env.home.path().join("state/banger/plumbing/box");
    assert!(!dir.exists(), "{} left behind", dir.display());
}
