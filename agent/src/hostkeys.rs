//! `GET /hostkeys`: the guest's ssh host public keys. The host pins them
//! before it first connects over the network: the agent channel (vsock, a
//! VMM's socket) reaches only this guest, so no other machine on the bridge
//! can answer in its place.

use serde::Serialize;
use std::io::Read;
use std::path::Path;

/// Where sshd keeps its keys.
pub const DIR: &str = "/etc/ssh";
/// At most this many keys, each file read up to this many bytes: the
/// reply must fit what the host reads of it (64 KiB).
const MAX_KEYS: usize = 8;
const MAX_FILE: u64 = 4096;

#[derive(Debug, Serialize)]
pub struct HostKeys {
    /// `TYPE BASE64` per key (no comment), sorted by file name.
    pub keys: Vec<String>,
}

/// The keys in `dir` (`ssh_host_*_key.pub`). A file still being written
/// (no final newline: ssh-keygen writes it after the private key, on first
/// boot) is left out, so an empty list means "not yet", never "none".
pub fn collect(dir: &Path) -> HostKeys {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.starts_with("ssh_host_") && n.ends_with("_key.pub"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let keys = names
        .iter()
        .filter_map(|n| read_key(&dir.join(n)))
        .take(MAX_KEYS)
        .collect();
    HostKeys { keys }
}

fn read_key(path: &Path) -> Option<String> {
    let mut text = String::new();
    std::fs::File::open(path)
        .ok()?
        .take(MAX_FILE)
        .read_to_string(&mut text)
        .ok()?;
    let line = text.strip_suffix('\n')?;
    if line.contains('\n') {
        return None;
    }
    let mut w = line.split_whitespace();
    let (kind, blob) = (w.next()?, w.next()?);
    Some(format!("{kind} {blob}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_complete_public_keys_only() {
        let d = tempfile::tempdir().unwrap();
        let w = |n: &str, s: &str| std::fs::write(d.path().join(n), s).unwrap();
        assert!(collect(d.path()).keys.is_empty());
        w("ssh_host_ed25519_key", "PRIVATE");
        w(
            "ssh_host_ed25519_key.pub",
            "ssh-ed25519 AAAAC3Nz root@box\n",
        );
        w("ssh_host_ecdsa_key.pub", "ecdsa-sha2-nistp256 AAAAE2Vj\n");
        // Being written: no newline yet.
        w("ssh_host_rsa_key.pub", "ssh-rsa AAAAB3");
        w("other.pub", "ssh-ed25519 AAAAnope\n");
        assert_eq!(
            collect(d.path()).keys,
            ["ecdsa-sha2-nistp256 AAAAE2Vj", "ssh-ed25519 AAAAC3Nz"]
        );
        // A huge file is cut at MAX_FILE, so it has no final newline.
        w(
            "ssh_host_rsa_key.pub",
            &format!("ssh-rsa {}\n", "A".repeat(9000)),
        );
        assert_eq!(collect(d.path()).keys.len(), 2);
        assert!(collect(Path::new("/nonexistent")).keys.is_empty());
    }
}
