//! The .vm DNS server: A records for NAME.vm from the leases, NXDOMAIN for
//! unknown .vm names, an empty answer for other types of known names, and
//! everything else forwarded to the host's resolvers (or REFUSED). It
//! answers only the guests (the subnet) and the host itself (loopback):
//! anything else that can route to the gateway gets nothing, and no
//! recursive forwarder. (The filter drops such queries before they get
//! here; this holds without it.)

use crate::netstate::NetState;
use banger_lib::{Error, Result};
use nix::errno::Errno;
use simple_dns::{
    rdata::{RData, A},
    Packet, PacketFlag, ResourceRecord, CLASS, QTYPE, RCODE, TYPE,
};
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// TTL of .vm answers: short, since leases come and go.
const TTL: u32 = 5;
/// Forwarded queries in flight at once; more get SERVFAIL.
const MAX_FORWARDS: usize = 64;

/// What to do with one datagram.
#[derive(Debug, PartialEq)]
pub enum Action {
    Reply(Vec<u8>),
    Forward,
    Drop,
}

/// The leases, re-read when net.json changes (it is replaced by rename, so
/// its inode and mtime change with every write).
pub struct Leases {
    path: PathBuf,
    stamp: Option<(u64, i64, i64)>,
    names: HashMap<String, Ipv4Addr>,
}

impl Leases {
    pub fn new(path: PathBuf) -> Leases {
        Leases {
            path,
            stamp: None,
            names: HashMap::new(),
        }
    }

    fn refresh(&mut self) {
        use std::os::unix::fs::MetadataExt;
        let stamp = std::fs::metadata(&self.path)
            .ok()
            .map(|m| (m.ino(), m.mtime(), m.mtime_nsec()));
        if stamp == self.stamp {
            return;
        }
        self.stamp = stamp;
        let parsed = std::fs::read_to_string(&self.path)
            .ok()
            .and_then(|t| serde_json::from_str::<NetState>(&t).ok());
        // A missing file means no leases; an unreadable one keeps the last.
        match parsed {
            Some(st) => {
                self.names = st.leases.into_iter().map(|l| (l.vm, l.ip)).collect();
            }
            None if stamp.is_none() => self.names.clear(),
            None => {}
        }
    }

    pub fn lookup(&mut self, vm: &str) -> Option<Ipv4Addr> {
        self.refresh();
        self.names.get(vm).copied()
    }
}

/// A bare error reply for a query we could not parse: its id and opcode
/// echoed, FORMERR, no sections.
fn formerr(query: &[u8]) -> Action {
    if query.len() < 12 || query[2] & 0x80 != 0 {
        return Action::Drop;
    }
    let mut r = vec![0u8; 12];
    r[0] = query[0];
    r[1] = query[1];
    r[2] = 0x80 | (query[2] & 0x79);
    r[3] = 0x01;
    Action::Reply(r)
}

/// The header-only NOTIMP reply to a request with an opcode other than
/// QUERY (IQUERY, STATUS, NOTIFY, UPDATE...): id, opcode and RD echoed.
fn notimp(query: &[u8]) -> Action {
    let mut r = vec![0u8; 12];
    r[0] = query[0];
    r[1] = query[1];
    r[2] = 0x80 | (query[2] & 0x79);
    r[3] = 0x04;
    Action::Reply(r)
}

