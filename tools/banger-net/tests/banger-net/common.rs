//! A banger home inside a network namespace, banger-net run there, and
//! namespaces that stand in for guests on the bridge.

use banger_testkit::{poll, require_root, require_tool, Home, NetNs};
use serde_json::Value;
use std::process::{Command, Output};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_banger-net");

pub struct Net {
    pub ns: NetNs,
    pub home: Home,
}

impl Net {
    pub fn new() -> Net {
        let n = Net {
            ns: NetNs::new(),
            home: Home::new(),
        };
        n.config(r#"{"pool_size": 2}"#);
        n
    }

    pub fn config(&self, json: &str) {
        let dir = self.home.path().join("config/banger");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("config.json"), json).unwrap();
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = self.ns.command(BIN);
        self.home.apply(&mut c);
        c.args(args);
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Run, expect success, return the JSON lines.
    pub fn ok(&self, args: &[&str]) -> Vec<Value> {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "banger-net {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        lines(&out)
    }

    pub fn code(&self, args: &[&str]) -> (i32, String) {
        let out = self.run(args);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    pub fn links(&self) -> Vec<String> {
        self.ns
            .sh("ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1")
            .lines()
            .map(String::from)
            .collect()
    }

    pub fn leases(&self) -> Vec<Value> {
        self.ok(&["lease", "list"])
    }
}

pub fn lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

/// Root, ip and nft: every guest's lease comes with banger's filter.
pub fn gated(test: &str) -> bool {
    require_root(test) && require_tool(test, "ip") && require_tool(test, "nft")
}

impl Net {
    /// What banger's counters have dropped so far (`status`'s filter line).
    pub fn dropped(&self) -> Value {
        let st = self.ok(&["status"]);
        let f = st
            .iter()
            .find(|s| s["kind"] == "filter")
            .expect("status has a filter line");
        f["dropped"].clone()
    }

    pub fn dropped_n(&self, counter: &str) -> u64 {
        self.dropped()[counter]
            .as_u64()
            .unwrap_or_else(|| panic!("no counter {counter}: {}", self.dropped()))
    }

    /// A namespace standing in for VM `vm`: a lease (`acquire` args
    /// added), and a veth whose bridge end takes the lease's TAP name, so
    /// the filter treats it as that TAP, with the lease's MAC and address
    /// on the guest's eth0.
    pub fn guest(&self, vm: &str, acquire: &[&str]) -> Guest {
        let mut args = vec!["tap", "acquire", "--vm", vm];
        args.extend_from_slice(acquire);
        let l = self.ok(&args)[0].clone();
        let s = |k: &str| l[k].as_str().unwrap().to_string();
        let (tap, ip, mac) = (s("tap"), s("ip"), s("mac"));
        let ns = NetNs::new();
        self.ns.sh(&format!("ip link del {tap}"));
        self.ns.veth(&tap, &ns, "eth0");
        self.ns.sh(&format!("ip link set {tap} master banger0 up"));
        ns.sh(&format!(
            "ip link set eth0 address {mac} && ip addr add {ip}/24 dev eth0 && ip route add default via 172.30.0.1"
        ));
        // Again: the same lease, its isolation now set on the veth.
        self.ok(&args);
        Guest { ns, ip, mac, tap }
    }

    /// The bridge's own MAC (the gateway's, as guests see it).
    pub fn bridge_mac(&self) -> String {
        self.ns
            .sh("cat /sys/class/net/banger0/address")
            .trim()
            .to_string()
    }

    /// An HTTP server in the host namespace on 0.0.0.0:PORT, up when this
    /// returns; killed on drop.
    pub fn http_server(&self, port: u16) -> Server {
        server(&self.ns, "0.0.0.0", port, self.home.path())
    }
}

pub struct Guest {
    pub ns: NetNs,
    pub ip: String,
    pub mac: String,
    pub tap: String,
}

impl Guest {
    /// Whether `curl http://ADDR/` gets an answer within 2 s.
    pub fn fetch(&self, url: &str) -> bool {
        self.ns
            .try_sh(&format!(
                "curl -s --connect-timeout 2 -m 3 -o /dev/null {url}"
            ))
            .status
            .success()
    }

    /// One ICMP echo to `addr` and its reply within 1.5 s.
    pub fn ping(&self, addr: &str) -> bool {
        ping(&self.ns, addr)
    }

    /// One UDP datagram `msg` to `to` (ADDR:PORT).
    pub fn send_udp(&self, to: &str, msg: &str) {
        let (addr, port) = to.rsplit_once(':').unwrap();
        let st = self
            .ns
            .command("python3")
            .args([
                "-c",
                "import socket, sys; socket.socket(2, 2).sendto(sys.argv[3].encode(), (sys.argv[1], int(sys.argv[2])))",
                addr,
                port,
                msg,
            ])
            .status()
            .unwrap();
        assert!(st.success());
    }

    /// Whether the gateway's DNS server answers `NAME.vm` (any answer).
    pub fn dig(&self, name: &str) -> String {
        dig(&self.ns, name)
    }
}

/// dig @172.30.0.1 NAME: its output, or "" without an answer.
pub fn dig(ns: &NetNs, name: &str) -> String {
    let out = ns.try_sh(&format!(
        "dig -p 53 @172.30.0.1 +time=1 +tries=1 +short {name}"
    ));
    if out.status.success() {
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    } else {
        String::new()
    }
}

/// ping without iputils: a raw ICMP socket from python3.
const PING: &str = r#"
import socket, struct, sys, time
dst = sys.argv[1]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
def csum(b):
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    t = (t >> 16) + (t & 0xffff)
    t += t >> 16
    return ~t & 0xffff
p = struct.pack("!BBHHH", 8, 0, 0, 4242, 1) + b"banger"
p = p[:2] + struct.pack("!H", csum(p)) + p[4:]
s.sendto(p, (dst, 0))
end = time.time() + 1.5
while time.time() < end:
    s.settimeout(max(end - time.time(), 0.01))
    try:
        data, addr = s.recvfrom(1500)
    except socket.timeout:
        break
    if addr[0] == dst and data[20] == 0:
        sys.exit(0)
sys.exit(1)
"#;

pub fn ping(ns: &NetNs, addr: &str) -> bool {
    ns.command("python3")
        .args(["-c", PING, addr])
        .status()
        .unwrap()
        .success()
}

pub struct Server {
    child: std::process::Child,
    pub log: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A UDP listener that logs `SOURCE PAYLOAD` per datagram.
pub struct Sink {
    _child: Server,
}

impl Sink {
    pub fn received(&self) -> String {
        std::fs::read_to_string(&self._child.log).unwrap_or_default()
    }
}

pub fn udp_sink(ns: &NetNs, bind: &str, port: u16, dir: &std::path::Path) -> Sink {
    const PY: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
f = open(sys.argv[3], "a", buffering=1)
f.write("ready\n")
while True:
    d, a = s.recvfrom(2048)
    f.write("%s %s\n" % (a[0], d.decode(errors="replace")))
"#;
    let log = dir.join(format!("udp-{port}.log"));
    let child = ns
        .command("python3")
        .args(["-c", PY, bind, &port.to_string()])
        .arg(&log)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let ready = poll(Duration::from_secs(20), || {
        std::fs::read_to_string(&log)
            .is_ok_and(|t| t.contains("ready"))
            .then_some(())
    });
    assert!(ready.is_some(), "UDP sink on {bind}:{port} did not come up");
    Sink {
        _child: Server { child, log },
    }
}

/// python3's http.server in `ns` on BIND:PORT, polled until it answers.
pub fn server(ns: &NetNs, bind: &str, port: u16, dir: &std::path::Path) -> Server {
    let log = dir.join(format!("http-{port}.log"));
    let child = ns
        .command("python3")
        .args(["-u", "-m", "http.server", &port.to_string(), "--bind", bind])
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let local = if bind == "0.0.0.0" { "127.0.0.1" } else { bind };
    let ready = poll(Duration::from_secs(20), || {
        ns.try_sh(&format!("curl -s -o /dev/null http://{local}:{port}/"))
            .status
            .success()
            .then_some(())
    });
    assert!(
        ready.is_some(),
        "http server on {bind}:{port} did not come up"
    );
    Server { child, log }
}
