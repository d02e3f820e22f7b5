//! Poll one agent with backoff until it answers healthy or time runs out.

use crate::probe::{self, Outcome};
use crate::target::Target;
use banger_lib::agent::Endpoint;
use banger_lib::wait::Backoff;
use banger_lib::{Error, Result};
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// What to ask on each attempt.
pub enum Subject {
    /// A VM by name: its socket from its record.
    Vm(String),
    /// An endpoint given by the caller (banger-vm passes the one its VMM
    /// printed), labelled with the VM's name when there is one.
    Agent(Endpoint, Option<String>),
}

/// Each attempt gets at most this long, so a slow boot is retried rather
/// than waited on in one long request.
const ATTEMPT: Duration = Duration::from_secs(3);
/// 100 ms doubling to 250 ms, not faster: with 20 ms doubling to 100 ms
/// (five times the attempts while the guest boots) a booted guest's agent
/// was never reached, twice in a row under QEMU/TCG (no reply to CONNECT
/// for 300 s); presumably vhost-device-vsock wedges on requests made
/// before the guest's vsock driver is up. Not understood yet: keep this.
const BACKOFF: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(250));

/// The last outcome; `Err` for a VM that does not exist or cannot come up
/// (stopped, VMM gone), which no amount of waiting fixes.
pub fn wait(subject: &Subject, port: u32, timeout: Duration) -> Result<Outcome> {
    let start = Instant::now();
    let deadline = start + timeout;
    let progress = std::io::stderr().is_terminal();
    let name = match subject {
        Subject::Vm(n) => n.clone(),
        Subject::Agent(ep, n) => n.clone().unwrap_or_else(|| ep.uds().display().to_string()),
    };
    let mut last = Outcome::down(&name, "not asked yet".into());
    let done = BACKOFF.poll_until(Some(deadline), || {
        let ep = match subject {
            Subject::Agent(ep, _) => ep.clone(),
            Subject::Vm(n) => match crate::target::resolve(n, port) {
                Err(e) => return Some(Err(e)),
                Ok(Target::Agent(ep)) => ep,
                Ok(Target::Down(why)) => return Some(Ok(Outcome::down(&name, why))),
            },
        };
        let left = deadline.saturating_duration_since(Instant::now());
        let outcome = probe::check(&name, &ep, left.min(ATTEMPT));
        if outcome.ok {
            return Some(Ok(outcome));
        }
        if progress {
            let _ = write!(
                std::io::stderr(),
                "\r\x1b[Kwaiting for {name}'s agent ({}s): {}",
                start.elapsed().as_secs(),
                outcome.error().unwrap_or("not healthy")
            );
        }
        last = outcome;
        None
    });
    clear(progress);
    done.unwrap_or(Ok(last))
}

fn clear(progress: bool) {
    if progress {
        let _ = write!(std::io::stderr(), "\r\x1b[K");
    }
}

/// The error for a wait that ended unhealthy.
pub fn failed(name: &str, timeout: Duration, outcome: &Outcome) -> Error {
    let why = outcome.error().unwrap_or("not healthy");
    if outcome.line.uds.is_some() {
        Error::failed(format!(
            "{name} not healthy after {:.0}s: {why}",
            timeout.as_secs_f64()
        ))
        .with_hint(format!(
            "see the guest console: banger vm logs {name}; or wait longer with --timeout"
        ))
    } else {
        Error::failed(why.to_string())
    }
}
