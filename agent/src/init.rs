//! `POST /init`: run one first-boot script as root and answer with its exit
//! code and output. banger-vm sends each `--init` script once, in order,
//! while it creates the VM. The script runs as the agent's child in pid
//! 1's mount namespace, outside this agent's read-only sandbox (its unit
//! has ProtectSystem=strict), so it can install packages and write
//! anywhere. (Not systemd-run: that needs D-Bus, which the image lacks.)

use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::process::{Command, Stdio};

/// The largest script body taken (the request's body limit is this plus
/// the JSON around it).
pub const MAX_SCRIPT: usize = 1024 * 1024;
/// Output kept per script; the rest is read and dropped (`truncated`).
pub const MAX_OUTPUT: usize = 256 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitRequest {
    /// The script's name, for the transient unit and messages.
    pub name: String,
    pub script: String,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

#[derive(Debug, PartialEq)]
pub struct Ran {
    /// The exit status; 128+N for a script killed by signal N.
    pub exit: i32,
    pub output: Vec<u8>,
    pub truncated: bool,
}

/// Check a request before anything runs: names and variables must be
/// things a shell and systemd-run take literally.
pub fn check(r: &InitRequest) -> Result<(), String> {
    let plain = |s: &str| {
        !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    };
    if !plain(&r.name) {
        return Err(format!("bad script name {:?}", r.name));
    }
    if r.script.len() > MAX_SCRIPT {
        return Err("script too large".into());
    }
    for (k, v) in &r.env {
        let key_ok = k
            .bytes()
            .enumerate()
            .all(|(i, b)| b == b'_' || b.is_ascii_alphabetic() || (i > 0 && b.is_ascii_digit()));
        if k.is_empty() || !key_ok || v.contains('\0') || v.contains('\n') {
            return Err(format!("bad environment variable {k:?}"));
        }
    }
    Ok(())
}

/// The command that runs the script, its text on stdin. `host_ns`, when
/// given (an open /proc/1/ns/mnt), is entered first: the agent's unit
/// gives it a read-only view of the system, and a first-boot script must
/// see and change the real one.
pub fn command(r: &InitRequest, host_ns: Option<std::fs::File>) -> Command {
    let mut c = Command::new("/bin/sh");
    c.arg("-s").envs(&r.env).env("BANGER_INIT", &r.name);
    if let Some(ns) = host_ns {
        use std::os::unix::process::CommandExt;
        // SAFETY: the closure runs in the forked child before exec and only
        // makes setns(2) and chdir(2) calls, which are async-signal-safe; it
        // allocates nothing and takes no locks. `ns` is moved in and stays
        // open until then.
        unsafe {
            c.pre_exec(move || {
                nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNS)?;
                nix::unistd::chdir("/")?;
                Ok(())
            });
        }
    }
    c
}

/// pid 1's mount namespace, when ours is another (the agent's sandbox).
pub fn host_mount_ns() -> Option<std::fs::File> {
    let ours = std::fs::read_link("/proc/self/ns/mnt").ok()?;
    let init = std::fs::read_link("/proc/1/ns/mnt").ok()?;
    (ours != init)
        .then(|| std::fs::File::open("/proc/1/ns/mnt").ok())
        .flatten()
}

