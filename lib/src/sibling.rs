//! Running another banger tool as a process and reading its JSON lines.
//! Tools compose this way, never by linking each other's code.

use crate::error::{Error, ErrorLine, Kind, Result};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// Where the banger-* tools are looked for, in this order, the one order
/// for every tool and the dispatcher: `BANGER_LIBEXEC` when set (tests use
/// it to put a stand-in in front of a real tool), the directory of the
/// current executable (and, for a test binary in `target/*/deps`, the
/// directory above it, where cargo puts the tools), then PATH.
pub fn search_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(dir) = std::env::var_os("BANGER_LIBEXEC").filter(|d| !d.is_empty()) {
        dirs.push(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.to_path_buf()))
    {
        let up = dir
            .ends_with("deps")
            .then(|| dir.parent().map(|d| d.to_path_buf()))
            .flatten();
        dirs.push(dir);
        dirs.extend(up);
    }
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    dirs
}

/// Find `banger-X` (`tool` is the full name): the first executable of that
/// name in `search_dirs()`.
pub fn find(tool: &str) -> Option<PathBuf> {
    search_dirs()
        .into_iter()
        .map(|d| d.join(tool))
        .find(|p| crate::hosttools::is_executable(p))
}

/// A `Command` for sibling `tool`, or exit 4 when it is not installed.
pub fn command(tool: &str) -> Result<Command> {
    let path = find(tool).ok_or_else(|| {
        Error::prereq(format!(
            "{tool} is not installed next to this program or on PATH"
        ))
        .with_hint("run `make install`, or put the banger tools on PATH")
    })?;
    let mut cmd = Command::new(path);
    // Its errors come back as one JSON line on its stderr (a pipe).
    cmd.env("BANGER_ERRORS", "json");
    Ok(cmd)
}

/// Spawn `cmd` (a `command(tool)` with its args) with stdout and stderr
/// piped, and write `stdin` to it as one JSON document.
pub fn spawn(cmd: &mut Command, tool: &str, stdin: Option<&Value>) -> Result<Child> {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::failed(format!("running {tool}: {e}")))?;
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("piped stdin");
        let body = serde_json::to_vec(input).expect("JSON values serialize");
        // The tool may exit before reading everything; its exit status
        // tells what went wrong, so a broken pipe here is not the story.
        let _ = pipe.write_all(&body);
    }
    Ok(child)
}

/// Run `tool ARGS`, optionally with `stdin` written as one JSON document,
/// and return the JSON lines it printed. A non-zero exit becomes an error
/// with the same kind (exit code) and the tool's own message and hint.
pub fn run_json(tool: &str, args: &[&str], stdin: Option<&Value>) -> Result<Vec<Value>> {
    let mut cmd = command(tool)?;
    cmd.args(args);
    let out = spawn(&mut cmd, tool, stdin)?
        .wait_with_output()
        .map_err(|e| Error::failed(format!("running {tool}: {e}")))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines = parse_lines(tool, &stdout)?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let code = out.status.code().unwrap_or(1);
        return Err(tool_error(tool, args, code, &stderr));
    }
    Ok(lines)
}

/// `run_json`, each line read as `T` (banger_lib's record type for it): a
/// line that does not fit is an error naming the tool, never a guess.
pub fn run_typed<T: DeserializeOwned>(
    tool: &str,
    args: &[&str],
    stdin: Option<&Value>,
) -> Result<Vec<T>> {
    typed(tool, args, run_json(tool, args, stdin)?)
}

/// Read JSON lines a tool printed as `T`.
pub fn typed<T: DeserializeOwned>(tool: &str, args: &[&str], lines: Vec<Value>) -> Result<Vec<T>> {
    lines
        .into_iter()
        .map(|v| {
            serde_json::from_value(v.clone()).map_err(|e| {
                let verb: Vec<&str> = args
                    .iter()
                    .take_while(|a| !a.starts_with('-'))
                    .take(2)
                    .copied()
                    .collect();
                Error::failed(format!(
                    "{tool} {} printed a record this banger cannot read ({e}): {v}",
                    verb.join(" ")
                ))
            })
        })
        .collect()
}