/// Answer one query datagram.
pub fn answer(
    query: &[u8],
    lookup: &mut dyn FnMut(&str) -> Option<Ipv4Addr>,
    forward: bool,
) -> Action {
    // Decided on the raw header: a request with another opcode need not
    // parse as a query at all.
    if query.len() >= 12 && query[2] & 0x80 == 0 && (query[2] >> 3) & 0x0f != 0 {
        return notimp(query);
    }
    let Ok(q) = Packet::parse(query) else {
        return formerr(query);
    };
    if q.has_flags(PacketFlag::RESPONSE) {
        return Action::Drop;
    }
    if q.questions.len() != 1 {
        return formerr(query);
    }
    let question = &q.questions[0];
    let name = question.qname.to_string().to_ascii_lowercase();
    let name = name.trim_end_matches('.');
    let mut reply = Packet::new_reply(q.id());
    if q.has_flags(PacketFlag::RECURSION_DESIRED) {
        reply.set_flags(PacketFlag::RECURSION_DESIRED);
    }
    reply.questions.push(question.clone());
    let vm = if name == "vm" {
        Some("")
    } else {
        name.strip_suffix(".vm")
    };
    match vm {
        Some(vm) => {
            reply.set_flags(PacketFlag::AUTHORITATIVE_ANSWER);
            let ip = if vm.is_empty() || vm.contains('.') {
                None
            } else {
                lookup(vm)
            };
            match ip {
                None => *reply.rcode_mut() = RCODE::NameError,
                Some(ip) => {
                    if matches!(question.qtype, QTYPE::TYPE(TYPE::A) | QTYPE::ANY) {
                        reply.answers.push(ResourceRecord::new(
                            question.qname.clone(),
                            CLASS::IN,
                            TTL,
                            RData::A(A::from(ip)),
                        ));
                    }
                }
            }
        }
        None if forward => return Action::Forward,
        None => *reply.rcode_mut() = RCODE::Refused,
    }
    match reply.build_bytes_vec() {
        Ok(b) => Action::Reply(b),
        Err(_) => formerr(query),
    }
}

/// A SERVFAIL for a query that could not be forwarded.
fn servfail(query: &[u8]) -> Option<Vec<u8>> {
    let q = Packet::parse(query).ok()?;
    let mut r = Packet::new_reply(q.id());
    r.questions = q.questions.clone();
    *r.rcode_mut() = RCODE::ServerFailure;
    r.build_bytes_vec().ok()
}

/// Whether a query from `peer` is one to answer: from a guest (the
/// subnet, which the bridge filter keeps to the guests) or from this host.
pub fn answers(cfg: &crate::netcfg::NetCfg, peer: SocketAddr) -> bool {
    match peer.ip() {
        std::net::IpAddr::V4(a) => cfg.contains(a) || a.is_loopback(),
        std::net::IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(a) => cfg.contains(a) || a.is_loopback(),
            None => a.is_loopback(),
        },
    }
}

/// The host's resolvers, re-read when resolv.conf changes (a laptop that
/// moves networks, a VPN, systemd-resolved rewriting it).
pub struct Resolvers {
    path: PathBuf,
    me: SocketAddr,
    stamp: Option<(u64, i64, i64)>,
    list: Arc<Vec<SocketAddr>>,
}

impl Resolvers {
    pub fn new(path: PathBuf, me: SocketAddr) -> Resolvers {
        Resolvers {
            path,
            me,
            stamp: None,
            list: Arc::new(Vec::new()),
        }
    }

    pub fn current(&mut self) -> Arc<Vec<SocketAddr>> {
        use std::os::unix::fs::MetadataExt;
        let stamp = std::fs::metadata(&self.path)
            .ok()
            .map(|m| (m.ino(), m.mtime(), m.mtime_nsec()));
        if stamp != self.stamp || stamp.is_none() {
            self.stamp = stamp;
            self.list = Arc::new(upstreams(&self.path, self.me));
        }
        self.list.clone()
    }
}

/// The nameservers of /etc/resolv.conf, minus ourselves.
pub fn upstreams(resolv_conf: &Path, me: SocketAddr) -> Vec<SocketAddr> {
    let text = std::fs::read_to_string(resolv_conf).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("nameserver")).then(|| w.next()).flatten()
        })
        .filter_map(|a| a.parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .filter(|a| *a != me)
        .collect()
}

