//! banger-qemu without a guest: spec validation, missing programs, verbs
//! on VMs that do not exist, and a QEMU that fails to start leaving
//! nothing behind.

use assert_cmd::Command;
use banger_testkit::Home;
use predicates::prelude::PredicateBooleanExt;
use predicates::str::contains;
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

struct T {
    home: Home,
}

impl T {
    fn new() -> T {
        let home = Home::new();
        std::fs::write(home.path().join("vmlinux"), b"kernel").unwrap();
        T { home }
    }

    fn spec(&self, id: &str) -> Value {
        json!({"id": id, "kernel": self.home.path().join("vmlinux"),
               "cmdline": "console=ttyS0", "vcpus": 1, "mem_mib": 128})
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::cargo_bin("banger-qemu").unwrap();
        for (k, v) in self.home.envs() {
            c.env(k, v);
        }
        c.env_remove("BANGER_QEMU");
        c.args(args);
        c
    }

    fn start(&self, spec: &Value) -> assert_cmd::assert::Assert {
        self.cmd(&["start"]).write_stdin(spec.to_string()).assert()
    }

    /// A stand-in qemu-system-x86_64: answers --version, fails to start.
    fn failing_qemu(&self) -> PathBuf {
        let p = self.home.path().join("qemu-fails");
        std::fs::write(
            &p,
            "#!/bin/sh\n[ \"$1\" = --version ] && { echo 'QEMU emulator version 0.0'; exit 0; }\n\
             echo 'qemu: could not open kernel: boom' >&2\nexit 1\n",
        )
        .unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    /// Everything under the home besides the files the test made.
    fn leftovers(&self) -> Vec<PathBuf> {
        walk(self.home.path())
            .into_iter()
            .filter(|p| {
                !p.ends_with("vmlinux") && !p.ends_with("qemu-fails") && p.is_file()
                    || p.is_dir() && std::fs::read_dir(p).unwrap().next().is_none()
            })
            // The shared runtime root, like /run/banger, may stay.
            .filter(|p| p != self.home.path() && !p.ends_with("run/banger"))
            .collect()
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Pids of live processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| banger_lib::proc::state(*pid).is_some_and(|s| s != 'Z'))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(needle))
                .unwrap_or(false)
        })
        .collect()
}

#[test]
fn bad_specs_are_usage_errors() {
    let t = T::new();
    t.start(&json!({"id": "x"}))
        .code(2)
        .stderr(contains("missing field"));
    let mut s = t.spec("box");
    s["colour"] = json!("red");
    t.start(&s).code(2).stderr(contains("colour"));
    let mut s = t.spec("box");
    s["vcpus"] = json!(0);
    t.start(&s).code(2).stderr(contains("vcpus"));
    t.start(&t.spec("../etc")).code(2);
    t.cmd(&["start"]).write_stdin("not json").assert().code(2);
    assert!(t.leftovers().is_empty(), "{:?}", t.leftovers());
}

#[test]
fn missing_files_and_tap_are_not_found() {
    let t = T::new();
    let mut s = t.spec("box");
    s["kernel"] = json!(t.home.path().join("nope"));
    t.start(&s).code(3).stderr(contains("kernel"));
    let mut s = t.spec("box");
    s["drives"] = json!([{"id": "rootfs", "path": t.home.path().join("nope.ext4"), "root": true}]);
    t.start(&s).code(3).stderr(contains("nope.ext4"));
    let mut s = t.spec("box");
    s["tap"] = json!("bq-nosuch0");
    s["mac"] = json!("06:00:00:00:00:01");
    t.start(&s)
        .code(3)
        .stderr(contains("bq-nosuch0"))
        .stderr(contains("banger-net tap acquire"));
    assert!(t.leftovers().is_empty(), "{:?}", t.leftovers());
}

#[test]
fn missing_programs_are_prerequisites_with_install_hints() {
    let t = T::new();
    let s = t.spec("box");
    t.cmd(&["start"])
        .env("BANGER_QEMU", "/nonexistent/qemu-system-x86_64")
        .write_stdin(s.to_string())
        .assert()
        .code(4)
        .stderr(contains("apt-get install qemu-system-x86"));
    assert!(t.leftovers().is_empty(), "{:?}", t.leftovers());
}

#[test]
fn failed_qemu_start_leaves_nothing_and_shows_its_output() {
    let t = T::new();
    let s = t.spec("box");
    t.cmd(&["start"])
        .env("BANGER_QEMU", t.failing_qemu())
        .write_stdin(s.to_string())
        .assert()
        .code(1)
        .stderr(contains("qemu failed to start"))
        .stderr(contains("could not open kernel: boom"));
    assert!(t.leftovers().is_empty(), "{:?}", t.leftovers());
}

