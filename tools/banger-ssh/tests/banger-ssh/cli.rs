//! banger-ssh as a command. The live tests run a real OpenSSH sshd inside a
//! network namespace, on an address there, standing in for a guest.

use banger_testkit::fakevsock::{Behaviour, FakeVsock};
use banger_testkit::{Home, NetNs};
use serde_json::Value;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub const GUEST_IP: &str = "10.213.0.2";

/// A banger home with a runtime bundle whose key is ours.
pub struct Env {
    pub home: Home,
    runtime: PathBuf,
}

impl Env {
    pub fn new() -> Env {
        let home = Home::new();
        let runtime = home.path().join("runtime");
        std::fs::create_dir_all(&runtime).unwrap();
        std::fs::write(
            runtime.join("bundle.json"),
            r#"{"schema":1,"ssh_key":"key"}"#,
        )
        .unwrap();
        keygen(&runtime.join("key"));
        Env { home, runtime }
    }

    fn key(&self) -> PathBuf {
        self.runtime.join("key")
    }

    pub fn vm(&self, name: &str, state: &str, ip: &str) {
        self.vm_with_agent(name, state, ip, None);
    }

    /// A VM whose guest agent answers on `uds`.
    pub fn vm_with_agent(&self, name: &str, state: &str, ip: &str, uds: Option<&Path>) {
        let rec = banger_testkit::records::vm(name, state, Some(ip), uds);
        banger_testkit::records::store_vm(&self.home.path().join("state"), &rec);
    }

    fn apply(&self, c: &mut Command) {
        self.home.apply(c);
        c.env("BANGER_RUNTIME", &self.runtime);
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(banger_testkit::bin("banger-ssh"));
        self.apply(&mut c);
        c
    }

    pub fn known_hosts(&self, name: &str) -> PathBuf {
        self.home.path().join("state/banger/known_hosts").join(name)
    }
}

pub fn keygen(path: &Path) {
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .unwrap();
    assert!(st.success());
}

