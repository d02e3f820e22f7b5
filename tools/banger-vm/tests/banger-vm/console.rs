//! A guest's console is hostile output: `logs` and a failed create's
//! console tail read a bounded tail of it, in bounded memory, and print no
//! escape sequence of the guest's.

use crate::common::{assert_code, assert_ok, stderr, Fx};
use std::process::Command;

const ESC: u8 = 0x1b;

/// `banger-vm ARGS` under an address-space limit of `mib`: a reader that
/// held the whole log would fail to allocate.
fn run_limited(fx: &Fx, mib: u64, args: &[&str]) -> std::process::Output {
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(format!("ulimit -v {}; exec \"$0\" \"$@\"", mib << 10))
        .arg(env!("CARGO_BIN_EXE_banger-vm"))
        .args(args);
    fx.apply(&mut c);
    c.output().unwrap()
}

#[test]
fn logs_print_a_bounded_tail_without_escapes_in_bounded_memory() {
    let fx = Fx::new();
    fx.create("box", &[]);
    // A log far over any cap (a stray writer, an older banger), every
    // line an escape sequence, the last one plain.
    let log = fx.vms_dir().join("box/console.log");
    let line = b"\x1b[2J\x1b]0;pwned\x07\x1b[31mflood\x1b[0m\r\n";
    let block = line.repeat((1 << 20) / line.len());
    let mut f = std::fs::File::create(&log).unwrap();
    for _ in 0..64 {
        std::io::Write::write_all(&mut f, &block).unwrap();
    }
    std::io::Write::write_all(&mut f, b"last line\r\n").unwrap();
    drop(f);
    assert!(std::fs::metadata(&log).unwrap().len() > 63 << 20);

    let out = run_limited(&fx, 32, &["logs", "box"]);
    assert_ok(&out);
    assert!(out.stdout.len() <= 1 << 20, "{} bytes", out.stdout.len());
    assert!(!out.stdout.contains(&ESC), "an escape reached the output");
    assert!(!out.stdout.contains(&0x07));
    assert!(
        out.stdout.ends_with(b"\nlast line\n"),
        "the newest line ends it"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("?[2J?]0;pwned??[31mflood?[0m\n"));
}

#[test]
fn a_failed_create_shows_a_bounded_console_tail_without_escapes() {
    let fx = Fx::new();
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(format!("ulimit -v {}; exec \"$0\" \"$@\"", 32 << 10))
        .arg(env!("CARGO_BIN_EXE_banger-vm"))
        .args(["create", "--name", "box"]);
    fx.apply(&mut c);
    let out = c
        .env("FAIL_AT", "banger-health wait")
        .env("CONSOLE_FLOOD_MIB", "64")
        .output()
        .unwrap();
    assert_code(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("last lines of the guest console"), "{err}");
    assert!(err.contains("standin console: box booting"), "{err}");
    assert!(err.contains("?[31mflood?[0m"), "{err}");
    assert!(!out.stderr.contains(&ESC), "an escape reached the terminal");
    assert!(err.lines().count() < 40, "{err}");
    fx.assert_nothing_left("box");
}

#[test]
fn logs_follow_keeps_up_across_a_rotation() {
    use std::io::{BufRead, Write};
    let fx = Fx::new();
    fx.create("box", &[]);
    let log = fx.vms_dir().join("box/console.log");
    let mut child = fx
        .cmd(&["logs", "box", "--follow"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let wait_for = |want: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(l) if l == want => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    };
    let append = |text: &str| {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&log)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    };
    append("before \x1b[31mred\n");
    assert!(wait_for("before ?[31mred"));
    // What the logger does at half the cap: the file moves to .1 (with a
    // last line the reader has not seen yet) and a new one starts.
    append("last of the old file\n");
    std::fs::rename(&log, banger_lib::console::rotated(&log)).unwrap();
    append("first of the new file\n");
    assert!(wait_for("last of the old file"));
    assert!(wait_for("first of the new file"));
    let _ = child.kill();
    let _ = child.wait();
}
