//! Fault injection (built only with `--features fault-injection`; `make
//! test` runs it): each command is SIGKILLed after each of its changes to
//! the kernel or net.json in turn (`BANGER_NET_FAULT=N`, src/fault.rs).
//! After every kill, `gc` (even N) or the same command run again (odd N,
//! as banger-vm would retry) must leave no leak (TAPs, leases, pool
//! entries, nft elements, forwarding, intents, temp files) and leave the
//! healthy VM `keep` whole.

use crate::common::*;
use crate::gc::Keep;
use std::os::unix::process::ExitStatusExt;

/// One scenario: `prepare` puts the world in the state the command
/// starts from (idempotent), `args` is the command.
struct Case<'a> {
    name: &'a str,
    /// A lease may be left without its TAP (the command remakes it).
    vanished_ok: bool,
    keep_nat: bool,
    prepare: &'a dyn Fn(&Net),
    args: &'a [&'a str],
}

fn walk(case: &Case) {
    let n = Net::new();
    n.ns.sh("ip link add up0 type veth peer name up1 && ip link set up0 up && ip link set up1 up");
    n.config(r#"{"pool_size": 2, "uplink": "up0"}"#);
    let keep = Keep::new(&n, case.keep_nat);
    let mut killed = 0;
    for at in 1.. {
        (case.prepare)(&n);
        let ctx = format!("{} killed at point {at}", case.name);
        let out = n
            .cmd(case.args)
            .env("BANGER_NET_FAULT", at.to_string())
            .output()
            .unwrap();
        if out.status.success() {
            break;
        }
        assert_eq!(
            out.status.signal(),
            Some(9),
            "{ctx}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        killed += 1;
        if at % 2 == 0 {
            let gc = n.ok(&["gc"]);
            assert!(gc.iter().all(|l| l["removed"] == true), "{ctx}: {gc:?}");
        } else {
            // A killed release was finished: the retry finds no lease
            // (exit 3, which banger-vm takes as done).
            let (code, err) = n.code(case.args);
            let finished = case.args[..2] == ["tap", "release"] && code == 3;
            assert!(code == 0 || finished, "{ctx}: retry: {err}");
        }
        keep.assert_intact(&n, &ctx);
        n.assert_no_leaks_but(&ctx, case.vanished_ok);
        assert!(at < 60, "{ctx}: the command never finished");
    }
    assert!(killed > 0, "{}: no fault point was reached", case.name);
    eprintln!("{}: killed at each of {killed} points", case.name);
    keep.assert_intact(&n, case.name);
    n.assert_no_leaks(case.name);
}

/// `args` run with a kill after its change number `at`; None when it
/// finished first (no change left to kill after).
fn killed_at(n: &Net, args: &[&str], at: usize) -> Option<std::process::Output> {
    let out = n
        .cmd(args)
        .env("BANGER_NET_FAULT", at.to_string())
        .output()
        .unwrap();
    (!out.status.success()).then_some(out)
}

fn release(n: &Net, vm: &str) {
    let _ = n.run(&["tap", "release", "--vm", vm]);
}

#[test]
fn acquire_killed_at_each_step_leaves_nothing_as_root() {
    if !gated("acquire_killed_at_each_step_leaves_nothing_as_root") {
        return;
    }
    // A new TAP (the pool empty), then a pooled one renamed.
    walk(&Case {
        vanished_ok: false,
        name: "acquire (new TAP)",
        keep_nat: true,
        prepare: &|n| {
            release(n, "web");
            n.ok(&["pool", "drain"]);
        },
        args: &["tap", "acquire", "--vm", "web", "--no-isolate"],
    });
    walk(&Case {
        vanished_ok: false,
        name: "acquire (from the pool)",
        keep_nat: true,
        prepare: &|n| {
            release(n, "web");
            n.ok(&["pool", "fill"]);
        },
        args: &["tap", "acquire", "--vm", "web"],
    });
    // Again for a lease whose TAP is gone (a reboot): the TAP is made anew.
    walk(&Case {
        vanished_ok: true,
        name: "acquire (the lease's TAP gone)",
        keep_nat: true,
        prepare: &|n| {
            let tap = n.ok(&["tap", "acquire", "--vm", "web"])[0]["tap"]
                .as_str()
                .unwrap()
                .to_string();
            n.ns.sh(&format!("ip link del {tap}"));
        },
        args: &["tap", "acquire", "--vm", "web", "--no-isolate"],
    });
}

#[test]
fn release_killed_at_each_step_leaves_nothing_as_root() {
    if !gated("release_killed_at_each_step_leaves_nothing_as_root") {
        return;
    }
    walk(&Case {
        vanished_ok: false,
        name: "release (to the pool)",
        keep_nat: true,
        prepare: &|n| {
            n.ok(&["tap", "acquire", "--vm", "web"]);
            n.ok(&["nat", "enable", "--vm", "web"]);
        },
        args: &["tap", "release", "--vm", "web"],
    });
    walk(&Case {
        vanished_ok: false,
        name: "release (the last NAT VM, TAP deleted)",
        keep_nat: false,
        prepare: &|n| {
            n.ok(&["pool", "fill", "--size", "2"]);
            n.ok(&["tap", "acquire", "--vm", "web"]);
            n.ok(&["pool", "fill", "--size", "2"]);
            n.ok(&["nat", "enable", "--vm", "web"]);
        },
        args: &["tap", "release", "--vm", "web"],
    });
}

#[test]
fn nat_killed_at_each_step_leaves_nothing_as_root() {
    if !gated("nat_killed_at_each_step_leaves_nothing_as_root") {
        return;
    }
    walk(&Case {
        vanished_ok: false,
        name: "nat enable (turns forwarding on)",
        keep_nat: false,
        prepare: &|n| {
            n.ok(&["tap", "acquire", "--vm", "web"]);
            n.ok(&["nat", "disable", "--vm", "web"]);
        },
        args: &["nat", "enable", "--vm", "web"],
    });
    walk(&Case {
        vanished_ok: false,
        name: "nat disable (the last NAT VM)",
        keep_nat: false,
        prepare: &|n| {
            n.ok(&["tap", "acquire", "--vm", "web"]);
            n.ok(&["nat", "enable", "--vm", "web"]);
        },
        args: &["nat", "disable", "--vm", "web"],
    });
}

#[test]
fn other_commands_killed_at_each_step_leave_nothing_as_root() {
    if !gated("other_commands_killed_at_each_step_leave_nothing_as_root") {
        return;
    }
    walk(&Case {
        vanished_ok: false,
        name: "tap set",
        keep_nat: true,
        prepare: &|n| {
            n.ok(&["tap", "acquire", "--vm", "web"]);
            n.ok(&["tap", "set", "--vm", "web", "--isolate"]);
        },
        args: &["tap", "set", "--vm", "web", "--no-isolate"],
    });
    walk(&Case {
        vanished_ok: false,
        name: "pool fill",
        keep_nat: true,
        prepare: &|n| {
            n.ok(&["pool", "drain"]);
        },
        args: &["pool", "fill", "--size", "3"],
    });
    walk(&Case {
        vanished_ok: false,
        name: "pool drain",
        keep_nat: true,
        prepare: &|n| {
            n.ok(&["pool", "fill", "--size", "3"]);
        },
        args: &["pool", "drain"],
    });
    walk(&Case {
        vanished_ok: false,
        name: "forward add",
        keep_nat: true,
        prepare: &|n| {
            n.ok(&["tap", "acquire", "--vm", "web"]);
            n.ok(&["forward", "remove", "--vm", "web", "--all"]);
        },
        args: &[
            "forward",
            "add",
            "--vm",
            "web",
            "--host-port",
            "18000",
            "--guest-port",
            "8000",
        ],
    });
    walk(&Case {
        vanished_ok: false,
        name: "forward remove",
        keep_nat: true,
        prepare: &|n| {
            n.ok(&["tap", "acquire", "--vm", "web"]);
            n.ok(&[
                "forward",
                "add",
                "--vm",
                "web",
                "--host-port",
                "18001",
                "--guest-port",
                "8000",
            ]);
        },
        args: &["forward", "remove", "--vm", "web", "--all"],
    });
    walk(&Case {
        vanished_ok: false,
        name: "allow",
        keep_nat: true,
        prepare: &|n| {
            n.ok(&["deny", "--port", "8080"]);
        },
        args: &["allow", "--port", "8080"],
    });
}

#[test]
fn setup_and_teardown_killed_at_each_step_leave_nothing_as_root() {
    if !gated("setup_and_teardown_killed_at_each_step_leave_nothing_as_root") {
        return;
    }
    for at in 1.. {
        let n = Net::new();
        let Some(out) = killed_at(&n, &["setup"], at) else {
            break;
        };
        assert_eq!(out.status.signal(), Some(9), "setup killed at {at}");
        // No guest may send through an unfiltered bridge: until the
        // filter is in, the bridge is down (or not made yet).
        if !n.ns.try_sh("nft list table inet banger").status.success() {
            let link = n.ns.try_sh("ip -j link show banger0");
            let flags = String::from_utf8_lossy(&link.stdout).into_owned();
            assert!(
                !flags.contains("\"UP\""),
                "setup killed at {at}: the bridge is up without its filter: {flags}"
            );
        }
        // The next command finishes it: the bridge has its address and
        // filter before it is up.
        n.ok(&["tap", "acquire", "--vm", "web"]);
        assert!(n.ns.sh("ip -4 addr show banger0").contains("172.30.0.1/24"));
        assert!(n.ns.try_sh("nft list table inet banger").status.success());
        n.assert_no_leaks(&format!("setup killed at {at}"));
        assert!(at < 30);
    }
    // An older banger's bridge (its port's MAC, not banger's): setup
    // killed after each change, then an acquire finishes it.
    let mut points = Vec::new();
    for at in 1.. {
        let n = Net::new();
        n.ns.sh(
            "ip link add banger0 type bridge && ip addr add 172.30.0.1/24 dev banger0 \
             && ip link add old0 type veth peer name old1 && ip link set old0 master banger0 \
             && ip link set banger0 up",
        );
        let older = n.bridge_mac();
        let Some(out) = killed_at(&n, &["setup"], at) else {
            break;
        };
        points.push(String::from_utf8_lossy(&out.stderr).into_owned());
        let ctx = format!("setup of an older bridge killed at {at}");
        assert_eq!(out.status.signal(), Some(9), "{ctx}");
        n.ok(&["tap", "acquire", "--vm", "web"]);
        let mac = n.bridge_mac();
        assert_ne!(mac, older, "{ctx}: the bridge kept its port's MAC");
        assert_eq!(
            n.ns.sh("cat /sys/class/net/banger0/addr_assign_type")
                .trim(),
            "3",
            "{ctx}: the bridge's MAC is not a set one ({mac})"
        );
        assert!(n.ns.try_sh("nft list table inet banger").status.success());
        n.assert_no_leaks(&ctx);
        assert!(at < 30);
    }
    assert!(
        points
            .iter()
            .any(|e| e.contains("setting the bridge's MAC")),
        "setup of an older bridge was never killed after setting its MAC: {points:?}"
    );
    for at in 1.. {
        let n = Net::new();
        n.ok(&["pool", "fill"]);
        n.ok(&["tap", "acquire", "--vm", "web"]);
        n.ok(&["nat", "enable", "--vm", "web", "--uplink", "lo"]);
        let Some(out) = killed_at(&n, &["teardown", "--force"], at) else {
            break;
        };
        assert_eq!(out.status.signal(), Some(9), "teardown killed at {at}");
        // gc finishes it: nothing of banger's is left.
        n.ok(&["gc"]);
        assert_eq!(n.links(), vec!["lo"], "teardown killed at {at}");
        assert!(!n.ns.sh("nft list ruleset").contains("banger"));
        assert!(n.leases().is_empty());
        n.assert_no_leaks(&format!("teardown killed at {at}"));
        assert!(at < 30);
    }
}
