//! banger-doctor against a test home and a runtime dir made here. Nothing
//! here changes the host: the checks only look.

use assert_cmd::Command;
use banger_testkit::Home;
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

struct Setup {
    home: Home,
    runtime: PathBuf,
    libexec: PathBuf,
}

impl Setup {
    /// A home, an empty runtime dir, and a libexec dir of stand-in sibling
    /// tools (empty until a test adds some).
    fn new() -> Setup {
        let home = Home::new();
        let runtime = home.path().join("runtime");
        let libexec = home.path().join("libexec");
        std::fs::create_dir_all(&runtime).unwrap();
        std::fs::create_dir_all(&libexec).unwrap();
        // Siblings found next to the test binaries would be the real tools;
        // stand-ins decide what they answer.
        script(&libexec.join("banger-image"), "exit 1");
        script(&libexec.join("banger-net"), &net_standin(false));
        Setup {
            home,
            runtime,
            libexec,
        }
    }

    /// A runtime bundle with every file it names.
    fn complete(self, bundle_json: &str) -> Setup {
        std::fs::write(self.runtime.join("bundle.json"), bundle_json).unwrap();
        for f in [
            "id_ed25519",
            "id_ed25519.pub",
            "banger-vsock-agent",
            "vmlinux",
            "initrd.img",
        ] {
            std::fs::write(self.runtime.join(f), "x").unwrap();
        }
        self
    }

    fn image(&self, name: &str) {
        let dir = self.home.path().join("data/banger/images").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("image.json"), "{}").unwrap();
    }

    fn cmd(&self) -> Command {
        self.env(Command::cargo_bin("banger-doctor").unwrap())
    }

    /// banger-doctor inside a network namespace.
    fn cmd_in(&self, ns: &banger_testkit::NetNs) -> Command {
        self.env(Command::from_std(
            ns.command(assert_cmd::cargo::cargo_bin("banger-doctor")),
        ))
    }

    fn env(&self, mut c: Command) -> Command {
        for (k, v) in self.home.envs() {
            c.env(k, v);
        }
        c.env("BANGER_RUNTIME", &self.runtime)
            .env("BANGER_LIBEXEC", &self.libexec)
            .env_remove("BANGER_FIRECRACKER")
            .env_remove("BANGER_QEMU")
            .env_remove("BANGER_VHOST_VSOCK")
            .arg("--json");
        c
    }
}

/// A stand-in banger-net: no leases, and the DNS server running or not,
/// its line made from banger_lib's type.
fn net_standin(running: bool) -> String {
    let dns = banger_lib::records::DnsLine {
        running,
        pid: running.then_some(42),
        listen: "172.30.0.1:53".into(),
        started: None,
    };
    format!(
        "case \"$1 $2\" in\n  \"dns status\") echo '{}' ;;\n  \"lease list\"|\"forward list\") ;;\n  \"gc --dry-run\") ;;\n  *) exit 2 ;;\nesac",
        serde_json::to_string(&dns).unwrap()
    )
}

/// What `banger-image show NAME` prints, from banger_lib's type.
fn image_line(name: &str) -> String {
    let l = banger_testkit::records::image_line(name, Path::new("/nonexistent/rootfs.ext4"), None);
    serde_json::to_string(&l).unwrap()
}

fn script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Run and parse: (exit code, checks by name in order).
fn run(mut c: Command) -> (i32, Vec<Value>) {
    let out = c.output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    (out.status.code().unwrap(), lines)
}

fn get<'a>(checks: &'a [Value], name: &str) -> &'a Value {
    checks
        .iter()
        .find(|c| c["check"] == name)
        .unwrap_or_else(|| panic!("no {name} check in {checks:?}"))
}

#[test]
fn every_line_has_the_record_fields() {
    let s = Setup::new();
    let (_, checks) = run(s.cmd());
    assert!(checks.len() >= 15, "{checks:?}");
    for c in &checks {
        for key in ["check", "ok", "required", "detail", "hint"] {
            assert!(c.get(key).is_some(), "{key} missing in {c}");
        }
        // A failed check always says how to fix it; a passed one does not.
        assert_eq!(c["ok"].as_bool().unwrap(), c["hint"].is_null(), "{c}");
    }
}

