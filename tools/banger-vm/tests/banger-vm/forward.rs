//! `vm forward` against the stand-ins (no root): what reaches banger-net
//! when, the record, bad input, and a start that cannot put a forward in
//! force undone. with_net.rs runs the same with the real banger-net.

use crate::common::*;

fn calls(fx: &Fx, what: &str) -> Vec<String> {
    fx.log()
        .lines()
        .filter(|l| l.starts_with(what))
        .map(String::from)
        .collect()
}

#[test]
fn forwards_are_in_the_record_and_in_force_only_while_it_runs() {
    let fx = Fx::new();
    fx.create("box", &["--no-start"]);
    fx.create("two", &["--no-start"]);
    fx.clear_log();

    // Not running: the record alone.
    let out = fx.run(&["forward", "box", "18000:8000"]);
    assert_ok(&out);
    let l = &json_lines(&out)[0];
    assert_eq!(l["active"], false);
    assert_eq!(l["address"], "127.0.0.1");
    assert!(calls(&fx, "banger-net forward").is_empty(), "{}", fx.log());
    let out = fx.run(&[
        "forward",
        "box",
        "5353:53",
        "--udp",
        "--address",
        "10.0.0.7",
    ]);
    assert_ok(&out);
    assert_eq!(
        fx.vm_json("box")["forwards"],
        serde_json::json!([
            {"proto": "tcp", "address": "127.0.0.1", "host_port": 18000, "guest_port": 8000},
            {"proto": "udp", "address": "10.0.0.7", "host_port": 5353, "guest_port": 53}
        ])
    );
    // Another record holding the port; the same port to another guest port.
    assert_code(&fx.run(&["forward", "two", "18000:80"]), 5);
    assert_code(&fx.run(&["forward", "box", "18000:80"]), 5);
    assert_ok(&fx.run(&["forward", "two", "18000:80", "--udp"]));
    assert_ok(&fx.run(&["forward", "two", "18001:80"]));
    for bad in [
        &["forward", "box", "x:80"][..],
        &["forward", "box", "80"][..],
        &["forward", "box", "65536:80"][..],
        &["forward", "box"][..],
        &["forward", "box", "--remove", "0"][..],
        &["forward", "box", "--list", "--remove", "1"][..],
        &["forward", "BAD", "1:2"][..],
        &["forward", "box", "1:2", "--address", "0.0.0.0"][..],
        &["forward", "box", "1:2", "--address", "224.0.0.1"][..],
        &["forward", "box", "1:2", "--address", "::1"][..],
    ] {
        assert_code(&fx.run(bad), 2);
    }
    assert_code(&fx.run(&["forward", "ghost", "1:2"]), 3);
    assert_code(&fx.run(&["forward", "ghost", "--list"]), 3);
    assert_code(
        &fx.run(&["forward", "box", "--remove", "18000", "--udp"]),
        3,
    );

    // Start puts them in force before the VMM, stop takes them away.
    fx.clear_log();
    assert_ok(&fx.run(&["start", "box"]));
    let log = fx.log();
    let add = log
        .find("banger-net forward add --vm box --host-port 18000 --guest-port 8000 --address 127.0.0.1")
        .expect("added at start");
    assert!(
        log.contains("--host-port 5353 --guest-port 53 --address 10.0.0.7 --udp"),
        "{log}"
    );
    assert!(add < log.find("banger-qemu start").unwrap(), "{log}");
    let out = fx.run(&["forward", "box", "--list"]);
    assert!(json_lines(&out).iter().all(|l| l["active"] == true));
    // Running: a new one goes to banger-net at once.
    fx.clear_log();
    let out = fx.run(&["forward", "box", "18002:22"]);
    assert_eq!(json_lines(&out)[0]["active"], true);
    assert_eq!(calls(&fx, "banger-net forward add").len(), 1);
    fx.clear_log();
    assert_ok(&fx.run(&["stop", "box"]));
    assert_eq!(
        calls(&fx, "banger-net forward remove --vm box --all").len(),
        1
    );
    assert_eq!(fx.vm_json("box")["forwards"].as_array().unwrap().len(), 3);

    // A start whose forward cannot be put in force (the port is taken)
    // fails with banger-net's code, starts no VMM and takes back the rest.
    fx.clear_log();
    let out = fx.run_with(
        &["start", "box"],
        &[
            (
                "FAIL_AT",
                "banger-net forward add --vm box --host-port 5353",
            ),
            ("FAIL_CODE", "5"),
        ],
    );
    assert_code(&out, 5);
    assert!(
        stderr(&out).contains("failed at step forward"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("banger vm forward box --remove 5353 --udp"),
        "{}",
        stderr(&out)
    );
    assert!(!fx.log().contains("banger-qemu start"), "{}", fx.log());
    assert_eq!(
        calls(&fx, "banger-net forward remove --vm box --all").len(),
        1
    );
    assert_eq!(fx.vm_json("box")["state"], "stopped");
    assert!(fx.live_vmms().is_empty());

    // Remove: from the record, and from banger-net where it has a lease.
    fx.clear_log();
    let out = fx.run(&["forward", "box", "--remove", "5353", "--udp"]);
    assert_ok(&out);
    assert_eq!(json_lines(&out)[0]["host_port"], 5353);
    assert_eq!(
        calls(&fx, "banger-net forward remove --vm box --host-port 5353").len(),
        1
    );
    assert_eq!(fx.vm_json("box")["forwards"].as_array().unwrap().len(), 2);
    assert_ok(&fx.run(&["delete", "box", "two"]));
    fx.assert_nothing_left("box");
}