pub fn lines(out: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// `TYPE BASE64` of a public key file.
pub fn pubkey(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    text.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// What the guest agent answers to GET /hostkeys.
pub fn hostkeys(keys: &[&str]) -> Behaviour {
    Behaviour::Http(200, serde_json::json!({ "keys": keys }).to_string())
}

/// sshd on GUEST_IP:22 inside its own namespace, accepting our key as
/// root, and VM "box" at that address, whose guest agent (a fake vsock)
/// gives sshd's host key.
pub struct Guest {
    pub ns: NetNs,
    sshd: Child,
    pub agent: FakeVsock,
    /// sshd's host key, `TYPE BASE64`.
    pub host_key: String,
    _dir: tempfile::TempDir,
}

impl Guest {
    pub fn start(env: &Env) -> Guest {
        let ns = NetNs::new();
        ns.sh(&format!("ip addr add {GUEST_IP}/32 dev lo"));
        let dir = tempfile::Builder::new()
            .prefix("sshd")
            .tempdir_in("/tmp")
            .unwrap();
        let d = dir.path();
        keygen(&d.join("host"));
        let host_key = pubkey(&d.join("host.pub"));
        let agent = FakeVsock::start(hostkeys(&[&host_key]));
        env.vm_with_agent("box", "running", GUEST_IP, Some(agent.path()));
        std::fs::copy(env.key().with_extension("pub"), d.join("authorized_keys")).unwrap();
        let cfg = d.join("sshd_config");
        std::fs::write(
            &cfg,
            format!(
                "ListenAddress {GUEST_IP}:22\nHostKey {0}/host\nAuthorizedKeysFile {0}/authorized_keys\n\
                 PermitRootLogin prohibit-password\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPidFile {0}/sshd.pid\n\
                 Subsystem sftp /usr/lib/openssh/sftp-server\n",
                d.display()
            ),
        )
        .unwrap();
        // sshd's privilege-separation directory, as openssh-server's unit makes it.
        std::fs::create_dir_all("/run/sshd").unwrap();
        let sshd = ns
            .command("/usr/sbin/sshd")
            .arg("-D")
            .arg("-f")
            .arg(&cfg)
            .arg("-E")
            .arg(d.join("sshd.log"))
            .spawn()
            .unwrap();
        // sshd -D forks nothing to wait on: it is ready once it logs that
        // it listens.
        let log = d.join("sshd.log");
        let listening = banger_lib::wait::poll(std::time::Duration::from_secs(20), || {
            std::fs::read_to_string(&log)
                .ok()
                .filter(|l| l.contains("Server listening"))
        });
        assert!(listening.is_some(), "sshd did not start listening");
        Guest {
            ns,
            sshd,
            agent,
            host_key,
            _dir: dir,
        }
    }

    /// banger-ssh run inside the namespace.
    pub fn ssh(&self, env: &Env, args: &[&str]) -> Command {
        let mut c = self.ns.command(banger_testkit::bin("banger-ssh"));
        env.apply(&mut c);
        c.args(args);
        c
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        let _ = self.sshd.kill();
        let _ = self.sshd.wait();
    }
}

fn run_with_stdin(mut c: Command, input: &str) -> Output {
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

pub fn live(test: &str) -> bool {
    banger_testkit::require_root(test)
        && banger_testkit::require_tool(test, "sshd")
        && banger_testkit::require_tool(test, "ssh")
}

/// A stand-in banger-health that says the VM is (or is not) running.
fn fake_health(dir: &Path, ok: bool) {
    let p = dir.join("banger-health");
    std::fs::write(
        &p,
        format!(
            "#!/bin/sh\necho '{{\"name\":\"box\",\"ok\":{ok}}}'\nexit {}\n",
            if ok { 0 } else { 1 }
        ),
    )
    .unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn live_root_commands_exit_codes_stdin_and_argv_pass_through() {
    if !live("live_root_commands_exit_codes_stdin_and_argv_pass_through") {
        return;
    }
    let env = Env::new();
    let guest = Guest::start(&env);

    let out = guest
        .ssh(&env, &["wait", "box", "--timeout", "30"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let l = lines(&out.stdout);
    assert_eq!(l[0]["ok"], true);
    assert!(l[0]["banner"]
        .as_str()
        .unwrap()
        .starts_with("SSH-2.0-OpenSSH"));
    assert_eq!(l[0]["ip"], GUEST_IP);

    for (args, code) in [
        (&["box", "--", "true"][..], 0),
        (&["box", "--", "sh", "-c", "exit 7"], 7),
        (&["box", "--", "exit 3"], 3),
        (&["box", "--", "false"], 1),
    ] {
        let out = guest.ssh(&env, args).output().unwrap();
        assert_eq!(out.status.code(), Some(code), "{args:?}: {out:?}");
    }
    // The agent's key was pinned in the VM's own file before any ssh.
    let kh = std::fs::read_to_string(env.known_hosts("box")).unwrap();
    assert_eq!(kh, format!("{GUEST_IP} {}\n", guest.host_key));

    let out = run_with_stdin(
        guest.ssh(&env, &["box", "--", "tr", "a-z", "A-Z"]),
        "hello\n",
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "HELLO\n");

    let out = guest
        .ssh(&env, &["box", "--", "printf", "%s|", "a b", "c'd", "$HOME"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a b|c'd|$HOME|");

    // A stanza from `config` works with plain ssh.
    let out = env.cmd().args(["config", "box"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let cfg = env.home.path().join("ssh_config");
    std::fs::write(&cfg, &out.stdout).unwrap();
    let st = guest
        .ns
        .command("ssh")
        .arg("-F")
        .arg(&cfg)
        .args(["-o", "BatchMode=yes", "box.vm", "exit 4"])
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(4));

    // forget drops the host key; the next login pins it again.
    let out = env.cmd().args(["forget", "box"]).output().unwrap();
    assert_eq!(lines(&out.stdout)[0]["removed"], true);
    assert!(!env.known_hosts("box").exists());
    let out = env.cmd().args(["forget", "box"]).output().unwrap();
    assert_eq!(lines(&out.stdout)[0]["removed"], false);
    let out = guest.ssh(&env, &["box", "--", "true"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[test]
fn live_root_interactive_session_reminds_while_running() {
    if !live("live_root_interactive_session_reminds_while_running") {
        return;
    }
    let env = Env::new();
    let guest = Guest::start(&env);
    guest.ssh(&env, &["wait", "box"]).output().unwrap();
    let libexec = tempfile::tempdir().unwrap();

    fake_health(libexec.path(), true);
    let mut c = guest.ssh(&env, &["box"]);
    c.env("BANGER_LIBEXEC", libexec.path());
    let out = run_with_stdin(c, "echo from-the-shell; exit 5\n");
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("from-the-shell"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("box is still running; stop it with: banger vm stop box"),
        "{err}"
    );

    fake_health(libexec.path(), false);
    let mut c = guest.ssh(&env, &["box"]);
    c.env("BANGER_LIBEXEC", libexec.path());
    let out = run_with_stdin(c, "exit 0\n");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("still running"));
}

#[test]
fn live_root_wait_times_out_without_sshd() {
    if !live("live_root_wait_times_out_without_sshd") {
        return;
    }
    let env = Env::new();
    env.vm("box", "running", GUEST_IP);
    let ns = NetNs::new();
    ns.sh(&format!("ip addr add {GUEST_IP}/32 dev lo"));
    let mut c = ns.command(banger_testkit::bin("banger-ssh"));
    env.apply(&mut c);
    let out = c
        .args(["wait", "box", "--timeout", "0.5"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let l = lines(&out.stdout);
    assert_eq!(l[0]["ok"], false);
    assert!(l[0]["error"].as_str().unwrap().contains("did not answer"));
}

#[test]
fn key_readable_by_others_is_refused() {
    let env = Env::new();
    env.vm("box", "running", GUEST_IP);
    std::fs::set_permissions(env.key(), std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = env.cmd().args(["box", "--", "true"]).output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("mode 0644"), "{err}");
    assert!(err.contains("hint: chmod 600"), "{err}");
}

#[test]
fn missing_ssh_exits_4_naming_the_package() {
    let env = Env::new();
    env.vm("box", "running", GUEST_IP);
    let out = env
        .cmd()
        .env("PATH", "/nonexistent")
        .env("BANGER_PATH_ONLY", "1")
        .args(["box", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("apt-get install openssh-client"));
}

#[test]
fn vm_must_exist_and_run() {
    let env = Env::new();
    let out = env.cmd().arg("ghost").output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    env.vm("off", "stopped", GUEST_IP);
    let out = env.cmd().args(["off", "--", "true"]).output().unwrap();
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("banger vm start off"));
    let out = env.cmd().args(["wait", "ghost"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
}

#[test]
fn config_prints_a_stanza_per_vm() {
    let env = Env::new();
    env.vm("a", "running", "10.0.0.2");
    env.vm("b", "stopped", "10.0.0.3");
    let out = env.cmd().args(["config", "a", "b"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Host a.vm\n    HostName 10.0.0.2\n"),
        "{text}"
    );
    assert!(
        text.contains("Host b.vm\n    HostName 10.0.0.3\n"),
        "{text}"
    );
    assert!(text.contains(&format!("IdentityFile {}", env.key().display())));
    let out = env.cmd().args(["config", "a", "ghost"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(out.stdout.is_empty());
}

#[test]
fn usage_errors_exit_2() {
    let env = Env::new();
    for args in [
        &[][..],
        &["Bad/Name"],
        &["wait"],
        &["wait", "a", "--timeout", "0"],
        &["forget"],
    ] {
        let out = env.cmd().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
    }
}

#[test]
fn cp_refuses_what_it_cannot_copy() {
    let env = Env::new();
    env.vm("box", "stopped", GUEST_IP);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    std::fs::write(&file, "x").unwrap();
    let f = file.to_str().unwrap();
    let d = dir.path().to_str().unwrap();
    for (args, code, says) in [
        (vec!["cp", f, "/tmp/elsewhere"], 2, "neither side"),
        (
            vec!["cp", "/nonexistent/src", "box:/root/"],
            3,
            "no such file",
        ),
        (vec!["cp", d, "box:/root/"], 2, "with -r"),
        (vec!["cp", f, "ghost:/root/"], 3, "no VM named ghost"),
        (vec!["cp", f, "box:/root/"], 5, "not running"),
        (vec!["cp", "box:/a", "web:/b"], 2, "not two VMs"),
    ] {
        let out = env.cmd().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(code), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

#[test]
fn live_root_cp_files_and_directories_both_ways() {
    if !live("live_root_cp_files_and_directories_both_ways")
        || !banger_testkit::require_tool("live_root_cp_files_and_directories_both_ways", "scp")
    {
        return;
    }
    let env = Env::new();
    let guest = Guest::start(&env);
    let out = guest
        .ssh(&env, &["wait", "box", "--timeout", "30"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // The "guest" is this host's sshd in a namespace: its paths are ours.
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(w.join("in.bin"), &data).unwrap();
    std::fs::create_dir_all(w.join("tree/sub")).unwrap();
    std::fs::write(w.join("tree/sub/a.txt"), "alpha\n").unwrap();
    std::fs::write(w.join("tree/b.txt"), "beta\n").unwrap();
    let p = |rel: &str| w.join(rel).to_str().unwrap().to_string();
    let cp = |args: &[&str]| {
        let out = guest
            .ssh(&env, &[&["cp"][..], args].concat())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "cp {args:?}: {out:?}");
    };
    cp(&[&p("in.bin"), &format!("box:{}", p("copied.bin"))]);
    cp(&[&format!("box:{}", p("copied.bin")), &p("back.bin")]);
    assert_eq!(std::fs::read(w.join("back.bin")).unwrap(), data);
    cp(&["-r", &p("tree"), &format!("box:{}", p("tree2"))]);
    cp(&["-r", &format!("box:{}", p("tree2")), &p("tree3")]);
    assert_eq!(
        std::fs::read_to_string(w.join("tree3/sub/a.txt")).unwrap(),
        "alpha\n"
    );
    assert_eq!(
        std::fs::read_to_string(w.join("tree3/b.txt")).unwrap(),
        "beta\n"
    );
    // A missing remote source: scp's own exit code and message.
    let out = guest
        .ssh(&env, &["cp", &format!("box:{}", p("nope")), &p("x")])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("No such file"),
        "{out:?}"
    );
    assert!(!w.join("x").exists());
}
