//! `POST /identity`: give a guest resumed from another VM's memory snapshot
//! its own identity. Such a clone wakes with the source's clock, entropy
//! pool, address, MAC, hostname, machine-id and ssh host keys; the host
//! sends the clone's own right after the restore, before anything talks
//! to it, and pins the new host keys this answers with.
//!
//! Everything is checked before anything changes. The steps then run in a
//! fixed order and stop at the first failure, whose name the 500 carries.
//! What writes /etc runs as fixed `/bin/sh` scripts in pid 1's mount
//! namespace, like `/init` (init.rs), since the agent's own view of the
//! system is read-only; the request's values reach them only as
//! environment variables, checked here, never as script text.

use crate::init::{InitRequest, Ran};
use crate::power::System;
use crate::routes::Reply;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{self, Read};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// Far more than any valid request (the entropy, at most 1 KiB of hex, is
/// most of it); the HTTP layer's limit is sized for `/init`'s scripts.
pub const MAX_BODY: usize = 16 * 1024;
const MIN_ENTROPY: usize = 32;
const MAX_ENTROPY: usize = 512;
const MAX_DNS: usize = 3;
/// An ed25519 key in OpenSSH's format is about 400 base64 characters, its
/// public half 68.
const MAX_HOST_KEY: usize = 2048;
const MAX_HOST_KEY_PUB: usize = 256;
/// Base64 of the length-prefixed "ssh-ed25519" that starts an ed25519
/// public key blob.
const ED25519_PUB_PREFIX: &str = "AAAAC3NzaC1lZDI1NTE5";
/// /etc/hosts is read whole into an environment variable.
const MAX_HOSTS: u64 = 64 * 1024;
/// Of a failed script's output, what goes into the 500 (its end, where
/// the error is).
const MAX_ERROR_OUTPUT: usize = 2048;

/// A checked request.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub hostname: String,
    pub interface: String,
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub mac: String,
    pub machine_id: String,
    pub time_ns: u64,
    pub entropy: Vec<u8>,
    /// The new ssh host key, made by the host (which pays no emulation for
    /// it); None: the script makes one with ssh-keygen (an older host).
    pub host_key: Option<HostKey>,
}

/// An ed25519 host key, each half the base64 of its OpenSSH blob on one
/// line (the private key's PEM body without its line breaks, which
/// OpenSSH reads as well).
#[derive(Debug, Clone, PartialEq)]
pub struct HostKey {
    pub private: String,
    pub public: String,
}

/// The body as sent, each field still untyped: serde's type errors do not
/// say which field they are about, and the 400 must.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    hostname: Option<Value>,
    interface: Option<Value>,
    address: Option<Value>,
    prefix: Option<Value>,
    gateway: Option<Value>,
    dns: Option<Value>,
    mac: Option<Value>,
    machine_id: Option<Value>,
    time_ns: Option<Value>,
    entropy: Option<Value>,
    host_key: Option<Value>,
}

/// Read and check a request body; the error names the field.
pub fn parse(body: &[u8]) -> Result<Identity, String> {
    if body.len() > MAX_BODY {
        return Err(format!("identity request larger than {MAX_BODY} bytes"));
    }
    let raw: Raw =
        serde_json::from_slice(body).map_err(|e| format!("bad identity request: {e}"))?;
    let hostname = string("hostname", raw.hostname)?;
    if !is_hostname(&hostname) {
        return Err(format!(
            "hostname: {hostname:?} is not 1 to 63 of a-z, 0-9 and '-', \
             starting and ending with a letter or digit"
        ));
    }
    let interface = match raw.interface {
        None | Some(Value::Null) => "eth0".to_string(),
        v => string("interface", v)?,
    };
    if !is_interface(&interface) {
        return Err(format!(
            "interface: {interface:?} is not 1 to 15 of a-z, A-Z, 0-9, '_', '.' and '-'"
        ));
    }
    let address = ipv4("address", &string("address", raw.address)?)?;
    let prefix = match raw.prefix.as_ref().and_then(Value::as_u64) {
        Some(p @ 1..=32) => p as u8,
        _ if raw.prefix.is_none() => return Err("prefix: missing".into()),
        _ => return Err("prefix: must be an integer from 1 to 32".into()),
    };
    let gateway = match raw.gateway {
        None | Some(Value::Null) => None,
        v => Some(ipv4("gateway", &string("gateway", v)?)?),
    };
    let dns = match raw.dns {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) if a.len() <= MAX_DNS => a
            .into_iter()
            .map(|v| ipv4("dns", v.as_str().ok_or("dns: entries must be strings")?))
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(format!(
                "dns: must be a list of at most {MAX_DNS} addresses"
            ))
        }
    };
    let mac = string("mac", raw.mac)?;
    if !is_unicast_mac(&mac) {
        return Err(format!(
            "mac: {mac:?} is not a unicast MAC address in lowercase (like 02:ab:cd:00:00:05)"
        ));
    }
    let machine_id = string("machine_id", raw.machine_id)?;
    if machine_id.len() != 32
        || !machine_id
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        || machine_id.bytes().all(|b| b == b'0')
    {
        return Err(format!(
            "machine_id: {machine_id:?} is not 32 lowercase hex digits, not all zero"
        ));
    }
    let time_ns = match raw.time_ns.as_ref().and_then(Value::as_u64) {
        Some(t) => t,
        None if raw.time_ns.is_none() => return Err("time_ns: missing".into()),
        None => return Err("time_ns: must be an unsigned integer (unix nanoseconds)".into()),
    };
    let entropy = hex(&string("entropy", raw.entropy)?)
        .filter(|b| (MIN_ENTROPY..=MAX_ENTROPY).contains(&b.len()))
        .ok_or_else(|| format!("entropy: must be {MIN_ENTROPY} to {MAX_ENTROPY} bytes in hex"))?;
    let host_key = match raw.host_key {
        None | Some(Value::Null) => None,
        Some(v) => Some(host_key(v)?),
    };
    Ok(Identity {
        hostname,
        interface,
        address,
        prefix,
        gateway,
        dns,
        mac,
        machine_id,
        time_ns,
        entropy,
        host_key,
    })
}

