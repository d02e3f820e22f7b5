//! banger-health's command line.

use clap::{Args, CommandFactory, Parser, Subcommand};
use std::path::PathBuf;

const AFTER: &str = "\
HOW IT WORKS:
  Each VM's VMM (Firecracker, or vhost-device-vsock under QEMU) exposes the
  guest's vsock as a Unix socket on the host: the record field vsock_uds of
  $XDG_STATE_HOME/banger/vms/NAME/vm.json. banger-health connects to it,
  sends `CONNECT PORT\\n`, expects `OK N\\n`, then sends GET /healthz to
  banger-vsock-agent in the guest (port: --port, else the bundle's
  agent_port, 52 by default).

RECORDS:
  One line per VM (check), one line at the end (wait):
  {\"name\": \"box\", \"ok\": true, \"status\": \"ok\", \"http_status\": 200,
   \"latency_ms\": 1.73, \"uds\": \"/run/banger/box/vsock.sock\", \"port\": 52,
   \"hostname\": \"box\", \"uptime_s\": 42, \"version\": \"0.1.0\",
   \"load\": [0.08, 0.02, 0.01], \"mem_available_kib\": 901234}
  {\"name\": \"old\", \"ok\": false, \"error\": \"old is stopped, not running\"}
  name         the VM name (with --uds: the socket path)
  ok           the agent answered 200 with status \"ok\"
  error        why not (no record, not running, VMM gone, no socket,
               handshake refused, garbage or timeout, HTTP error)
  status       the agent's status (\"ok\")
  http_status  the agent's HTTP status, when it answered at all
  latency_ms   connect, handshake and request, in milliseconds
  uds, port    the socket and vsock port that were asked
  hostname, uptime_s, version, load (1/5/15 min), mem_available_kib
               as reported by the agent (banger-vsock-agent)

EXIT STATUS:
  0 every VM is healthy; 1 any is not (check), or not healthy before
  the timeout (wait); 2 usage; 3 no such VM (wait).

EXAMPLES:
  banger-health check box web
  banger-health check box | jq -r 'select(.ok | not) | .error'
  banger-health check box | jq '.uptime_s'
  banger-health wait box --timeout 120 && banger-ssh box -- uptime
  banger-health check --uds /run/banger/box/vsock.sock --port 52

SEE ALSO:
  banger-vm(1), banger-ssh(1), banger-workflows(7)";

/// Guest health over the hybrid vsock
#[derive(Debug, Parser)]
#[command(name = "banger-health", version, after_long_help = AFTER)]
pub struct Cli {
    #[command(flatten)]
    pub errors: banger_lib::run::ErrorArgs,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Ask each VM's guest agent once, concurrently; one line per VM
    Check {
        /// VMs to check (or --uds)
        #[arg(required_unless_present = "uds", conflicts_with = "uds")]
        names: Vec<String>,
        #[command(flatten)]
        target: Target,
        /// Give up on an agent after this many seconds
        #[arg(long, value_name = "S", default_value_t = 3.0, value_parser = banger_lib::run::seconds)]
        timeout: f64,
    },
    /// Poll one VM's agent with backoff until it is healthy or the timeout passes
    Wait {
        /// The VM (or --uds; with both, NAME only labels the line and no record is read)
        #[arg(required_unless_present = "uds")]
        name: Option<String>,
        #[command(flatten)]
        target: Target,
        /// Give up after this many seconds
        #[arg(long, value_name = "S", default_value_t = 60.0, value_parser = banger_lib::run::seconds)]
        timeout: f64,
    },
}

#[derive(Debug, Args)]
pub struct Target {
    /// Talk to this hybrid vsock socket instead of a VM's (no record needed)
    #[arg(long, value_name = "PATH")]
    pub uds: Option<PathBuf>,
    /// The agent's vsock port [default: the bundle's agent_port]
    #[arg(long, value_name = "P", value_parser = clap::value_parser!(u32).range(1..))]
    pub port: Option<u32>,
}

#[allow(dead_code)] // for tests/man.rs
pub fn command() -> clap::Command {
    Cli::command()
}