#[test]
fn missing_bundle_fails_with_its_hint() {
    let s = Setup::new();
    let (code, checks) = run(s.cmd());
    assert_eq!(code, 1);
    let b = get(&checks, "runtime bundle");
    assert_eq!(b["ok"], false);
    assert_eq!(b["required"], true);
    assert_eq!(b["hint"], "make runtime-local");
    assert!(b["detail"].as_str().unwrap().contains("bundle.json"), "{b}");
    // The host checks still ran, against the defaults.
    let k = get(&checks, "kernel");
    assert_eq!(k["ok"], false);
    assert!(k["detail"].as_str().unwrap().contains("vmlinux"), "{k}");
    get(&checks, "tun");
}

#[test]
fn incomplete_bundle_names_what_is_missing() {
    let s = Setup::new();
    std::fs::write(s.runtime.join("bundle.json"), "{}").unwrap();
    std::fs::write(s.runtime.join("id_ed25519"), "x").unwrap();
    let (code, checks) = run(s.cmd());
    assert_eq!(code, 1);
    let b = get(&checks, "runtime bundle");
    let detail = b["detail"].as_str().unwrap();
    assert!(detail.contains("id_ed25519.pub"), "{detail}");
    assert!(detail.contains("banger-vsock-agent"), "{detail}");
    assert_eq!(b["hint"], "make runtime-local");
}

#[test]
fn complete_bundle_and_image_pass() {
    let s = Setup::new().complete("{\"vmm\": \"qemu\"}");
    script(
        &s.libexec.join("banger-image"),
        &format!("echo '{}'", image_line("debian")),
    );
    let (_, checks) = run(s.cmd());
    for name in ["runtime bundle", "kernel", "initrd", "default image"] {
        assert_eq!(get(&checks, name)["ok"], true, "{name}: {checks:?}");
    }
    // vmm qemu: firecracker is not needed, QEMU is.
    assert_eq!(get(&checks, "firecracker")["required"], false);
    assert_eq!(get(&checks, "qemu-system-x86_64")["required"], true);
    // QEMU guests reach their agent over a virtio-serial port: no helper.
    assert!(!checks.iter().any(|c| c["check"] == "vhost-device-vsock"));
}

#[test]
fn missing_default_image_says_how_to_build_it() {
    let s = Setup::new().complete("{\"default_image\": \"trixie\"}");
    let (code, checks) = run(s.cmd());
    assert_eq!(code, 1);
    let i = get(&checks, "default image");
    assert_eq!(i["ok"], false);
    assert_eq!(i["required"], true);
    assert_eq!(i["hint"], "banger-image build --name trixie");
}

#[test]
fn default_image_follows_banger_image() {
    let s = Setup::new().complete("{}");
    // banger-image says the default is `mine`.
    script(
        &s.libexec.join("banger-image"),
        &format!(
            "case \"$1\" in\n  default) echo '{}' ;;\n  *) exit 2 ;;\nesac",
            image_line("mine")
        ),
    );
    let (_, checks) = run(s.cmd());
    let i = get(&checks, "default image");
    assert_eq!(i["ok"], true, "{i}");
    assert!(i["detail"].as_str().unwrap().starts_with("mine"), "{i}");

    // The tool says not found: the check fails, a stray image.json or not.
    script(
        &s.libexec.join("banger-image"),
        r#"echo '{"error":"no image named \"debian\"","kind":"not_found","exit":3}' >&2; exit 3"#,
    );
    s.image("debian");
    let (_, checks) = run(s.cmd());
    let i = get(&checks, "default image");
    assert_eq!(i["ok"], false, "{i}");
    assert_eq!(i["hint"], "banger-image build --name debian");
}

