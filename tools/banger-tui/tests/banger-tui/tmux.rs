//! banger-tui live in a real terminal: tmux at 80x24, stand-in tools in
//! BANGER_LIBEXEC that keep their VMs in a file and log their calls.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const BANGER_VM: &str = r#"#!/bin/sh
D=$(dirname "$0")
echo "$*" >> "$D/calls"
set_state() { sed -i "/\"name\":\"$1\"/s/\"state\":\"[a-z]*\"/\"state\":\"$2\"/" "$D/vms"; }
case "$1" in
  list) cat "$D/vms" ;;
  stop) set_state "$2" stopped; echo "{\"name\":\"$2\",\"ok\":true,\"error\":null}" ;;
  start) set_state "$2" running; echo "{\"name\":\"$2\",\"ok\":true,\"error\":null}" ;;
  delete) sed -i "/\"name\":\"$2\"/d" "$D/vms"; echo "{\"name\":\"$2\",\"ok\":true,\"error\":null}" ;;
  set) echo '{"error":"NAT is broken here","kind":"failed","exit":1,"hint":"check nft"}' >&2; exit 1 ;;
  logs) printf 'boot line 1\nLOGLINE-END\n' ;;
  ssh) echo "STANDIN-SSH into $2"; read line; echo "got $line"; exit 0 ;;
  *) echo '{"error":"stand-in does not do that","kind":"usage","exit":2}' >&2; exit 2 ;;
esac
"#;

const BANGER_IMAGE: &str = r#"#!/bin/sh
cat "$(dirname "$0")/images"
"#;

const BANGER_HEALTH: &str = r#"#!/bin/sh
shift
for n in "$@"; do echo "{\"name\":\"$n\",\"ok\":true,\"status\":\"ok\"}"; done
"#;

/// What the stand-ins print, made from banger_lib's record types.
fn vms() -> String {
    let mut out = String::new();
    for (name, state, ip, nat, started) in [
        (
            "box",
            "running",
            "172.30.0.2",
            false,
            Some("2026-01-01T00:00:00Z"),
        ),
        ("web", "stopped", "172.30.0.3", true, None),
    ] {
        let mut record = banger_testkit::records::vm(name, state, Some(ip), None);
        record.nat = nat;
        record.started_at = started.map(str::to_string);
        let line = banger_lib::records::VmLine {
            record,
            uptime_s: None,
        };
        out.push_str(&serde_json::to_string(&line).unwrap());
        out.push('\n');
    }
    out
}

fn images() -> String {
    let mut l =
        banger_testkit::records::image_line("stand-in-image", Path::new("/nonexistent"), None);
    l.default = true;
    l.managed = true;
    l.size = 1 << 30;
    l.from = Some("debian:bookworm".into());
    serde_json::to_string(&l).unwrap() + "\n"
}

/// A private tmux server, killed on drop.
struct Tmux {
    sock: PathBuf,
}

impl Tmux {
    fn cmd(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-S")
            .arg(&self.sock)
            .args(args)
            .output()
            .expect("running tmux");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "tui"];
        args.extend(keys);
        self.cmd(&args);
    }

    fn screen(&self) -> String {
        self.cmd(&["capture-pane", "-p", "-t", "tui"])
    }

    /// Wait until the screen satisfies `f`; fail showing the last screen.
    fn wait_for(&self, what: &str, f: impl Fn(&str) -> bool) -> String {
        let mut last = String::new();
        let found = banger_testkit::poll(Duration::from_secs(20), || {
            last = self.screen();
            f(&last).then(|| last.clone())
        });
        found.unwrap_or_else(|| panic!("timed out waiting for {what}; screen:\n{last}"))
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(&self.sock)
            .arg("kill-server")
            .output();
    }
}

fn script(dir: &Path, name: &str, body: &str) {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn row<'a>(screen: &'a str, name: &str) -> Option<&'a str> {
    // A table row: the name is the first word after the selection mark.
    screen
        .lines()
        .find(|l| l.trim_start_matches("> ").split_whitespace().next() == Some(name))
}

fn calls(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("calls"))
        .unwrap_or_default()
        .lines()
        .filter(|l| *l != "list")
        .map(str::to_string)
        .collect()
}

