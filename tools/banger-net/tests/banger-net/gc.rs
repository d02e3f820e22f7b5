//! What killed commands leave, reconciliation and `gc`: orphans made by
//! hand are found by `gc --dry-run` (which changes nothing) and removed by
//! `gc` or by the next command, never touching a healthy lease; 20
//! concurrent acquires and releases; and the issue's measured case, 40
//! acquires with 21 of them SIGKILLed mid-run.

use crate::common::*;
use banger_testkit::poll;
use serde_json::Value;
use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::Duration;

impl Net {
    pub fn state_dir(&self) -> std::path::PathBuf {
        self.home.path().join("state/banger")
    }

    pub fn net_json(&self) -> Value {
        let p = self.state_dir().join("net.json");
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    }

    pub fn edit_net_json(&self, f: impl FnOnce(&mut Value)) {
        let mut v = self.net_json();
        f(&mut v);
        std::fs::write(
            self.state_dir().join("net.json"),
            serde_json::to_string(&v).unwrap(),
        )
        .unwrap();
    }

    /// Temp files beside net.json.
    pub fn tmp_files(&self) -> Vec<String> {
        std::fs::read_dir(self.state_dir())
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.contains(".tmp."))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// banger's TAPs (bgr-N, tap-pool-N) that exist.
    pub fn taps(&self) -> BTreeSet<String> {
        self.links()
            .into_iter()
            .filter(|l| l.starts_with("bgr-") || l.starts_with("tap-pool-"))
            .collect()
    }

    /// The elements of a set of banger's, as `nft list` prints them.
    pub fn set(&self, family: &str, set: &str) -> String {
        self.ns
            .try_sh(&format!("nft list set {family} banger {set}"))
            .stdout
            .iter()
            .map(|&b| b as char)
            .collect()
    }

    /// Nothing leaked: every banger TAP is a lease's or the pool's, every
    /// pool entry and (unless `vanished_ok`) lease has its TAP, no intent
    /// and no temp file is left, `gc --dry-run` finds nothing, and with
    /// no VM on NAT no guest address is NAT'd and forwarding is off.
    pub fn assert_no_leaks(&self, ctx: &str) {
        self.assert_no_leaks_but(ctx, false)
    }

    /// `assert_no_leaks`, where with `vanished_ok` a lease may lack its
    /// TAP (kept by design: the next acquire makes it again).
    pub fn assert_no_leaks_but(&self, ctx: &str, vanished_ok: bool) {
        let st = self.net_json();
        let intents = st.get("intents").cloned().unwrap_or(Value::Null);
        assert!(
            intents.is_null() || intents == serde_json::json!([]),
            "{ctx}: intents left: {intents}"
        );
        let mut held = BTreeSet::new();
        for l in st["leases"].as_array().unwrap() {
            held.insert(l["tap"].as_str().unwrap().to_string());
        }
        for p in st["pool"].as_array().unwrap() {
            held.insert(p.as_str().unwrap().to_string());
        }
        let taps = self.taps();
        assert!(taps.is_subset(&held), "{ctx}: TAPs {taps:?}, held {held:?}");
        if !vanished_ok {
            assert!(held.is_subset(&taps), "{ctx}: TAPs {taps:?}, held {held:?}");
        }
        assert!(self.tmp_files().is_empty(), "{ctx}: {:?}", self.tmp_files());
        let dry = self.ok(&["gc", "--dry-run"]);
        assert!(dry.is_empty(), "{ctx}: gc --dry-run found {dry:?}");
        // The forwards map holds exactly the forwards net.json records.
        let map =
            String::from_utf8_lossy(&self.ns.try_sh("nft list map inet banger forwards").stdout)
                .into_owned();
        let fwds = st
            .get("forwards")
            .and_then(|f| f.as_array().cloned())
            .unwrap_or_default();
        for port in ["18000", "18001"] {
            let recorded = fwds
                .iter()
                .any(|f| f["host_port"] == port.parse::<u16>().unwrap());
            assert_eq!(
                map.contains(&format!(". {port} :")),
                recorded,
                "{ctx}: forwards map {map} vs net.json {fwds:?}"
            );
        }
        let nat = st["leases"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["nat"] == true);
        if !nat {
            assert_eq!(
                self.ns.sh("cat /proc/sys/net/ipv4/ip_forward").trim(),
                "0",
                "{ctx}: forwarding left on"
            );
            let set = self.set("inet", "nat_guests");
            assert!(!set.contains("172.30."), "{ctx}: {set}");
        }
    }
}

