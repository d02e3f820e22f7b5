//! Shared by the CLI tests: a banger-image command in a private home, and
//! small ext4 files.

use banger_testkit::Home;
use std::path::{Path, PathBuf};

pub fn image(home: &Home) -> assert_cmd::Command {
    let mut c = assert_cmd::Command::cargo_bin("banger-image").unwrap();
    for (k, v) in home.envs() {
        c.env(k, v);
    }
    c.env_remove("BANGER_RUNTIME");
    c
}

/// A small real ext4 file.
pub fn ext4(path: &Path) -> PathBuf {
    let out =
        std::process::Command::new(banger_lib::hosttools::which("mkfs.ext4").expect("mkfs.ext4"))
            .args(["-q", "-F"])
            .arg(path)
            .arg("4M")
            .output()
            .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    path.to_path_buf()
}

pub fn lines(out: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Run a command that must succeed and give its JSON lines.
pub fn ok_lines(cmd: &mut assert_cmd::Command) -> Vec<serde_json::Value> {
    lines(&cmd.assert().success().get_output().stdout)
}
