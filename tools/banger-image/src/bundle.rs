//! `bundle fetch`: download a released runtime bundle (a tar archive) named
//! by a manifest, within a time and size limit, check its sha256 BEFORE
//! unpacking, check every member (`archive`), unpack it into a fresh dir
//! beside the target, make the whole new bundle there (the current one's
//! other files linked in) and swap the two dirs in one rename. A bad
//! download or archive leaves the current bundle exactly as it was.
//!
//! https goes through ureq's rustls (ring, Mozilla's roots from
//! webpki-roots). `BANGER_CA_FILE` names a PEM file whose certificates are
//! trusted in their place, for a private mirror with its own CA.

use crate::archive;
use banger_lib::{error::io, Error, Result};
use nix::fcntl::{renameat2, RenameFlags, AT_FDCWD};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

#[derive(Debug, PartialEq)]
pub struct Manifest {
    pub url: String,
    pub sha256: String,
    pub version: String,
}

#[derive(Debug, Serialize)]
pub struct Fetched {
    pub version: String,
    pub url: String,
    pub sha256: String,
    pub into: PathBuf,
    pub files: Vec<String>,
}

/// The manifest is flat TOML: `key = "value"` lines and comments. Parsed
/// by hand: three string keys do not justify a TOML dependency.
pub fn parse_manifest(text: &str, origin: &Path) -> Result<Manifest> {
    let bad = |line: usize, why: &str| {
        Error::usage(format!("{} line {line}: {why}", origin.display()))
            .with_hint("the manifest holds url = \"...\", sha256 = \"...\", version = \"...\"")
    };
    let (mut url, mut sha, mut version) = (None, None, None);
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('[') {
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .ok_or_else(|| bad(i + 1, "expected key = \"value\""))?;
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.split_once('"'))
            .filter(|(_, rest)| rest.trim().is_empty() || rest.trim().starts_with('#'))
            .map(|(v, _)| v.to_string())
            .ok_or_else(|| bad(i + 1, "the value must be a \"quoted string\""))?;
        match k.trim() {
            "url" => url = Some(v),
            "sha256" => sha = Some(v.to_ascii_lowercase()),
            "version" => version = Some(v),
            other => return Err(bad(i + 1, &format!("unknown key {other:?}"))),
        }
    }
    let m = Manifest {
        url: url.ok_or_else(|| bad(0, "no url"))?,
        sha256: sha.ok_or_else(|| bad(0, "no sha256"))?,
        version: version.ok_or_else(|| bad(0, "no version"))?,
    };
    if m.sha256.len() != 64 || !m.sha256.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(bad(0, "sha256 must be 64 hex digits"));
    }
    if !["https://", "http://", "file://"]
        .iter()
        .any(|s| m.url.starts_with(s))
    {
        return Err(Error::usage(format!(
            "{}: url {:?} is not https://, http:// or file://",
            origin.display(),
            m.url
        ))
        .with_hint(
            "point url at the archive: https://HOST/PATH, http://HOST/PATH or file:///PATH",
        ));
    }
    Ok(m)
}

/// How long a download may take and how large it may be.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub timeout: Duration,
    pub max_bytes: u64,
}

/// What the archive may unpack to, as a multiple of `max_bytes`.
const UNPACKED_FACTOR: u64 = 16;