#[test]
fn path_without_nft_fails_the_nft_check() {
    let s = Setup::new();
    let bin = s.home.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let ip = banger_lib::hosttools::which("ip");
    if let Some(ip) = &ip {
        std::os::unix::fs::symlink(ip, bin.join("ip")).unwrap();
    }
    let mut c = s.cmd();
    c.env("PATH", &bin).env("BANGER_PATH_ONLY", "1");
    let (_, checks) = run(c);
    let nft = get(&checks, "nft");
    assert_eq!(nft["ok"], false);
    assert_eq!(nft["required"], true, "every lease needs the filter");
    assert_eq!(nft["hint"], "apt-get install nftables");
    let deb = get(&checks, "debootstrap");
    assert_eq!(deb["hint"], "apt-get install debootstrap");
    assert_eq!(get(&checks, "ip")["ok"], ip.is_some());
    assert_eq!(
        get(&checks, "mkfs.ext4")["hint"],
        "apt-get install e2fsprogs"
    );
}

#[test]
fn explicit_firecracker_requires_it_and_records_its_version() {
    let s = Setup::new().complete("{\"vmm\": \"firecracker\"}");
    let mut c = s.cmd();
    c.env("BANGER_FIRECRACKER", s.home.path().join("no-firecracker"));
    let (code, checks) = run(c);
    assert_eq!(code, 1);
    let fc = get(&checks, "firecracker");
    assert_eq!(fc["ok"], false);
    assert_eq!(fc["required"], true);
    assert!(
        fc["hint"].as_str().unwrap().contains("BANGER_FIRECRACKER"),
        "{fc}"
    );
    assert_eq!(get(&checks, "kvm")["required"], true);
    // QEMU is not the VMM then.
    assert_eq!(get(&checks, "qemu-system-x86_64")["required"], false);

    let fake = s.home.path().join("firecracker");
    script(
        &fake,
        "echo 'Firecracker v1.16.1'; echo; echo 'Supported snapshot data format versions: 8.0.0'",
    );
    let mut c = s.cmd();
    c.env("BANGER_FIRECRACKER", &fake);
    let (_, checks) = run(c);
    let fc = get(&checks, "firecracker");
    assert_eq!(fc["ok"], true, "{fc}");
    let detail = fc["detail"].as_str().unwrap();
    assert!(detail.starts_with("Firecracker v1.16.1 at "), "{detail}");

    // A binary that fails --version is reported, not trusted.
    script(&fake, "exit 1");
    let mut c = s.cmd();
    c.env("BANGER_FIRECRACKER", &fake);
    let (_, checks) = run(c);
    assert_eq!(get(&checks, "firecracker")["ok"], false);
}

#[test]
fn qemu_programs_are_the_ones_banger_qemu_would_run() {
    let s = Setup::new().complete("{\"vmm\": \"qemu\"}");
    let mut c = s.cmd();
    c.env("BANGER_QEMU", s.home.path().join("no-qemu"));
    let (_, checks) = run(c);
    let q = get(&checks, "qemu-system-x86_64");
    assert_eq!(
        (&q["ok"], &q["required"]),
        (&false.into(), &true.into()),
        "{q}"
    );
    let fake_qemu = s.home.path().join("qemu");
    script(&fake_qemu, "exit 0");
    let mut c = s.cmd();
    c.env("BANGER_QEMU", &fake_qemu);
    let (_, checks) = run(c);
    let q = get(&checks, "qemu-system-x86_64");
    assert_eq!(q["ok"], true, "{q}");
    assert_eq!(q["detail"], fake_qemu.display().to_string());
}

#[test]
fn kvm_says_what_auto_picks() {
    let s = Setup::new().complete("{}");
    let mut c = s.cmd();
    c.env("BANGER_FIRECRACKER", s.home.path().join("no-firecracker"));
    let (_, checks) = run(c);
    let k = get(&checks, "kvm");
    let detail = k["detail"].as_str().unwrap();
    assert!(detail.contains("vmm auto picks "), "{detail}");
    // No firecracker binary here, so auto can only pick QEMU.
    assert!(detail.contains("picks qemu"), "{detail}");
    assert_eq!(k["required"], false);
    assert_eq!(get(&checks, "qemu-system-x86_64")["required"], true);
}

