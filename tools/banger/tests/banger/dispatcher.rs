use assert_cmd::Command;
use predicates::prelude::*;
use std::os::unix::fs::PermissionsExt;

fn banger() -> Command {
    Command::cargo_bin("banger").unwrap()
}

/// A PATH with one fake tool that echoes its args, stdin and a chosen exit code.
fn fake_tool_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("banger-echo");
    std::fs::write(
        &p,
        "#!/bin/sh\necho \"args:$*\"\necho \"name:$0\" >&2\ncat\nexit ${ECHO_EXIT:-0}\n",
    )
    .unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

fn path_with(dir: &std::path::Path) -> String {
    format!("{}:{}", dir.display(), std::env::var("PATH").unwrap())
}

#[test]
fn help_and_version() {
    banger()
        .arg("help")
        .assert()
        .success()
        .stdout(predicate::str::contains("Usage: banger"));
    banger()
        .arg("--version")
        .assert()
        .success()
        .stdout(predicate::str::starts_with("banger 0."));
    // No arguments: help on stderr, usage exit.
    banger().assert().code(2);
}

#[test]
fn unknown_command_exits_2_and_lists_tools() {
    let d = fake_tool_dir();
    banger()
        .env("PATH", path_with(d.path()))
        .arg("nosuch")
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "banger: error: unknown command \"nosuch\"",
        ))
        .stderr(predicate::str::contains("hint: the commands are:"))
        .stderr(predicate::str::contains("echo"));
}

#[test]
fn dispatch_passes_args_stdin_and_exit_code() {
    let d = fake_tool_dir();
    banger()
        .env("PATH", path_with(d.path()))
        .args(["echo", "--flag", "a b"])
        .write_stdin("from stdin\n")
        .assert()
        .success()
        .stdout("args:--flag a b\nfrom stdin\n");
    banger()
        .env("PATH", path_with(d.path()))
        .env("ECHO_EXIT", "5")
        .args(["echo", "x"])
        .assert()
        .code(5);
}

#[test]
fn dispatch_is_the_same_as_the_tool() {
    // `banger X --flag` and `banger-X --flag` give the same output and code.
    let d = fake_tool_dir();
    let via = banger()
        .env("PATH", path_with(d.path()))
        .env("ECHO_EXIT", "3")
        .args(["echo", "--nope"])
        .write_stdin("in")
        .output()
        .unwrap();
    let direct = std::process::Command::new(d.path().join("banger-echo"))
        .env("ECHO_EXIT", "3")
        .arg("--nope")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b"in")?;
            c.wait_with_output()
        })
        .unwrap();
    assert_eq!(via.status.code(), Some(3));
    assert_eq!(via.status.code(), direct.status.code());
    assert_eq!(via.stdout, direct.stdout);
}

#[test]
fn real_tool_flags_pass_through() {
    // A real sibling: an unknown flag is the tool's usage error, exit 2.
    let net = banger_testkit::bin("banger-net");
    let dir = net.parent().unwrap();
    let out = std::process::Command::new(dir.join("banger"))
        .args(["net", "--no-such-flag"])
        .output()
        .unwrap();
    let direct = std::process::Command::new(&net)
        .arg("--no-such-flag")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(out.status.code(), direct.status.code());
}

#[test]
fn commands_lists_json_lines() {
    let d = fake_tool_dir();
    let out = banger()
        .env("PATH", path_with(d.path()))
        .arg("commands")
        .output()
        .unwrap();
    assert!(out.status.success());
    let names: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert!(v["path"].as_str().unwrap().contains("banger-"));
            v["name"].as_str().unwrap().to_string()
        })
        .collect();
    assert!(names.contains(&"echo".to_string()), "{names:?}");
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(names, sorted, "sorted, one line per tool");
}

#[test]
fn libexec_comes_first_for_dispatch_and_listing() {
    // The dispatcher looks where every tool looks for its siblings.
    let on_path = fake_tool_dir();
    let libexec = tempfile::tempdir().unwrap();
    let stand_in = libexec.path().join("banger-echo");
    std::fs::write(&stand_in, "#!/bin/sh\necho stand-in\n").unwrap();
    std::fs::set_permissions(&stand_in, std::fs::Permissions::from_mode(0o755)).unwrap();
    banger()
        .env("PATH", path_with(on_path.path()))
        .env("BANGER_LIBEXEC", libexec.path())
        .arg("echo")
        .assert()
        .success()
        .stdout("stand-in\n");
    let out = banger()
        .env("PATH", path_with(on_path.path()))
        .env("BANGER_LIBEXEC", libexec.path())
        .arg("commands")
        .output()
        .unwrap();
    let echo: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v["name"] == "echo")
        .collect();
    assert_eq!(echo.len(), 1, "{echo:?}");
    assert_eq!(echo[0]["path"], stand_in.display().to_string());
}

#[test]
fn completions_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        banger()
            .args(["completions", shell])
            .assert()
            .success()
            .stdout(predicate::str::contains("banger"));
    }
    banger().args(["completions", "tcsh"]).assert().code(2);
}

#[test]
fn gc_runs_vm_gc_then_net_gc_with_the_same_args() {
    let d = tempfile::tempdir().unwrap();
    for (tool, exit) in [("vm", "${VM_EXIT:-0}"), ("net", "${NET_EXIT:-0}")] {
        let p = d.path().join(format!("banger-{tool}"));
        std::fs::write(&p, format!("#!/bin/sh\necho \"{tool}:$*\"\nexit {exit}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let gc = |vm: &str, net: &str| {
        banger()
            .env("BANGER_LIBEXEC", d.path())
            .env("VM_EXIT", vm)
            .env("NET_EXIT", net)
            .args(["gc", "--dry-run"])
            .assert()
    };
    gc("0", "0")
        .success()
        .stdout("vm:gc --dry-run\nnet:gc --dry-run\n");
    // The first failure's code; banger-net still runs after banger-vm's.
    gc("1", "4")
        .code(1)
        .stdout("vm:gc --dry-run\nnet:gc --dry-run\n");
    gc("0", "4").code(4);
    // A usage error stops at the first.
    gc("2", "0").code(2).stdout("vm:gc --dry-run\n");
}
