//! register, list, show, default, verify, rm: the records, without root.

use crate::common::{ext4, image, lines, ok_lines};
use banger_testkit::{require_tool, Home};
use predicates::str::contains;

fn ready(test: &str) -> bool {
    require_tool(test, "mkfs.ext4")
}

#[test]
fn register_list_show_default_verify_rm() {
    if !ready("register_list_show_default_verify_rm") {
        return;
    }
    let home = Home::new();
    let rootfs = ext4(&home.path().join("r.ext4"));
    let seed = ext4(&home.path().join("w.ext4"));
    let out = ok_lines(
        image(&home)
            .args(["register", "--name", "mine", "--rootfs"])
            .arg(&rootfs)
            .arg("--work-seed")
            .arg(&seed),
    );
    let rec = &out[0];
    assert_eq!(rec["name"], "mine");
    assert_eq!(rec["managed"], false);
    assert_eq!(rec["schema"], 1);
    assert_eq!(rec["from"], serde_json::Value::Null);
    assert_eq!(rec["size"], 4 << 20);
    assert_eq!(rec["rootfs"], rootfs.to_str().unwrap());
    assert_eq!(rec["work_seed"], seed.to_str().unwrap());
    assert_eq!(rec["sha256"].as_str().unwrap().len(), 64);
    // No kernel given: the bundle's is shown.
    assert!(
        rec["kernel"].as_str().unwrap().ends_with("runtime/vmlinux"),
        "{rec}"
    );
    assert_eq!(rec["default"], false);

    // A pipe gets JSON lines.
    let out = ok_lines(image(&home).arg("list"));
    let names: Vec<_> = out.iter().map(|l| l["name"].clone()).collect();
    assert_eq!(names, vec!["mine"]);

    // Default: the bundle's until set; setting keeps the rest of config.json.
    let cfg = home.path().join("config/banger/config.json");
    std::fs::create_dir_all(cfg.parent().unwrap()).unwrap();
    std::fs::write(&cfg, r#"{"vcpus": 3}"#).unwrap();
    image(&home)
        .arg("default")
        .assert()
        .code(3)
        .stderr(contains("debian"))
        .stderr(contains(
            "hint: build it (banger-image build --name debian)",
        ));
    image(&home).args(["default", "nope"]).assert().code(3);
    let out = ok_lines(image(&home).args(["default", "mine"]));
    assert_eq!(out[0]["name"], "mine");
    assert_eq!(out[0]["default"], true);
    let out = ok_lines(image(&home).arg("default"));
    assert_eq!(out[0]["name"], "mine");
    assert!(out[0]["rootfs"].as_str().unwrap().ends_with(".ext4"));
    let c: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
    assert_eq!(c, serde_json::json!({"vcpus": 3, "default_image": "mine"}));
    let out = ok_lines(image(&home).args(["show", "mine"]));
    assert_eq!(out[0]["default"], true);

    // Verify: ok, then a changed file fails with exit 1 and ok=false.
    let out = ok_lines(image(&home).args(["verify", "mine"]));
    assert_eq!(out[0]["ok"], true);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&rootfs)
        .unwrap();
    std::io::Write::write_all(&mut f, b"changed").unwrap();
    let out = image(&home)
        .args(["verify", "mine"])
        .assert()
        .code(1)
        .stderr(contains("does not match"))
        .get_output()
        .stdout
        .clone();
    assert_eq!(lines(&out)[0]["ok"], false);
    // Re-registering updates the record.
    image(&home)
        .args(["register", "--name", "mine", "--rootfs"])
        .arg(&rootfs)
        .assert()
        .success();
    image(&home).args(["verify", "mine"]).assert().success();
    let out = ok_lines(image(&home).args(["show", "mine"]));
    assert_eq!(out[0]["work_seed"], serde_json::Value::Null);

    // rm of an unmanaged image keeps its files.
    let out = ok_lines(image(&home).args(["rm", "mine"]));
    assert_eq!(out[0]["ok"], true);
    assert!(rootfs.is_file() && seed.is_file());
    image(&home)
        .args(["show", "mine"])
        .assert()
        .code(3)
        .stderr(contains("no image named"));
    let out = ok_lines(image(&home).arg("list"));
    assert!(out.is_empty());
}