#[test]
fn tui_live_in_tmux() {
    if !banger_testkit::require_tool("tui_live_in_tmux", "tmux") {
        return;
    }
    let dir = tempfile::Builder::new().prefix("bgrtui").tempdir().unwrap();
    let d = dir.path();
    script(d, "banger-vm", BANGER_VM);
    script(d, "banger-image", BANGER_IMAGE);
    script(d, "banger-health", BANGER_HEALTH);
    std::fs::write(d.join("vms"), vms()).unwrap();
    std::fs::write(d.join("images"), images()).unwrap();

    let tmux = Tmux {
        sock: d.join("tmux.sock"),
    };
    // The exit status goes to a file: tmux's own pane_dead_status is not
    // always set by the time (or ever, when the pty closes first) it shows
    // the pane dead.
    let run = format!(
        "sh -c 'env BANGER_LIBEXEC={dir} {tui}; echo $? > {dir}/exit'",
        dir = d.display(),
        tui = env!("CARGO_BIN_EXE_banger-tui")
    );
    tmux.cmd(&[
        "-f",
        "/dev/null",
        "new-session",
        "-d",
        "-x",
        "80",
        "-y",
        "24",
        "-s",
        "tui",
        &run,
        ";",
        "set-option",
        "-g",
        "remain-on-exit",
        "on",
    ]);

    let s = tmux.wait_for("the table with health", |s| {
        row(s, "box").is_some_and(|r| r.contains("running") && r.trim_end().ends_with("ok"))
    });
    assert!(row(&s, "web").unwrap().contains("stopped"));
    assert!(s.contains("2 VMs, 1 running"));

    // Actions go to banger-vm, and the next refresh shows their effect.
    tmux.keys(&["x"]);
    tmux.wait_for("box stopped", |s| {
        row(s, "box").is_some_and(|r| r.contains("stopped"))
    });
    tmux.keys(&["s"]);
    tmux.wait_for("box running", |s| {
        row(s, "box").is_some_and(|r| r.contains("running"))
    });
    assert_eq!(calls(d)[..2], ["stop box", "start box"]);

    // A failing tool lands in the status line; the UI stays.
    tmux.keys(&["n"]);
    let s = tmux.wait_for("the NAT error", |s| s.contains("NAT is broken here"));
    assert!(s.contains("hint: check nft"), "{s}");
    assert!(calls(d).contains(&"set --nat box".to_string()));

    tmux.keys(&["l"]);
    tmux.wait_for("the console log", |s| s.contains("LOGLINE-END"));
    tmux.keys(&["Escape"]);
    tmux.wait_for("the log closed", |s| !s.contains("LOGLINE-END"));
    tmux.keys(&["i"]);
    tmux.wait_for("the images", |s| {
        s.contains("stand-in-image") && s.contains("1.0G")
    });
    // Esc alone: Esc and a key in one write read as Alt+key.
    tmux.keys(&["Escape"]);
    tmux.wait_for("the images closed", |s| !s.contains("stand-in-image"));
    tmux.keys(&["?"]);
    tmux.wait_for("the help", |s| s.contains("ssh into the selected VM"));
    tmux.keys(&["Space"]);
    tmux.wait_for("the help closed", |s| {
        !s.contains("ssh into the selected VM")
    });

    // Enter hands the terminal to `banger-vm ssh` and takes it back after.
    tmux.keys(&["Enter"]);
    tmux.wait_for("the ssh stand-in", |s| s.contains("STANDIN-SSH into box"));
    tmux.keys(&["hello", "Enter"]);
    let s = tmux.wait_for("the UI back", |s| s.contains("back from box"));
    assert!(!s.contains("STANDIN-SSH"), "the UI redrew everything:\n{s}");
    assert!(row(&s, "box").is_some());

    // Resizing redraws at the new size, key bar at the bottom.
    tmux.cmd(&["resize-window", "-t", "tui", "-x", "100", "-y", "30"]);
    tmux.wait_for("the bigger layout", |s| {
        let rows: Vec<&str> = s.lines().collect();
        rows.len() == 30 && rows[29].contains("Enter ssh")
    });
    tmux.cmd(&["resize-window", "-t", "tui", "-x", "80", "-y", "24"]);
    tmux.wait_for("80x24 again", |s| {
        let rows: Vec<&str> = s.lines().collect();
        rows.len() == 24 && rows[23].contains("Enter ssh")
    });

    tmux.keys(&["d"]);
    tmux.wait_for("the confirmation", |s| s.contains("Delete box?"));
    tmux.keys(&["y"]);
    tmux.wait_for("box gone", |s| {
        row(s, "box").is_none() && s.contains("1 VM, 0 running")
    });
    assert_eq!(calls(d).last().unwrap(), "delete box");

    tmux.keys(&["q"]);
    let status = banger_testkit::poll(Duration::from_secs(20), || {
        let s = std::fs::read_to_string(d.join("exit")).ok()?;
        s.ends_with('\n').then(|| s.trim().to_string())
    });
    assert_eq!(status.as_deref(), Some("0"), "q quits with status 0");
}
