//! `config NAME`: the same settings banger-ssh uses, as ssh_config text.

use std::path::Path;

pub fn stanza(name: &str, ip: &str, key: &Path, known_hosts: &Path) -> String {
    format!(
        "Host {name}.vm\n    HostName {ip}\n    User root\n    IdentityFile {}\n    IdentitiesOnly yes\n    UserKnownHostsFile {}\n    StrictHostKeyChecking yes\n",
        key.display(),
        known_hosts.display()
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn stanza_names_host_and_key() {
        let s = super::stanza("box", "10.0.0.2", "/k".as_ref(), "/kh/box".as_ref());
        assert!(s.starts_with("Host box.vm\n"));
        assert!(s.contains("    HostName 10.0.0.2\n"));
        assert!(s.contains("    IdentityFile /k\n"));
        assert!(s.contains("    UserKnownHostsFile /kh/box\n"));
    }
}