#[test]
fn register_refuses_bad_input() {
    if !ready("register_refuses_bad_input") {
        return;
    }
    let home = Home::new();
    let good = ext4(&home.path().join("r.ext4"));
    let text = home.path().join("notes.txt");
    std::fs::write(&text, vec![b'x'; 4096]).unwrap();
    let reg = |args: &[&str]| {
        let mut c = image(&home);
        c.arg("register").args(args);
        c
    };
    let g = good.to_str().unwrap();
    reg(&["--name", "a", "--rootfs", "r.ext4"])
        .assert()
        .code(2)
        .stderr(contains("relative path"));
    reg(&["--name", "a", "--rootfs", "/nonexistent/r.ext4"])
        .assert()
        .code(3);
    reg(&["--name", "a", "--rootfs", text.to_str().unwrap()])
        .assert()
        .code(2)
        .stderr(contains("not an ext4 filesystem"));
    reg(&[
        "--name",
        "a",
        "--rootfs",
        g,
        "--work-seed",
        text.to_str().unwrap(),
    ])
    .assert()
    .code(2);
    reg(&["--name", "a", "--rootfs", g, "--kernel", "vmlinux"])
        .assert()
        .code(2);
    reg(&[
        "--name",
        "a",
        "--rootfs",
        g,
        "--initrd",
        "/nonexistent/initrd",
    ])
    .assert()
    .code(3);
    reg(&["--name", "Bad_Name", "--rootfs", g])
        .assert()
        .code(2)
        .stderr(contains("invalid image name"));
    reg(&["--name", "a"]).assert().code(2);
    // Nothing was recorded by any of them.
    let out = ok_lines(image(&home).arg("list"));
    assert!(out.is_empty(), "{out:?}");
}

#[test]
fn rm_refuses_while_a_vm_uses_it() {
    if !ready("rm_refuses_while_a_vm_uses_it") {
        return;
    }
    let home = Home::new();
    let rootfs = ext4(&home.path().join("r.ext4"));
    image(&home)
        .args(["register", "--name", "base", "--rootfs"])
        .arg(&rootfs)
        .assert()
        .success();
    let vm = home.path().join("state/banger/vms/box");
    std::fs::create_dir_all(&vm).unwrap();
    std::fs::write(
        vm.join("vm.json"),
        r#"{"schema":1,"name":"box","image":"base"}"#,
    )
    .unwrap();
    let out = image(&home)
        .args(["rm", "base"])
        .assert()
        .code(5)
        .stderr(contains("used by VM box"))
        .stderr(contains("--force"))
        .get_output()
        .stdout
        .clone();
    assert_eq!(lines(&out)[0]["ok"], false);
    image(&home).args(["show", "base"]).assert().success();
    image(&home)
        .args(["rm", "--force", "base"])
        .assert()
        .success();
    image(&home).args(["show", "base"]).assert().code(3);
    assert!(rootfs.is_file());
}

/// A managed image `built` with stand-in files; its dir.
fn built_image(home: &Home) -> std::path::PathBuf {
    let dir = home.path().join("data/banger/images/built");
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["rootfs.ext4", "work-seed.ext4"] {
        std::fs::write(dir.join(f), b"x").unwrap();
    }
    let rec = serde_json::json!({
        "schema": 1, "name": "built", "managed": true,
        "rootfs": dir.join("rootfs.ext4"), "work_seed": dir.join("work-seed.ext4"),
        "kernel": null, "initrd": null, "size": 1, "sha256": "00",
        "created_at": "2026-01-01T00:00:00Z", "from": "debian:bookworm"
    });
    std::fs::write(dir.join("image.json"), rec.to_string()).unwrap();
    dir
}

/// A VM whose qcow2 overlay disks read a built image's files keeps them:
/// `rm` is refused, with --force too, and nothing is deleted; a VM that
/// only names the image in its record does not stop --force.
#[test]
fn rm_refuses_even_with_force_while_a_vm_overlays_the_files() {
    let home = Home::new();
    let dir = built_image(&home);
    // A VM made from another image name whose overlay still reads this
    // image's work seed (the link is the file, not the name).
    let mut vm = banger_testkit::records::vm("box", "stopped", None, None);
    vm.image = "renamed".into();
    vm.disks.work = home.path().join("state/banger/vms/box/work.qcow2");
    vm.disks.work_backing = Some(dir.join("work-seed.ext4"));
    let vms = home.path().join("state/banger/vms/box");
    std::fs::create_dir_all(&vms).unwrap();
    std::fs::write(vms.join("vm.json"), serde_json::to_string(&vm).unwrap()).unwrap();
    for args in [&["rm", "built"][..], &["rm", "--force", "built"][..]] {
        image(&home)
            .args(args)
            .assert()
            .code(5)
            .stderr(contains("box"))
            .stderr(contains("overlays"))
            .stderr(contains("banger vm delete"));
    }
    image(&home).args(["show", "built"]).assert().success();
    assert!(dir.join("rootfs.ext4").is_file());
    assert!(dir.join("work-seed.ext4").is_file());
    // Once the VM's disks are raw copies, --force goes through.
    vm.disks.work_backing = None;
    std::fs::write(vms.join("vm.json"), serde_json::to_string(&vm).unwrap()).unwrap();
    vm.image = "built".into();
    std::fs::write(vms.join("vm.json"), serde_json::to_string(&vm).unwrap()).unwrap();
    image(&home).args(["rm", "built"]).assert().code(5);
    image(&home)
        .args(["rm", "--force", "built"])
        .assert()
        .success();
    assert!(!dir.join("rootfs.ext4").exists());
}

