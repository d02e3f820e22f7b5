//! The command line, by hand: the agent ships in every image, so it carries
//! no argument-parsing dependency.

use std::path::PathBuf;

pub const DEFAULT_PORT: u32 = 52;

#[derive(Debug, PartialEq)]
pub enum Listen {
    Vsock(u32),
    /// For tests and debugging on a host without vsock.
    Unix(PathBuf),
}

#[derive(Debug, PartialEq)]
pub enum Action {
    Run(Listen),
    Print(String),
}

pub const HELP: &str = "\
banger-vsock-agent: the banger guest agent, HTTP over AF_VSOCK and the
virtio-serial port org.banger.agent

Usage: banger-vsock-agent [--port PORT] [--unix PATH]

Endpoints:
  GET  /healthz   200, JSON facts about the guest (hostname, uptime_s, ...)
  GET  /hostkeys  200, {\"keys\": [...]}: the guest's ssh host public keys
  POST /sync      sync(2), then 200
  POST /shutdown  sync(2), 202, then ask init (pid 1) to power off
  POST /reboot    sync(2), 202, then ask init (pid 1) to reboot

The serial port (QEMU) is one byte stream: each exchange starts with the
host's `\nBANGER-SYNC NONCE\n`, answered `BANGER-ACK NONCE\n`, then one
HTTP request and its response; bytes before a sync line are dropped.

Options:
  --port PORT   vsock port to listen on (env BANGER_AGENT_PORT, default 52);
                the serial port is served beside it when the guest has one
  --unix PATH   listen on a Unix socket instead (testing, debugging; the
                power endpoints still signal this machine's pid 1)
  -h, --help    print this help
  -V, --version print the version
";

pub fn parse(
    args: impl IntoIterator<Item = String>,
    env_port: Option<String>,
) -> Result<Action, String> {
    let mut port = match env_port.filter(|p| !p.is_empty()) {
        Some(p) => Some(parse_port(&p, "BANGER_AGENT_PORT")?),
        None => None,
    };
    let mut unix = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Action::Print(HELP.to_string())),
            "-V" | "--version" => {
                return Ok(Action::Print(format!(
                    "banger-vsock-agent {}\n",
                    env!("CARGO_PKG_VERSION")
                )))
            }
            "--port" => port = Some(parse_port(&value("--port")?, "--port")?),
            "--unix" => unix = Some(PathBuf::from(value("--unix")?)),
            other => return Err(format!("unexpected argument '{other}'")),
        }
    }
    Ok(Action::Run(match unix {
        Some(path) => Listen::Unix(path),
        None => Listen::Vsock(port.unwrap_or(DEFAULT_PORT)),
    }))
}

fn parse_port(s: &str, what: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("{what}: '{s}' is not a vsock port (1..4294967295)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str], env: Option<&str>) -> Result<Action, String> {
        parse(args.iter().map(|s| s.to_string()), env.map(str::to_string))
    }

    #[test]
    fn default_port_is_52() {
        assert_eq!(p(&[], None), Ok(Action::Run(Listen::Vsock(52))));
    }

    #[test]
    fn flag_beats_env() {
        assert_eq!(p(&[], Some("1234")), Ok(Action::Run(Listen::Vsock(1234))));
        assert_eq!(
            p(&["--port", "7"], Some("1234")),
            Ok(Action::Run(Listen::Vsock(7)))
        );
        assert_eq!(p(&["--port=8"], None), Ok(Action::Run(Listen::Vsock(8))));
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(p(&["--port", "x"], None).is_err());
        assert!(p(&["--port", "0"], None).is_err());
        assert!(p(&["--port"], None).is_err());
        assert!(p(&["--bogus"], None).is_err());
        assert!(p(&[], Some("nope")).is_err());
    }

    #[test]
    fn unix_listener() {
        assert_eq!(
            p(&["--unix", "/tmp/a.sock"], None),
            Ok(Action::Run(Listen::Unix("/tmp/a.sock".into())))
        );
    }
}
