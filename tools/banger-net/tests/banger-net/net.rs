//! banger-net for real, each test inside its own network namespaces.

use crate::common::*;
use banger_testkit::{poll, require_tool, Home, NetNs};
use std::os::fd::AsRawFd;
use std::time::Duration;

#[test]
fn setup_is_idempotent_and_cycles_leave_the_pool_as_root() {
    if !gated("setup_is_idempotent_and_cycles_leave_the_pool_as_root") {
        return;
    }
    let n = Net::new();
    let first = n.ok(&["setup"]);
    assert_eq!(first[0]["changed"], true);
    assert_eq!(n.ok(&["setup"])[0]["changed"], false);
    for _ in 0..2 {
        let mut taps = Vec::new();
        for vm in ["a", "b", "c"] {
            let l = &n.ok(&["tap", "acquire", "--vm", vm])[0];
            taps.push(l["tap"].as_str().unwrap().to_string());
        }
        // Idempotent: the same lease again.
        let again = &n.ok(&["tap", "acquire", "--vm", "b"])[0];
        assert_eq!(again["tap"], taps[1].as_str());
        assert_eq!(n.leases().len(), 3);
        for vm in ["a", "b", "c"] {
            n.ok(&["tap", "release", "--vm", vm]);
        }
        assert!(n.leases().is_empty());
        let pool: Vec<String> = n
            .ok(&["pool", "list"])
            .iter()
            .map(|p| p["tap"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(pool.len(), 2, "pool_size is 2: {pool:?}");
        let mut taps: Vec<String> = n
            .links()
            .into_iter()
            .filter(|l| l.starts_with("tap-") || l.starts_with("bgr-"))
            .collect();
        taps.sort();
        assert_eq!(taps, vec!["tap-pool-0", "tap-pool-1"]);
    }
    // A VM name of 32 characters still gets a TAP name the kernel takes.
    let long = "a".repeat(32);
    let l = &n.ok(&["tap", "acquire", "--vm", &long])[0];
    assert!(l["tap"].as_str().unwrap().len() <= 15);
    assert_eq!(l["prefix"], 24);
    assert_eq!(l["dns"], "172.30.0.1");
    n.ok(&["pool", "drain"]);
    assert!(n.ok(&["pool", "list"]).is_empty());
}

#[test]
fn twenty_concurrent_acquires_as_root() {
    if !gated("twenty_concurrent_acquires_as_root") {
        return;
    }
    let n = Net::new();
    let children: Vec<_> = (0..20)
        .map(|i| {
            n.cmd(&["tap", "acquire", "--vm", &format!("vm{i}")])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut ips = std::collections::BTreeSet::new();
    let mut taps = std::collections::BTreeSet::new();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let l = &lines(&out)[0];
        ips.insert(l["ip"].as_str().unwrap().to_string());
        taps.insert(l["tap"].as_str().unwrap().to_string());
    }
    assert_eq!(ips.len(), 20);
    assert_eq!(taps.len(), 20);
    assert_eq!(n.leases().len(), 20);
    let links = n.links();
    for t in &taps {
        assert!(links.contains(t), "{t} missing");
    }
}

/// The MACs the host's neighbour table names for `ip` on banger0.
fn neighbour_macs(n: &Net, ip: &str) -> Vec<String> {
    let out = n.ns.sh(&format!("ip -j neigh show dev banger0 to {ip}"));
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["lladdr"].as_str().map(String::from))
        .collect()
}

#[test]
fn a_reused_address_forgets_the_old_mac_as_root() {
    if !gated("a_reused_address_forgets_the_old_mac_as_root") {
        return;
    }
    let n = Net::new();
    // A running VM keeps the bridge's carrier up (on carrier loss the
    // kernel flushes the bridge's neighbours itself), and the bridge's
    // fixed MAC does not change (which would flush them too) as ports come
    // and go: what is left to forget the old MAC is banger-net.
    let _keep = n.guest("keep", &[]);
    // No entry to forget is no warning either.
    let out = n.run(&["tap", "acquire", "--vm", "a"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !err.contains("warning"), "{err}");
    let ip = lines(&out)[0]["ip"].as_str().unwrap().to_string();
    n.ok(&["tap", "release", "--vm", "a"]);
    // Another address's entry stays.
    n.ns.sh("ip neigh replace 172.30.0.250 lladdr 02:00:00:00:00:aa dev banger0 nud stale");
    // What the host remembers of the address's last VM, in the states it
    // can be in then; a permanent one too, as the address is banger's.
    let old = "02:00:00:00:00:99";
    let mut prev = None;
    for (vm, nud) in [("b", "stale"), ("c", "reachable"), ("d", "permanent")] {
        if let Some(p) = prev {
            n.ok(&["tap", "release", "--vm", p]);
        }
        n.ns.sh(&format!(
            "ip neigh replace {ip} lladdr {old} dev banger0 nud {nud}"
        ));
        assert_eq!(neighbour_macs(&n, &ip), vec![old]);
        let l = &n.ok(&["tap", "acquire", "--vm", vm])[0];
        assert_eq!(l["ip"], ip.as_str(), "{vm} gets the released address");
        let macs = neighbour_macs(&n, &ip);
        assert!(!macs.iter().any(|m| m == old), "{nud}: still {macs:?}");
        prev = Some(vm);
    }
    // Asked again, the same lease: its entry (its own MAC) is left alone.
    let mac = n.ok(&["tap", "acquire", "--vm", "d"])[0]["mac"]
        .as_str()
        .unwrap()
        .to_string();
    n.ns.sh(&format!(
        "ip neigh replace {ip} lladdr {mac} dev banger0 nud stale"
    ));
    n.ok(&["tap", "acquire", "--vm", "d"]);
    assert_eq!(neighbour_macs(&n, &ip), vec![mac]);
    assert_eq!(
        neighbour_macs(&n, "172.30.0.250"),
        vec!["02:00:00:00:00:aa"]
    );
}

/// banger0's MAC: derived from the bridge name (sha256 of
/// "banger-bridge-mac:banger0"), never a VM's (theirs start 02:).
const BRIDGE_MAC: &str = "0a:de:89:36:83:0e";

/// How the kernel got the bridge's MAC (/sys/.../addr_assign_type): 3 is
/// NET_ADDR_SET, set by hand or netlink, which the bridge then keeps
/// whatever ports come and go.
fn addr_assign_type(n: &Net) -> String {
    n.ns.sh("cat /sys/class/net/banger0/addr_assign_type")
        .trim()
        .to_string()
}

#[test]
fn the_bridge_keeps_its_mac_as_taps_come_and_go_as_root() {
    if !gated("the_bridge_keeps_its_mac_as_taps_come_and_go_as_root") {
        return;
    }
    let n = Net::new();
    let line = &n.ok(&["setup"])[0];
    assert_eq!(line["mac_set"], true, "{line}");
    assert_eq!(n.bridge_mac(), BRIDGE_MAC);
    assert_eq!(addr_assign_type(&n), "3", "the kernel keeps a set MAC");
    let links = n.ns.sh("ip -j -d link show banger0");
    assert!(links.contains(BRIDGE_MAC), "{links}");
    let check = |when: &str| assert_eq!(n.bridge_mac(), BRIDGE_MAC, "{when}");
    // New TAPs (random MACs, some lower than the bridge's), released into
    // the pool and out of it, deleted; TAPs the bridge would take its MAC
    // from first made and then deleted.
    for pool in [0, 2] {
        n.config(&format!(r#"{{"pool_size": {pool}}}"#));
        for round in 0..2 {
            for vm in ["a", "b", "c", "d"] {
                n.ok(&["tap", "acquire", "--vm", vm]);
                check(&format!("pool {pool} round {round}: {vm} acquired"));
            }
            for vm in ["b", "a", "d", "c"] {
                n.ok(&["tap", "release", "--vm", vm]);
                check(&format!("pool {pool} round {round}: {vm} released"));
            }
        }
        n.ok(&["pool", "fill", "--size", "3"]);
        check(&format!("pool {pool}: filled"));
        n.ok(&["pool", "drain"]);
        check(&format!("pool {pool}: drained"));
    }
    // A TAP whose MAC is lower than any the bridge could derive.
    n.ok(&["tap", "acquire", "--vm", "low"]);
    n.ns.sh("ip link set bgr-0 address 02:00:00:00:00:01");
    n.ok(&["tap", "acquire", "--vm", "other"]);
    check("a TAP with the lowest MAC");
    n.ok(&["tap", "release", "--vm", "low"]);
    check("the TAP with the lowest MAC released");
    // Nothing to do: setup says so.
    let again = &n.ok(&["setup"])[0];
    assert_eq!(again["changed"], false, "{again}");
    assert_eq!(again["mac_set"], false, "{again}");
    assert_eq!(addr_assign_type(&n), "3");
}

#[test]
fn setup_and_acquire_give_an_older_bridge_its_mac_as_root() {
    if !gated("setup_and_acquire_give_an_older_bridge_its_mac_as_root") {
        return;
    }
    let n = Net::new();
    // A bridge as an older banger made it: no MAC of its own, so it has
    // its port's; up, with the gateway address.
    n.ns.sh(
        "ip link add banger0 type bridge && ip addr add 172.30.0.1/24 dev banger0 \
         && ip link add old0 type veth peer name old1 && ip link set old0 master banger0 \
         && ip link set banger0 up",
    );
    assert_ne!(addr_assign_type(&n), "3");
    assert_ne!(n.bridge_mac(), BRIDGE_MAC);
    let line = &n.ok(&["setup"])[0];
    assert_eq!(line["created"], false, "{line}");
    assert_eq!(line["address_added"], false, "{line}");
    assert_eq!(line["mac_set"], true, "{line}");
    assert_eq!(line["changed"], true, "{line}");
    assert_eq!(n.bridge_mac(), BRIDGE_MAC);
    assert_eq!(addr_assign_type(&n), "3");
    let again = &n.ok(&["setup"])[0];
    assert_eq!(again["mac_set"], false, "{again}");
    assert_eq!(again["changed"], false, "{again}");
    // An acquire on a bridge whose MAC is not banger's sets it too (it
    // reads the bridge's link anyway, so it costs nothing when right).
    n.ns.sh("ip link set banger0 address 02:00:00:00:00:01");
    n.ok(&["tap", "acquire", "--vm", "web"]);
    assert_eq!(n.bridge_mac(), BRIDGE_MAC);
    n.ok(&["tap", "acquire", "--vm", "web"]);
    assert_eq!(n.bridge_mac(), BRIDGE_MAC);
}

#[test]
fn bad_input_fails_cleanly_as_root() {
    if !gated("bad_input_fails_cleanly_as_root") {
        return;
    }
    let n = Net::new();
    assert_eq!(n.code(&["tap", "release", "--vm", "ghost"]).0, 3);
    assert_eq!(n.code(&["tap", "acquire", "--vm", "Bad_Name"]).0, 2);

    // A subnet that overlaps a route of the host: refused, no bridge made.
    n.ns
        .sh("ip link add dummy0 type veth peer name dummy1 && ip link set dummy0 up && ip link set dummy1 up && ip route add 172.30.0.0/16 dev dummy0");
    let (code, err) = n.code(&["setup"]);
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("overlaps"), "{err}");
    assert!(!n.links().contains(&"banger0".to_string()));
    n.ns.sh("ip link del dummy0");

    // Exhaustion: a /29 has 5 guest addresses.
    n.config(r#"{"subnet": "10.77.0.0/29", "gateway": "10.77.0.1", "pool_size": 0}"#);
    for i in 0..5 {
        n.ok(&["tap", "acquire", "--vm", &format!("v{i}")]);
    }
    let before = n.links();
    let (code, err) = n.code(&["tap", "acquire", "--vm", "v5"]);
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("exhausted"), "{err}");
    assert_eq!(n.links(), before, "nothing half made");
    assert_eq!(n.leases().len(), 5);
    assert_eq!(n.code(&["nat", "enable", "--vm", "ghost"]).0, 3);
    assert_eq!(n.code(&["nat", "disable", "--vm", "ghost"]).0, 3);
    // Teardown refuses while leases exist.
    assert_eq!(n.code(&["teardown"]).0, 5);

    // Without CAP_NET_ADMIN: exit 4 with a hint.
    if banger_lib::hosttools::which("setpriv").is_some() {
        let mut c = n.ns.command("setpriv");
        n.home.apply(&mut c);
        let out = c
            .args([
                "--bounding-set=-net_admin",
                "--inh-caps=-net_admin",
                BIN,
                "pool",
                "fill",
            ])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(4),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains("hint:"));
    }
}

#[test]
fn nat_masquerades_to_upstream_and_forwarding_follows_as_root() {
    let t = "nat_masquerades_to_upstream_and_forwarding_follows_as_root";
    if !gated(t) || !require_tool(t, "curl") || !require_tool(t, "python3") {
        return;
    }
    let n = Net::new();
    let up = NetNs::new();
    n.ns.veth("up0", &up, "eth0");
    n.ns.sh("ip addr add 10.99.0.1/24 dev up0 && ip route add default via 10.99.0.2");
    up.sh("ip addr add 10.99.0.2/24 dev eth0");
    let forwarding = || {
        n.ns.sh("cat /proc/sys/net/ipv4/ip_forward")
            .trim()
            .to_string()
    };
    assert_eq!(forwarding(), "0", "a fresh namespace routes nothing");
    let guest = n.guest("web", &[]);
    assert_eq!(forwarding(), "0", "a lease alone turns no forwarding on");
    let server = server(&up, "10.99.0.2", 8000, n.home.path());
    let fetch = || guest.fetch("http://10.99.0.2:8000/");

    assert!(!fetch(), "no NAT: upstream cannot answer the guest");
    let on = &n.ok(&["nat", "enable", "--vm", "web"])[0];
    assert_eq!(on["uplink"], "up0");
    assert_eq!(forwarding(), "1", "NAT needs forwarding");
    assert_eq!(n.ok(&["nat", "list"]).len(), 1);
    assert!(fetch(), "NAT on: the guest reaches upstream");
    let seen = std::fs::read_to_string(&server.log).unwrap();
    assert!(seen.contains("10.99.0.1 "), "upstream saw: {seen}");
    assert!(
        !seen.contains(&guest.ip),
        "upstream saw the guest address: {seen}"
    );
    // Enabling twice is harmless.
    n.ok(&["nat", "enable", "--vm", "web"]);

    n.ok(&["nat", "disable", "--vm", "web"]);
    let rules = n.ns.sh("nft list set inet banger nat_guests");
    assert!(!rules.contains(&guest.ip), "{rules}");
    assert_eq!(
        forwarding(),
        "0",
        "the last NAT VM gone, forwarding as it was"
    );
    assert!(!fetch(), "NAT off again");
    assert!(n.ok(&["nat", "list"]).is_empty());

    // Release takes a VM out of NAT too.
    n.ok(&["nat", "enable", "--vm", "web"]);
    n.ok(&["tap", "release", "--vm", "web"]);
    assert!(!n.ns.sh("nft list ruleset").contains(&guest.ip));
    assert_eq!(forwarding(), "0");
}

fn dig_at(ns: &NetNs, args: &str) -> String {
    ns.sh(&format!("dig -p 53 @172.30.0.1 +time=2 +tries=1 {args}"))
}

#[test]
fn dns_answers_from_leases_as_root() {
    let t = "dns_answers_from_leases_as_root";
    if !gated(t) || !require_tool(t, "dig") || !require_tool(t, "python3") {
        return;
    }
    let n = Net::new();
    n.ok(&["tap", "acquire", "--vm", "web"]);
    // A descriptor the caller leaks to its children (no O_CLOEXEC), as a
    // script's lock fd or a CI runner's pipe would be: the daemon must not
    // keep it open.
    // (nix's pipe is pipe(2) without O_CLOEXEC, unlike std's.)
    let pipe = nix::unistd::pipe().unwrap();
    let leaked = std::fs::read_link(format!("/proc/self/fd/{}", pipe.1.as_raw_fd())).unwrap();
    let started = &n.ok(&["dns", "ensure", "--no-forward"])[0];
    assert_eq!(started["started"], true);
    let pid = started["pid"].as_u64().unwrap();
    let held: Vec<_> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter(|fd| std::fs::read_link(fd.path()).ok().as_ref() == Some(&leaked))
        .collect();
    drop(pipe);
    assert!(
        held.is_empty(),
        "the DNS daemon kept the caller's {leaked:?}"
    );
    let again = &n.ok(&["dns", "ensure"])[0];
    assert_eq!(again["started"], false);
    assert_eq!(again["pid"].as_u64(), Some(pid));

    // The server runs as the VMM user with no capabilities (its root
    // helper reads the leases: see the late lease below).
    let user = banger_lib::vmmuser::lookup(banger_lib::vmmuser::DEFAULT).unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |k: &str| {
        let line = status.lines().find(|l| l.starts_with(k)).unwrap();
        line[k.len()..]
            .split_whitespace()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert_eq!(field("Uid:"), vec![user.uid.to_string(); 4], "{status}");
    assert_eq!(field("Gid:"), vec![user.gid.to_string(); 4], "{status}");
    assert_eq!(field("CapEff:"), vec!["0000000000000000"], "{status}");
    assert_eq!(field("NoNewPrivs:"), vec!["1"], "{status}");
    // TAPs belong to the VMM user, so a VMM running as it can attach.
    let owner =
        n.ns.sh("cat /sys/class/net/bgr-0/owner /sys/class/net/bgr-0/group");
    assert_eq!(
        owner.split_whitespace().collect::<Vec<_>>(),
        [user.uid.to_string(), user.gid.to_string()]
    );

    assert_eq!(dig_at(&n.ns, "+short web.vm").trim(), "172.30.0.2");
    assert!(dig_at(&n.ns, "nope.vm").contains("status: NXDOMAIN"));
    let aaaa = dig_at(&n.ns, "AAAA web.vm");
    assert!(aaaa.contains("status: NOERROR"), "{aaaa}");
    assert!(aaaa.contains("ANSWER: 0"), "{aaaa}");
    assert!(dig_at(&n.ns, "example.org").contains("status: REFUSED"));
    // Opcodes other than QUERY (here STATUS and UPDATE) are not implemented.
    for opcode in [2, 5] {
        let r = dig_at(&n.ns, &format!("+opcode={opcode} web.vm"));
        assert!(r.contains("status: NOTIMP"), "opcode {opcode}: {r}");
    }
    // A lease made after the server started is answered without a restart.
    n.ok(&["tap", "acquire", "--vm", "late"]);
    assert_eq!(dig_at(&n.ns, "+short late.vm").trim(), "172.30.0.3");

    // The port is taken: a second server fails with exit 5, and so does an
    // ensure from another home.
    let (code, err) = n.code(&["dns", "serve", "--listen", "172.30.0.1:53"]);
    assert_eq!(code, 5, "{err}");
    let other = Home::new();
    let mut c = n.ns.command(BIN);
    other.apply(&mut c);
    let out = c.args(["dns", "ensure"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!other.path().join("run/banger/net-dns.json").exists());

    // A malformed corpus does not kill it.
    let script = r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
q = bytes.fromhex("1234010000010000000000000377656202766d0000010001")
corpus = [b"", b"\x00", b"\xff" * 11, b"\xff" * 12, b"\xff" * 4096]
corpus += [q[:i] for i in range(len(q))]
corpus.append(q[:4] + b"\xff\xff" + q[6:])
corpus.append(q[:12] + b"\xc0\x0c\x00\x01\x00\x01")
corpus.append(q[:12] + b"\x01a\xc0\x10\xc0\x0c\x00\x01\x00\x01")
corpus.append(q[:12] + b"\x3fab")
corpus.append(q[:6] + b"\xff\xff\xff\xff\xff\xff" + q[12:])
for p in corpus:
    s.sendto(p, ("172.30.0.1", 53))
"#;
    n.ns.sh(&format!("python3 -c '{script}'"));
    assert_eq!(dig_at(&n.ns, "+short web.vm").trim(), "172.30.0.2");
    let st = &n.ok(&["dns", "status"])[0];
    assert_eq!(st["running"], true);
    assert_eq!(st["pid"].as_u64(), Some(pid));

    let stop = &n.ok(&["dns", "stop"])[0];
    assert_eq!(stop["was_running"], true);
    assert_eq!(n.ok(&["dns", "status"])[0]["running"], false);
    assert_eq!(n.ok(&["dns", "stop"])[0]["was_running"], false);
}

#[test]
fn teardown_leaves_nothing_as_root() {
    let t = "teardown_leaves_nothing_as_root";
    if !gated(t) {
        return;
    }
    let n = Net::new();
    let sysctls = "cat /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv4/conf/all/forwarding";
    let before = n.ns.sh(sysctls);
    // Someone else's table and chain: teardown must leave them alone.
    n.ns.sh("nft add table inet theirs && nft add chain inet theirs their_forward '{ type filter hook forward priority 0; policy accept; }'");
    let theirs = n.ns.sh("nft list table inet theirs");
    n.ns.sh("ip link add up0 type veth peer name up1 && ip link set up0 up && ip link set up1 up");
    n.ok(&["pool", "fill"]);
    n.ok(&["tap", "acquire", "--vm", "web"]);
    n.ok(&["tap", "acquire", "--vm", "db", "--no-isolate"]);
    n.ok(&["nat", "enable", "--vm", "web", "--uplink", "up0"]);
    n.ok(&["allow", "--port", "8080"]);
    n.ok(&["dns", "ensure", "--no-forward"]);
    assert!(!n.ns.pids().is_empty());
    assert_ne!(n.ns.sh(sysctls), before, "NAT turned forwarding on");
    // Refused while leases exist, and nothing stopped.
    assert_eq!(n.code(&["teardown"]).0, 5);
    assert_eq!(n.ok(&["dns", "status"])[0]["running"], true);
    let status = n.ok(&["status"]);
    assert!(status.iter().any(|s| s["kind"] == "filter"
        && s["tables"] == true
        && s["host_ports"] == serde_json::json!([8080])));

    let down = &n.ok(&["teardown", "--force"])[0];
    assert_eq!(down["dns_stopped"], true);
    assert_eq!(down["tables_removed"], true);
    assert_eq!(down["forwarding_disabled"], true);
    let mut links = n.links();
    links.sort();
    assert_eq!(links, vec!["lo", "up0", "up1"]);
    assert!(!n.ns.sh("ip -4 addr").contains("172.30.0.1"));
    // No table, set, chain or counter of banger's in any family; theirs as it was.
    let rules = n.ns.sh("nft list ruleset");
    for word in ["banger", "bgr-", "nat_guests", "host_ports", "spoofed"] {
        assert!(!rules.contains(word), "{word} left: {rules}");
    }
    assert_eq!(n.ns.sh("nft list table inet theirs"), theirs);
    assert_eq!(n.ns.sh(sysctls), before, "sysctls as before");
    let gone = poll(Duration::from_secs(5), || {
        n.ns.pids().is_empty().then_some(())
    });
    assert!(gone.is_some(), "processes left: {:?}", n.ns.pids());
    assert!(n.leases().is_empty());
    // Twice is fine.
    assert_eq!(n.ok(&["teardown"])[0]["changed"], false);
}

#[test]
fn dns_without_the_vmm_user_is_a_prerequisite_as_root() {
    let t = "dns_without_the_vmm_user_is_a_prerequisite_as_root";
    if !gated(t) {
        return;
    }
    let n = Net::new();
    n.config(r#"{"vmm_user": "banger-no-such-user"}"#);
    // Refused before it binds: the server never runs as root.
    let (code, err) = n.code(&["dns", "serve", "--listen", "127.0.0.1:5353"]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("banger-no-such-user does not exist"), "{err}");
    assert!(err.contains("banger-net setup"), "{err}");
    let (code, err) = n.code(&["dns", "ensure", "--listen", "127.0.0.1:5353"]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("did not start"), "{err}");
    assert_eq!(n.ok(&["dns", "status"])[0]["running"], false);
}
