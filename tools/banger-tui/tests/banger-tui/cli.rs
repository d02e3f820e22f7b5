use assert_cmd::Command;
use predicates::str::contains;

#[test]
fn refuses_to_run_without_a_terminal() {
    Command::cargo_bin("banger-tui")
        .unwrap()
        .env("BANGER_LIBEXEC", "/nonexistent")
        .assert()
        .code(4)
        .stdout("")
        .stderr(contains("banger-tui: error: banger-tui needs a terminal"))
        .stderr(contains("hint: "));
}

#[test]
fn bad_interval_is_usage() {
    Command::cargo_bin("banger-tui")
        .unwrap()
        .args(["--interval", "0"])
        .assert()
        .code(2);
}

#[test]
fn help_lists_the_keys() {
    Command::cargo_bin("banger-tui")
        .unwrap()
        .arg("--help")
        .assert()
        .success()
        .stdout(contains("KEYS:"))
        .stdout(contains("banger-vm list"));
}