#[test]
fn dns_state_comes_from_banger_net() {
    let s = Setup::new();
    let (_, checks) = run(s.cmd());
    let d = get(&checks, "dns");
    assert_eq!(d["ok"], false);
    assert_eq!(d["required"], false);
    assert!(d["hint"]
        .as_str()
        .unwrap()
        .starts_with("banger-net dns ensure"));
    assert_eq!(
        d["detail"],
        "the .vm DNS server is not running (it would listen on 172.30.0.1:53)"
    );
    assert_eq!(get(&checks, "network state")["ok"], true);
    script(&s.libexec.join("banger-net"), &net_standin(true));
    let (_, checks) = run(s.cmd());
    let d = get(&checks, "dns");
    assert_eq!(d["ok"], true);
    assert_eq!(
        d["detail"],
        "the .vm DNS server runs (pid 42) on 172.30.0.1:53"
    );
}

#[test]
fn leftovers_of_killed_commands_come_from_banger_vm_gc() {
    let s = Setup::new().complete("{}");
    std::os::unix::fs::symlink(
        banger_testkit::bin("banger-vm"),
        s.libexec.join("banger-vm"),
    )
    .unwrap();
    let (_, checks) = run(s.cmd());
    let l = get(&checks, "leftovers");
    assert_eq!(l["ok"], true, "{l}");
    assert_eq!(l["required"], false);
    // A VM dir with a disk and no record: what a killed create left.
    let dir = s.home.path().join("state/banger/vms/olddisk");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("rootfs.ext4"), b"x").unwrap();
    let (_, checks) = run(s.cmd());
    let l = get(&checks, "leftovers");
    assert_eq!(l["ok"], false, "{l}");
    assert_eq!(l["detail"], "1 thing left by killed commands (olddisk)");
    assert!(l["hint"].as_str().unwrap().contains("banger gc"), "{l}");
    // Doctor changes nothing.
    assert!(dir.join("rootfs.ext4").exists());
    // banger-net's leftovers count too: a temp file a writer killed
    // mid-store left beside net.json (the real banger-net, as root, in a
    // namespace of its own so no host TAP is counted).
    if banger_lib::hosttools::is_root() {
        let ns = banger_testkit::NetNs::new();
        let real = banger_testkit::bin("banger-net");
        std::fs::remove_file(s.libexec.join("banger-net")).unwrap();
        std::os::unix::fs::symlink(&real, s.libexec.join("banger-net")).unwrap();
        let tmp = s.home.path().join("state/banger/.net.json.tmp.4194000");
        std::fs::write(&tmp, "{").unwrap();
        let (_, checks) = run(s.cmd_in(&ns));
        let l = get(&checks, "leftovers");
        assert_eq!(
            l["detail"],
            "2 things left by killed commands (olddisk; 1 of no VM: TAPs, nft elements, files)",
            "{l}"
        );
        assert!(tmp.exists(), "doctor removed it");
    }
}

#[test]
fn broken_state_and_config_fail_the_report() {
    let s = Setup::new().complete("{}");
    let real = banger_testkit::bin("banger-net");
    std::fs::remove_file(s.libexec.join("banger-net")).unwrap();
    std::os::unix::fs::symlink(&real, s.libexec.join("banger-net")).unwrap();
    let net_json = s.home.path().join("state/banger/net.json");
    std::fs::create_dir_all(net_json.parent().unwrap()).unwrap();
    for (text, says) in [
        ("{\"schema\": 1, \"leases\": [", "corrupt"),
        ("{\"schema\": 99}", "schema 99"),
    ] {
        std::fs::write(&net_json, text).unwrap();
        let (code, checks) = run(s.cmd());
        assert_eq!(code, 1, "{text}");
        let c = get(&checks, "network state");
        assert_eq!(c["ok"], false, "{text}");
        assert_eq!(c["required"], true);
        assert!(c["detail"].as_str().unwrap().contains(says), "{c}");
    }
    std::fs::remove_file(&net_json).unwrap();
    let cfg = s.home.path().join("config/banger/config.json");
    std::fs::create_dir_all(cfg.parent().unwrap()).unwrap();
    for (text, says) in [
        ("{\"vcpus\": ", "config.json"),
        ("{\"schema\": 99}", "schema 99"),
    ] {
        std::fs::write(&cfg, text).unwrap();
        let (code, checks) = run(s.cmd());
        assert_eq!(code, 1, "{text}");
        let c = get(&checks, "runtime bundle");
        assert_eq!(c["ok"], false, "{text}");
        assert!(c["detail"].as_str().unwrap().contains(says), "{c}");
    }
}

