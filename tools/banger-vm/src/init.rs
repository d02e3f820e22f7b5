//! `create --init FILE`: first-boot scripts, sent one at a time to the
//! guest agent (`POST /init`), which runs each as root to its end. Their
//! output is kept in the VM's dir (`init/NAME.log`, what `vm logs --init`
//! prints) and the record lists which ran with their exit codes.

use crate::record::{self, VmRecord};
use banger_lib::agent::{self, Endpoint};
use banger_lib::records::InitRun;
use banger_lib::{Error, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The agent takes scripts up to this size.
pub const MAX_SCRIPT: u64 = 1024 * 1024;

#[derive(Debug, Clone)]
pub struct Script {
    /// `NN-FILE`, NN its place in the order.
    pub name: String,
    pub text: String,
}

/// Read the scripts before anything is made: each must be a readable text
/// file the agent will take.
pub fn load(files: &[PathBuf]) -> Result<Vec<Script>> {
    files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let meta = std::fs::metadata(f).map_err(|e| {
                let e = banger_lib::error::io(format!("--init {}", f.display()), e);
                if e.kind == banger_lib::Kind::NotFound {
                    e
                } else {
                    Error::usage(e.message)
                }
            })?;
            if !meta.is_file() {
                return Err(Error::usage(format!(
                    "--init {} is not a file",
                    f.display()
                )));
            }
            if meta.len() > MAX_SCRIPT {
                return Err(Error::usage(format!(
                    "--init {} is {} bytes; scripts may be at most 1 MiB",
                    f.display(),
                    meta.len()
                ))
                .with_hint("have the script fetch or copy what it needs (banger vm cp)"));
            }
            let text = std::fs::read(f)
                .map_err(|e| banger_lib::error::io(format!("reading {}", f.display()), e))?;
            let text = String::from_utf8(text)
                .map_err(|_| Error::usage(format!("--init {} is not text (UTF-8)", f.display())))?;
            Ok(Script {
                name: format!("{:02}-{}", i + 1, file_part(f)),
                text,
            })
        })
        .collect()
}

fn file_part(f: &Path) -> String {
    let base = f
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let s: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(48)
        .collect();
    if s.is_empty() {
        "script".into()
    } else {
        s
    }
}

/// `--env K=V` values, as a shell would take them.
pub fn parse_env(vals: &[String]) -> Result<BTreeMap<String, String>> {
    let mut env = BTreeMap::new();
    for v in vals {
        let (k, val) = v
            .split_once('=')
            .ok_or_else(|| Error::usage(format!("--env {v:?} is not K=V")))?;
        let key_ok = !k.is_empty()
            && k.bytes().enumerate().all(|(i, b)| {
                b == b'_' || b.is_ascii_alphabetic() || (i > 0 && b.is_ascii_digit())
            });
        if !key_ok {
            return Err(Error::usage(format!(
                "--env {k:?}: a name is letters, digits and _, not starting with a digit"
            )));
        }
        if val.contains(['\n', '\0']) {
            return Err(Error::usage(format!("--env {k}: the value has a newline")));
        }
        env.insert(k.to_string(), val.to_string());
    }
    Ok(env)
}

#[derive(Deserialize)]
struct Answer {
    exit: i32,
    output: String,
    #[serde(default)]
    truncated: bool,
}

pub fn log_dir(vm: &str) -> PathBuf {
    record::vm_dir(vm).join("init")
}