fn forward_one(query: &[u8], upstreams: &[SocketAddr]) -> Option<Vec<u8>> {
    for up in upstreams {
        let bind: SocketAddr = if up.is_ipv4() {
            "0.0.0.0:0".parse().unwrap()
        } else {
            "[::]:0".parse().unwrap()
        };
        let Ok(s) = UdpSocket::bind(bind) else {
            continue;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
        if s.connect(up).is_err() || s.send(query).is_err() {
            continue;
        }
        let mut buf = [0u8; 4096];
        if let Ok(n) = s.recv(&mut buf) {
            if n >= 2 && buf[..2] == query[..2] {
                return Some(buf[..n].to_vec());
            }
        }
    }
    None
}

/// Bind `listen`, write the pid file once bound, and answer forever.
pub fn serve(
    cfg: &crate::netcfg::NetCfg,
    listen: SocketAddr,
    forward: bool,
    pid_file: Option<&Path>,
) -> Result<()> {
    let user = crate::dnspriv::target()?;
    let sock = UdpSocket::bind(listen).map_err(|e| bind_error(listen, e))?;
    if let Some(p) = pid_file {
        crate::dnsd::write_pid(p, listen, forward)?;
    }
    let mut resolvers = Resolvers::new(PathBuf::from("/etc/resolv.conf"), listen);
    let mut leases = crate::dnspriv::drop_privileges(user, crate::netstate::path())?;
    eprintln!("banger-net: DNS for .vm on {listen}");
    let inflight = Arc::new(AtomicUsize::new(0));
    let sock = Arc::new(sock);
    let mut buf = [0u8; 4096];
    loop {
        let (n, peer) = match sock.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(banger_lib::error::io("receiving a DNS query", e)),
        };
        if !answers(cfg, peer) {
            continue;
        }
        let query = buf[..n].to_vec();
        // A bug in parsing one hostile packet must not take the server down.
        let action = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            answer(&query, &mut |vm| leases.lookup(vm), forward)
        }))
        .unwrap_or(Action::Drop);
        match action {
            Action::Reply(r) => {
                let _ = sock.send_to(&r, peer);
            }
            Action::Drop => {}
            Action::Forward => {
                if inflight.fetch_add(1, Ordering::SeqCst) >= MAX_FORWARDS {
                    inflight.fetch_sub(1, Ordering::SeqCst);
                    if let Some(r) = servfail(&query) {
                        let _ = sock.send_to(&r, peer);
                    }
                    continue;
                }
                let (sock, ups, inflight) = (sock.clone(), resolvers.current(), inflight.clone());
                std::thread::spawn(move || {
                    if let Some(r) = forward_one(&query, &ups).or_else(|| servfail(&query)) {
                        let _ = sock.send_to(&r, peer);
                    }
                    inflight.fetch_sub(1, Ordering::SeqCst);
                });
            }
        }
    }
}

fn bind_error(listen: SocketAddr, e: std::io::Error) -> Error {
    let msg = format!("cannot listen on {listen}: {e}");
    match e.raw_os_error().map(Errno::from_raw) {
        Some(Errno::EADDRINUSE) => Error::conflict(msg).with_hint(
            "another DNS server uses that port; stop it, or set `dns_port` in config.json / pass --listen",
        ),
        Some(Errno::EADDRNOTAVAIL) => Error::prereq(msg)
            .with_hint("the bridge address is not configured: run `banger-net setup`"),
        Some(Errno::EACCES | Errno::EPERM) => {
            Error::prereq(msg).with_hint("ports below 1024 need root (or CAP_NET_BIND_SERVICE)")
        }
        _ => Error::failed(msg),
    }
}