/// `{"private": B64, "public": B64}`: an ed25519 key, each half checked
/// as base64 of a bounded size, the public one as ed25519's.
fn host_key(v: Value) -> Result<HostKey, String> {
    let bad = || {
        "host_key: must be {\"private\": BASE64, \"public\": BASE64}, an ed25519 \
         key's OpenSSH blobs"
            .to_string()
    };
    let Value::Object(mut m) = v else {
        return Err(bad());
    };
    let mut half = |k: &str, max: usize| match m.remove(k) {
        Some(Value::String(s)) if is_base64(&s) && s.len() <= max => Ok(s),
        _ => Err(bad()),
    };
    let private = half("private", MAX_HOST_KEY)?;
    let public = half("public", MAX_HOST_KEY_PUB)?;
    if !m.is_empty() || !public.starts_with(ED25519_PUB_PREFIX) {
        return Err(bad());
    }
    Ok(HostKey { private, public })
}

fn is_base64(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    !body.is_empty()
        && s.len() - body.len() <= 2
        && s.len().is_multiple_of(4)
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

fn string(field: &str, v: Option<Value>) -> Result<String, String> {
    match v {
        Some(Value::String(s)) => Ok(s),
        None | Some(Value::Null) => Err(format!("{field}: missing")),
        Some(_) => Err(format!("{field}: must be a string")),
    }
}

fn ipv4(field: &str, s: &str) -> Result<Ipv4Addr, String> {
    s.parse()
        .map_err(|_| format!("{field}: {s:?} is not an IPv4 address"))
}

/// An RFC 1123 label, lowercase: what /etc/hostname and DHCP take as is.
fn is_hostname(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-'))
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// IFNAMSIZ less the NUL; the characters limited further than the kernel
/// does so a name is never an option or a path to ip(8).
fn is_interface(s: &str) -> bool {
    (1..=15).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// Six lowercase hex pairs; a multicast or all-zero address is one the
/// kernel refuses for an interface.
fn is_unicast_mac(s: &str) -> bool {
    let pairs: Vec<&str> = s.split(':').collect();
    let hex_pair =
        |p: &&str| p.len() == 2 && p.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if pairs.len() != 6 || !pairs.iter().all(hex_pair) {
        return false;
    }
    let first = u8::from_str_radix(pairs[0], 16).unwrap_or(1);
    first & 1 == 0 && pairs.iter().any(|p| *p != "00")
}

fn hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// Where the reply's files are, so tests can point elsewhere.
pub struct Files {
    pub hosts: PathBuf,
    pub ssh: PathBuf,
}

impl Files {
    pub fn real() -> Files {
        Files {
            hosts: "/etc/hosts".into(),
            ssh: crate::hostkeys::DIR.into(),
        }
    }
}

/// The whole endpoint: check, apply, answer.
pub fn handle(body: &[u8], sys: &dyn System, files: &Files) -> Reply {
    let id = match parse(body) {
        Ok(id) => id,
        Err(e) => return Reply::json(400, json!({"status": "error", "error": e})),
    };
    if let Err((step, e)) = apply(&id, sys, &files.hosts) {
        return Reply::json(500, json!({"status": "error", "step": step, "error": e}));
    }
    Reply::json(
        200,
        json!({"status": "ok", "hostname": id.hostname, "address": id.address.to_string(),
               "keys": crate::hostkeys::collect(&files.ssh).keys}),
    )
}

/// Run every step in order; the first to fail stops the rest.
pub fn apply(id: &Identity, sys: &dyn System, hosts: &Path) -> Result<(), (&'static str, String)> {
    sys.set_clock(id.time_ns)
        .map_err(|e| ("clock", format!("cannot set the clock: {e}")))?;
    sys.add_entropy(&id.entropy)
        .map_err(|e| ("entropy", format!("cannot add entropy: {e}")))?;
    let old = read_hosts(hosts)
        .map_err(|e| ("hostname", format!("cannot read {}: {e}", hosts.display())))?;
    let mut env = env(id);
    env.insert("BANGER_HOSTS".into(), rewrite_hosts(&old, &id.hostname));
    run_script(sys, env)
}

/// What every step's script is given: the checked values, in the forms
/// the commands take.
pub fn env(id: &Identity) -> BTreeMap<String, String> {
    let dns: Vec<String> = id.dns.iter().map(Ipv4Addr::to_string).collect();
    BTreeMap::from(
        [
            ("BANGER_HOSTNAME", id.hostname.clone()),
            ("BANGER_IF", id.interface.clone()),
            ("BANGER_ADDR", id.address.to_string()),
            ("BANGER_PREFIX", id.prefix.to_string()),
            (
                "BANGER_GW",
                id.gateway.map(|g| g.to_string()).unwrap_or_default(),
            ),
            ("BANGER_DNS", dns.join(" ")),
            ("BANGER_MAC", id.mac.clone()),
            ("BANGER_MACHINE_ID", id.machine_id.clone()),
            (
                "BANGER_HOSTKEY",
                id.host_key
                    .as_ref()
                    .map(|k| k.private.clone())
                    .unwrap_or_default(),
            ),
            (
                "BANGER_HOSTKEY_PUB",
                id.host_key
                    .as_ref()
                    .map(|k| k.public.clone())
                    .unwrap_or_default(),
            ),
        ]
        .map(|(k, v)| (k.to_string(), v)),
    )
}

/// `old` with its `127.0.1.1` line (Debian's name for this host) naming
/// `host` instead, added if there was none; every other line kept.
pub fn rewrite_hosts(old: &str, host: &str) -> String {
    let ours = format!("127.0.1.1 {host}\n");
    let mut out = String::with_capacity(old.len() + ours.len());
    let mut done = false;
    for line in old.lines() {
        if line.split_whitespace().next() == Some("127.0.1.1") {
            if !done {
                out.push_str(&ours);
                done = true;
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    if !done {
        out.push_str(&ours);
    }
    out
}

/// A missing file is an empty one: the rewrite then makes the line.
fn read_hosts(path: &Path) -> io::Result<String> {
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(String::new()),
        Err(e) => return Err(e),
    };
    let mut text = String::new();
    f.take(MAX_HOSTS + 1).read_to_string(&mut text)?;
    if text.len() as u64 > MAX_HOSTS {
        return Err(io::Error::other(format!("larger than {MAX_HOSTS} bytes")));
    }
    Ok(text)
}

/// The steps SCRIPT takes, in its order; each names itself first with a
/// `banger-step NAME` line on stderr.
pub const SCRIPT_STEPS: [&str; 4] = ["network", "hostname", "machine-id", "hostkeys"];

fn run_script(
    sys: &dyn System,
    env: BTreeMap<String, String>,
) -> Result<(), (&'static str, String)> {
    let req = InitRequest {
        name: "identity".into(),
        script: SCRIPT.into(),
        env,
    };
    match sys.run_init(&req) {
        Ok(Ran { exit: 0, .. }) => Ok(()),
        Ok(ran) => {
            let out = String::from_utf8_lossy(&ran.output);
            let (step, rest) = failed_step(&out);
            let rest = rest.trim_end();
            let mut from = rest.len().saturating_sub(MAX_ERROR_OUTPUT);
            while !rest.is_char_boundary(from) {
                from += 1;
            }
            Err((step, format!("exit {}: {}", ran.exit, &rest[from..])))
        }
        Err(e) => Err((
            SCRIPT_STEPS[0],
            format!("cannot run the identity script: {e}"),
        )),
    }
}

/// The step a failed SCRIPT was at (the last it named; the first when it
/// named none), and its output without the step lines.
pub fn failed_step(out: &str) -> (&'static str, String) {
    let mut step = SCRIPT_STEPS[0];
    let mut rest = String::new();
    for line in out.lines() {
        match line
            .strip_prefix("banger-step ")
            .and_then(|n| SCRIPT_STEPS.iter().find(|s| **s == n))
        {
            Some(s) => step = s,
            None => {
                rest.push_str(line);
                rest.push('\n');
            }
        }
    }
    (step, rest)
}

/// One shell for the four steps that write /etc and move the network,
/// running as few programs as it can (one `ip -batch`, builtins for the
/// rest): every process costs under emulation, and a clone waits on this.
///
/// network: the old address goes, not just gets a sibling (the source VM
/// still has it); a default route leaves with its address, so it is put
/// back; the neighbour cache holds the source's view of the bridge.
/// hostname: resolv.conf may be a symlink (systemd-resolved, resolvconf):
/// the link is replaced, not what it points at; no dns leaves it alone.
/// machine-id: D-Bus keeps its own copy where it is not a link to /etc's.
/// hostkeys: ed25519 only, as rootfs/customize.sh makes them: the host's
/// when it sent one (ssh-keygen costs about 0.25 s under TCG), the private
/// half written under umask 077 as sshd demands. Before
/// OpenSSH 9.8, the sshd that each connection re-executes loads the host
/// keys itself, so the next connection presents the new key with no
/// restart (a SIGHUP would close the listener while sshd re-execs, about
/// 0.4 s of a clone's wait under TCG). From 9.8 the listener hands its
/// keys to sshd-session, so there SIGHUP makes it re-exec (same pid) and
/// read the new key.
pub const SCRIPT: &str = r#"set -eu
step() { echo "banger-step $1" >&2; }
step network
{
    echo "link set dev $BANGER_IF address $BANGER_MAC"
    echo "addr flush dev $BANGER_IF scope global"
    echo "addr add $BANGER_ADDR/$BANGER_PREFIX dev $BANGER_IF"
    echo "link set dev $BANGER_IF up"
    if [ -n "$BANGER_GW" ]; then
        echo "route replace default via $BANGER_GW dev $BANGER_IF"
    fi
    echo "neigh flush dev $BANGER_IF"
} | ip -batch -
step hostname
printf '%s' "$BANGER_HOSTNAME" > /proc/sys/kernel/hostname
printf '%s\n' "$BANGER_HOSTNAME" > /etc/hostname
printf '%s' "$BANGER_HOSTS" > /etc/hosts
if [ -n "$BANGER_DNS" ]; then
    if [ -L /etc/resolv.conf ]; then rm -f /etc/resolv.conf; fi
    for ns in $BANGER_DNS; do
        printf 'nameserver %s\n' "$ns"
    done > /etc/resolv.conf
fi
step machine-id
printf '%s\n' "$BANGER_MACHINE_ID" > /etc/machine-id
if [ -f /var/lib/dbus/machine-id ] && [ ! -L /var/lib/dbus/machine-id ]; then
    printf '%s\n' "$BANGER_MACHINE_ID" > /var/lib/dbus/machine-id
fi
step hostkeys
rm -f /etc/ssh/ssh_host_*
if [ -n "$BANGER_HOSTKEY" ]; then
    umask 077
    printf '%s\n%s\n%s\n' "-----BEGIN OPENSSH PRIVATE KEY-----" "$BANGER_HOSTKEY" \
        "-----END OPENSSH PRIVATE KEY-----" > /etc/ssh/ssh_host_ed25519_key
    umask 022
    printf 'ssh-ed25519 %s root@%s\n' "$BANGER_HOSTKEY_PUB" "$BANGER_HOSTNAME" \
        > /etc/ssh/ssh_host_ed25519_key.pub
else
    ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/ssh_host_ed25519_key
fi
for session in /usr/lib/openssh/sshd-session /usr/libexec/sshd-session \
    /usr/libexec/openssh/sshd-session /usr/lib/ssh/sshd-session; do
    if [ -e "$session" ] && [ -f /run/sshd.pid ]; then
        read -r pid < /run/sshd.pid
        kill -HUP "$pid"
        break
    fi
done
"#;

/// clock_settime(CLOCK_REALTIME): the restored guest's clock reads the
/// moment of the snapshot.
pub fn set_clock(unix_ns: u64) -> io::Result<()> {
    let ts = nix::sys::time::TimeSpec::from(std::time::Duration::from_nanos(unix_ns));
    nix::time::clock_settime(nix::time::ClockId::CLOCK_REALTIME, ts).map_err(io::Error::from)
}

/// struct rand_pool_info with room for the largest entropy taken.
#[repr(C)]
struct RandPoolInfo {
    entropy_count: libc::c_int,
    buf_size: libc::c_int,
    buf: [u8; MAX_ENTROPY],
}

// RNDADDENTROPY is _IOW('R', 0x03, int[2]): its size is the header's, the
// buffer after it is the kernel's to read by buf_size.
nix::ioctl_write_ptr_bad!(
    rnd_add_entropy,
    nix::request_code_write!(b'R', 0x03, std::mem::size_of::<[libc::c_int; 2]>()),
    RandPoolInfo
);

/// Mix `bytes` into the pool and credit them in full: a clone shares the
/// source's pool, so until then both would draw the same "random"
/// numbers. The host is trusted to send real randomness.
pub fn add_entropy(bytes: &[u8]) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    if bytes.len() > MAX_ENTROPY {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    let len = libc::c_int::try_from(bytes.len()).map_err(|_| io::ErrorKind::InvalidInput)?;
    let mut info = RandPoolInfo {
        entropy_count: len * 8,
        buf_size: len,
        buf: [0; MAX_ENTROPY],
    };
    info.buf[..bytes.len()].copy_from_slice(bytes);
    let urandom = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/urandom")?;
    // SAFETY: `info` is a live, initialized rand_pool_info whose buf holds
    // buf_size bytes; the kernel only reads it during the call, and the
    // descriptor stays open until `urandom` drops after it.
    unsafe { rnd_add_entropy(urandom.as_raw_fd(), &raw const info) }?;
    Ok(())
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use crate::routes::fake::Fake;

    /// The order the steps run in.
    const STEPS: [&str; 6] = [
        "clock",
        "entropy",
        "network",
        "hostname",
        "machine-id",
        "hostkeys",
    ];

    pub const GOOD: &str = r#"{"hostname":"b","interface":"eth0","address":"172.16.0.5",
        "prefix":24,"gateway":"172.16.0.1","dns":["172.16.0.1","9.9.9.9"],
        "mac":"02:ab:cd:00:00:05","machine_id":"0123456789abcdef0123456789abcdef",
        "time_ns":1764700000000000000,
        "entropy":"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"}"#;

    fn good() -> serde_json::Map<String, Value> {
        match serde_json::from_str(GOOD).unwrap() {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    fn body(m: &serde_json::Map<String, Value>) -> Vec<u8> {
        serde_json::to_vec(m).unwrap()
    }

    fn files(d: &tempfile::TempDir) -> Files {
        Files {
            hosts: d.path().join("hosts"),
            ssh: d.path().into(),
        }
    }

    fn reply_json(r: &Reply) -> Value {
        serde_json::from_slice(&r.body).unwrap()
    }

    #[test]
    fn a_good_request_is_read_whole() {
        let id = parse(GOOD.as_bytes()).unwrap();
        assert_eq!(id.hostname, "b");
        assert_eq!(id.address, Ipv4Addr::new(172, 16, 0, 5));
        assert_eq!(id.prefix, 24);
        assert_eq!(id.gateway, Some(Ipv4Addr::new(172, 16, 0, 1)));
        assert_eq!(id.dns.len(), 2);
        assert_eq!(id.entropy.len(), 32);
        assert_eq!(id.time_ns, 1_764_700_000_000_000_000);
        // The optional fields, left out.
        let mut m = good();
        for k in ["interface", "gateway", "dns"] {
            m.remove(k);
        }
        let id = parse(&body(&m)).unwrap();
        assert_eq!(id.interface, "eth0");
        assert_eq!(id.gateway, None);
        assert!(id.dns.is_empty());
        assert_eq!(id.host_key, None);
        // The host's key, when it sends one.
        let mut m = good();
        m.insert("host_key".into(), host_key_json());
        let id = parse(&body(&m)).unwrap();
        assert_eq!(
            id.host_key,
            Some(HostKey {
                private: PRIVATE.into(),
                public: PUBLIC.into()
            })
        );
    }

    /// A real key's blobs (ssh-keygen -t ed25519, the PEM body on one line).
    const PRIVATE: &str = "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZWQyNTUxOQAAACBCpyLP2Xz2B6eHVxjwN//XobBVEihtUXTR44YVry8u3gAAAIh/jDTQf4w00AAAAAtzc2gtZWQyNTUxOQAAACBCpyLP2Xz2B6eHVxjwN//XobBVEihtUXTR44YVry8u3gAAAEBtOMF2toe+vlPAc0UhIo0UUWEthMfEKju2aeIRWEaLeUKnIs/ZfPYHp4dXGPA3/9ehsFUSKG1RdNHjhhWvLy7eAAAAAAECAwQF";
    const PUBLIC: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIEKnIs/ZfPYHp4dXGPA3/9ehsFUSKG1RdNHjhhWvLy7e";

    fn host_key_json() -> Value {
        json!({"private": PRIVATE, "public": PUBLIC})
    }

    #[test]
    fn every_bad_field_is_400_naming_it_and_nothing_is_applied() {
        let long = "a".repeat(64);
        let cases: &[(&str, Value)] = &[
            ("hostname", json!("")),
            ("hostname", json!(long)),
            ("hostname", json!("-b")),
            ("hostname", json!("b-")),
            ("hostname", json!("B")),
            ("hostname", json!("a.b")),
            ("hostname", json!("a b")),
            ("hostname", json!(5)),
            ("hostname", Value::Null),
            ("interface", json!("")),
            ("interface", json!("a".repeat(16))),
            ("interface", json!("eth 0")),
            ("interface", json!("eth0/x")),
            ("interface", json!(["eth0"])),
            ("address", json!("172.16.0")),
            ("address", json!("172.16.0.256")),
            ("address", json!("::1")),
            ("address", json!("172.16.0.5/24")),
            ("address", Value::Null),
            ("prefix", json!(0)),
            ("prefix", json!(33)),
            ("prefix", json!(-1)),
            ("prefix", json!("24")),
            ("prefix", json!(24.5)),
            ("prefix", Value::Null),
            ("gateway", json!("gw")),
            ("gateway", json!(1)),
            ("dns", json!(["1.1.1.1", "1.1.1.2", "1.1.1.3", "1.1.1.4"])),
            ("dns", json!(["one"])),
            ("dns", json!([1])),
            ("dns", json!("1.1.1.1")),
            ("mac", json!("02:AB:CD:00:00:05")),
            ("mac", json!("03:ab:cd:00:00:05")),
            ("mac", json!("00:00:00:00:00:00")),
            ("mac", json!("02:ab:cd:00:00")),
            ("mac", json!("02:ab:cd:00:00:05:06")),
            ("mac", json!("02-ab-cd-00-00-05")),
            ("mac", json!("2:ab:cd:00:00:05")),
            ("mac", json!("02:ab:cd:00:00:0g")),
            ("machine_id", json!("0123456789abcdef")),
            ("machine_id", json!("0123456789ABCDEF0123456789ABCDEF")),
            ("machine_id", json!("0".repeat(32))),
            ("machine_id", json!("0123456789abcdef0123456789abcdeg")),
            ("time_ns", json!(-1)),
            ("time_ns", json!("1764700000000000000")),
            ("time_ns", json!(1.5)),
            ("time_ns", Value::Null),
            ("entropy", json!("00".repeat(31))),
            ("entropy", json!("00".repeat(513))),
            ("entropy", json!("0".repeat(65))),
            ("entropy", json!("zz".repeat(32))),
            ("entropy", json!(7)),
            ("host_key", json!(PRIVATE)),
            ("host_key", json!({"private": PRIVATE})),
            ("host_key", json!({"public": PUBLIC})),
            (
                "host_key",
                json!({"private": PRIVATE, "public": PUBLIC, "x": 1}),
            ),
            ("host_key", json!({"private": 5, "public": PUBLIC})),
            ("host_key", json!({"private": "", "public": PUBLIC})),
            (
                "host_key",
                json!({"private": format!("{PRIVATE}\n"), "public": PUBLIC}),
            ),
            ("host_key", json!({"private": "AA$A", "public": PUBLIC})),
            ("host_key", json!({"private": "AAA", "public": PUBLIC})),
            ("host_key", json!({"private": "A===", "public": PUBLIC})),
            (
                "host_key",
                json!({"private": "A".repeat(2052), "public": PUBLIC}),
            ),
            // Not ed25519 (an RSA blob's start).
            (
                "host_key",
                json!({"private": PRIVATE, "public": "AAAAB3NzaC1yc2EAAAADAQAB"}),
            ),
            (
                "host_key",
                json!({"private": PRIVATE, "public": format!("{PUBLIC} root@b")}),
            ),
        ];
        for (field, v) in cases {
            let mut m = good();
            m.insert(field.to_string(), v.clone());
            check_400(&body(&m), field);
        }
        for field in [
            "hostname",
            "address",
            "prefix",
            "mac",
            "machine_id",
            "time_ns",
            "entropy",
        ] {
            let mut m = good();
            m.remove(field);
            check_400(&body(&m), field);
        }
        let mut m = good();
        m.insert("extra".into(), json!(1));
        check_400(&body(&m), "extra");
        check_400(b"", "bad identity request");
        check_400(b"[]", "bad identity request");
        let mut m = good();
        m.insert("entropy".into(), json!("0".repeat(MAX_BODY)));
        check_400(&body(&m), "larger than");
    }

    fn check_400(body: &[u8], names: &str) {
        let sys = Fake::default();
        let d = tempfile::tempdir().unwrap();
        let r = handle(body, &sys, &files(&d));
        let v = reply_json(&r);
        assert_eq!(r.status, 400, "{names}: {v}");
        assert_eq!(v["status"], "error");
        assert!(v["error"].as_str().unwrap().contains(names), "{names}: {v}");
        assert!(v.get("step").is_none());
        assert!(sys.events().is_empty(), "{names}: {:?}", sys.events());
    }

    #[test]
    fn the_scripts_get_the_checked_values_and_nothing_else() {
        let id = parse(GOOD.as_bytes()).unwrap();
        let want: BTreeMap<String, String> = [
            ("BANGER_HOSTNAME", "b"),
            ("BANGER_IF", "eth0"),
            ("BANGER_ADDR", "172.16.0.5"),
            ("BANGER_PREFIX", "24"),
            ("BANGER_GW", "172.16.0.1"),
            ("BANGER_DNS", "172.16.0.1 9.9.9.9"),
            ("BANGER_MAC", "02:ab:cd:00:00:05"),
            ("BANGER_MACHINE_ID", "0123456789abcdef0123456789abcdef"),
            ("BANGER_HOSTKEY", ""),
            ("BANGER_HOSTKEY_PUB", ""),
        ]
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
        assert_eq!(env(&id), want);

        let sys = Fake::default();
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("hosts"), "127.0.0.1 localhost\n127.0.1.1 a\n").unwrap();
        assert_eq!(handle(GOOD.as_bytes(), &sys, &files(&d)).status, 200);
        let envs = sys.envs.lock().unwrap().clone();
        let mut with_hosts = want.clone();
        with_hosts.insert(
            "BANGER_HOSTS".into(),
            "127.0.0.1 localhost\n127.0.1.1 b\n".into(),
        );
        assert_eq!(envs, [with_hosts]);
        // Every value is one a shell takes literally (no NUL, no newline,
        // plain names), as /init's scripts are held to.
        let req = InitRequest {
            name: "x".into(),
            script: String::new(),
            env: env(&id),
        };
        assert!(crate::init::check(&req).is_ok());
        // No gateway, no dns: empty, so the scripts skip them.
        let mut m = good();
        m.remove("gateway");
        m.remove("dns");
        let e = env(&parse(&body(&m)).unwrap());
        assert_eq!(e["BANGER_GW"], "");
        assert_eq!(e["BANGER_DNS"], "");
        // The host's key: both halves, each one line the script writes.
        let mut m = good();
        m.insert("host_key".into(), host_key_json());
        let e = env(&parse(&body(&m)).unwrap());
        assert_eq!(e["BANGER_HOSTKEY"], PRIVATE);
        assert_eq!(e["BANGER_HOSTKEY_PUB"], PUBLIC);
        let req = InitRequest {
            name: "x".into(),
            script: String::new(),
            env: e,
        };
        assert!(crate::init::check(&req).is_ok());
    }

    #[test]
    fn the_steps_run_in_order_and_the_reply_has_the_new_keys() {
        let sys = Fake::default();
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("ssh_host_ed25519_key.pub"),
            "ssh-ed25519 AAAAnew root@b\n",
        )
        .unwrap();
        let r = handle(GOOD.as_bytes(), &sys, &files(&d));
        assert_eq!(r.status, 200);
        assert_eq!(
            reply_json(&r),
            json!({"status": "ok", "hostname": "b", "address": "172.16.0.5",
                   "keys": ["ssh-ed25519 AAAAnew"]})
        );
        assert_eq!(
            sys.events(),
            ["clock 1764700000000000000", "entropy 32", "init identity"]
        );
        // The script names its steps in STEPS' order, each once.
        let at: Vec<usize> = SCRIPT_STEPS
            .iter()
            .map(|s| {
                let marker = format!("\nstep {s}\n");
                assert_eq!(SCRIPT.matches(&marker).count(), 1, "{s}");
                SCRIPT.find(&marker).unwrap()
            })
            .collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{at:?}");
        assert_eq!(&STEPS[2..], SCRIPT_STEPS);
    }

    #[test]
    fn a_failed_script_names_the_step_it_was_at() {
        let out = "banger-step network\nbanger-step hostname\nsh: cannot create /etc/hosts\n";
        assert_eq!(
            failed_step(out),
            ("hostname", "sh: cannot create /etc/hosts\n".into())
        );
        assert_eq!(failed_step("boom\n"), ("network", "boom\n".into()));
        // A step name the script does not have is output, not a step.
        assert_eq!(
            failed_step("banger-step network\nbanger-step evil\n").0,
            "network"
        );
        let sys = Fake {
            fail: Some("identity"),
            ..Fake::default()
        };
        let d = tempfile::tempdir().unwrap();
        let v = reply_json(&handle(GOOD.as_bytes(), &sys, &files(&d)));
        assert_eq!(
            (v["step"].clone(), v["error"].clone()),
            (json!("network"), json!("exit 1: boom"))
        );
    }

    #[test]
    fn the_first_failing_step_stops_the_rest_and_is_named() {
        for (fail, step, tried) in [
            ("clock", "clock", 1),
            ("entropy", "entropy", 2),
            ("!identity", "network", 3),
        ] {
            let sys = Fake {
                fail: Some(fail),
                ..Fake::default()
            };
            let d = tempfile::tempdir().unwrap();
            let r = handle(GOOD.as_bytes(), &sys, &files(&d));
            let v = reply_json(&r);
            assert_eq!(r.status, 500, "{fail}: {v}");
            assert_eq!(v["status"], "error");
            assert_eq!(v["step"], step, "{v}");
            assert!(!v["error"].as_str().unwrap().is_empty());
            // It was tried, and nothing after it was.
            assert_eq!(sys.events().len(), tried, "{fail}: {:?}", sys.events());
        }
    }

    #[test]
    fn an_unreadable_hosts_file_stops_at_hostname() {
        let sys = Fake::default();
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("hosts")).unwrap();
        let r = handle(GOOD.as_bytes(), &sys, &files(&d));
        assert_eq!(r.status, 500);
        assert_eq!(reply_json(&r)["step"], "hostname");
        assert_eq!(sys.events().last().unwrap(), "entropy 32");
    }

    #[test]
    fn the_hosts_file_names_the_new_host_on_its_127_0_1_1_line_only() {
        let debian =
            "127.0.0.1 localhost\n127.0.1.1 banger\n::1 localhost ip6-localhost ip6-loopback\n";
        assert_eq!(
            rewrite_hosts(debian, "b"),
            "127.0.0.1 localhost\n127.0.1.1 b\n::1 localhost ip6-localhost ip6-loopback\n"
        );
        // Aliases and tabs go with the old name; a second such line too.
        assert_eq!(
            rewrite_hosts(
                "127.0.1.1\told.example old\n# c\n127.0.1.1 again\n10.0.0.1 x",
                "b"
            ),
            "127.0.1.1 b\n# c\n10.0.0.1 x\n"
        );
        // None there (or no file): added.
        assert_eq!(
            rewrite_hosts("127.0.0.1 localhost\n", "b"),
            "127.0.0.1 localhost\n127.0.1.1 b\n"
        );
        assert_eq!(rewrite_hosts("", "b"), "127.0.1.1 b\n");
        // Another address that merely starts alike is kept.
        assert_eq!(
            rewrite_hosts("127.0.1.10 x\n", "b"),
            "127.0.1.10 x\n127.0.1.1 b\n"
        );
        assert_eq!(
            rewrite_hosts(&rewrite_hosts(debian, "b"), "b"),
            rewrite_hosts(debian, "b")
        );
    }

    #[test]
    fn the_scripts_are_valid_sh() {
        let out = std::process::Command::new("/bin/sh")
            .args(["-n", "-c", SCRIPT])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }

    /// The hostkeys step as the guest runs it, its /etc/ssh moved to `dir`.
    fn run_hostkeys_step(dir: &Path, env: &[(&str, &str)]) -> std::process::Output {
        let from = SCRIPT.find("step hostkeys\n").unwrap();
        let to = SCRIPT.find("for session in").unwrap();
        let step = SCRIPT[from..to].replace("/etc/ssh/", &format!("{}/", dir.display()));
        std::process::Command::new("/bin/sh")
            .args([
                "-c",
                &format!("set -eu\nstep() {{ :; }}\numask 022\n{step}"),
            ])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .envs(env.iter().copied())
            .output()
            .unwrap()
    }

    #[test]
    fn the_hostkeys_step_writes_the_hosts_key_as_sshd_reads_it() {
        let Ok(keygen) = which_ssh_keygen() else {
            eprintln!("SKIPPED: no ssh-keygen");
            return;
        };
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("ssh_host_rsa_key"), "old").unwrap();
        let out = run_hostkeys_step(
            d.path(),
            &[
                ("BANGER_HOSTKEY", PRIVATE),
                ("BANGER_HOSTKEY_PUB", PUBLIC),
                ("BANGER_HOSTNAME", "b"),
            ],
        );
        assert!(out.status.success(), "{out:?}");
        let key = d.path().join("ssh_host_ed25519_key");
        // OpenSSH reads the one-line PEM body and refuses a key others can
        // read.
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&key), 0o600);
        assert_eq!(mode(&key.with_extension("pub")), 0o644);
        let derived = std::process::Command::new(&keygen)
            .args(["-y", "-f"])
            .arg(&key)
            .output()
            .unwrap();
        assert!(derived.status.success(), "{derived:?}");
        assert_eq!(
            String::from_utf8_lossy(&derived.stdout)
                .split_whitespace()
                .nth(1),
            Some(PUBLIC)
        );
        assert_eq!(
            std::fs::read_to_string(key.with_extension("pub")).unwrap(),
            format!("ssh-ed25519 {PUBLIC} root@b\n")
        );
        // The old keys are gone.
        assert!(!d.path().join("ssh_host_rsa_key").exists());

        // No key from the host (an older one): ssh-keygen makes it.
        let d = tempfile::tempdir().unwrap();
        let out = run_hostkeys_step(
            d.path(),
            &[
                ("BANGER_HOSTKEY", ""),
                ("BANGER_HOSTKEY_PUB", ""),
                ("BANGER_HOSTNAME", "b"),
            ],
        );
        assert!(out.status.success(), "{out:?}");
        let pubkey = std::fs::read_to_string(d.path().join("ssh_host_ed25519_key.pub")).unwrap();
        assert!(pubkey.starts_with("ssh-ed25519 "), "{pubkey}");
        assert!(!pubkey.contains(PUBLIC));
    }

    fn which_ssh_keygen() -> Result<PathBuf, ()> {
        ["/usr/bin/ssh-keygen", "/bin/ssh-keygen"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .ok_or(())
    }

    #[test]
    fn the_entropy_ioctl_header_is_the_kernels() {
        // _IOW('R', 0x03, int[2]) on Linux's generic and x86 ioctl layout.
        assert_eq!(
            nix::request_code_write!(b'R', 0x03, std::mem::size_of::<[libc::c_int; 2]>()),
            0x4008_5203
        );
        assert_eq!(std::mem::offset_of!(RandPoolInfo, buf), 8);
    }

    #[test]
    fn more_entropy_than_the_buffer_holds_is_refused() {
        // Not called with a good size: as root that would credit these
        // bytes to the test machine's pool.
        let e = add_entropy(&[0u8; MAX_ENTROPY + 1]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }
}
