//! `POST /init`: run one first-boot script as root and answer with its exit
//! code and output. banger-vm sends each `--init` script once, in order,
//! while it creates the VM. Under systemd the script runs in a transient
//! service (`systemd-run --wait --pipe`), outside this agent's read-only
//! sandbox, so it can install packages and write anywhere; without
//! systemd (the initramfs guest) it runs as the agent's child.

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

/// The command that runs the script, its text on stdin.
pub fn command(r: &InitRequest, systemd: bool) -> Command {
    let mut c = if systemd {
        let mut c = Command::new("systemd-run");
        c.args(["--quiet", "--wait", "--pipe", "--collect"])
            .arg(format!("--unit=banger-init-{}", unit_part(&r.name)))
            .arg("--service-type=exec");
        for (k, v) in &r.env {
            c.arg(format!("--setenv={k}={v}"));
        }
        c.args(["/bin/sh", "-s"]);
        c
    } else {
        let mut c = Command::new("/bin/sh");
        c.arg("-s").envs(&r.env);
        c
    };
    c.env("BANGER_INIT", &r.name);
    c
}

fn unit_part(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
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
        let ran = run(command(&r, false), r.script.as_bytes()).unwrap();
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
        let ran = run(command(&r, false), r.script.as_bytes()).unwrap();
        assert_eq!(ran.exit, 0);
        assert_eq!(ran.output.len(), MAX_OUTPUT);
        assert!(ran.truncated);
    }

    #[test]
    fn a_killed_script_reports_128_plus_the_signal() {
        let r = req("kill -9 $$\n");
        let ran = run(command(&r, false), r.script.as_bytes()).unwrap();
        assert_eq!(ran.exit, 137);
    }

    #[test]
    fn under_systemd_it_runs_in_a_transient_service() {
        let c = command(&req("true"), true);
        let args: Vec<String> = c
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(c.get_program(), "systemd-run");
        assert!(args.contains(&"--wait".to_string()) && args.contains(&"--pipe".to_string()));
        assert!(
            args.contains(&"--unit=banger-init-01-setup_sh".to_string()),
            "{args:?}"
        );
        assert!(args.contains(&"--setenv=GREETING=hello there".to_string()));
        assert_eq!(&args[args.len() - 2..], ["/bin/sh", "-s"]);
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