/// Like `run_json` but for a tool that prints exactly one record.
pub fn run_one(tool: &str, args: &[&str], stdin: Option<&Value>) -> Result<Value> {
    one(tool, args, run_json(tool, args, stdin)?)
}

/// The one record of `lines`, or an error when the tool printed none or
/// several.
pub fn one(tool: &str, args: &[&str], mut lines: Vec<Value>) -> Result<Value> {
    match lines.len() {
        1 => Ok(lines.remove(0)),
        n => Err(Error::failed(format!(
            "{tool} {} printed {n} records, expected one",
            args.join(" ")
        ))),
    }
}

/// A tool's stdout as JSON values, one a line; blank lines are skipped.
pub fn parse_lines(tool: &str, stdout: &str) -> Result<Vec<Value>> {
    stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).map_err(|e| {
                Error::failed(format!("{tool} printed a line that is not JSON ({e}): {l}"))
            })
        })
        .collect()
}

/// Turn a failed tool's exit code and stderr into our error: its JSON error
/// line (`BANGER_ERRORS=json`, set by `command`) keeps its kind, message
/// and hint. A tool that died without one (a crash, a signal) is described
/// by its exit status and the last lines it wrote.
pub fn tool_error(tool: &str, args: &[&str], code: i32, stderr: &str) -> Error {
    let verb = args.iter().take_while(|a| !a.starts_with('-')).take(2);
    let what = std::iter::once(tool)
        .chain(verb.copied())
        .collect::<Vec<_>>()
        .join(" ");
    let line = stderr
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<ErrorLine>(l).ok());
    match line {
        Some(l) => {
            let e = l.into_error();
            let message = format!("{what} failed: {}", e.message);
            e.reword(message)
        }
        None => {
            let tail: Vec<&str> = stderr.lines().rev().take(3).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            let why = if tail.is_empty() {
                format!("exited with status {code}")
            } else {
                format!("exited with status {code}: {}", tail.join(" / "))
            };
            Error::new(Kind::from_exit_code(code), format!("{what} failed: {why}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_error_keeps_kind_message_and_hint() {
        let e = tool_error(
            "banger-net",
            &["tap", "acquire", "--vm", "x"],
            4,
            "banger-net: warning: something\n\
             {\"error\":\"nft is missing\",\"kind\":\"prereq\",\"exit\":4,\
             \"hint\":\"install it: apt-get install nftables\"}\n",
        );
        assert_eq!(e.exit_code(), 4);
        assert_eq!(e.message, "banger-net tap acquire failed: nft is missing");
        assert_eq!(
            e.hint.as_deref(),
            Some("install it: apt-get install nftables")
        );
    }

    #[test]
    fn tool_error_without_an_error_line() {
        let e = tool_error("banger-x", &[], 139, "Segmentation fault\n");
        assert_eq!(e.exit_code(), 1);
        assert_eq!(
            e.message,
            "banger-x failed: exited with status 139: Segmentation fault"
        );
        // Human text is not parsed: only the JSON line carries a kind.
        let e = tool_error("banger-x", &[], 3, "banger-x: error: gone\nhint: h\n");
        assert_eq!(e.exit_code(), 3);
        assert_eq!(e.hint, None);
    }

    #[test]
    fn parse_lines_rejects_garbage() {
        assert_eq!(
            parse_lines("t", "{\"a\":1}\n\n{\"b\":2}\n").unwrap().len(),
            2
        );
        assert!(parse_lines("t", "{\"a\":1}\nnot json\n").is_err());
    }

    #[test]
    fn one_wants_exactly_one_record() {
        let v = serde_json::json!({"a": 1});
        assert_eq!(one("t", &[], vec![v.clone()]).unwrap(), v);
        let e = one("banger-x", &["list"], vec![v.clone(), v]).unwrap_err();
        assert_eq!(e.message, "banger-x list printed 2 records, expected one");
        assert!(one("t", &[], vec![]).is_err());
    }

    #[test]
    fn missing_sibling_is_prereq() {
        let e = command("banger-no-such-tool").unwrap_err();
        assert_eq!(e.exit_code(), 4);
    }
}