pub fn fetch(manifest_path: &Path, into: &Path, limits: Limits) -> Result<Fetched> {
    let text = std::fs::read_to_string(manifest_path)
        .map_err(|e| io(format!("reading {}", manifest_path.display()), e))?;
    let m = parse_manifest(&text, manifest_path)?;
    banger_lib::hosttools::require("tar", "unpacking the runtime bundle", "tar")?;
    let into =
        std::path::absolute(into).map_err(|e| io(format!("resolving {}", into.display()), e))?;
    let (Some(parent), Some(name)) = (into.parent(), into.file_name()) else {
        return Err(Error::usage(format!(
            "--into {} names no directory to replace",
            into.display()
        ))
        .with_hint("give a directory such as runtime/"));
    };
    // As root, never into (or beside) a tree another user can change.
    if banger_lib::hosttools::is_root() {
        banger_lib::trust::check_dir("bundle", None, &into)?;
    }
    banger_lib::paths::refuse_symlink(&into)?;
    std::fs::create_dir_all(parent).map_err(|e| io(format!("creating {}", parent.display()), e))?;
    // Everything is made beside the target (same filesystem, so the last
    // step is a rename) under names no other fetch uses.
    let tmp = |what: &str| {
        parent.join(format!(
            ".{}.{what}.{}",
            name.to_string_lossy(),
            std::process::id()
        ))
    };
    let (archive, unpacked, new) = (tmp("download"), tmp("unpack"), tmp("new"));
    let result = (|| {
        let got = download(&m.url, &archive, limits)?;
        if got != m.sha256 {
            return Err(Error::failed(format!(
                "sha256 mismatch for {}: got {got}, the manifest says {}",
                m.url, m.sha256
            ))
            .with_hint(
                "the download is corrupt or the manifest is wrong; the current bundle is untouched",
            ));
        }
        let members = archive::list(&archive)?;
        archive::check(&members, limits.max_bytes.saturating_mul(UNPACKED_FACTOR))?;
        unpack(&archive, &unpacked)?;
        archive::check_tree(&unpacked)?;
        let files = assemble(&unpacked, &into, &new)?;
        swap(&new, &into)?;
        Ok(files)
    })();
    // After a swap, `new` holds the old bundle.
    let _ = std::fs::remove_file(&archive);
    let _ = std::fs::remove_dir_all(&unpacked);
    let _ = std::fs::remove_dir_all(&new);
    let files = result?;
    Ok(Fetched {
        version: m.version,
        url: m.url,
        sha256: m.sha256,
        into,
        files,
    })
}