#[test]
fn rm_of_a_managed_image_deletes_only_its_own_files() {
    let home = Home::new();
    let dir = home.path().join("data/banger/images/built");
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["rootfs.ext4", "work-seed.ext4", "build.log", "notes.txt"] {
        std::fs::write(dir.join(f), b"x").unwrap();
    }
    let outside = home.path().join("elsewhere.ext4");
    std::fs::write(&outside, b"x").unwrap();
    let rec = serde_json::json!({
        "schema": 1, "name": "built", "managed": true,
        "rootfs": dir.join("rootfs.ext4"), "work_seed": outside,
        "kernel": null, "initrd": null, "size": 1, "sha256": "00",
        "created_at": "2026-01-01T00:00:00Z", "from": "debian:bookworm"
    });
    std::fs::write(dir.join("image.json"), rec.to_string()).unwrap();
    let out = ok_lines(image(&home).args(["rm", "built"]));
    let removed = out[0]["removed"].as_array().unwrap().len();
    assert_eq!(removed, 3, "rootfs, build.log, image.json");
    assert!(!dir.join("rootfs.ext4").exists());
    assert!(!dir.join("build.log").exists());
    // A file banger did not make stays, and so does a seed outside the folder.
    assert!(dir.join("notes.txt").exists());
    assert!(dir.join("work-seed.ext4").exists());
    assert!(outside.exists());
}

#[test]
fn missing_images_and_fan_out() {
    let home = Home::new();
    image(&home).args(["show", "ghost"]).assert().code(3);
    image(&home).args(["verify", "ghost"]).assert().code(3);
    image(&home).args(["rm", "ghost"]).assert().code(3);
    image(&home).args(["show", "../x"]).assert().code(2);
    let out = image(&home)
        .args(["rm", "ghost", "other"])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let l = lines(&out);
    assert_eq!(l.len(), 2);
    assert!(l.iter().all(|r| r["ok"] == false && r["error"].is_string()));
    image(&home).assert().code(2);
}

#[test]
fn build_refuses_bad_input_before_doing_anything() {
    let home = Home::new();
    let b = |args: &[&str]| {
        let mut c = image(&home);
        c.arg("build").args(args);
        c
    };
    b(&["--name", "Bad"]).assert().code(2);
    b(&["--name", "x", "--from", "void:current"])
        .assert()
        .code(2)
        .stderr(contains("debian:SUITE"));
    b(&["--name", "x", "--packages", "git,a;rm"])
        .assert()
        .code(2);
    b(&["--name", "x", "--profile", "huge"]).assert().code(2);
    if !banger_lib::hosttools::is_root() {
        b(&["--name", "x"])
            .assert()
            .code(4)
            .stderr(contains("needs root"));
    } else {
        b(&["--name", "x", "--pubkey", "/nonexistent/k.pub"])
            .assert()
            .code(4);
        let key = home.path().join("k.pub");
        std::fs::write(&key, "ssh-ed25519 AAAA test").unwrap();
        b(&[
            "--name",
            "x",
            "--pubkey",
            key.to_str().unwrap(),
            "--agent",
            "/nonexistent/agent",
        ])
        .assert()
        .code(3);
        // An existing image is a conflict, found before any bootstrap.
        if require_tool(
            "build_refuses_bad_input_before_doing_anything",
            "debootstrap",
        ) {
            let r = ext4(&home.path().join("r.ext4"));
            image(&home)
                .args(["register", "--name", "taken", "--rootfs"])
                .arg(&r)
                .assert()
                .success();
            b(&[
                "--name",
                "taken",
                "--pubkey",
                key.to_str().unwrap(),
                "--agent",
                key.to_str().unwrap(),
            ])
            .assert()
            .code(5)
            .stderr(contains("exists"));
        }
    }
    assert!(!home.path().join("data/banger/images/x").exists());
}

