//! Port forwards with real nftables in namespaces: the host's loopback
//! reaches one port of one guest and nothing else; a forward on another
//! address reaches it from outside; a guest or a neighbour gains nothing
//! through either; a taken host port is exit 5 and changes nothing; a
//! forward goes with its lease.

use crate::common::*;
use banger_testkit::{poll, require_tool, NetNs};
use std::time::Duration;

fn tools(t: &str) -> bool {
    gated(t) && require_tool(t, "curl") && require_tool(t, "python3")
}

/// Whether `curl http://URL` from `ns` gets an answer.
fn fetch(ns: &NetNs, url: &str) -> bool {
    ns.try_sh(&format!(
        "curl -s --connect-timeout 2 -m 3 -o /dev/null {url}"
    ))
    .status
    .success()
}

fn sysctl(ns: &NetNs, key: &str) -> String {
    ns.sh(&format!("cat /proc/sys/net/ipv4/{key}"))
        .trim()
        .to_string()
}

/// `ns` sends packets for 127.0.0.1 out of its eth0 to `via`, as a
/// hostile guest or neighbour can (its own loopback address taken away).
fn route_loopback_out(ns: &NetNs, via: &str) {
    ns.sh(&format!(
        "ip addr del 127.0.0.1/8 dev lo; \
         echo 1 > /proc/sys/net/ipv4/conf/all/route_localnet; \
         echo 1 > /proc/sys/net/ipv4/conf/eth0/route_localnet; \
         ip route add 127.0.0.1/32 via {via} dev eth0"
    ));
}

#[test]
fn a_loopback_forward_opens_one_port_of_one_guest_to_the_host_alone_as_root() {
    let t = "a_loopback_forward_opens_one_port_of_one_guest_to_the_host_alone_as_root";
    if !tools(t) {
        return;
    }
    let n = Net::new();
    n.config(r#"{"pool_size": 0}"#);
    let web = n.guest("web", &[]);
    let evil = n.guest("evil", &[]);
    let _s8000 = server(&web.ns, &web.ip, 8000, n.home.path());
    let _s8001 = server(&web.ns, &web.ip, 8001, n.home.path());
    assert_eq!(sysctl(&n.ns, "conf/banger0/route_localnet"), "0");

    let f = &n.ok(&[
        "forward",
        "add",
        "--vm",
        "web",
        "--host-port",
        "18000",
        "--guest-port",
        "8000",
    ])[0];
    assert_eq!(f["vm"], "web");
    assert_eq!(f["proto"], "tcp");
    assert_eq!(f["address"], "127.0.0.1");
    assert_eq!(f["host_port"], 18000);
    assert_eq!(f["guest_ip"], web.ip.as_str());
    assert_eq!(f["guest_port"], 8000);
    assert!(
        fetch(&n.ns, "http://127.0.0.1:18000/"),
        "the host reaches it"
    );
    assert!(
        !fetch(&n.ns, "http://127.0.0.1:18001/"),
        "and no other port"
    );
    assert_eq!(sysctl(&n.ns, "conf/banger0/route_localnet"), "1");
    assert_eq!(
        sysctl(&n.ns, "ip_forward"),
        "0",
        "loopback needs no routing"
    );
    // The same forward again is no change.
    n.ok(&[
        "forward",
        "add",
        "--vm",
        "web",
        "--host-port",
        "18000",
        "--guest-port",
        "8000",
    ]);
    assert_eq!(n.ok(&["forward", "list"]).len(), 1);
    let st = n.ok(&["status"]);
    assert_eq!(st.iter().filter(|l| l["kind"] == "forward").count(), 1);

    // Taken: by another forward, by a socket on the host. Nothing changes.
    let (code, err) = n.code(&[
        "forward",
        "add",
        "--vm",
        "evil",
        "--host-port",
        "18000",
        "--guest-port",
        "22",
    ]);
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("web"), "names the holder: {err}");
    let _host = server(&n.ns, "127.0.0.1", 18500, n.home.path());
    let (code, err) = n.code(&[
        "forward",
        "add",
        "--vm",
        "web",
        "--host-port",
        "18500",
        "--guest-port",
        "8001",
    ]);
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("taken by a socket"), "{err}");
    assert!(
        fetch(&n.ns, "http://127.0.0.1:18500/"),
        "the host's own server still answers"
    );
    assert_eq!(n.ok(&["forward", "list"]).len(), 1);
    // Bad input.
    for (args, want) in [
        (
            vec!["--vm", "ghost", "--host-port", "18001", "--guest-port", "1"],
            3,
        ),
        (
            vec![
                "--vm",
                "web",
                "--host-port",
                "18001",
                "--guest-port",
                "1",
                "--address",
                "0.0.0.0",
            ],
            2,
        ),
        (
            vec![
                "--vm",
                "web",
                "--host-port",
                "18001",
                "--guest-port",
                "1",
                "--address",
                "203.0.113.9",
            ],
            2,
        ),
        (
            vec!["--vm", "web", "--host-port", "0", "--guest-port", "1"],
            2,
        ),
        (vec!["--vm", "web", "--host-port", "18001"], 2),
    ] {
        let mut a = vec!["forward", "add"];
        a.extend(args.iter());
        let (code, err) = n.code(&a);
        assert_eq!(code, want, "{a:?}: {err}");
    }
    assert_eq!(n.ok(&["forward", "list"]).len(), 1, "nothing half made");

    // From the attacker's side: another guest gets nothing through it,
    // neither on the gateway nor by sending for 127.0.0.1 to the host
    // (the bridge has route_localnet on for the forward's flows).
    assert!(!fetch(&evil.ns, "http://172.30.0.1:18000/"));
    assert!(
        !fetch(&evil.ns, &format!("http://{}:8000/", web.ip)),
        "isolated"
    );
    route_loopback_out(&evil.ns, "172.30.0.1");
    let before = n.dropped_n("input");
    assert!(!fetch(&evil.ns, "http://127.0.0.1:18000/"));
    // (Counted: the packet did reach the host, and no further.)
    assert!(n.dropped_n("input") > before, "dropped at the host's door");
    // Nor does a neighbour routing to the host.
    let far = NetNs::new();
    n.ns.veth("far0", &far, "eth0");
    n.ns.sh("ip addr add 10.98.0.1/30 dev far0");
    far.sh("ip addr add 10.98.0.2/30 dev eth0");
    assert!(ping(&far, "10.98.0.1"));
    route_loopback_out(&far, "10.98.0.1");
    let sent = || {
        far.sh("cat /sys/class/net/eth0/statistics/tx_packets")
            .trim()
            .parse::<u64>()
            .unwrap()
    };
    let tx = sent();
    assert!(!fetch(&far, "http://127.0.0.1:18000/"));
    assert!(sent() > tx, "the neighbour did send to the host");

    // UDP, loopback: the guest sees the gateway as the sender.
    let sink = udp_sink(&web.ns, &web.ip, 9000, n.home.path());
    n.ok(&[
        "forward",
        "add",
        "--vm",
        "web",
        "--host-port",
        "15353",
        "--guest-port",
        "9000",
        "--udp",
    ]);
    let send = || {
        n.ns.command("python3")
            .args([
                "-c",
                "import socket; socket.socket(2, 2).sendto(b'via-forward', ('127.0.0.1', 15353))",
            ])
            .status()
            .unwrap()
    };
    let got = poll(Duration::from_secs(10), || {
        assert!(send().success());
        sink.received().contains("via-forward").then_some(())
    });
    assert!(got.is_some(), "udp: {}", sink.received());
    assert!(
        sink.received().contains("172.30.0.1 via-forward"),
        "{}",
        sink.received()
    );

    // Removing: one port, exit 3 for one it does not have, then the rest
    // go with the lease.
    let gone = n.ok(&["forward", "remove", "--vm", "web", "--host-port", "18000"]);
    assert_eq!(gone.len(), 1);
    assert!(!fetch(&n.ns, "http://127.0.0.1:18000/"));
    assert_eq!(
        n.code(&["forward", "remove", "--vm", "web", "--host-port", "18000"])
            .0,
        3
    );
    assert_eq!(n.code(&["forward", "remove", "--vm", "web"]).0, 2);
    assert_eq!(
        sysctl(&n.ns, "conf/banger0/route_localnet"),
        "1",
        "the udp one is left"
    );
    n.ok(&["tap", "release", "--vm", "web"]);
    assert!(n.ok(&["forward", "list"]).is_empty(), "gone with the lease");
    let map = n.ns.sh("nft list map inet banger forwards");
    assert!(!map.contains("elements"), "{map}");
    assert_eq!(sysctl(&n.ns, "conf/banger0/route_localnet"), "0");
    assert!(n
        .ok(&["forward", "remove", "--vm", "web", "--all"])
        .is_empty());
}

