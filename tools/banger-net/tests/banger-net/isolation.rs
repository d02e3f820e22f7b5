//! What a guest can reach, with namespaces on the bridge standing in for
//! guests (a veth in place of each TAP, under the TAP's name): the host
//! only for DNS, ping and opened ports; other guests only when both opted
//! out of isolation; nothing with another guest's MAC or address; and the
//! DNS server for nobody outside the bridge.

use crate::common::*;
use banger_testkit::{poll, require_tool, NetNs};
use std::time::Duration;

fn tools(t: &str) -> bool {
    gated(t) && require_tool(t, "curl") && require_tool(t, "python3") && require_tool(t, "dig")
}

#[test]
fn guests_reach_the_host_only_for_dns_ping_and_opened_ports_as_root() {
    let t = "guests_reach_the_host_only_for_dns_ping_and_opened_ports_as_root";
    if !tools(t) {
        return;
    }
    let n = Net::new();
    n.config(r#"{"pool_size": 0, "guest_host_ports": [8766]}"#);
    let g = n.guest("web", &[]);
    n.ok(&["dns", "ensure", "--no-forward"]);
    // Host services on every address, as a developer's machine has them.
    let _open = n.http_server(8765);
    let _configured = n.http_server(8766);
    let url = "http://172.30.0.1:8765/";

    assert_eq!(g.dig("web.vm"), g.ip, "DNS on the gateway answers");
    assert!(g.ping("172.30.0.1"), "ping to the gateway answers");
    let before = n.dropped_n("input");
    assert!(
        !g.fetch(url),
        "a host listener on 0.0.0.0 is closed to guests"
    );
    assert!(n.dropped_n("input") > before, "and the drop is counted");
    assert!(
        g.fetch("http://172.30.0.1:8766/"),
        "guest_host_ports opens a port"
    );

    let open = &n.ok(&["allow", "--port", "8765"])[0];
    assert_eq!(open["open"], true);
    assert_eq!(open["source"], "allow");
    assert!(g.fetch(url), "allow --port opens it");
    assert_eq!(n.ok(&["allow", "--port", "8765"]).len(), 1, "twice is fine");
    let closed = &n.ok(&["deny", "--port", "8765"])[0];
    assert_eq!(closed["open"], false);
    assert!(!g.fetch(url), "deny closes it again");
    // A port the config opens cannot be denied from here.
    let (code, err) = n.code(&["deny", "--port", "8766"]);
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("guest_host_ports"), "{err}");
    assert_eq!(n.code(&["allow", "--port", "0"]).0, 2);
    // The host still reaches the guest, and its replies come back.
    let _guest_server = server(&g.ns, &g.ip, 8000, n.home.path());
    let host_fetch =
        n.ns.try_sh(&format!("curl -s -m 3 -o /dev/null http://{}:8000/", g.ip));
    assert!(host_fetch.status.success(), "the host reaches its guest");
}

