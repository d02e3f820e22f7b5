//! `bundle fetch` against an HTTP server on 127.0.0.1 in the test: a good
//! archive installs; a sha256 mismatch, a cut-off download or a damaged
//! archive leave the old bundle untouched. https: `openssl s_server` on
//! 127.0.0.1 with a CA made for the test, trusted through BANGER_CA_FILE.

use crate::common::{image, lines};
use banger_testkit::Home;
use predicates::str::contains;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Serve `body` to every request, declaring `declared` bytes; a shorter
/// body models a connection cut mid-download.
fn serve(body: Vec<u8>, declared: usize, status: &'static str) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut c) = conn else { break };
            let mut req = Vec::new();
            let mut b = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match c.read(&mut b) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&b[..n]),
                }
            }
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {declared}\r\nConnection: close\r\n\r\n"
            );
            let _ = c.write_all(head.as_bytes());
            let _ = c.write_all(&body);
        }
    });
    format!("http://{addr}/banger-runtime.tar.gz")
}

pub fn sha(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// A gzipped tar of a `banger-runtime/` folder holding vmlinux and a key.
fn archive(dir: &Path) -> Vec<u8> {
    let src = dir.join("src/banger-runtime");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("vmlinux"), b"new kernel").unwrap();
    std::fs::write(src.join("id_ed25519.pub"), b"ssh-ed25519 AAAA new").unwrap();
    let tgz = dir.join("b.tar.gz");
    let st = std::process::Command::new("tar")
        .arg("-czf")
        .arg(&tgz)
        .arg("-C")
        .arg(dir.join("src"))
        .arg("banger-runtime")
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::read(tgz).unwrap()
}

/// No download, unpack or new dir of a fetch is left beside `rt`.
pub fn assert_no_staging_beside(rt: &Path) {
    let prefix = format!(".{}.", rt.file_name().unwrap().to_string_lossy());
    let left: Vec<_> = std::fs::read_dir(rt.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&prefix))
        .collect();
    assert!(left.is_empty(), "left beside {}: {left:?}", rt.display());
}

/// A runtime dir with an old bundle in it.
pub fn old_runtime(home: &Home) -> PathBuf {
    let rt = home.path().join("runtime");
    std::fs::create_dir_all(&rt).unwrap();
    std::fs::write(rt.join("vmlinux"), b"old kernel").unwrap();
    std::fs::write(rt.join("bundle.json"), b"{}").unwrap();
    rt
}

pub fn manifest(home: &Home, url: &str, sha256: &str) -> PathBuf {
    let m = home.path().join("runtime-bundle.toml");
    std::fs::write(
        &m,
        format!("version = \"9.9\"\nurl = \"{url}\"\nsha256 = \"{sha256}\"\n"),
    )
    .unwrap();
    m
}

pub fn fetch(home: &Home, m: &Path, rt: &Path) -> assert_cmd::assert::Assert {
    image(home)
        .args(["bundle", "fetch", "--manifest"])
        .arg(m)
        .arg("--into")
        .arg(rt)
        .assert()
}

pub fn assert_untouched(rt: &Path) {
    assert_no_staging_beside(rt);
    assert_eq!(std::fs::read(rt.join("vmlinux")).unwrap(), b"old kernel");
    assert!(!rt.join("id_ed25519.pub").exists());
    let names: Vec<_> = std::fs::read_dir(rt)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| !n.starts_with(".bundle")),
        "left behind: {names:?}"
    );
}

#[test]
fn good_archive_installs() {
    let home = Home::new();
    let rt = old_runtime(&home);
    let body = archive(home.path());
    let url = serve(body.clone(), body.len(), "200 OK");
    let m = manifest(&home, &url, &sha(&body));
    let out = fetch(&home, &m, &rt).success().get_output().stdout.clone();
    let rec = &lines(&out)[0];
    assert_eq!(rec["version"], "9.9");
    assert_eq!(rec["sha256"], sha(&body));
    assert_eq!(
        rec["files"],
        serde_json::json!(["id_ed25519.pub", "vmlinux"])
    );
    assert_eq!(std::fs::read(rt.join("vmlinux")).unwrap(), b"new kernel");
    assert_no_staging_beside(&rt);
    // What the archive does not carry stays.
    assert!(rt.join("bundle.json").is_file());
    let leftovers = std::fs::read_dir(&rt)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".bundle")
        })
        .count();
    assert_eq!(leftovers, 0);
}

#[test]
fn sha256_mismatch_leaves_the_old_bundle() {
    let home = Home::new();
    let rt = old_runtime(&home);
    let body = archive(home.path());
    let url = serve(body.clone(), body.len(), "200 OK");
    let m = manifest(&home, &url, &sha(b"something else"));
    fetch(&home, &m, &rt)
        .code(1)
        .stderr(contains("sha256 mismatch"));
    assert_untouched(&rt);
}

#[test]
fn cut_off_download_leaves_the_old_bundle() {
    let home = Home::new();
    let rt = old_runtime(&home);
    let body = archive(home.path());
    let half = body[..body.len() / 2].to_vec();
    let url = serve(half, body.len(), "200 OK");
    let m = manifest(&home, &url, &sha(&body));
    fetch(&home, &m, &rt)
        .code(1)
        .stderr(contains("downloading"));
    assert_untouched(&rt);
}

#[test]
fn truncated_archive_with_its_own_checksum_is_refused_by_unpacking() {
    let home = Home::new();
    let rt = old_runtime(&home);
    let body = archive(home.path());
    let half = body[..body.len() / 2].to_vec();
    let url = serve(half.clone(), half.len(), "200 OK");
    let m = manifest(&home, &url, &sha(&half));
    fetch(&home, &m, &rt)
        .code(1)
        .stderr(contains("unpacking the bundle failed"));
    assert_untouched(&rt);
}