#[test]
fn verbs_on_a_missing_vm() {
    let t = T::new();
    t.cmd(&["status", "ghost"])
        .assert()
        .code(3)
        .stderr(contains("ghost"));
    t.cmd(&["pause", "ghost"]).assert().code(3);
    t.cmd(&["resume", "ghost"]).assert().code(3);
    let out = t
        .cmd(&["stop", "ghost"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        v,
        json!({"id": "ghost", "stopped": true, "how": "not_running", "clean": false,
               "synced": false})
    );
    t.cmd(&["stop", "Bad/Name"]).assert().code(2);
    assert!(t.leftovers().is_empty(), "{:?}", t.leftovers());
}

/// `snapshot create` of a VM that does not run is exit 3, a --disk that
/// is not ID=/ABSOLUTE exit 2; neither makes the snapshot's dir. (A live
/// snapshot is verify.sh's, under banger-vm.)
#[test]
fn snapshot_create_checks_before_it_makes_anything() {
    let t = T::new();
    let dir = t.home.path().join("snap");
    let d = dir.display().to_string();
    t.cmd(&["snapshot", "create", "box", "--dir", &d])
        .assert()
        .code(3)
        .stdout("");
    for bad in ["rootfs", "rootfs=rel/x", "=/x"] {
        t.cmd(&["snapshot", "create", "box", "--dir", &d, "--disk", bad])
            .assert()
            .code(2)
            .stdout("");
    }
    assert!(!dir.exists());
    assert!(t.leftovers().is_empty(), "{:?}", t.leftovers());
}

#[test]
fn usage_errors_exit_2() {
    let t = T::new();
    t.cmd(&[]).assert().code(2);
    t.cmd(&["frobnicate"]).assert().code(2);
    t.cmd(&["stop"]).assert().code(2);
    t.cmd(&["stop", "box", "--timeout", "soon"])
        .assert()
        .code(2);
}

#[test]
fn a_missing_vmm_user_is_a_prerequisite_and_nothing_starts_as_root() {
    let t = "a_missing_vmm_user_is_a_prerequisite_and_nothing_starts_as_root";
    if !banger_testkit::require_root(t) {
        return;
    }
    let t = T::new();
    let config = t.home.path().join("config/banger");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("config.json"),
        r#"{"vmm_user": "banger-no-such-user"}"#,
    )
    .unwrap();
    let s = t.spec("box");
    // Refused before QEMU runs: not its "boom", but the user and the fix.
    t.cmd(&["start"])
        .env("BANGER_QEMU", t.failing_qemu())
        .write_stdin(s.to_string())
        .assert()
        .code(4)
        .stderr(contains("banger-no-such-user does not exist"))
        .stderr(contains("banger-net setup"))
        .stderr(contains("boom").not());
    assert!(
        t.leftovers().iter().all(|p| p.starts_with(&config)),
        "{:?}",
        t.leftovers()
    );
}

#[test]
fn restore_without_its_state_file_is_not_found_and_leaves_nothing() {
    let t = T::new();
    let missing = t.home.path().join("box.state");
    t.cmd(&["restore", "--from", &missing.to_string_lossy()])
        .env("BANGER_QEMU", t.failing_qemu())
        .write_stdin(t.spec("box").to_string())
        .assert()
        .code(3)
        .stderr(contains("box.state"))
        .stderr(contains("boom").not());
    // An empty file is no saved state either.
    std::fs::write(&missing, b"").unwrap();
    t.cmd(&["restore", "--from", &missing.to_string_lossy()])
        .env("BANGER_QEMU", t.failing_qemu())
        .write_stdin(t.spec("box").to_string())
        .assert()
        .code(1)
        .stderr(contains("not a saved VM state"));
    std::fs::remove_file(&missing).unwrap();
    let home = t.home.path().to_string_lossy().into_owned();
    assert!(processes_mentioning(&home).is_empty());
    assert!(t.leftovers().is_empty(), "{:?}", t.leftovers());
}

#[test]
fn suspend_of_a_vm_that_is_not_running_is_not_found() {
    let t = T::new();
    let to = t.home.path().join("box.state");
    t.cmd(&["suspend", "box", "--to", &to.to_string_lossy()])
        .assert()
        .code(3)
        .stderr(contains("no VM box is running"));
    assert!(!to.exists());
    t.cmd(&["suspend", "box"]).assert().code(2);
    t.cmd(&["restore"]).assert().code(2);
}