/// Stream the archive to `dest`, hashing as it comes, within the limits;
/// returns the hex sha256.
fn download(url: &str, dest: &Path, limits: Limits) -> Result<String> {
    let max = limits.max_bytes;
    let too_big = || {
        Error::failed(format!(
            "{url} is larger than the limit of {} MiB",
            max >> 20
        ))
        .with_hint(
            "raise --max-mib if the bundle really is that large; the current bundle is untouched",
        )
    };
    let reader: Box<dyn Read> = if let Some(path) = url.strip_prefix("file://") {
        Box::new(std::fs::File::open(path).map_err(|e| io(format!("opening {path}"), e))?)
    } else {
        let resp = agent(limits.timeout)?
            .get(url)
            .call()
            .map_err(|e| download_error(url, e, limits.timeout))?;
        if resp.body().content_length().is_some_and(|n| n > max) {
            return Err(too_big());
        }
        Box::new(resp.into_body().into_reader())
    };
    let mut reader = reader.take(max.saturating_add(1));
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(0o600)
        .open(dest)
        .map_err(|e| io(format!("creating {}", dest.display()), e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut total: u64 = 0;
    loop {
        let n = reader.read(&mut buf).map_err(|e| {
            let timed_out =
                e.kind() == std::io::ErrorKind::TimedOut || e.to_string().contains("timeout");
            let err = Error::failed(format!("downloading {url}: {e} (truncated?)"));
            if timed_out {
                err.with_hint(timeout_hint(limits.timeout))
            } else {
                err
            }
        })?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > max {
            return Err(too_big());
        }
        h.update(&buf[..n]);
        out.write_all(&buf[..n])
            .map_err(|e| io(format!("writing {}", dest.display()), e))?;
    }
    out.sync_all()
        .map_err(|e| io(format!("writing {}", dest.display()), e))?;
    Ok(crate::checksum::hex(&h.finalize()))
}

fn timeout_hint(t: Duration) -> String {
    format!(
        "it took over --timeout {}s; raise it or use a faster mirror; the current bundle is untouched",
        t.as_secs_f64()
    )
}

const CA_FILE_ENV: &str = "BANGER_CA_FILE";

/// The HTTP(S) agent: Mozilla's roots, or those of BANGER_CA_FILE.
fn agent(timeout: Duration) -> Result<ureq::Agent> {
    let mut tls = ureq::tls::TlsConfig::builder();
    if let Some(path) = std::env::var_os(CA_FILE_ENV).filter(|p| !p.is_empty()) {
        tls = tls.root_certs(ca_file(Path::new(&path))?);
    }
    let config = ureq::Agent::config_builder()
        .tls_config(tls.build())
        .timeout_global(Some(timeout))
        .build();
    Ok(config.into())
}

fn ca_file(path: &Path) -> Result<ureq::tls::RootCerts> {
    let pem = std::fs::read(path).map_err(|e| {
        io(format!("reading {CA_FILE_ENV}={}", path.display()), e)
            .with_hint(format!("{CA_FILE_ENV} names a PEM file of CA certificates"))
    })?;
    let bad = |why: String| {
        Error::usage(format!("{CA_FILE_ENV}={}: {why}", path.display()))
            .with_hint(format!("{CA_FILE_ENV} names a PEM file of CA certificates"))
    };
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        if let ureq::tls::PemItem::Certificate(c) = item.map_err(|e| bad(e.to_string()))? {
            certs.push(c);
        }
    }
    if certs.is_empty() {
        return Err(bad("no PEM certificate in it".into()));
    }
    Ok(ureq::tls::RootCerts::new_with_certs(&certs))
}

/// A certificate the roots do not vouch for gets a hint naming the way
/// out. rustls reports it from inside the stream, so ureq hands it over as
/// an io error: its text is all there is to go by.
fn download_error(url: &str, e: ureq::Error, timeout: Duration) -> Error {
    let text = e.to_string();
    if matches!(e, ureq::Error::Timeout(_)) {
        return Error::failed(format!("downloading {url}: {text}"))
            .with_hint(timeout_hint(timeout));
    }
    if !(matches!(e, ureq::Error::Io(_) | ureq::Error::Rustls(_)) && text.contains("certificate")) {
        return Error::failed(format!("downloading {url}: {text}"));
    }
    let hint = match std::env::var_os(CA_FILE_ENV).filter(|p| !p.is_empty()) {
        Some(p) => format!(
            "it must name the host and chain to a CA in {CA_FILE_ENV}={} (which replaces the \
             public CAs); the current bundle is untouched",
            p.to_string_lossy()
        ),
        None => format!(
            "it must name the host and chain to a public CA; for a private mirror set \
             {CA_FILE_ENV} to the PEM file of its CA; the current bundle is untouched"
        ),
    };
    let text = text.strip_prefix("io: ").unwrap_or(&text);
    Error::failed(format!(
        "downloading {url}: the server's TLS certificate is not trusted ({text})"
    ))
    .with_hint(hint)
}

fn unpack(archive: &Path, staging: &Path) -> Result<()> {
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(staging)
        .map_err(|e| io(format!("creating {}", staging.display()), e))?;
    // The members were checked (archive::check); tar still gets no owners
    // and no permission bits beyond the umask's.
    let out = Command::new("tar")
        .arg("-xf")
        .arg(archive)
        .arg("-C")
        .arg(staging)
        .args(["--no-same-owner", "--no-same-permissions"])
        .output()
        .map_err(|e| io("running tar", e))?;
    if !out.status.success() {
        return Err(Error::failed(format!(
            "unpacking the bundle failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
        .with_hint("the archive is damaged; the current bundle is untouched"));
    }
    Ok(())
}

/// Make `new`: the archive's top-level entries (a single top folder,
/// `banger-runtime-1.0/...`, is looked through), and, linked from the
/// current bundle, what the archive does not carry (bundle.json, local
/// keys). Returns the archive's entries.
fn assemble(unpacked: &Path, into: &Path, new: &Path) -> Result<Vec<String>> {
    let mut src = unpacked.to_path_buf();
    let entries = list(&src)?;
    if entries.len() == 1 && src.join(&entries[0]).is_dir() {
        src = src.join(&entries[0]);
    }
    let entries = list(&src)?;
    if entries.is_empty() {
        return Err(Error::failed(
            "the bundle archive is empty; the current bundle is untouched",
        ));
    }
    let mode = std::fs::metadata(into).map_or(0o755, |m| m.mode() & 0o755);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(new)
        .map_err(|e| io(format!("creating {}", new.display()), e))?;
    for name in &entries {
        std::fs::rename(src.join(name), new.join(name))
            .map_err(|e| io(format!("staging {}", new.join(name).display()), e))?;
    }
    if into.is_dir() {
        for name in list(into)? {
            if !new.join(&name).exists() && !new.join(&name).is_symlink() {
                link_tree(&into.join(&name), &new.join(&name))?;
            }
        }
    }
    std::fs::set_permissions(new, std::fs::Permissions::from_mode(mode))
        .map_err(|e| io(format!("chmod {}", new.display()), e))?;
    Ok(entries)
}

/// Hard-link `from` (a file, a symlink, or a tree of them) at `to`; a
/// file that cannot be linked is copied.
fn link_tree(from: &Path, to: &Path) -> Result<()> {
    let err = |e| io(format!("keeping {} in the new bundle", from.display()), e);
    let m = std::fs::symlink_metadata(from).map_err(err)?;
    if m.file_type().is_symlink() {
        std::os::unix::fs::symlink(std::fs::read_link(from).map_err(err)?, to).map_err(err)
    } else if m.is_dir() {
        std::fs::create_dir(to).map_err(err)?;
        std::fs::set_permissions(to, m.permissions()).map_err(err)?;
        for name in list(from)? {
            link_tree(&from.join(&name), &to.join(&name))?;
        }
        Ok(())
    } else if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to).map(|_| ()).map_err(err)
    } else {
        Ok(())
    }
}

/// Put `new` at `into` in one step: an atomic exchange when `into` exists
/// (the old bundle ends up at `new`), else a rename.
fn swap(new: &Path, into: &Path) -> Result<()> {
    let flags = if into.exists() {
        RenameFlags::RENAME_EXCHANGE
    } else {
        RenameFlags::RENAME_NOREPLACE
    };
    renameat2(AT_FDCWD, new, AT_FDCWD, into, flags).map_err(|e| {
        io(
            format!("installing {}", into.display()),
            std::io::Error::from(e),
        )
    })
}

fn list(dir: &Path) -> Result<Vec<String>> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| io(format!("reading {}", dir.display()), e))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn the_template_manifest_parses() {
        let m = parse_manifest(
            include_str!("../../../runtime/runtime-bundle.toml"),
            Path::new("t"),
        )
        .unwrap();
        assert!(m.url.starts_with("https://"));
    }

    #[test]
    fn manifest_parses_and_rejects() {
        let p = Path::new("m.toml");
        let m = parse_manifest(
            &format!(
                "# c\nversion = \"1.0\"\nurl = \"http://127.0.0.1:1/b.tar\" # x\nsha256 = \"{}\"\n",
                SHA.to_uppercase()
            ),
            p,
        )
        .unwrap();
        assert_eq!(m.sha256, SHA);
        assert_eq!(m.version, "1.0");
        let https = format!("url = \"https://h/b.tar\"\nsha256 = \"{SHA}\"\nversion = \"1\"");
        assert_eq!(parse_manifest(&https, p).unwrap().url, "https://h/b.tar");
        for bad in [
            "url = \"http://x\"\nsha256 = \"00\"\nversion = \"1\"",
            "url = http://x",
            "colour = \"red\"",
            &format!("url = \"ftp://x\"\nsha256 = \"{SHA}\"\nversion = \"1\""),
            &format!("sha256 = \"{SHA}\"\nversion = \"1\""),
        ] {
            assert_eq!(parse_manifest(bad, p).unwrap_err().exit_code(), 2, "{bad}");
        }
    }
}
