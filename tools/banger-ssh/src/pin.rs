//! Pinned host keys. The guest's ssh host public keys come from its agent
//! (the vsock channel reaches only this guest; nothing on the bridge can
//! answer in its place) and go into the VM's known_hosts before the first
//! ssh, which then runs with StrictHostKeyChecking=yes. Keys that differ
//! from the pinned ones are an error until accepted with `--rekey`.

use crate::ident;
use banger_lib::agent::{self, Endpoint};
use banger_lib::records::{AgentHostKeys, PinLine};
use banger_lib::wait::Backoff;
use banger_lib::{Error, Result};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// At most this many keys (the agent sends at most 8).
const MAX_KEYS: usize = 16;
/// The longest key line taken: an RSA-16384 key is under 3 KiB of base64.
const MAX_KEY: usize = 4096;
/// Key types OpenSSH's sshd serves as host keys.
const TYPES: &[&str] = &[
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
];

/// Whether `key` is one `TYPE BASE64` line sshd could serve. The guest
/// is untrusted: whatever it sends is checked before it reaches a file
/// that ssh reads.
pub fn valid(key: &str) -> bool {
    let mut w = key.split(' ');
    let (Some(kind), Some(blob), None) = (w.next(), w.next(), w.next()) else {
        return false;
    };
    TYPES.contains(&kind)
        && (16..=MAX_KEY).contains(&blob.len())
        && blob
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
}

/// One answer of the agent.
enum Answer {
    Keys(Vec<String>),
    /// No keys yet, or no answer yet: try again.
    Later(Option<Error>),
    /// An agent that cannot report keys, or sends what banger does not take.
    Refused(Error),
}

/// Ask the agent for the keys until it has some (the guest makes them on
/// its first boot) or `timeout` passes.
pub fn fetch(name: &str, ep: &Endpoint, timeout: Duration) -> Result<Vec<String>> {
    let deadline = Instant::now() + timeout;
    let mut last = None;
    // The guest makes them while create waits on them: ask often (a
    // request on the host's own socket; the agent reads two files).
    let backoff = Backoff::new(Duration::from_millis(20), Duration::from_millis(100));
    let got = backoff.poll_until(Some(deadline), || {
        let left = deadline.saturating_duration_since(Instant::now());
        match ask(
            name,
            ep,
            left.clamp(Duration::from_millis(200), Duration::from_secs(5)),
        ) {
            Answer::Keys(k) => Some(Ok(k)),
            Answer::Refused(e) => Some(Err(e)),
            Answer::Later(e) => {
                last = e.or(last.take());
                None
            }
        }
    });
    got.unwrap_or_else(|| {
        let why = match last {
            Some(e) => format!("{name}'s ssh host keys: no answer from its guest agent: {e}"),
            None => format!("{name}'s guest agent has no ssh host keys yet"),
        };
        Err(Error::failed(why).with_hint(format!(
            "is the guest up? banger vm health {name}; its console: banger vm logs {name}"
        )))
    })
}

fn ask(name: &str, ep: &Endpoint, timeout: Duration) -> Answer {
    let r = match agent::request(ep, "GET", "/hostkeys", timeout) {
        Ok(r) => r,
        Err(e) => return Answer::Later(Some(e)),
    };
    if r.status == 404 {
        return Answer::Refused(
            Error::prereq(format!(
                "{name}'s guest agent does not report ssh host keys (an image from before pinned host keys)"
            ))
            .with_hint("build the image again: banger image build (see banger-image(1))"),
        );
    }
    if r.status != 200 {
        return Answer::Later(Some(Error::failed(format!(
            "it answered {} to GET /hostkeys",
            r.status
        ))));
    }
    let bad = || {
        Answer::Refused(Error::failed(format!(
            "{name}'s guest agent sent ssh host keys banger does not take"
        )))
    };
    let Ok(k) = serde_json::from_value::<AgentHostKeys>(r.body) else {
        return bad();
    };
    if k.keys.len() > MAX_KEYS || !k.keys.iter().all(|k| valid(k)) {
        return bad();
    }
    if k.keys.is_empty() {
        return Answer::Later(None);
    }
    let mut keys = k.keys;
    keys.sort();
    keys.dedup();
    Answer::Keys(keys)
}

/// The keys pinned in a known_hosts file (`HOST TYPE BASE64` lines),
/// sorted; none when there is no file.
pub fn pinned(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut keys: Vec<String> = text
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let (_host, kind, blob) = (w.next()?, w.next()?, w.next()?);
            Some(format!("{kind} {blob}"))
        })
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// Replace the file with `keys` for `ip`, whole or not at all.
fn write(path: &Path, ip: &str, keys: &[String]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let text: String = keys.iter().map(|k| format!("{ip} {k}\n")).collect();
    let io = |e| banger_lib::error::io(format!("writing {}", path.display()), e);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io(e)
        })
}

/// The error for keys that are not the pinned ones.
pub fn changed(name: &str) -> Error {
    Error::conflict(format!(
        "{name}'s ssh host keys are not the ones banger pinned for it"
    ))
    .with_hint(format!(
        "if the guest's keys were changed on purpose, accept them: banger vm ssh {name} --rekey"
    ))
}

/// Pin `keys` for `name` at `ip`: written when nothing is pinned yet (or
/// the address moved), refused when other keys are pinned unless `rekey`.
pub fn pin(name: &str, ip: &str, keys: Vec<String>, rekey: bool) -> Result<PinLine> {
    let path = ident::known_hosts(name)?;
    let old = pinned(&path);
    let replaced = !old.is_empty() && old != keys;
    if replaced && !rekey {
        return Err(changed(name));
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    let want: String = keys.iter().map(|k| format!("{ip} {k}\n")).collect();
    if current != want {
        write(&path, ip, &keys)?;
    }
    Ok(PinLine {
        name: name.to_string(),
        ip: ip.to_string(),
        keys,
        known_hosts: path,
        replaced,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHbHfNz1qJlRrTg1VZ4lF0a6m7cFv0zq";

    #[test]
    fn only_plain_key_lines_are_taken() {
        assert!(valid(ED));
        for bad in [
            "",
            "ssh-ed25519",
            "ssh-dss AAAAB3NzaC1kc3MAAACBAP1aaaaaaaaa",
            &format!("{ED} comment"),
            &format!("{ED}\n10.0.0.9 ssh-ed25519 AAAA"),
            "ssh-ed25519 AAAA",
            "ssh-ed25519  AAAAC3NzaC1lZDI1NTE5AAAAIHbHf",
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHbHf*",
            &format!("ssh-rsa {}", "A".repeat(MAX_KEY + 1)),
        ] {
            assert!(!valid(bad), "{bad:?}");
        }
    }

    #[test]
    fn pinned_reads_keys_whatever_the_host_column() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("box");
        assert!(pinned(&p).is_empty());
        std::fs::write(&p, format!("10.0.0.2 {ED}\n10.0.0.2 ssh-rsa AAAAB3Nz\n\n")).unwrap();
        assert_eq!(
            pinned(&p),
            [
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHbHfNz1qJlRrTg1VZ4lF0a6m7cFv0zq",
                "ssh-rsa AAAAB3Nz"
            ]
        );
    }
}