#[test]
fn reflink_probe_leaves_nothing_behind() {
    let s = Setup::new();
    let before: Vec<_> = std::fs::read_dir(s.home.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let (_, checks) = run(s.cmd());
    let r = get(&checks, "reflink");
    assert_eq!(r["required"], false);
    // It says which disks each VMM's VMs get here.
    let detail = r["detail"].as_str().unwrap();
    assert!(detail.contains("QEMU VMs: qcow2 overlays"), "{r}");
    assert!(detail.contains("Firecracker VMs: "), "{r}");
    let after: Vec<_> = std::fs::read_dir(s.home.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(before, after);
    // The data dir is probed where it would be made, not created.
    assert!(!s.home.path().join("data").exists());
}

#[test]
fn bad_flag_is_usage() {
    Command::cargo_bin("banger-doctor")
        .unwrap()
        .arg("--nope")
        .assert()
        .code(2);
}

#[test]
fn a_bridge_without_banger_tables_fails_the_guest_filter_as_root() {
    let t = "a_bridge_without_banger_tables_fails_the_guest_filter_as_root";
    if !banger_testkit::require_root(t)
        || !banger_testkit::require_tool(t, "ip")
        || !banger_testkit::require_tool(t, "nft")
    {
        return;
    }
    let s = Setup::new();
    let ns = banger_testkit::NetNs::new();
    let filter = || {
        let (_, checks) = run(s.cmd_in(&ns));
        get(&checks, "guest filter").clone()
    };
    assert_eq!(filter()["ok"], true, "no bridge yet");
    // A bridge whose tables a firewall reload flushed away.
    ns.sh("ip link add banger0 type bridge");
    let f = filter();
    assert_eq!(f["ok"], false, "{f}");
    assert_eq!(f["required"], true);
    assert_eq!(f["hint"], "banger-net setup");
    ns.sh("nft add table bridge banger && nft add table inet banger");
    assert_eq!(filter()["ok"], true);
}

#[test]
fn vmm_user_and_jailer_are_reported() {
    let s = Setup::new().complete("{\"vmm_user\": \"banger-no-such-user\"}");
    let mut c = s.cmd();
    c.env("BANGER_JAILER", s.home.path().join("no-jailer"));
    let (_, checks) = run(c);
    let user = get(&checks, "vmm_user");
    assert_eq!(user["ok"], false, "{user}");
    assert_eq!(user["required"], banger_lib::hosttools::is_root());
    let hint = user["hint"].as_str().unwrap();
    assert!(
        hint.contains("banger-net setup") && hint.contains("useradd"),
        "{hint}"
    );
    let jailer = get(&checks, "jailer");
    assert_eq!(
        (&jailer["ok"], &jailer["required"]),
        (&false.into(), &false.into())
    );
    assert!(
        jailer["detail"].as_str().unwrap().contains("as root"),
        "{jailer}"
    );

    let s = Setup::new().complete("{\"vmm_user\": \"nobody\"}");
    let fake = s.home.path().join("jailer");
    script(&fake, "exit 0");
    let mut c = s.cmd();
    c.env("BANGER_JAILER", &fake);
    let (_, checks) = run(c);
    assert_eq!(get(&checks, "vmm_user")["ok"], true);
    let jailer = get(&checks, "jailer");
    assert_eq!(jailer["ok"], true, "{jailer}");
    assert!(
        jailer["detail"].as_str().unwrap().contains("jailed"),
        "{jailer}"
    );
}