#[test]
fn http_error_and_bad_manifests() {
    let home = Home::new();
    let rt = old_runtime(&home);
    let url = serve(b"nope".to_vec(), 4, "404 Not Found");
    let m = manifest(&home, &url, &sha(b"x"));
    fetch(&home, &m, &rt).code(1).stderr(contains("404"));
    assert_untouched(&rt);
    let m = manifest(&home, "ftp://127.0.0.1:1/b.tar.gz", &sha(b"x"));
    fetch(&home, &m, &rt).code(2).stderr(contains("https://"));
    let m = manifest(&home, "http://127.0.0.1:1/b.tar.gz", "abc");
    fetch(&home, &m, &rt).code(2).stderr(contains("64 hex"));
    fetch(&home, &home.path().join("none.toml"), &rt).code(3);
    assert_untouched(&rt);
}

/// Run `openssl ARGS` in `dir` (no argument holds a space).
fn openssl(dir: &Path, args: &str) {
    let out = Command::new("openssl")
        .args(args.split_whitespace())
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const EC: &str = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2";

/// A CA (ca.pem) and a server certificate for IP 127.0.0.1 signed by it.
fn make_certs(dir: &Path) {
    openssl(
        dir,
        &format!(
            "req -x509 {EC} -keyout ca.key -out ca.pem -subj /CN=banger-test-CA \
             -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign"
        ),
    );
    openssl(
        dir,
        &format!("req {EC} -keyout srv.key -out srv.csr -subj /CN=127.0.0.1"),
    );
    std::fs::write(
        dir.join("srv.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        "x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 2 \
         -extfile srv.ext",
    );
}

/// `openssl s_server -WWW` serving the files of its folder; killed on drop.
struct HttpsServer {
    child: Child,
    port: u16,
}

impl HttpsServer {
    fn start(dir: &Path) -> HttpsServer {
        let mut child = Command::new("openssl")
            .args(["s_server", "-WWW", "-accept", "127.0.0.1:0"])
            .args(["-cert", "srv.pem", "-key", "srv.key"])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.join("s_server.log")).unwrap())
            .spawn()
            .unwrap();
        // It prints `ACCEPT 127.0.0.1:PORT` once listening; the rest of its
        // stdout is drained so it never blocks on a full pipe.
        let out = std::io::BufReader::new(child.stdout.take().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in out.lines().map_while(Result::ok) {
                if let Some(p) = line.strip_prefix("ACCEPT 127.0.0.1:") {
                    let _ = tx.send(p.trim().parse::<u16>().unwrap());
                }
            }
        });
        let port = match rx.recv() {
            Ok(p) => p,
            Err(_) => panic!(
                "openssl s_server exited ({:?}): {}",
                child.wait(),
                std::fs::read_to_string(dir.join("s_server.log")).unwrap_or_default()
            ),
        };
        HttpsServer { child, port }
    }
}

impl Drop for HttpsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn https_with_and_without_the_ca() {
    if !banger_testkit::require_tool("https_with_and_without_the_ca", "openssl") {
        return;
    }
    let home = Home::new();
    let rt = old_runtime(&home);
    let www = home.path().join("www");
    std::fs::create_dir(&www).unwrap();
    make_certs(&www);
    let body = archive(home.path());
    std::fs::write(www.join("b.tar.gz"), &body).unwrap();
    let server = HttpsServer::start(&www);
    let url = format!("https://127.0.0.1:{}/b.tar.gz", server.port);
    let m = manifest(&home, &url, &sha(&body));

    // Not signed by a public CA: refused, with the way out in the hint.
    image(&home)
        .env_remove("BANGER_CA_FILE")
        .args(["bundle", "fetch", "--manifest"])
        .arg(&m)
        .arg("--into")
        .arg(&rt)
        .assert()
        .code(1)
        .stderr(contains("TLS certificate is not trusted"))
        .stderr(contains("BANGER_CA_FILE"));
    assert_untouched(&rt);

    // A CA file replaces the public CAs: another CA does not vouch for it.
    openssl(
        &www,
        &format!("req -x509 {EC} -keyout other.key -out other.pem -subj /CN=other-CA"),
    );
    image(&home)
        .env("BANGER_CA_FILE", www.join("other.pem"))
        .args(["bundle", "fetch", "--manifest"])
        .arg(&m)
        .arg("--into")
        .arg(&rt)
        .assert()
        .code(1)
        .stderr(contains("TLS certificate is not trusted"))
        .stderr(contains("other.pem"));
    assert_untouched(&rt);

    // A CA file that is not PEM is a usage error, before any download.
    image(&home)
        .env("BANGER_CA_FILE", www.join("srv.ext"))
        .args(["bundle", "fetch", "--manifest"])
        .arg(&m)
        .arg("--into")
        .arg(&rt)
        .assert()
        .code(2)
        .stderr(contains("no PEM certificate"));
    assert_untouched(&rt);

    let out = image(&home)
        .env("BANGER_CA_FILE", www.join("ca.pem"))
        .args(["bundle", "fetch", "--manifest"])
        .arg(&m)
        .arg("--into")
        .arg(&rt)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let rec = &lines(&out)[0];
    assert_eq!(rec["url"], url.as_str());
    assert_eq!(rec["sha256"], sha(&body));
    assert_eq!(std::fs::read(rt.join("vmlinux")).unwrap(), b"new kernel");
}
