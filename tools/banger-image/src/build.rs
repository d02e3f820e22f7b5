//! `build`: run rootfs/make-rootfs.sh into a staging folder, checksum the
//! result, record it, and move it into place in one rename. Any failure,
//! or an interrupt, removes the staging folder: no half-made image.

use crate::cli::BuildArgs;
use crate::progress::{parse_stage, Progress};
use crate::record::{self, Image};
use banger_lib::{config::Bundle, error::io, hosttools, interrupt, paths, Error, Result};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub fn build(a: &BuildArgs) -> Result<Image> {
    banger_lib::names::validate("image", &a.name)?;
    let suite = parse_from(&a.from)?;
    if let Some(bad) = a.packages.iter().find(|p| !valid_package(p)) {
        return Err(
            Error::usage(format!("{bad:?} is not a Debian package name"))
                .with_hint("--packages takes names like git,build-essential"),
        );
    }
    if !hosttools::is_root() {
        return Err(
            Error::prereq("building an image needs root (debootstrap, chroot)")
                .with_hint("run it with sudo"),
        );
    }
    hosttools::require("debootstrap", "building an image", "debootstrap")?;
    hosttools::require("mkfs.ext4", "building an image", "e2fsprogs")?;
    hosttools::require("chroot", "building an image", "coreutils")?;
    hosttools::require("curl", "checking the apt mirror", "curl")?;
    let script = scripts_dir()?.join("make-rootfs.sh");
    let bundle = Bundle::load().ok();
    let pubkey = pubkey(a, bundle.as_ref())?;
    let agent = agent(a, bundle.as_ref())?;
    if let Some(c) = &a.customize {
        if !c.is_file() {
            return Err(Error::not_found(format!(
                "customize script {} does not exist",
                c.display()
            )));
        }
    }

    let _lock = record::lock(&a.name)?;
    if record::record_path(&a.name).exists() {
        return Err(
            Error::conflict(format!("image {:?} exists", a.name)).with_hint(format!(
                "`banger-image rm {}` first, or pick another name",
                a.name
            )),
        );
    }
    let staging = paths::images_dir().join(format!(".build-{}", a.name));
    remove_staging(&staging)?;
    paths::ensure_dir(&staging)?;

    interrupt::install();
    let result = run_script(a, &script, &staging, suite, &pubkey, &agent)
        .and_then(|()| finish(a, &staging, suite));
    if result.is_err() || interrupt::requested() {
        if let Err(e) = remove_staging(&staging) {
            eprintln!("banger-image: warning: {e}");
        }
    }
    if interrupt::requested() {
        return Err(interrupt::error().reword("interrupted; removed the half-made image"));
    }
    result
}

fn run_script(
    a: &BuildArgs,
    script: &Path,
    staging: &Path,
    suite: &str,
    pubkey: &Path,
    agent: &Path,
) -> Result<()> {
    let mut cmd = Command::new("bash");
    cmd.arg(script)
        .arg("--out")
        .arg(staging)
        .args([
            "--suite",
            suite,
            "--size",
            &a.size,
            "--work-size",
            &a.work_size,
        ])
        .args(["--profile", a.profile.as_str()])
        .arg("--pubkey")
        .arg(pubkey)
        .arg("--agent")
        .arg(agent);
    if !a.packages.is_empty() {
        cmd.args(["--packages", &a.packages.join(",")]);
    }
    if let Some(c) = &a.customize {
        cmd.arg("--customize").arg(c);
    }
    if let Some(m) = &a.mirror {
        cmd.args(["--mirror", m]);
    }
    // One pipe for both streams keeps the log in order.
    let (reader, writer) = std::io::pipe().map_err(|e| io("making a pipe", e))?;
    let writer2 = writer.try_clone().map_err(|e| io("making a pipe", e))?;
    cmd.stdin(Stdio::null()).stdout(writer).stderr(writer2);
    let mut child = cmd
        .spawn()
        .map_err(|e| io(format!("running {}", script.display()), e))?;
    drop(cmd);

    let log_path = staging.join("build.log");
    let mut log = std::fs::File::create(&log_path)
        .map_err(|e| io(format!("creating {}", log_path.display()), e))?;
    let mut progress = Progress::new();
    let mut tail: VecDeque<String> = VecDeque::new();
    let mut stage = String::from("start");
    for line in BufReader::new(reader).lines() {
        let Ok(line) = line else { break };
        let _ = writeln!(log, "{line}");
        if let Some((n, t, name)) = parse_stage(&line) {
            stage = name.to_string();
            progress.stage(n, t + 1, name);
        }
        tail.push_back(line);
        if tail.len() > 15 {
            tail.pop_front();
        }
    }
    let status = child
        .wait()
        .map_err(|e| io(format!("waiting for {}", script.display()), e))?;
    progress.finish();
    if status.success() {
        return Ok(());
    }
    for l in &tail {
        eprintln!("  | {l}");
    }
    let why = tail.iter().rev().find_map(|l| {
        l.split_once(": error: ")
            .map(|(_, m)| m.to_string())
            .or_else(|| l.strip_prefix("E: ").map(str::to_string))
    });
    let mut e = Error::failed(format!(
        "build of {:?} failed at stage {stage}{}",
        a.name,
        why.as_ref().map(|w| format!(": {w}")).unwrap_or_default()
    ))
    .with_hint("the last lines of the build log are above; nothing was kept");
    if why
        .as_deref()
        .is_some_and(|w| w.contains("unreachable") || w.contains("cannot fetch"))
    {
        e.kind = banger_lib::Kind::Prereq;
    }
    Err(e)
}