/// Run every script in order, storing the record after each. The first
/// that fails (or cannot be run) is the error, its output's tail on stderr.
pub fn run_all(
    rec: &mut VmRecord,
    scripts: &[Script],
    env: &BTreeMap<String, String>,
    timeout: Duration,
) -> Result<()> {
    let name = rec.name.clone();
    let ep: Endpoint = rec
        .agent
        .clone()
        .ok_or_else(|| Error::failed(format!("{name} has no guest agent endpoint")))?;
    let dir = log_dir(&name);
    std::fs::create_dir_all(&dir)
        .map_err(|e| banger_lib::error::io(format!("making {}", dir.display()), e))?;
    for s in scripts {
        crate::steps::progress(&name, &format!("running {}", s.name));
        let body = serde_json::json!({"name": s.name, "script": s.text, "env": env});
        let reply = agent::request_with(
            &ep,
            "POST",
            "/init",
            Some(&body),
            agent::MAX_INIT_REPLY,
            timeout,
        )
        .map_err(|e| Error::failed(format!("running {}: {}", s.name, e.message)))?;
        if !reply.ok() {
            return Err(Error::failed(format!(
                "the guest agent refused {} (HTTP {}): {}",
                s.name, reply.status, reply.body["error"]
            )));
        }
        let a: Answer = serde_json::from_value(reply.body.clone()).map_err(|e| {
            Error::failed(format!(
                "the guest agent's answer to {} is not readable: {e}",
                s.name
            ))
        })?;
        let mut log = a.output.into_bytes();
        if a.truncated {
            log.extend_from_slice(b"\n[banger: output past 256 KiB was dropped]\n");
        }
        let path = dir.join(format!("{}.log", s.name));
        std::fs::write(&path, &log)
            .map_err(|e| banger_lib::error::io(format!("writing {}", path.display()), e))?;
        rec.init.push(InitRun {
            name: s.name.clone(),
            exit: a.exit,
        });
        record::store(rec)?;
        if a.exit != 0 {
            show_tail(&s.name, &log);
            return Err(Error::failed(format!(
                "init script {} exited with {}",
                s.name, a.exit
            ))
            .with_hint(format!(
                "its output is above; keep the VM to look into it: banger vm create --keep-failed ..., then banger vm logs --init {name}"
            )));
        }
    }
    Ok(())
}

/// The last lines of a failed script's output, control bytes made visible.
fn show_tail(name: &str, log: &[u8]) {
    let text = String::from_utf8_lossy(log);
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(30);
    eprintln!("--- the last lines {name} printed ---");
    for l in &lines[from..] {
        eprintln!("{}", printable(l));
    }
    eprintln!("---");
}

/// Guest text made safe for a terminal: no escape sequences.
pub fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() && c != '\t' { '?' } else { c })
        .collect()
}

/// `vm logs --init`: every script's output, in order, under a header.
pub fn print_logs(rec: &VmRecord) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let tty = std::io::IsTerminal::is_terminal(&std::io::stdout());
    for run in &rec.init {
        let path = log_dir(&rec.name).join(format!("{}.log", run.name));
        let text = std::fs::read(&path).unwrap_or_default();
        let _ = writeln!(out, "==> {} (exit {}) <==", run.name, run.exit);
        let text = String::from_utf8_lossy(&text);
        for l in text.lines() {
            let _ = if tty {
                writeln!(out, "{}", printable(l))
            } else {
                writeln!(out, "{l}")
            };
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_are_named_by_order_and_file() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("setup web.sh");
        let b = d.path().join("b");
        std::fs::write(&a, "echo a\n").unwrap();
        std::fs::write(&b, "echo b\n").unwrap();
        let s = load(&[a, b]).unwrap();
        assert_eq!(s[0].name, "01-setup_web.sh");
        assert_eq!(s[1].name, "02-b");
        assert_eq!(s[1].text, "echo b\n");
    }

    #[test]
    fn bad_scripts_are_refused_with_the_right_kind() {
        let d = tempfile::tempdir().unwrap();
        let missing = load(&[d.path().join("nope")]).unwrap_err();
        assert_eq!(missing.kind, banger_lib::Kind::NotFound);
        let big = d.path().join("big");
        std::fs::write(&big, vec![b'x'; MAX_SCRIPT as usize + 1]).unwrap();
        assert_eq!(load(&[big]).unwrap_err().kind, banger_lib::Kind::Usage);
        let bin = d.path().join("bin");
        std::fs::write(&bin, [0xff, 0xfe]).unwrap();
        assert_eq!(load(&[bin]).unwrap_err().kind, banger_lib::Kind::Usage);
        assert_eq!(
            load(&[d.path().to_path_buf()]).unwrap_err().kind,
            banger_lib::Kind::Usage
        );
    }

    #[test]
    fn env_is_k_equals_v() {
        let e = parse_env(&["A=1".into(), "B_2=x=y".into(), "EMPTY=".into()]).unwrap();
        assert_eq!(e["B_2"], "x=y");
        assert_eq!(e["EMPTY"], "");
        for bad in ["A", "=1", "1A=x", "A-B=x", "A=a\nb"] {
            assert!(parse_env(&[bad.into()]).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn guest_text_loses_its_escapes() {
        assert_eq!(printable("a\x1b[2Jb\tc\x07"), "a?[2Jb\tc?");
    }
}
