//! The Debian test image, built once with `banger-image build` into
//! `target/guest/` and reused by every live test (and by CI within a run).
//! A stamp of the rootfs scripts and the agent binary decides when the
//! cached image is stale.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Paths of the built test image and what it trusts.
#[derive(Debug, Clone)]
pub struct GuestImage {
    /// The image's name in `data_home` ("debian").
    pub name: String,
    pub rootfs: PathBuf,
    pub work_seed: PathBuf,
    /// The private key whose public half the image authorizes for root.
    pub ssh_key: PathBuf,
    pub agent: PathBuf,
    /// The XDG_DATA_HOME the image is recorded under.
    pub data_home: PathBuf,
}

impl GuestImage {
    /// Register this image under `home` (unmanaged: its files stay shared
    /// and are never deleted by that home's `banger-image rm`).
    pub fn register(&self, home: &crate::Home) {
        let mut cmd = Command::new(crate::bin("banger-image"));
        home.apply(&mut cmd);
        let out = cmd
            .args(["register", "--name", &self.name, "--rootfs"])
            .arg(&self.rootfs)
            .arg("--work-seed")
            .arg(&self.work_seed)
            .output()
            .expect("running banger-image register");
        assert!(
            out.status.success(),
            "banger-image register: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `target/guest/` of the workspace: kernels and images built for tests.
pub fn guest_dir() -> PathBuf {
    crate::workspace_root().join("target/guest")
}

/// The statically linked guest agent, as `make agent` builds it, into the
/// workspace's own target/. Built every time (a no-op when current) so an
/// agent change reaches the image: its stamp hashes this binary.
pub fn agent() -> PathBuf {
    let root = crate::workspace_root();
    let p = root.join("target/x86_64-unknown-linux-gnu/agent/banger-vsock-agent");
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "-p",
            "banger-vsock-agent",
            "--profile",
            "agent",
            "--target",
            "x86_64-unknown-linux-gnu",
        ])
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env("CARGO_TARGET_DIR", root.join("target"))
        .current_dir(&root)
        .status()
        .expect("running cargo build for the agent");
    assert!(status.success(), "building banger-vsock-agent failed");
    p
}

/// A fresh-per-checkout ed25519 key pair in target/guest/.
pub fn ssh_key() -> PathBuf {
    let key = guest_dir().join("id_ed25519");
    if !key.is_file() || !key.with_extension("pub").is_file() {
        let _ = std::fs::remove_file(&key);
        std::fs::create_dir_all(guest_dir()).expect("creating target/guest");
        let status = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "banger-test", "-f"])
            .arg(&key)
            .status()
            .expect("running ssh-keygen (apt-get install openssh-client)");
        assert!(status.success(), "ssh-keygen failed");
    }
    key
}

/// Build (once) and return the Debian test image. Needs root and
/// debootstrap; call `crate::require_root` first. Concurrent callers wait
/// on a lock; the first builds, the rest reuse.
pub fn debian() -> GuestImage {
    let dir = guest_dir();
    std::fs::create_dir_all(&dir).expect("creating target/guest");
    let _lock = banger_lib::state::Lock::acquire(
        &dir.join(".image.lock"),
        std::time::Duration::from_secs(3600),
    )
    .expect("taking the test image lock");
    let ssh_key = ssh_key();
    let agent = agent();
    let data_home = dir.join("data");
    let img = GuestImage {
        name: "debian".into(),
        rootfs: data_home.join("banger/images/debian/rootfs.ext4"),
        work_seed: data_home.join("banger/images/debian/work-seed.ext4"),
        ssh_key: ssh_key.clone(),
        agent: agent.clone(),
        data_home: data_home.clone(),
    };
    let stamp_path = dir.join("debian.stamp");
    let want = stamp(&[&agent, &ssh_key.with_extension("pub")]);
    let have = std::fs::read_to_string(&stamp_path).unwrap_or_default();
    if have == want && img.rootfs.is_file() && img.work_seed.is_file() {
        return img;
    }
    let tool = crate::bin("banger-image");
    let run = |args: &[&str]| {
        let out = Command::new(&tool)
            .args(args)
            .env("XDG_DATA_HOME", &data_home)
            .env("XDG_CONFIG_HOME", dir.join("config"))
            .env("XDG_STATE_HOME", dir.join("state"))
            .env("BANGER_ROOTFS_DIR", crate::workspace_root().join("rootfs"))
            .output()
            .expect("running banger-image");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let _ = std::fs::remove_file(&stamp_path);
    run(&["rm", "debian"]);
    // What an interrupted build left without a readable image.json, which
    // `rm` does not know as an image, would block the new one's rename.
    let _ = std::fs::remove_dir_all(data_home.join("banger/images/debian"));
    eprintln!(
        "building the Debian test image into {} (minutes, once)",
        dir.display()
    );
    let (ok, err) = run(&[
        "build",
        "--name",
        "debian",
        "--pubkey",
        &ssh_key.with_extension("pub").to_string_lossy(),
        "--agent",
        &agent.to_string_lossy(),
    ]);
    assert!(ok, "building the Debian test image failed:\n{err}");
    std::fs::write(&stamp_path, want).expect("writing the image stamp");
    img
}

/// A digest of what the image is made from: the rootfs scripts and `extra`.
fn stamp(extra: &[&Path]) -> String {
    let rootfs = crate::workspace_root().join("rootfs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&rootfs)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.file_name().is_some_and(|n| n != "make-kernel.sh"));
    files.sort();
    files.extend(extra.iter().map(|p| p.to_path_buf()));
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for f in files {
        f.hash(&mut h);
        std::fs::read(&f).unwrap_or_default().hash(&mut h);
    }
    format!("{:016x}\n", h.finish())
}