/// Build a query (tests).
#[cfg(test)]
pub fn query(id: u16, name: &str, qtype: TYPE) -> Vec<u8> {
    let mut p = Packet::new_query(id);
    p.questions.push(simple_dns::Question::new(
        simple_dns::Name::new_unchecked(name),
        QTYPE::TYPE(qtype),
        simple_dns::QCLASS::CLASS(CLASS::IN),
        false,
    ));
    p.build_bytes_vec().expect("a simple query builds")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(bytes: &[u8], forward: bool) -> Action {
        answer(
            bytes,
            &mut |vm| (vm == "web").then_some(Ipv4Addr::new(172, 30, 0, 2)),
            forward,
        )
    }

    fn reply(a: Action) -> Packet<'static> {
        let Action::Reply(b) = a else {
            panic!("expected a reply, got {a:?}")
        };
        let b: &'static [u8] = Box::leak(b.into_boxed_slice());
        Packet::parse(b).unwrap()
    }

    #[test]
    fn other_opcodes_are_notimp() {
        for opcode in [1u8, 2, 4, 5, 15] {
            let mut q = query(9, "web.vm", TYPE::A);
            q[2] = (q[2] & !0x78) | (opcode << 3);
            let Action::Reply(r) = ask(&q, true) else {
                panic!("opcode {opcode}: no reply")
            };
            assert_eq!(r.len(), 12, "opcode {opcode}: header only");
            assert_eq!(&r[..2], &q[..2], "id echoed");
            assert_eq!(r[2] & 0x80, 0x80, "a response");
            assert_eq!((r[2] >> 3) & 0x0f, opcode, "opcode echoed");
            assert_eq!(r[3] & 0x0f, 4, "NOTIMP");
        }
        // A response with any opcode is still dropped, never answered.
        let mut q = query(9, "web.vm", TYPE::A);
        q[2] |= 0x80 | (5 << 3);
        assert_eq!(ask(&q, true), Action::Drop);
    }

    #[test]
    fn a_record_for_known_vm() {
        let r = reply(ask(&query(7, "web.vm", TYPE::A), true));
        assert_eq!(r.id(), 7);
        assert_eq!(r.rcode(), RCODE::NoError);
        assert_eq!(r.answers.len(), 1);
        assert_eq!(
            r.answers[0].rdata,
            RData::A(A::from(Ipv4Addr::new(172, 30, 0, 2)))
        );
        // Case does not matter in DNS.
        assert_eq!(
            reply(ask(&query(8, "WEB.VM", TYPE::A), true)).answers.len(),
            1
        );
    }

    #[test]
    fn aaaa_empty_unknown_nxdomain() {
        let r = reply(ask(&query(1, "web.vm", TYPE::AAAA), true));
        assert_eq!(r.rcode(), RCODE::NoError);
        assert!(r.answers.is_empty());
        for n in ["nope.vm", "a.web.vm", "vm"] {
            let r = reply(ask(&query(2, n, TYPE::A), true));
            assert_eq!(r.rcode(), RCODE::NameError, "{n}");
        }
    }

    #[test]
    fn other_names_forward_or_refuse() {
        assert_eq!(
            ask(&query(3, "example.org", TYPE::A), true),
            Action::Forward
        );
        let r = reply(ask(&query(3, "example.org", TYPE::A), false));
        assert_eq!(r.rcode(), RCODE::Refused);
    }

    #[test]
    fn a_dot_inside_a_label_is_not_a_vm_name() {
        // One label "web.vm" (the dot is a byte in it), not "web" + "vm":
        // simple-dns shows it as `web\.vm`, so it never gets web's address.
        let mut q = query(4, "web.vm", TYPE::A);
        q[12] = 6;
        q[16] = b'.';
        for forward in [true, false] {
            let r = reply(ask(&q, forward));
            assert!(r.answers.is_empty(), "{:?}", r.answers);
        }
    }

    #[test]
    fn malformed_packets_never_panic() {
        let good = query(9, "web.vm", TYPE::A);
        let mut corpus: Vec<Vec<u8>> = vec![vec![], vec![0], vec![0xff; 11], vec![0xff; 12]];
        for n in 0..good.len() {
            corpus.push(good[..n].to_vec());
        }
        // qdcount 65535 with one question.
        let mut huge = good.clone();
        huge[4] = 0xff;
        huge[5] = 0xff;
        corpus.push(huge);
        // A name that points at itself, and two that point at each other.
        let mut header = good[..12].to_vec();
        header.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        corpus.push(header);
        let mut pair = good[..12].to_vec();
        pair.extend_from_slice(&[1, b'a', 0xc0, 16, 0xc0, 12, 0, 1, 0, 1]);
        corpus.push(pair);
        // A label length past the end.
        let mut long = good[..12].to_vec();
        long.extend_from_slice(&[63, b'a', b'b']);
        corpus.push(long);
        for p in &corpus {
            match ask(p, true) {
                Action::Reply(r) => assert!(r.len() >= 12),
                Action::Drop | Action::Forward => {}
            }
        }
        // A short header is dropped, a garbled body gets FORMERR.
        assert_eq!(ask(&[1, 2, 3], true), Action::Drop);
        let mut bad = good[..12].to_vec();
        bad.extend_from_slice(&[63, b'a']);
        let Action::Reply(r) = ask(&bad, true) else {
            panic!()
        };
        assert_eq!(r[3] & 0x0f, 1);
    }

    #[test]
    fn upstreams_from_resolv_conf() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("resolv.conf");
        std::fs::write(
            &p,
            "# c\nnameserver 10.0.0.53\nnameserver 172.30.0.1\nsearch x\nnameserver ::1\n",
        )
        .unwrap();
        let me: SocketAddr = "172.30.0.1:53".parse().unwrap();
        let ups = upstreams(&p, me);
        assert_eq!(
            ups,
            vec![
                "10.0.0.53:53".parse::<SocketAddr>().unwrap(),
                "[::1]:53".parse().unwrap()
            ]
        );
    }

    #[test]
    fn only_guests_and_the_host_are_answered() {
        let cfg =
            crate::netcfg::NetCfg::from_parts("banger0", "172.30.0.0/24", "172.30.0.1", 53, 1)
                .unwrap();
        for (peer, yes) in [
            ("172.30.0.2:5000", true),
            ("172.30.0.1:5000", true),
            ("127.0.0.1:5000", true),
            ("[::1]:5000", true),
            ("[::ffff:172.30.0.9]:5000", true),
            ("10.99.0.3:5000", false),
            ("172.31.0.2:5000", false),
            ("[fe80::1]:5000", false),
            ("[::ffff:10.0.0.1]:5000", false),
        ] {
            assert_eq!(answers(&cfg, peer.parse().unwrap()), yes, "{peer}");
        }
    }

    #[test]
    fn resolvers_are_read_again_when_resolv_conf_changes() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("resolv.conf");
        let me: SocketAddr = "172.30.0.1:53".parse().unwrap();
        let mut r = Resolvers::new(p.clone(), me);
        assert!(r.current().is_empty());
        std::fs::write(&p, "nameserver 10.0.0.53\n").unwrap();
        assert_eq!(
            *r.current(),
            ["10.0.0.53:53".parse::<SocketAddr>().unwrap()]
        );
        // Replaced by rename, as resolvconf and NetworkManager do.
        let new = t.path().join("new");
        std::fs::write(&new, "nameserver 10.1.1.1\n").unwrap();
        std::fs::rename(&new, &p).unwrap();
        assert_eq!(*r.current(), ["10.1.1.1:53".parse::<SocketAddr>().unwrap()]);
    }

    #[test]
    fn leases_reload_when_file_changes() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("net.json");
        let mut l = Leases::new(p.clone());
        assert_eq!(l.lookup("web"), None);
        let mut st = NetState::default();
        st.leases.push(crate::netstate::Lease {
            vm: "web".into(),
            tap: "bgr-0".into(),
            ip: Ipv4Addr::new(172, 30, 0, 2),
            prefix: 24,
            gateway: Ipv4Addr::new(172, 30, 0, 1),
            mac: crate::netcfg::mac_for("web"),
            dns: Ipv4Addr::new(172, 30, 0, 1),
            nat: false,
            isolated: true,
        });
        banger_lib::state::store(&p, &st).unwrap();
        assert_eq!(l.lookup("web"), Some(Ipv4Addr::new(172, 30, 0, 2)));
        st.leases.clear();
        banger_lib::state::store(&p, &st).unwrap();
        assert_eq!(l.lookup("web"), None);
    }
}