/// A state file QEMU cannot load (garbage): restore fails with QEMU's own
/// words, and no process, socket or record is left.
#[test]
fn restore_of_a_bad_state_fails_clearly_and_leaves_nothing() {
    let test = "restore_of_a_bad_state_fails_clearly_and_leaves_nothing";
    if !banger_testkit::require_tool(test, "qemu-system-x86_64") {
        return;
    }
    let k = banger_testkit::guest::kernel();
    let t = T::new();
    let bad = t.home.path().join("vmlinux");
    let spec = json!({"id": "bad", "kernel": k.vmlinux, "initrd": k.initrd,
                      "cmdline": "console=ttyS0", "vcpus": 1, "mem_mib": 128});
    let _serial = banger_testkit::serial();
    t.cmd(&["restore", "--from", &bad.to_string_lossy()])
        .write_stdin(spec.to_string())
        .assert()
        .code(1)
        .stderr(contains("restoring"))
        .stderr(contains("vmm.log"));
    let home = t.home.path().to_string_lossy().into_owned();
    let gone = banger_testkit::poll(std::time::Duration::from_secs(10), || {
        processes_mentioning(&home).is_empty().then_some(())
    });
    assert!(gone.is_some(), "a process of the failed restore is left");
    // vmm.log and the console log say what happened; nothing else stays.
    let left: Vec<PathBuf> = t
        .leftovers()
        .into_iter()
        .filter(|p| !p.ends_with("vmm.log") && !p.ends_with("console.log"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// `start --print-argv` prints the processes start would run, with their
/// exact arguments and the descriptors they inherit at the numbers the
/// arguments name (a qcow2 overlay's backing file included), and runs,
/// opens and makes nothing: the QEMU named here would fail if it ran.
#[test]
fn print_argv_prints_the_processes_and_their_descriptors_and_starts_nothing() {
    let t = T::new();
    let qemu = t.failing_qemu();
    let disks = t.home.path().join("disks");
    std::fs::create_dir_all(&disks).unwrap();
    let (root, base, work) = (
        disks.join("rootfs.qcow2"),
        disks.join("rootfs.ext4"),
        disks.join("work.ext4"),
    );
    for f in [&root, &base, &work] {
        std::fs::write(f, b"").unwrap();
    }
    let mut spec = t.spec("box");
    spec["vsock_cid"] = json!(7);
    spec["drives"] = json!([
        {"id": "rootfs", "path": root, "root": true, "format": "qcow2", "backing": base},
        {"id": "work", "path": work, "read_only": true}
    ]);
    let before = walk(t.home.path());
    let out = t
        .cmd(&["start", "--print-argv"])
        .env("BANGER_QEMU", &qemu)
        .env("BANGER_QEMU_ACCEL", "tcg")
        .write_stdin(spec.to_string())
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let lines: Vec<banger_lib::records::ProcessLine> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let q = &lines[0];
    assert_eq!((q.process.as_str(), &q.program), ("qemu", &qemu));
    assert!(q.cwd.ends_with("box/vmm"), "{}", q.cwd.display());
    let args = q.args.join(" ");
    let fd = |open: &str, path: &Path| {
        q.fds
            .iter()
            .find(|f| f.open == open && f.path == path)
            .unwrap_or_else(|| panic!("no {open} fd for {}: {:?}", path.display(), q.fds))
            .fd
    };
    let kernel = fd("read", &t.home.path().join("vmlinux"));
    let (rw, backing, work_fd) = (
        fd("read-write", &root),
        fd("read", &base),
        fd("read", &work),
    );
    let wants = [
        format!("-kernel /proc/self/fd/{kernel}"),
        format!("-add-fd fd={rw},set=10"),
        format!("-add-fd fd={backing},set=100"),
        "driver=qcow2,node-name=drive0,file=drive0-file,backing=backing0".into(),
        format!("-add-fd fd={work_fd},set=11"),
        "-drive id=drive1,file=/dev/fdset/11,format=raw,if=none,readonly=on".into(),
        "name=org.banger.agent".into(),
        "root=/dev/vda".into(),
        "-sandbox on".into(),
    ];
    for want in wants {
        assert!(args.contains(&want), "no {want:?} in {args}");
    }
    // Every descriptor named once, 3 upwards, none of the VM's paths in
    // the arguments.
    let mut numbers: Vec<i32> = q.fds.iter().map(|f| f.fd).collect();
    numbers.sort();
    let want: Vec<i32> = (3..).take(q.fds.len()).collect();
    assert_eq!(numbers, want);
    assert!(q.fds.iter().any(|f| f.open == "listen"), "{:?}", q.fds);
    assert!(!args.contains(&*disks.to_string_lossy()), "{args}");
    assert_eq!(walk(t.home.path()), before, "print-argv made something");

    // A bad spec is the same usage error as start's.
    t.cmd(&["start", "--print-argv"])
        .write_stdin(r#"{"id": "box"}"#)
        .assert()
        .code(2);
}
