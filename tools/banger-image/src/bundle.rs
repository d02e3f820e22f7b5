//! `bundle fetch`: download a released runtime bundle (a tar archive) named
//! by a manifest, check its sha256 BEFORE unpacking, unpack it beside the
//! target dir, and only then move its files into place. A bad download
//! leaves the current bundle exactly as it was.
//!
//! https goes through ureq's rustls (ring, Mozilla's roots from
//! webpki-roots). `BANGER_CA_FILE` names a PEM file whose certificates are
//! trusted in their place, for a private mirror with its own CA.

use banger_lib::{error::io, Error, Result};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

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

pub fn fetch(manifest_path: &Path, into: &Path) -> Result<Fetched> {
    let text = std::fs::read_to_string(manifest_path)
        .map_err(|e| io(format!("reading {}", manifest_path.display()), e))?;
    let m = parse_manifest(&text, manifest_path)?;
    banger_lib::hosttools::require("tar", "unpacking the runtime bundle", "tar")?;
    std::fs::create_dir_all(into).map_err(|e| io(format!("creating {}", into.display()), e))?;
    let pid = std::process::id();
    let archive = into.join(format!(".bundle-download.{pid}"));
    let staging = into.join(format!(".bundle-new.{pid}"));
    let result = (|| {
        let got = download(&m.url, &archive)?;
        if got != m.sha256 {
            return Err(Error::failed(format!(
                "sha256 mismatch for {}: got {got}, the manifest says {}",
                m.url, m.sha256
            ))
            .with_hint(
                "the download is corrupt or the manifest is wrong; the current bundle is untouched",
            ));
        }
        unpack(&archive, &staging)?;
        install(&staging, into)
    })();
    let _ = std::fs::remove_file(&archive);
    let _ = std::fs::remove_dir_all(&staging);
    let files = result?;
    Ok(Fetched {
        version: m.version,
        url: m.url,
        sha256: m.sha256,
        into: into.to_path_buf(),
        files,
    })
}

/// Stream the archive to `dest`, hashing as it comes; returns the hex sha256.
fn download(url: &str, dest: &Path) -> Result<String> {
    let mut reader: Box<dyn Read> = if let Some(path) = url.strip_prefix("file://") {
        Box::new(std::fs::File::open(path).map_err(|e| io(format!("opening {path}"), e))?)
    } else {
        let resp = agent()?
            .get(url)
            .call()
            .map_err(|e| download_error(url, e))?;
        Box::new(resp.into_body().into_reader())
    };
    let mut out =
        std::fs::File::create(dest).map_err(|e| io(format!("creating {}", dest.display()), e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = reader
            .read(&mut buf)
            .map_err(|e| Error::failed(format!("downloading {url}: {e} (truncated?)")))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        out.write_all(&buf[..n])
            .map_err(|e| io(format!("writing {}", dest.display()), e))?;
    }
    out.sync_all()
        .map_err(|e| io(format!("writing {}", dest.display()), e))?;
    Ok(crate::checksum::hex(&h.finalize()))
}

const CA_FILE_ENV: &str = "BANGER_CA_FILE";

/// The HTTP(S) agent: Mozilla's roots, or those of BANGER_CA_FILE.
fn agent() -> Result<ureq::Agent> {
    let mut tls = ureq::tls::TlsConfig::builder();
    if let Some(path) = std::env::var_os(CA_FILE_ENV).filter(|p| !p.is_empty()) {
        tls = tls.root_certs(ca_file(Path::new(&path))?);
    }
    let config = ureq::Agent::config_builder()
        .tls_config(tls.build())
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
fn download_error(url: &str, e: ureq::Error) -> Error {
    let text = e.to_string();
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
    std::fs::create_dir(staging).map_err(|e| io(format!("creating {}", staging.display()), e))?;
    // GNU tar detects the compression itself and refuses members with `..`.
    let out = Command::new("tar")
        .arg("-xf")
        .arg(archive)
        .arg("-C")
        .arg(staging)
        .arg("--no-same-owner")
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

/// Move each top-level entry of the unpacked archive into `into`. A single
/// top folder (`banger-runtime-1.0/...`) is looked through.
fn install(staging: &Path, into: &Path) -> Result<Vec<String>> {
    let mut src = staging.to_path_buf();
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
    for name in &entries {
        let to = into.join(name);
        if to.is_dir() && !to.is_symlink() {
            std::fs::remove_dir_all(&to)
                .map_err(|e| io(format!("replacing {}", to.display()), e))?;
        }
        std::fs::rename(src.join(name), &to)
            .map_err(|e| io(format!("installing {}", to.display()), e))?;
    }
    Ok(entries)
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