/// A healthy VM that every test's gc and reconciliation must leave alone:
/// its lease, TAP and filter elements.
pub struct Keep {
    pub tap: String,
    pub ip: String,
    pub nat: bool,
}

impl Keep {
    pub fn new(n: &Net, nat: bool) -> Keep {
        let l = n.ok(&["tap", "acquire", "--vm", "keep"])[0].clone();
        if nat {
            n.ns.sh("ip link show up0 >/dev/null 2>&1 || (ip link add up0 type veth peer name up1 && ip link set up0 up && ip link set up1 up)");
            n.ok(&["nat", "enable", "--vm", "keep", "--uplink", "up0"]);
        }
        Keep {
            tap: l["tap"].as_str().unwrap().into(),
            ip: l["ip"].as_str().unwrap().into(),
            nat,
        }
    }

    pub fn assert_intact(&self, n: &Net, ctx: &str) {
        let leases = n.leases();
        let l = leases
            .iter()
            .find(|l| l["vm"] == "keep")
            .unwrap_or_else(|| panic!("{ctx}: keep's lease is gone: {leases:?}"));
        assert_eq!(l["tap"], self.tap.as_str(), "{ctx}");
        assert_eq!(l["nat"], self.nat, "{ctx}");
        assert!(n.taps().contains(&self.tap), "{ctx}: keep's TAP is gone");
        let addrs = n.set("bridge", "addrs");
        assert!(addrs.contains(&self.ip), "{ctx}: {addrs}");
        let nat = n.set("inet", "nat_guests");
        assert_eq!(nat.contains(&self.ip), self.nat, "{ctx}: {nat}");
    }
}