/// Checksum, record, and move the staging folder into place.
fn finish(a: &BuildArgs, staging: &Path, suite: &str) -> Result<Image> {
    let total = if a.profile == crate::cli::Profile::Dev {
        7
    } else {
        6
    };
    let mut progress = Progress::new();
    progress.stage(total, total, "checksum");
    progress.finish();
    let final_dir = record::dir(&a.name);
    let rootfs = staging.join("rootfs.ext4");
    let size = std::fs::metadata(&rootfs)
        .map_err(|e| io(format!("reading {}", rootfs.display()), e))?
        .len();
    let img = Image {
        schema: banger_lib::state::SCHEMA,
        name: a.name.clone(),
        managed: true,
        rootfs: final_dir.join("rootfs.ext4"),
        work_seed: Some(final_dir.join("work-seed.ext4")),
        kernel: None,
        initrd: None,
        size,
        sha256: crate::checksum::file(&rootfs)?,
        created_at: banger_lib::proc::now_rfc3339(),
        from: Some(format!("debian:{suite}")),
        profile: Some(a.profile.as_str().into()),
        packages: a.packages.clone(),
    };
    banger_lib::state::store(&staging.join("image.json"), &img)?;
    std::fs::rename(staging, &final_dir)
        .map_err(|e| io(format!("moving the image to {}", final_dir.display()), e))?;
    Ok(img)
}

/// Remove a staging folder, unmounting anything a killed build left
/// mounted below it first, so removal never reaches into /dev or /proc.
fn remove_staging(dir: &Path) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    let canon = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mut below: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|m| Path::new(m).starts_with(&canon))
        .collect();
    below.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in &below {
        let _ = Command::new("umount").arg("-l").arg(m).status();
    }
    let still = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    if still
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .any(|m| Path::new(m).starts_with(&canon))
    {
        return Err(Error::failed(format!(
            "{} still has mounts below it; not removing it",
            dir.display()
        ))
        .with_hint("umount them (findmnt -R DIR), then run the build again"));
    }
    std::fs::remove_dir_all(dir).map_err(|e| io(format!("removing {}", dir.display()), e))
}

/// `debian:SUITE` (only Debian is built here).
fn parse_from(from: &str) -> Result<&str> {
    match from.split_once(':') {
        Some(("debian", suite))
            if !suite.is_empty() && suite.chars().all(|c| c.is_ascii_lowercase() || c == '-') =>
        {
            Ok(suite)
        }
        _ => Err(
            Error::usage(format!("--from {from:?}: expected debian:SUITE"))
                .with_hint("e.g. --from debian:bookworm; for Void see rootfs/make-rootfs-void.sh"),
        ),
    }
}

fn valid_package(p: &str) -> bool {
    p.len() >= 2
        && p.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && p.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c))
}

/// rootfs/: BANGER_ROOTFS_DIR, else beside the runtime dir (a checkout or
/// an install, where `make install` puts it next to runtime/).
pub fn scripts_dir() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("BANGER_ROOTFS_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    let runtime = banger_lib::config::runtime_dir()?;
    let d = runtime
        .parent()
        .map(|p| p.join("rootfs"))
        .unwrap_or_default();
    if d.join("make-rootfs.sh").is_file() {
        return Ok(d);
    }
    Err(Error::prereq(format!(
        "rootfs/make-rootfs.sh not found (looked in {})",
        d.display()
    ))
    .with_hint(
        "set BANGER_ROOTFS_DIR to the rootfs/ folder of a banger checkout, or `make install`",
    ))
}

fn pubkey(a: &BuildArgs, bundle: Option<&Bundle>) -> Result<PathBuf> {
    let p = match (&a.pubkey, bundle) {
        (Some(p), _) => p.clone(),
        (None, Some(b)) => {
            let mut s = b.path(&b.ssh_key).into_os_string();
            s.push(".pub");
            PathBuf::from(s)
        }
        (None, None) => {
            return Err(Error::prereq("no runtime bundle to take the ssh key from")
                .with_hint("pass --pubkey FILE, or set up a bundle with `make runtime-local`"))
        }
    };
    if !p.is_file() {
        return Err(
            Error::prereq(format!("public key {} does not exist", p.display())).with_hint(format!(
                "make one: ssh-keygen -t ed25519 -N '' -f {}, or pass --pubkey FILE",
                p.display().to_string().trim_end_matches(".pub")
            )),
        );
    }
    Ok(p)
}

fn agent(a: &BuildArgs, bundle: Option<&Bundle>) -> Result<PathBuf> {
    if let Some(p) = &a.agent {
        return if p.is_file() {
            Ok(p.clone())
        } else {
            Err(Error::not_found(format!(
                "agent {} does not exist",
                p.display()
            )))
        };
    }
    let mut tried = Vec::new();
    if let Some(b) = bundle {
        tried.push(b.path(&b.agent_path));
        // A checkout: what `make agent` builds.
        if let Some(root) = b.dir.parent() {
            tried.push(root.join("target/x86_64-unknown-linux-gnu/agent/banger-vsock-agent"));
        }
    }
    tried.iter().find(|p| p.is_file()).cloned().ok_or_else(|| {
        Error::prereq(format!(
            "no guest agent binary (looked at {})",
            tried
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .with_hint("build it with `make agent`, or pass --agent FILE")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_and_packages() {
        assert_eq!(parse_from("debian:bookworm").unwrap(), "bookworm");
        assert_eq!(parse_from("void:current").unwrap_err().exit_code(), 2);
        assert_eq!(parse_from("debian:").unwrap_err().exit_code(), 2);
        assert!(valid_package("g++"));
        assert!(valid_package("libc6-dev"));
        assert!(!valid_package("a;rm"));
        assert!(!valid_package("-x"));
        assert!(!valid_package("Git"));
    }
}
