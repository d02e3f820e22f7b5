//! banger-vm with the real banger-net inside a network namespace (the other
//! plumbing still stand-ins): the lease, TAP, NAT element and port
//! forwards it makes are real, and a failed create or start gives all of
//! them back.

use crate::common::*;
use banger_testkit::NetNs;

fn in_ns(fx: &Fx, ns: &NetNs, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut c = ns.command(env!("CARGO_BIN_EXE_banger-vm"));
    c.args(args);
    fx.apply(&mut c);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn net(fx: &Fx, ns: &NetNs, script: &str) -> String {
    let mut c = ns.command("sh");
    c.args(["-c", script]);
    fx.apply(&mut c);
    let out = c.output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The elements of banger's NAT set (its filter's tables stay while the
/// bridge does): empty when no VM has NAT.
fn nat_guests(fx: &Fx, ns: &NetNs) -> String {
    elements(fx, ns, "inet banger nat_guests")
}

/// The elements of set `FAMILY TABLE NAME`, as JSON texts.
fn elements(fx: &Fx, ns: &NetNs, set: &str) -> String {
    let set = net(fx, ns, &format!("nft -j list set {set}"));
    let v: serde_json::Value = serde_json::from_str(&set).unwrap_or_default();
    v["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["set"]["elem"].as_array())
        .flatten()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn real_leases_taps_and_nat_are_given_back_as_root() {
    let t = "real_leases_taps_and_nat_are_given_back_as_root";
    if !banger_testkit::require_root(t)
        || !banger_testkit::require_tool(t, "nft")
        || !banger_testkit::require_tool(t, "ip")
    {
        return;
    }
    let fx = Fx::new();
    fx.use_real("banger-net");
    let ns = NetNs::new();
    let up = NetNs::new();
    ns.veth("up0", &up, "down0");
    ns.sh("ip addr add 10.250.0.1/30 dev up0 && ip route add default via 10.250.0.2");
    up.sh("ip addr add 10.250.0.2/30 dev down0");
    let net_bin = banger_testkit::bin("banger-net");
    let net_bin = net_bin.display();

    // A create that fails after the lease, TAP and NAT element were made.
    let out = in_ns(
        &fx,
        &ns,
        &["create", "--name", "box", "--nat"],
        &[("FAIL_AT", "banger-health wait")],
    );
    assert_code(&out, 1);
    assert_eq!(net(&fx, &ns, &format!("{net_bin} lease list")), "");
    assert_eq!(nat_guests(&fx, &ns), "");
    assert!(net(&fx, &ns, "nft list set bridge banger addrs").contains("addrs"));
    assert_eq!(
        elements(&fx, &ns, "bridge banger addrs"),
        "",
        "no lease left in the filter"
    );
    let links = net(
        &fx,
        &ns,
        "ip -o link show type tun | awk -F': ' '{print $2}'",
    );
    assert!(
        links.lines().all(|l| l.starts_with("tap-pool-")),
        "non-pool TAPs left: {links}"
    );
    fx.assert_nothing_left("box");

    // A good one, then delete.
    let out = in_ns(&fx, &ns, &["create", "--name", "box", "--nat"], &[]);
    assert_ok(&out);
    let rec = &json_lines(&out)[0];
    let ip = rec["ip"].as_str().unwrap().to_string();
    let tap = rec["tap"].as_str().unwrap().to_string();
    assert!(net(&fx, &ns, "ip -o link show").contains(&tap));
    assert!(nat_guests(&fx, &ns).contains(&ip));
    assert_eq!(rec["isolated"], true);
    assert!(net(&fx, &ns, &format!("ip -d link show {tap}")).contains("isolated on"));
    assert_eq!(
        rec["vsock_cid"],
        1000 + ip.rsplit('.').next().unwrap().parse::<u64>().unwrap()
    );
    assert_ok(&in_ns(&fx, &ns, &["set", "--no-nat", "box"], &[]));
    assert_eq!(nat_guests(&fx, &ns), "");
    assert_ok(&in_ns(&fx, &ns, &["set", "--nat", "box"], &[]));
    // Isolation through the real banger-net: the bridge port flag follows.
    assert_ok(&in_ns(&fx, &ns, &["set", "--no-isolate", "box"], &[]));
    assert!(!net(&fx, &ns, &format!("ip -d link show {tap}")).contains("isolated on"));
    assert_eq!(fx.vm_json("box")["isolated"], false);
    assert_ok(&in_ns(&fx, &ns, &["delete", "box"], &[]));
    assert_eq!(net(&fx, &ns, &format!("{net_bin} lease list")), "");
    assert!(!net(&fx, &ns, "nft list ruleset").contains(&ip));
    fx.assert_nothing_left("box");
    net(&fx, &ns, &format!("{net_bin} teardown"));
    assert!(!net(&fx, &ns, "nft list ruleset").contains("banger"));
}

#[test]
fn nat_without_an_uplink_names_the_config_key_as_root() {
    let t = "nat_without_an_uplink_names_the_config_key_as_root";
    if !banger_testkit::require_root(t)
        || !banger_testkit::require_tool(t, "nft")
        || !banger_testkit::require_tool(t, "ip")
    {
        return;
    }
    let fx = Fx::new();
    fx.use_real("banger-net");
    // No default route in this namespace: nothing to masquerade out of.
    let ns = NetNs::new();
    let net_bin = banger_testkit::bin("banger-net");
    for args in [
        &["create", "--name", "box", "--nat"][..],
        &["set", "--nat", "box"][..],
    ] {
        if args[0] == "set" {
            assert_ok(&in_ns(&fx, &ns, &["create", "--name", "box"], &[]));
        }
        let out = in_ns(&fx, &ns, args, &[]);
        assert_code(&out, 4);
        let err = stderr(&out);
        assert!(err.contains("no default route"), "{args:?}: {err}");
        let hint = err.lines().find(|l| l.starts_with("hint:")).unwrap_or("");
        // banger vm has no --uplink; the config key it names exists.
        assert!(!hint.contains("--uplink"), "{args:?}: {hint}");
        assert!(
            hint.contains("\"uplink\"") && hint.contains("config.json"),
            "{hint}"
        );
    }
    assert_eq!(nat_guests(&fx, &ns), "");
    // With the key set, NAT goes out of that interface.
    let up = NetNs::new();
    ns.veth("up0", &up, "down0");
    std::fs::create_dir_all(fx.home.path().join("config/banger")).unwrap();
    std::fs::write(
        fx.home.path().join("config/banger/config.json"),
        r#"{"uplink": "up0"}"#,
    )
    .unwrap();
    assert_ok(&in_ns(&fx, &ns, &["set", "--nat", "box"], &[]));
    assert!(net(&fx, &ns, "nft list ruleset").contains("up0"));
    assert_ok(&in_ns(&fx, &ns, &["delete", "box"], &[]));
    fx.assert_nothing_left("box");
    net(&fx, &ns, &format!("{} teardown", net_bin.display()));
}

#[test]
fn twenty_concurrent_creates_and_deletes_as_root() {
    let t = "twenty_concurrent_creates_and_deletes_as_root";
    if !banger_testkit::require_root(t) || !banger_testkit::require_tool(t, "ip") {
        return;
    }
    let fx = Fx::new();
    fx.use_real("banger-net");
    let ns = NetNs::new();
    let net_bin = banger_testkit::bin("banger-net");
    let net_bin = net_bin.display();
    let names: Vec<String> = (0..20).map(|i| format!("c{i}")).collect();
    let spawn_all = |args: &dyn Fn(&str) -> Vec<String>| {
        let children: Vec<_> = names
            .iter()
            .map(|n| {
                let mut c = ns.command(env!("CARGO_BIN_EXE_banger-vm"));
                c.args(args(n));
                fx.apply(&mut c);
                c.stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect::<Vec<_>>()
    };

    let outs = spawn_all(&|n| {
        ["create", "--name", n, "--no-start"]
            .map(String::from)
            .to_vec()
    });
    let mut ips = std::collections::BTreeSet::new();
    let mut taps = std::collections::BTreeSet::new();
    for out in &outs {
        assert_ok(out);
        let rec = &json_lines(out)[0];
        assert_eq!(rec["state"], "created");
        ips.insert(rec["ip"].as_str().unwrap().to_string());
        taps.insert(rec["tap"].as_str().unwrap().to_string());
    }
    assert_eq!(ips.len(), 20, "addresses handed out twice: {ips:?}");
    assert_eq!(taps.len(), 20, "TAPs handed out twice: {taps:?}");
    // net.json stayed valid and holds exactly these leases; the TAPs exist.
    let leases = net(&fx, &ns, &format!("{net_bin} lease list"));
    assert_eq!(leases.lines().count(), 20, "{leases}");
    let links = net(&fx, &ns, "ip -o link show");
    for tap in &taps {
        assert!(links.contains(tap.as_str()), "{tap} missing: {links}");
    }
    let listed = json_lines(&in_ns(&fx, &ns, &["list", "--json"], &[]));
    assert_eq!(listed.len(), 20);

    let outs = spawn_all(&|n| ["delete", n].map(String::from).to_vec());
    for out in &outs {
        assert_ok(out);
    }
    assert_eq!(net(&fx, &ns, &format!("{net_bin} lease list")), "");
    let links = net(
        &fx,
        &ns,
        "ip -o link show type tun | awk -F': ' '{print $2}'",
    );
    assert!(
        links.lines().all(|l| l.starts_with("tap-pool-")),
        "non-pool TAPs left: {links}"
    );
    for n in &names {
        fx.assert_nothing_left(n);
    }
    let gc = in_ns(&fx, &ns, &["gc", "--dry-run"], &[]);
    assert_ok(&gc);
    assert!(
        json_lines(&gc).is_empty(),
        "{}",
        String::from_utf8_lossy(&gc.stdout)
    );
}

/// Create/delete cycles (`--no-start`, the real banger-net): BANGER_SOAK
/// of them (20 by default, as CI runs it; `make soak` runs 100), then
/// nothing is left and the next address handed out is the first again.
#[test]
fn soak_create_delete_cycles_leave_nothing_as_root() {
    let t = "soak_create_delete_cycles_leave_nothing_as_root";
    if !banger_testkit::require_root(t)
        || !banger_testkit::require_tool(t, "ip")
        || !banger_testkit::require_tool(t, "nft")
    {
        return;
    }
    let cycles: usize = std::env::var("BANGER_SOAK")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let fx = Fx::new();
    fx.use_real("banger-net");
    let ns = NetNs::new();
    let up = NetNs::new();
    ns.veth("up0", &up, "down0");
    ns.sh("ip addr add 10.250.0.1/30 dev up0 && ip route add default via 10.250.0.2");
    let net_bin = banger_testkit::bin("banger-net");
    let net_bin = net_bin.display();
    let mut first_ip = None;
    for i in 0..cycles {
        let name = format!("soak{}", i % 3);
        let out = in_ns(
            &fx,
            &ns,
            &["create", "--name", &name, "--no-start", "--nat"],
            &[],
        );
        assert_ok(&out);
        let ip = json_lines(&out)[0]["ip"].as_str().unwrap().to_string();
        // Every cycle gets the address the last one gave back.
        assert_eq!(first_ip.get_or_insert_with(|| ip.clone()), &ip, "cycle {i}");
        assert_ok(&in_ns(&fx, &ns, &["delete", &name], &[]));
    }
    assert_eq!(net(&fx, &ns, &format!("{net_bin} lease list")), "");
    // banger's filter stays with the bridge; no guest is left in its sets.
    assert_eq!(nat_guests(&fx, &ns), "");
    assert!(net(&fx, &ns, "nft list set bridge banger addrs").contains("addrs"));
    assert_eq!(elements(&fx, &ns, "bridge banger addrs"), "");
    let links = net(
        &fx,
        &ns,
        "ip -o link show type tun | awk -F': ' '{print $2}'",
    );
    assert!(
        links.lines().all(|l| l.starts_with("tap-pool-")),
        "non-pool TAPs left: {links}"
    );
    for n in ["soak0", "soak1", "soak2"] {
        fx.assert_nothing_left(n);
    }
    let gc = in_ns(&fx, &ns, &["gc", "--dry-run"], &[]);
    assert!(json_lines(&gc).is_empty());
}

/// The entries of banger's forwards map, as nft prints them.
fn forwards_map(fx: &Fx, ns: &NetNs) -> String {
    let m = net(fx, ns, "nft list map inet banger forwards");
    m.lines()
        .skip_while(|l| !l.contains("elements"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn forwards_are_kept_by_the_record_and_in_force_while_it_runs_as_root() {
    let t = "forwards_are_kept_by_the_record_and_in_force_while_it_runs_as_root";
    if !banger_testkit::require_root(t)
        || !banger_testkit::require_tool(t, "nft")
        || !banger_testkit::require_tool(t, "ip")
        || !banger_testkit::require_tool(t, "python3")
    {
        return;
    }
    let fx = Fx::new();
    fx.use_real("banger-net");
    let ns = NetNs::new();
    let vm = |args: &[&str]| in_ns(&fx, &ns, args, &[]);
    assert_ok(&vm(&["create", "--name", "box"]));
    assert_ok(&vm(&["create", "--name", "two"]));

    let out = vm(&["forward", "box", "18000:8000"]);
    assert_ok(&out);
    let l = &json_lines(&out)[0];
    assert_eq!(l["vm"], "box");
    assert_eq!(l["proto"], "tcp");
    assert_eq!(l["address"], "127.0.0.1");
    assert_eq!(
        (l["host_port"].as_u64(), l["guest_port"].as_u64()),
        (Some(18000), Some(8000))
    );
    assert_eq!(l["active"], true);
    assert!(
        forwards_map(&fx, &ns).contains("127.0.0.1 . tcp . 18000"),
        "{}",
        forwards_map(&fx, &ns)
    );
    assert_ok(&vm(&["forward", "box", "18000:8000"]));
    assert_eq!(
        fx.vm_json("box")["forwards"].as_array().unwrap().len(),
        1,
        "again: no change"
    );

    // Bad input and conflicts change nothing.
    assert_code(&vm(&["forward", "box", "18000:9000"]), 5);
    assert_code(&vm(&["forward", "two", "18000:80"]), 5);
    assert_code(&vm(&["forward", "box", "18000"]), 2);
    assert_code(&vm(&["forward", "box", "0:80"]), 2);
    assert_code(&vm(&["forward", "box"]), 2);
    assert_code(&vm(&["forward", "box", "1:2", "--list"]), 2);
    assert_code(&vm(&["forward", "box", "1:2", "--address", "0.0.0.0"]), 2);
    assert_code(&vm(&["forward", "ghost", "1:2"]), 3);
    assert_code(&vm(&["forward", "box", "--remove", "1"]), 3);
    assert_code(&vm(&["forward", "box", "--remove", "18000", "--udp"]), 3);
    // A socket on the host holds 18500.
    let listener = ns
        .command("python3")
        .args([
            "-c",
            "import socket,sys; s=socket.socket(); s.bind(('127.0.0.1',18500)); s.listen(); print('up', flush=True); sys.stdin.read()",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut listener = listener;
    let mut up = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(listener.stdout.as_mut().unwrap()),
        &mut up,
    )
    .unwrap();
    assert_eq!(up.trim(), "up");
    let out = vm(&["forward", "box", "18500:80"]);
    assert_code(&out, 5);
    assert!(stderr(&out).contains("taken"), "{}", stderr(&out));
    assert_eq!(fx.vm_json("box")["forwards"].as_array().unwrap().len(), 1);
    assert!(!forwards_map(&fx, &ns).contains("18500"));

    // Stop takes them away, the record keeps them.
    assert_ok(&vm(&["stop", "box"]));
    assert_eq!(forwards_map(&fx, &ns), "");
    let out = vm(&["forward", "box", "--list"]);
    assert_ok(&out);
    let l = json_lines(&out);
    assert_eq!(l.len(), 1);
    assert_eq!(l[0]["active"], false);
    // On a stopped VM the record alone changes; the taken port fails the
    // start (exit 5), which leaves nothing in force and the VM stopped.
    let out = vm(&["forward", "box", "18500:80"]);
    assert_ok(&out);
    assert_eq!(json_lines(&out)[0]["active"], false);
    let out = vm(&["start", "box"]);
    assert_code(&out, 5);
    assert!(stderr(&out).contains("step forward"), "{}", stderr(&out));
    assert!(stderr(&out).contains("--remove 18500"), "{}", stderr(&out));
    assert_eq!(forwards_map(&fx, &ns), "");
    assert_eq!(fx.vm_json("box")["state"], "stopped");
    drop(listener.stdin.take());
    let _ = listener.wait();
    // Free now (but remove it anyway, to see --remove on a stopped VM).
    let out = vm(&["forward", "box", "--remove", "18500"]);
    assert_ok(&out);
    assert_eq!(json_lines(&out)[0]["host_port"], 18500);
    assert_ok(&vm(&["start", "box"]));
    assert!(forwards_map(&fx, &ns).contains("18000"));
    assert!(!forwards_map(&fx, &ns).contains("18500"));

    // What a killed `vm forward` or stop would leave: gc finds and takes
    // away only that forward.
    let net_bin = banger_testkit::bin("banger-net");
    net(
        &fx,
        &ns,
        &format!(
            "{} forward add --vm box --host-port 18001 --guest-port 22",
            net_bin.display()
        ),
    );
    let out = vm(&["gc", "--dry-run"]);
    assert_ok(&out);
    let g = json_lines(&out);
    assert_eq!(g.len(), 1, "{g:?}");
    assert_eq!(g[0]["what"], "forward");
    assert_eq!(g[0]["vm"], "box");
    assert_ok(&vm(&["gc"]));
    let m = forwards_map(&fx, &ns);
    assert!(m.contains("18000") && !m.contains("18001"), "{m}");
    assert_eq!(fx.vm_json("box")["state"], "running");

    // Delete: gone with the VM.
    assert_ok(&vm(&["delete", "box", "two"]));
    assert_eq!(forwards_map(&fx, &ns), "");
    assert_eq!(
        net(&fx, &ns, &format!("{} forward list", net_bin.display())),
        ""
    );
    fx.assert_nothing_left("box");
    net(&fx, &ns, &format!("{} teardown", net_bin.display()));
}
