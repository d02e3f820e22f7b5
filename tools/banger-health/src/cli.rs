//! banger-health's command line.

use clap::{Args, CommandFactory, Parser, Subcommand};
use std::path::PathBuf;

const AFTER: &str = "\
HOW IT WORKS:
  Each VM's VMM exposes the guest agent's channel as a Unix socket on the
  host: the record field agent of $XDG_STATE_HOME/banger/vms/NAME/vm.json.
  Firecracker's is the hybrid vsock ({\"kind\":\"vsock\"}): banger-health
  connects, sends `CONNECT PORT\\n`, expects `OK N\\n` (port: the record's,
  else --port, else the bundle's agent_port, 52 by default). QEMU's is the
  virtio-serial port org.banger.agent ({\"kind\":\"serial\"}): it sends
  `\\nBANGER-SYNC NONCE\\n` and skips what comes before `BANGER-ACK
  NONCE\\n`. Then GET /healthz to banger-vsock-agent in the guest.

RECORDS:
  One line per VM (check), one line at the end (wait):
  {\"name\": \"box\", \"ok\": true, \"status\": \"ok\", \"http_status\": 200,
   \"latency_ms\": 1.73, \"uds\": \"/run/banger/box/vsock.sock\", \"port\": 52,
   \"hostname\": \"box\", \"uptime_s\": 42, \"version\": \"0.1.0\",
   \"load\": [0.08, 0.02, 0.01], \"mem_available_kib\": 901234}
  {\"name\": \"old\", \"ok\": false, \"error\": \"old is stopped, not running\"}
  name         the VM name (with --uds or --serial: the socket path)
  ok           the agent answered 200 with status \"ok\"
  error        why not (no record, not running, VMM gone, no socket,
               handshake refused, garbage or timeout, HTTP error)
  status       the agent's status (\"ok\")
  http_status  the agent's HTTP status, when it answered at all
  latency_ms   connect, handshake and request, in milliseconds
  uds, port    the socket and vsock port that were asked (no port for a
               serial port)
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
  banger-health check --serial /run/banger/box/agent.sock

SEE ALSO:
  banger-vm(1), banger-ssh(1), banger-workflows(7)";

/// Guest health over the guest agent's channel (vsock or serial port)
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
        /// VMs to check (or --uds, --serial)
        #[arg(required_unless_present_any = ["uds", "serial"], conflicts_with_all = ["uds", "serial"])]
        names: Vec<String>,
        #[command(flatten)]
        target: Target,
        /// Give up on an agent after this many seconds
        #[arg(long, value_name = "S", default_value_t = 3.0, value_parser = banger_lib::run::seconds)]
        timeout: f64,
    },
    /// Poll one VM's agent with backoff until it is healthy or the timeout passes
    Wait {
        /// The VM (or --uds, --serial; with both, NAME only labels the line and no record is read)
        #[arg(required_unless_present_any = ["uds", "serial"])]
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
    #[arg(long, value_name = "PATH", conflicts_with = "serial")]
    pub uds: Option<PathBuf>,
    /// Talk to this virtio-serial agent socket (QEMU's) instead of a VM's
    #[arg(long, value_name = "PATH")]
    pub serial: Option<PathBuf>,
    /// The agent's vsock port [default: the bundle's agent_port]
    #[arg(long, value_name = "P", value_parser = clap::value_parser!(u32).range(1..))]
    pub port: Option<u32>,
}

#[allow(dead_code)] // for tests/man.rs
pub fn command() -> clap::Command {
    Cli::command()
}