#[test]
fn guests_reach_each_other_only_when_both_are_not_isolated_as_root() {
    let t = "guests_reach_each_other_only_when_both_are_not_isolated_as_root";
    if !tools(t) {
        return;
    }
    let n = Net::new();
    n.config(r#"{"pool_size": 0}"#);
    let a = n.guest("a", &[]);
    let b = n.guest("b", &[]);
    let c = n.guest("c", &["--no-isolate"]);
    let d = n.guest("d", &["--no-isolate"]);
    let isolated = |tap: &str| {
        n.ns.sh(&format!("ip -d link show {tap}"))
            .contains("isolated on")
    };
    assert!(isolated(&a.tap) && isolated(&b.tap), "isolated by default");
    assert!(!isolated(&c.tap) && !isolated(&d.tap));

    assert!(c.ping(&d.ip), "two non-isolated guests reach each other");
    assert!(d.ping(&c.ip));
    assert!(!a.ping(&b.ip), "two isolated guests do not");
    let before = n.dropped_n("isolated");
    assert!(!a.ping(&c.ip), "nor an isolated one a non-isolated one");
    assert!(!c.ping(&a.ip));
    assert!(n.dropped_n("isolated") > before, "and that drop is counted");
    // Both still reach the host.
    assert!(a.ping("172.30.0.1") && c.ping("172.30.0.1"));

    // Opened on purpose, and closed again.
    let l = &n.ok(&["tap", "set", "--vm", "a", "--no-isolate"])[0];
    assert_eq!(l["isolated"], false);
    assert!(!isolated(&a.tap));
    assert!(a.ping(&c.ip), "--no-isolate on both lets them talk");
    assert!(!a.ping(&b.ip), "b is still isolated");
    n.ok(&["tap", "set", "--vm", "a", "--isolate"]);
    assert!(isolated(&a.tap));
    assert!(!a.ping(&c.ip));
    let leases = n.leases();
    let a_lease = leases.iter().find(|l| l["vm"] == "a").unwrap();
    assert_eq!(a_lease["isolated"], true);
    assert_eq!(n.code(&["tap", "set", "--vm", "ghost", "--isolate"]).0, 3);
    assert_eq!(n.code(&["tap", "set", "--vm", "a"]).0, 2);
}

#[test]
fn spoofed_frames_are_dropped_counted_and_never_masqueraded_as_root() {
    let t = "spoofed_frames_are_dropped_counted_and_never_masqueraded_as_root";
    if !tools(t) {
        return;
    }
    let n = Net::new();
    n.config(r#"{"pool_size": 0}"#);
    let up = NetNs::new();
    n.ns.veth("up0", &up, "eth0");
    n.ns.sh("ip addr add 10.99.0.1/24 dev up0 && ip route add default via 10.99.0.2");
    up.sh("ip addr add 10.99.0.2/24 dev eth0");
    let web = n.guest("web", &[]);
    let evil = n.guest("evil", &[]);
    n.ok(&["nat", "enable", "--vm", "web"]);
    let sink = udp_sink(&up, "10.99.0.2", 9000, n.home.path());
    let seen = |what: &str| {
        poll(Duration::from_secs(10), || {
            sink.received().contains(what).then_some(())
        })
        .is_some()
    };
    web.send_udp("10.99.0.2:9000", "web-1");
    assert!(seen("10.99.0.1 web-1"), "web has NAT: {}", sink.received());
    evil.send_udp("10.99.0.2:9000", "evil-1");
    web.send_udp("10.99.0.2:9000", "web-2");
    assert!(seen("web-2"));
    assert!(!sink.received().contains("evil-1"), "evil has no NAT");
    let gw_mac = n.bridge_mac();

    // evil takes web's address (its own MAC): ARP for it is refused, and
    // with the gateway's MAC known statically, the IP packets too.
    let spoofed = n.dropped_n("spoofed");
    evil.ns.sh(&format!(
        "ip addr flush dev eth0 && ip addr add {}/24 dev eth0 && ip route add default via 172.30.0.1",
        web.ip
    ));
    assert!(
        !evil.ping("172.30.0.1"),
        "ARP with web's address is dropped"
    );
    let after_arp = n.dropped_n("spoofed");
    assert!(after_arp > spoofed, "counted: {}", n.dropped());
    evil.ns.sh(&format!(
        "ip neigh replace 172.30.0.1 lladdr {gw_mac} dev eth0 nud permanent"
    ));
    evil.send_udp("10.99.0.2:9000", "spoofed-ip");
    // Then web's MAC as well.
    evil.ns.sh(&format!("ip link set eth0 address {}", web.mac));
    evil.send_udp("10.99.0.2:9000", "spoofed-mac");
    // Sent after evil's: once it is there, evil's would be too.
    web.send_udp("10.99.0.2:9000", "web-3");
    assert!(seen("10.99.0.1 web-3"), "web still has NAT");
    let got = sink.received();
    assert!(!got.contains("spoofed"), "masqueraded for evil: {got}");
    assert!(
        n.dropped_n("spoofed") >= after_arp + 2,
        "every spoofed packet is counted: {}",
        n.dropped()
    );

    // Frames that are neither IPv4 nor ARP (IPv6, here) go nowhere, even
    // between guests that may talk: an all-nodes ping gets no answer.
    n.ok(&["tap", "set", "--vm", "web", "--no-isolate"]);
    let other = n.guest("other", &["--no-isolate"]);
    assert!(other.ping(&web.ip), "they may talk over IPv4");
    assert!(!ping6_all_nodes(&other.ns), "IPv6 crossed the bridge");

    // A guest cannot use the host (forwarding is on for NAT) to reach
    // another guest: the hairpin is dropped at the bridge.
    let hairpin = n.dropped_n("hairpin");
    let probe = n.guest("probe", &["--no-isolate"]);
    assert!(probe.ping(&web.ip), "directly, as both are not isolated");
    n.ok(&["tap", "set", "--vm", "probe", "--isolate"]);
    assert!(!probe.ping(&web.ip), "not directly once isolated");
    // Both ways through the host: without the bridge's hairpin rule the
    // host would route them (forwarding is on), isolation or not.
    probe
        .ns
        .sh(&format!("ip route add {}/32 via 172.30.0.1", web.ip));
    web.ns
        .sh(&format!("ip route add {}/32 via 172.30.0.1", probe.ip));
    assert!(!probe.ping(&web.ip), "nor through the host");
    assert!(n.dropped_n("hairpin") > hairpin, "{}", n.dropped());
}

/// An ICMPv6 echo to ff02::1 on eth0 (no neighbour discovery needed):
/// whether any other host answered.
fn ping6_all_nodes(ns: &NetNs) -> bool {
    // (A retry loop, not a sleep: sending fails until DAD is over.)
    const PY: &str = r#"
import socket, struct, sys, time
idx = socket.if_nametoindex("eth0")
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, idx)
mine = {l.split()[0] for l in open("/proc/net/if_inet6")}
# Until the link-local address is past duplicate address detection.
sent, end = 0, time.time() + 10
while sent < 3 and time.time() < end:
    try:
        s.sendto(struct.pack("!BBHHH", 128, 0, 0, 4242, 1) + b"banger", ("ff02::1", 0, 0, idx))
        sent += 1
    except OSError:
        time.sleep(0.1)
if sent == 0:
    sys.exit(2)
end = time.time() + 2
while time.time() < end:
    s.settimeout(max(end - time.time(), 0.01))
    try:
        data, addr = s.recvfrom(1500)
    except socket.timeout:
        break
    src = socket.inet_pton(socket.AF_INET6, addr[0].split("%")[0]).hex()
    if data[0] == 129 and src not in mine:
        sys.exit(0)
sys.exit(1)
"#;
    let code = ns
        .command("python3")
        .args(["-c", PY])
        .status()
        .unwrap()
        .code();
    assert_ne!(code, Some(2), "could not send an IPv6 echo");
    code == Some(0)
}

#[test]
fn dns_answers_nobody_outside_the_bridge_as_root() {
    let t = "dns_answers_nobody_outside_the_bridge_as_root";
    if !tools(t) {
        return;
    }
    let n = Net::new();
    n.config(r#"{"pool_size": 0}"#);
    let g = n.guest("web", &[]);
    n.ok(&["dns", "ensure"]);
    // A third namespace that routes to the gateway address through the
    // host namespace, as a LAN neighbour or a container could.
    let far = NetNs::new();
    n.ns.veth("far0", &far, "eth0");
    n.ns.sh("ip addr add 10.98.0.1/30 dev far0");
    far.sh("ip addr add 10.98.0.2/30 dev eth0 && ip route add 172.30.0.0/24 via 10.98.0.1");
    assert!(ping(&far, "10.98.0.1"), "far reaches the host");

    assert_eq!(g.dig("web.vm"), g.ip, "a guest is answered");
    assert_eq!(dig(&n.ns, "web.vm"), g.ip, "the host itself is answered");
    let before = n.dropped_n("outside");
    assert_eq!(dig(&far, "web.vm"), "", "far gets no answer");
    assert!(n.dropped_n("outside") > before, "dropped by the filter");

    // Without the filter, the server itself still answers nobody outside.
    n.ns.sh("nft delete table inet banger");
    assert_eq!(
        dig(&far, "web.vm"),
        "",
        "far gets no answer from the server"
    );
    assert_eq!(dig(&far, "example.org"), "", "and no recursion either");
    assert_eq!(g.dig("web.vm"), g.ip);
    // A lease change puts the missing table back.
    n.ok(&["tap", "acquire", "--vm", "web"]);
    assert!(
        n.dropped().is_object(),
        "the filter is back: {}",
        n.dropped()
    );
}