/// Run `c` with `script` on stdin and stdout and stderr together, keeping
/// the first MAX_OUTPUT bytes.
pub fn run(mut c: Command, script: &[u8]) -> io::Result<Ran> {
    let (mut reader, writer) = io::pipe()?;
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(writer.try_clone()?)
        .stderr(writer)
        .spawn()?;
    // Drop our copy of the pipe's write end (held by `c`): EOF comes when
    // the script and what it started are done with it.
    drop(c);
    let mut stdin = child.stdin.take().expect("piped");
    let script = script.to_vec();
    let feeder = std::thread::spawn(move || {
        // A script that exits before reading all of itself closes the pipe.
        let _ = stdin.write_all(&script);
    });
    let mut output = Vec::new();
    let mut buf = [0u8; 8192];
    let mut truncated = false;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let room = MAX_OUTPUT - output.len();
        if n > room {
            truncated = true;
        }
        output.extend_from_slice(&buf[..n.min(room)]);
    }
    let status = child.wait()?;
    let _ = feeder.join();
    use std::os::unix::process::ExitStatusExt;
    let exit = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    Ok(Ran {
        exit,
        output,
        truncated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(script: &str) -> InitRequest {
        InitRequest {
            name: "01-setup.sh".into(),
            script: script.into(),
            env: BTreeMap::from([("GREETING".into(), "hello there".into())]),
        }
    }

    #[test]
    fn a_script_runs_with_its_env_and_its_exit_code_comes_back() {
        let r = req("echo \"$GREETING from $BANGER_INIT\"; echo oops >&2; exit 7\n");
        let ran = run(command(&r, None), r.script.as_bytes()).unwrap();
        assert_eq!(ran.exit, 7);
        assert_eq!(
            String::from_utf8_lossy(&ran.output),
            "hello there from 01-setup.sh\noops\n"
        );
        assert!(!ran.truncated);
    }

    #[test]
    fn output_is_capped_and_the_rest_drained() {
        let r = req("head -c 3000000 /dev/zero; echo done >&2\n");
        let ran = run(command(&r, None), r.script.as_bytes()).unwrap();
        assert_eq!(ran.exit, 0);
        assert_eq!(ran.output.len(), MAX_OUTPUT);
        assert!(ran.truncated);
    }

    #[test]
    fn a_killed_script_reports_128_plus_the_signal() {
        let r = req("kill -9 $$\n");
        let ran = run(command(&r, None), r.script.as_bytes()).unwrap();
        assert_eq!(ran.exit, 137);
    }

    #[test]
    fn outside_a_sandbox_there_is_no_namespace_to_enter() {
        // Tests run in pid 1's mount namespace (or cannot read its link).
        let ours = std::fs::read_link("/proc/self/ns/mnt").ok();
        let init = std::fs::read_link("/proc/1/ns/mnt").ok();
        if ours.is_some() && ours == init {
            assert!(host_mount_ns().is_none());
        }
    }

    #[test]
    fn the_script_runs_in_the_mount_namespace_it_is_given_as_root() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIPPED: needs root (unshare -m)");
            return;
        }
        let ours = std::fs::read_link("/proc/self/ns/mnt").unwrap();
        let mut other = Command::new("unshare")
            .args(["-m", "sleep", "60"])
            .spawn()
            .unwrap();
        let link = format!("/proc/{}/ns/mnt", other.id());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let theirs = loop {
            match std::fs::read_link(&link) {
                Ok(l) if l != ours => break l,
                _ if std::time::Instant::now() > deadline => panic!("unshare -m never ran"),
                _ => std::thread::sleep(std::time::Duration::from_millis(10)),
            }
        };
        let ns = std::fs::File::open(&link).unwrap();
        let r = req("readlink /proc/self/ns/mnt; pwd\n");
        let ran = run(command(&r, Some(ns)), r.script.as_bytes()).unwrap();
        let _ = other.kill();
        let _ = other.wait();
        assert_eq!(ran.exit, 0);
        assert_eq!(
            String::from_utf8_lossy(&ran.output),
            format!("{}\n/\n", theirs.display())
        );
    }

    #[test]
    fn names_and_variables_are_checked_before_anything_runs() {
        assert!(check(&req("true")).is_ok());
        for name in ["", "a b", "../x", "x;y", &"n".repeat(65)] {
            let mut r = req("true");
            r.name = name.into();
            assert!(check(&r).is_err(), "{name:?}");
        }
        for (k, v) in [("1X", "v"), ("A-B", "v"), ("", "v"), ("OK", "a\nb")] {
            let mut r = req("true");
            r.env = BTreeMap::from([(k.to_string(), v.to_string())]);
            assert!(check(&r).is_err(), "{k:?}={v:?}");
        }
    }
}