#[test]
fn a_forward_on_another_address_is_routed_to_that_port_alone_as_root() {
    let t = "a_forward_on_another_address_is_routed_to_that_port_alone_as_root";
    if !tools(t) {
        return;
    }
    let n = Net::new();
    n.config(r#"{"pool_size": 0}"#);
    let web = n.guest("web", &[]);
    let evil = n.guest("evil", &[]);
    let _s8000 = server(&web.ns, &web.ip, 8000, n.home.path());
    let _s8001 = server(&web.ns, &web.ip, 8001, n.home.path());
    // A neighbour on a LAN the host is on, with a route to the guests.
    let far = NetNs::new();
    n.ns.veth("far0", &far, "eth0");
    n.ns.sh("ip addr add 10.98.0.1/30 dev far0");
    far.sh("ip addr add 10.98.0.2/30 dev eth0 && ip route add 172.30.0.0/24 via 10.98.0.1");
    assert!(ping(&far, "10.98.0.1"));
    assert_eq!(sysctl(&n.ns, "ip_forward"), "0");
    // A table an older banger made (here: one without the forwards map)
    // is made afresh at the next change, not filled in and refused.
    n.ns.sh("nft delete table inet banger && nft add table inet banger");

    n.ok(&[
        "forward",
        "add",
        "--vm",
        "web",
        "--host-port",
        "18080",
        "--guest-port",
        "8000",
        "--address",
        "10.98.0.1",
    ]);
    assert_eq!(sysctl(&n.ns, "ip_forward"), "1", "routing on for it");
    assert!(
        fetch(&far, "http://10.98.0.1:18080/"),
        "the neighbour reaches it"
    );
    assert!(
        fetch(&n.ns, "http://10.98.0.1:18080/"),
        "so does the host itself"
    );
    assert!(!fetch(&far, "http://10.98.0.1:18081/"));
    assert!(!fetch(&n.ns, "http://127.0.0.1:18080/"), "not on loopback");
    // Routing is on, yet the neighbour reaches no other port of the guest.
    let before = n.dropped_n("forward");
    assert!(!fetch(&far, &format!("http://{}:8001/", web.ip)));
    assert!(
        !fetch(&far, &format!("http://{}:8000/", web.ip)),
        "nor that one but by the forward"
    );
    assert!(n.dropped_n("forward") > before, "counted");
    // A guest gets nothing through it.
    assert!(!fetch(&evil.ns, "http://10.98.0.1:18080/"));

    n.ok(&["forward", "remove", "--vm", "web", "--all"]);
    assert!(!fetch(&far, "http://10.98.0.1:18080/"));
    assert_eq!(sysctl(&n.ns, "ip_forward"), "0", "routing off again");
}
