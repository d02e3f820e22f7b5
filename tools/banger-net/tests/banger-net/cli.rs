//! CLI behaviour that needs no privilege.

use assert_cmd::Command;
use predicates::str::contains;

fn net() -> Command {
    let mut c = Command::cargo_bin("banger-net").unwrap();
    let home = banger_testkit::Home::new();
    for (k, v) in home.envs() {
        c.env(k, v);
    }
    // The temp home goes when the test ends; the command has run by then.
    std::mem::forget(home);
    c
}

#[test]
fn usage_errors_exit_2() {
    net().assert().code(2);
    net().args(["tap", "acquire"]).assert().code(2);
    net()
        .args(["tap", "acquire", "--vm", "../x"])
        .assert()
        .code(2)
        .stderr(contains("invalid VM name"));
    net().args(["nat", "enable", "--vm", "A"]).assert().code(2);
}

#[test]
fn bad_subnet_in_config_is_usage() {
    let home = banger_testkit::Home::new();
    let dir = home.path().join("config/banger");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), r#"{"subnet": "10.0.0.0/33"}"#).unwrap();
    let mut c = Command::cargo_bin("banger-net").unwrap();
    for (k, v) in home.envs() {
        c.env(k, v);
    }
    c.args(["lease", "list"])
        .assert()
        .code(2)
        .stderr(contains("prefix"))
        .stderr(contains("hint:"));
}

#[test]
fn empty_state_lists_nothing() {
    net().args(["lease", "list"]).assert().success().stdout("");
    net().args(["nat", "list"]).assert().success().stdout("");
    net()
        .args(["dns", "status"])
        .assert()
        .success()
        .stdout(contains("\"running\":false"));
}

#[test]
fn missing_nft_is_exit_4_naming_the_package() {
    // PATH without nft, and no sbin fallback: as on a host without nftables.
    let empty = tempfile::tempdir().unwrap();
    for verb in ["enable", "disable"] {
        net()
            .env("PATH", empty.path())
            .env("BANGER_PATH_ONLY", "1")
            .args(["nat", verb, "--vm", "web"])
            .assert()
            .code(4)
            .stderr(contains("banger-net: error: nft is missing"))
            .stderr(contains("hint: install it: apt-get install nftables"));
    }
}