#[test]
fn gc_finds_and_removes_what_killed_commands_left_as_root() {
    if !gated("gc_finds_and_removes_what_killed_commands_left_as_root") {
        return;
    }
    let n = Net::new();
    let keep = Keep::new(&n, true);
    n.ok(&["pool", "fill"]);
    // What killed commands leave: a TAP on the bridge and one never
    // attached, neither leased nor pooled; a pool entry whose TAP is gone;
    // a guest address and a TAP's MAC in the filter with no lease; a temp
    // file of a writer killed mid-store; a dead DNS server's pid file.
    n.ns.sh("ip tuntap add bgr-7 mode tap && ip link set bgr-7 master banger0 up");
    n.ns.sh("ip tuntap add tap-pool-9 mode tap");
    // Someone else's TAP on no bridge of ours, with a name banger does not use.
    n.ns.sh("ip tuntap add bgrx mode tap");
    n.edit_net_json(|v| v["pool"].as_array_mut().unwrap().push("tap-pool-5".into()));
    n.ns.sh("nft add element inet banger nat_guests '{ 172.30.0.99 }'");
    n.ns.sh("nft add element bridge banger macs '{ \"bgr-7\" . 02:00:00:00:00:07 }'");
    std::fs::write(n.state_dir().join(".net.json.tmp.4194000"), "{").unwrap();
    let run = n.home.path().join("run/banger");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(
        run.join("net-dns.json"),
        r#"{"pid": 4194001, "start_time": 1, "listen": "172.30.0.1:53", "forward": true}"#,
    )
    .unwrap();

    let dry = n.ok(&["gc", "--dry-run"]);
    let found: BTreeSet<(String, String)> = dry
        .iter()
        .map(|l| {
            assert_eq!(l["removed"], false, "{l}");
            (
                l["what"].as_str().unwrap().to_string(),
                l["detail"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want = [
        ("tap", "bgr-7".to_string()),
        ("tap", "tap-pool-9".to_string()),
        ("pool-entry", "tap-pool-5".to_string()),
        (
            "nft-element",
            "inet banger nat_guests 172.30.0.99".to_string(),
        ),
        (
            "nft-element",
            "bridge banger macs bgr-7 . 02:00:00:00:00:07".to_string(),
        ),
        (
            "tmp-file",
            n.state_dir()
                .join(".net.json.tmp.4194000")
                .display()
                .to_string(),
        ),
        (
            "dns-pid-file",
            run.join("net-dns.json").display().to_string(),
        ),
    ];
    let want: BTreeSet<(String, String)> =
        want.into_iter().map(|(a, b)| (a.to_string(), b)).collect();
    assert_eq!(found, want);
    // A dry run changes nothing.
    assert!(n.taps().contains("bgr-7") && n.taps().contains("tap-pool-9"));
    assert!(n.set("inet", "nat_guests").contains("172.30.0.99"));
    assert!(run.join("net-dns.json").exists());

    let gc = n.ok(&["gc"]);
    assert_eq!(gc.len(), want.len(), "{gc:?}");
    for l in &gc {
        assert_eq!(l["removed"], true, "{l}");
        assert!(l.get("error").is_none(), "{l}");
    }
    assert!(!run.join("net-dns.json").exists());
    assert!(
        n.links().contains(&"bgrx".to_string()),
        "not banger's: kept"
    );
    keep.assert_intact(&n, "after gc");
    n.assert_no_leaks("after gc");
    assert!(n.ok(&["gc"]).is_empty(), "a second gc finds nothing");
}

#[test]
fn the_next_command_removes_leftovers_first_as_root() {
    if !gated("the_next_command_removes_leftovers_first_as_root") {
        return;
    }
    let n = Net::new();
    let keep = Keep::new(&n, false);
    n.ns.sh("ip tuntap add bgr-7 mode tap && ip link set bgr-7 master banger0 up");
    std::fs::write(n.state_dir().join(".net.json.tmp.4194000"), "{").unwrap();
    // What a killed `nat enable` leaves: its intent, forwarding turned
    // on, the guest's address in the NAT set, and net.json saying no NAT.
    n.ns.sh("echo 1 > /proc/sys/net/ipv4/ip_forward");
    n.ns.sh(&format!(
        "nft add element inet banger nat_guests '{{ {} }}'",
        keep.ip
    ));
    n.edit_net_json(|v| {
        v["intents"] = serde_json::json!([
            {"op": "nat-on", "vm": "keep", "forwarding_was_off": true, "pid": 4194000}
        ])
    });
    let out = n.run(&["tap", "acquire", "--vm", "web"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("recovered: tap bgr-7"), "{err}");
    assert!(
        err.contains("recovered: intent nat-on keep (pid 4194000)"),
        "{err}"
    );
    assert_eq!(lines(&out)[0]["tap"], "bgr-1", "bgr-7 was no one's");
    keep.assert_intact(&n, "after the next command");
    n.assert_no_leaks("after the next command");
    // A guest address in the NAT set with no NAT lease and no intent (an
    // older banger, a hand edit): any mutating command takes it out.
    n.ns.sh("nft add element inet banger nat_guests '{ 172.30.0.77 }'");
    let out = n.run(&["pool", "drain"]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("recovered: nft-element inet banger nat_guests 172.30.0.77"),
        "{err}"
    );
    assert!(!n.set("inet", "nat_guests").contains("172.30.0.77"));
    // A lease whose TAP vanished (a reboot) is kept, and the next acquire
    // makes its TAP again.
    n.ns.sh(&format!("ip link del {}", keep.tap));
    n.ok(&["pool", "fill"]);
    assert_eq!(n.leases().len(), 2);
    n.ok(&["tap", "acquire", "--vm", "keep"]);
    keep.assert_intact(&n, "after a vanished TAP");
}

#[test]
fn twenty_concurrent_acquires_and_releases_leave_nothing_as_root() {
    if !gated("twenty_concurrent_acquires_and_releases_leave_nothing_as_root") {
        return;
    }
    let n = Net::new();
    let all = |verb: &str| -> Vec<Value> {
        let children: Vec<_> = (0..20)
            .map(|i| {
                n.cmd(&["tap", verb, "--vm", &format!("vm{i}")])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        children
            .into_iter()
            .map(|c| {
                let out = c.wait_with_output().unwrap();
                assert!(
                    out.status.success(),
                    "{verb}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                lines(&out)[0].clone()
            })
            .collect()
    };
    let got = all("acquire");
    let ips: BTreeSet<_> = got.iter().map(|l| l["ip"].to_string()).collect();
    let taps: BTreeSet<_> = got.iter().map(|l| l["tap"].to_string()).collect();
    assert_eq!((ips.len(), taps.len()), (20, 20));
    assert_eq!(n.leases().len(), 20);
    assert_eq!(n.net_json()["leases"].as_array().unwrap().len(), 20);
    n.assert_no_leaks("after 20 acquires");
    all("release");
    assert!(n.leases().is_empty());
    n.assert_no_leaks("after 20 releases");
    assert_eq!(n.taps().len(), 2, "only the pool (pool_size 2)");
    n.ok(&["teardown"]);
    assert_eq!(n.links(), vec!["lo"]);
    assert!(n.tmp_files().is_empty());
}

#[test]
fn forty_acquires_with_twenty_one_killed_leave_nothing_after_gc_as_root() {
    if !gated("forty_acquires_with_twenty_one_killed_leave_nothing_after_gc_as_root") {
        return;
    }
    let n = Net::new();
    n.ok(&["pool", "fill", "--size", "4"]);
    let mut children: Vec<_> = (0..40)
        .map(|i| {
            n.cmd(&["tap", "acquire", "--vm", &format!("vm{i}")])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    // Kill 21 of them (every odd one, and vm0) outright, each once the
    // world has moved on (net.json rewritten): wherever it is by then.
    let victims: Vec<usize> = std::iter::once(0).chain((1..40).step_by(2)).collect();
    assert_eq!(victims.len(), 21);
    let stamp = || {
        std::fs::metadata(n.state_dir().join("net.json"))
            .and_then(|m| m.modified())
            .ok()
    };
    for &v in &victims {
        let before = stamp();
        let _ = poll(Duration::from_secs(5), || (stamp() != before).then_some(()));
        let _ = children[v].kill();
    }
    let (mut ok, mut recovered) = (0, 0);
    for (i, c) in children.into_iter().enumerate() {
        let out = c.wait_with_output().unwrap();
        recovered += String::from_utf8_lossy(&out.stderr)
            .matches("recovered:")
            .count();
        if !victims.contains(&i) {
            assert!(out.status.success(), "vm{i}");
            ok += 1;
        }
    }
    assert_eq!(ok, 19);
    let gc = n.ok(&["gc"]);
    eprintln!("the survivors recovered {recovered} things; gc after them: {gc:?}");
    assert!(gc.iter().all(|l| l["removed"] == true), "{gc:?}");
    n.assert_no_leaks("after gc");
    let leases = n.leases();
    let ips: BTreeSet<_> = leases.iter().map(|l| l["ip"].to_string()).collect();
    assert_eq!(ips.len(), leases.len(), "unique addresses");
    for l in &leases {
        n.ok(&["tap", "release", "--vm", l["vm"].as_str().unwrap()]);
    }
    n.ok(&["teardown"]);
    assert_eq!(n.links(), vec!["lo"]);
    assert!(n.tmp_files().is_empty(), "{:?}", n.tmp_files());
}