#[test]
fn list_fails_on_a_broken_config_or_an_unknown_schema() {
    if !ready("list_fails_on_a_broken_config_or_an_unknown_schema") {
        return;
    }
    let home = Home::new();
    let rootfs = ext4(&home.path().join("r.ext4"));
    ok_lines(
        image(&home)
            .args(["register", "--name", "mine", "--rootfs"])
            .arg(&rootfs),
    );
    let cfg = home.path().join("config/banger/config.json");
    std::fs::create_dir_all(cfg.parent().unwrap()).unwrap();
    for (text, says) in [
        ("{\"vcpus\": ", "config.json"),
        ("{\"vpcus\": 2}", "vpcus"),
        ("{\"schema\": 99}", "schema 99"),
    ] {
        std::fs::write(&cfg, text).unwrap();
        let out = image(&home).arg("list").output().unwrap();
        assert!(!out.status.success(), "{text}: exit 0");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{text}: {err}");
    }
    std::fs::remove_file(&cfg).unwrap();
    // An image record of a schema this build does not know: the others are
    // listed, and the exit code says something is wrong.
    ok_lines(
        image(&home)
            .args(["register", "--name", "other", "--rootfs"])
            .arg(&rootfs),
    );
    let rec = home.path().join("data/banger/images/mine/image.json");
    let text = std::fs::read_to_string(&rec).unwrap();
    std::fs::write(&rec, text.replace("\"schema\": 1", "\"schema\": 99")).unwrap();
    let out = image(&home).arg("list").output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let names: Vec<_> = lines(&out.stdout)
        .iter()
        .map(|l| l["name"].clone())
        .collect();
    assert_eq!(names, vec!["other"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("image mine") && err.contains("schema 99"),
        "{err}"
    );
}

#[test]
fn list_on_a_terminal_reads_like_ls_h() {
    let t = "list_on_a_terminal_reads_like_ls_h";
    if !ready(t) || !require_tool(t, "script") {
        return;
    }
    let home = Home::new();
    let rootfs = ext4(&home.path().join("r.ext4"));
    ok_lines(
        image(&home)
            .args(["register", "--name", "mine", "--rootfs"])
            .arg(&rootfs),
    );
    // util-linux's script gives the command a terminal for stdout.
    let mut c = std::process::Command::new("script");
    for (k, v) in home.envs() {
        c.env(k, v);
    }
    let cmd = format!(
        "{} list",
        assert_cmd::cargo::cargo_bin("banger-image").display()
    );
    let out = c.args(["-qec", &cmd, "/dev/null"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let row = text
        .lines()
        .find(|l| l.starts_with("mine"))
        .unwrap_or_default();
    assert!(row.contains(" 4.0M "), "size humanized: {text}");
    assert!(row.contains("just now"), "age relative: {text}");
    assert!(
        text.lines().next().unwrap_or_default().starts_with("NAME"),
        "{text}"
    );
    // A pipe keeps the exact numbers.
    let out = ok_lines(image(&home).arg("list"));
    assert_eq!(out[0]["size"], 4 << 20);
}

/// A golden snapshot whose disks are overlays on a built image's files
/// keeps them too: `rm` is refused (with --force too) and names it, until
/// the snapshot is gone.
#[test]
fn rm_refuses_while_a_snapshot_overlays_the_files() {
    let home = Home::new();
    let dir = built_image(&home);
    let snap_dir = home.path().join("state/banger/snapshots/gold");
    std::fs::create_dir_all(&snap_dir).unwrap();
    let snap = banger_lib::records::snapshot::SnapshotRecord {
        schema: 1,
        name: "gold".into(),
        source: "box".into(),
        image: "built".into(),
        vmm: "qemu".into(),
        vmm_version: "QEMU emulator version 7.2.0".into(),
        kernel: "/k".into(),
        kernel_size: 1,
        kernel_mtime: 1,
        initrd: None,
        vcpus: 1,
        memory_mib: 256,
        disk_size: 1 << 30,
        nat: false,
        isolated: true,
        no_jailer: false,
        disks: banger_lib::records::Disks {
            rootfs: snap_dir.join("rootfs.qcow2"),
            work: snap_dir.join("work.qcow2"),
            rootfs_backing: Some(dir.join("rootfs.ext4")),
            work_backing: Some(dir.join("work-seed.ext4")),
        },
        state: snap_dir.join("state"),
        bytes: 1,
        disk_bytes: 1,
        paused_ms: 1,
        created_at: "2026-01-01T00:00:00Z".into(),
    };
    std::fs::write(
        snap_dir.join("snapshot.json"),
        serde_json::to_string(&snap).unwrap(),
    )
    .unwrap();
    for args in [&["rm", "built"][..], &["rm", "--force", "built"][..]] {
        image(&home)
            .args(args)
            .assert()
            .code(5)
            .stderr(contains("snapshot gold"))
            .stderr(contains("banger vm snapshots rm"));
    }
    assert!(dir.join("rootfs.ext4").is_file());
    std::fs::remove_dir_all(&snap_dir).unwrap();
    image(&home).args(["rm", "built"]).assert().success();
    assert!(!dir.join("rootfs.ext4").exists());
}
