//! `bundle fetch` of archives that must never be unpacked (`..`, absolute
//! names, symlinks out, setuid files, device nodes), archives over the
//! size limit, and a server that stalls past the timeout: each is refused
//! and leaves the old bundle as it was, nothing staged beside it.

use crate::bundle::{assert_untouched, fetch, manifest, old_runtime, sha};
use crate::common::image;
use banger_testkit::Home;
use predicates::str::contains;
use std::path::Path;
use std::process::Command;

/// `sh -c SCRIPT` in `dir`, which must succeed.
fn sh(dir: &Path, script: &str) {
    let out = Command::new("sh")
        .args(["-c", script])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{script}: {out:?}");
}

/// A gzipped tar of `banger-runtime/vmlinux` plus `extra` members, made
/// with -P so tar keeps absolute and `..` names as given.
fn archive_with(home: &Home, tag: &str, setup: &str, extra: &str) -> Vec<u8> {
    // Two levels down: the archive's `../x` is home/src/x here, and would
    // be home/x if a fetch ever unpacked it.
    let src = home.path().join("src").join(tag);
    std::fs::create_dir_all(src.join("banger-runtime")).unwrap();
    std::fs::write(src.join("banger-runtime/vmlinux"), b"new kernel").unwrap();
    sh(&src, setup);
    let tgz = home.path().join(format!("{tag}.tar.gz"));
    sh(
        &src,
        &format!("tar -czPf {} banger-runtime {extra}", tgz.display()),
    );
    std::fs::read(tgz).unwrap()
}

fn file_url(home: &Home, tag: &str, body: &[u8]) -> String {
    let p = home.path().join(format!("{tag}.served"));
    std::fs::write(&p, body).unwrap();
    format!("file://{}", p.display())
}

#[test]
fn unsafe_members_are_refused_and_the_old_bundle_stays() {
    let home = Home::new();
    let rt = old_runtime(&home);
    let outside = home.path().join("outside");
    std::fs::write(&outside, b"x").unwrap();
    let mut cases = vec![
        (
            "dotdot",
            "echo evil > ../x",
            "../x".to_string(),
            "../x contains ..",
        ),
        (
            "absolute",
            "",
            outside.display().to_string(),
            "is an absolute path",
        ),
        (
            "symlink",
            "ln -s /etc/passwd banger-runtime/passwd",
            String::new(),
            "banger-runtime/passwd is a symlink out of it (/etc/passwd)",
        ),
        (
            "setuid",
            "echo x > banger-runtime/su && chmod 4755 banger-runtime/su",
            String::new(),
            "banger-runtime/su is setuid",
        ),
    ];
    if banger_lib::hosttools::is_root() {
        cases.push((
            "device",
            "mknod banger-runtime/mem c 1 1",
            String::new(),
            "banger-runtime/mem is a device node",
        ));
    }
    // One archive with all of them, then each alone.
    let all_setup: Vec<&str> = cases
        .iter()
        .map(|c| c.1)
        .filter(|s| !s.is_empty())
        .collect();
    let all_extra: Vec<&str> = cases.iter().map(|c| c.2.as_str()).collect();
    let body = archive_with(&home, "all", &all_setup.join(" && "), &all_extra.join(" "));
    let m = manifest(&home, &file_url(&home, "all", &body), &sha(&body));
    let a = fetch(&home, &m, &rt).code(1);
    let err = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
    for c in &cases[..4] {
        assert!(err.contains(c.3), "{}: {err}", c.0);
    }
    assert_untouched(&rt);
    for (tag, setup, extra, why) in &cases {
        let body = archive_with(&home, tag, setup, extra);
        let m = manifest(&home, &file_url(&home, tag, &body), &sha(&body));
        fetch(&home, &m, &rt)
            .code(1)
            .stderr(contains(*why))
            .stderr(contains("the current bundle is untouched"));
        assert_untouched(&rt);
    }
    // Nothing was ever written outside.
    assert!(!home.path().join("x").exists());
    assert_eq!(std::fs::read(&outside).unwrap(), b"x");
}

#[test]
fn an_archive_over_the_size_limit_is_refused() {
    let home = Home::new();
    let rt = old_runtime(&home);
    let src = home.path().join("src/banger-runtime");
    std::fs::create_dir_all(&src).unwrap();
    // 2 MiB that gzip cannot shrink.
    sh(
        &home.path().join("src"),
        "head -c 2097152 /dev/urandom > banger-runtime/vmlinux && \
         tar -czf ../big.tar.gz banger-runtime",
    );
    let body = std::fs::read(home.path().join("big.tar.gz")).unwrap();
    assert!(body.len() > 1 << 20);
    let m = manifest(&home, &file_url(&home, "big", &body), &sha(&body));
    image(&home)
        .args(["bundle", "fetch", "--max-mib", "1", "--manifest"])
        .arg(&m)
        .arg("--into")
        .arg(&rt)
        .assert()
        .code(1)
        .stderr(contains("larger than the limit of 1 MiB"))
        .stderr(contains("--max-mib"));
    assert_untouched(&rt);
}

#[test]
fn a_stalled_server_hits_the_timeout_in_a_netns() {
    let test = "a_stalled_server_hits_the_timeout_in_a_netns";
    if !banger_testkit::require_root(test) {
        return;
    }
    let ns = banger_testkit::NetNs::new();
    let home = Home::new();
    let rt = old_runtime(&home);
    // A server on the namespace's loopback that sends headers and a few
    // bytes, then nothing; it holds the connection until the test ends.
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let nsfile = std::fs::File::open(format!("/var/run/netns/{}", ns.name)).unwrap();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        use std::os::fd::AsRawFd;
        // SAFETY: setns with a valid namespace fd moves only this thread
        // into that network namespace; nothing else shares its state.
        let r = unsafe { libc::setns(nsfile.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        addr_tx.send(l.local_addr().unwrap()).unwrap();
        let (mut c, _) = l.accept().unwrap();
        let mut b = [0u8; 4096];
        let _ = c.read(&mut b);
        let _ = c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\nstart");
        let _ = done_rx.recv();
    });
    let addr = addr_rx.recv().unwrap();
    let m = manifest(&home, &format!("http://{addr}/b.tar.gz"), &sha(b"x"));
    let mut c = ns.command(assert_cmd::cargo::cargo_bin("banger-image"));
    home.apply(&mut c);
    let started = std::time::Instant::now();
    let out = c
        .env_remove("BANGER_RUNTIME")
        .args(["bundle", "fetch", "--timeout", "1", "--manifest"])
        .arg(&m)
        .arg("--into")
        .arg(&rt)
        .output()
        .unwrap();
    drop(done_tx);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("--timeout"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    assert_untouched(&rt);
}
