//! banger-tui's command line.

use clap::{CommandFactory, Parser};

const AFTER: &str = "\
KEYS:
  Enter      ssh into the selected VM (the UI steps aside until ssh exits)
  s x r      start, stop, restart the selected VM
  d          delete the selected VM (asks for y first)
  n          turn NAT on or off for the selected VM
  c          create a VM (prompts for a name, checked as you type)
  l          the selected VM's console log (Up/Down/PgUp/PgDn, r reload, Esc)
  i          the images (banger-image list)
  Up Down    move (also j k, Home End)
  ?          help
  q Ctrl-C   quit

HOW IT WORKS:
  banger-tui keeps no state of its own and reads none of banger's files. It
  runs the tools and reads their JSON lines: `banger-vm list` every
  refresh, `banger-health check NAME..` for the running VMs every few
  refreshes, `banger-vm start|stop|restart|delete NAME`, `banger-vm set
  --nat|--no-nat NAME`, `banger-vm create --name NAME`, `banger-vm logs NAME`,
  `banger-image list`, and `banger-vm ssh NAME` attached to the terminal.
  Anything it shows, a script can get from those tools.

  The table columns are the `banger-vm list` fields name, state, vmm (fc =
  firecracker), ip, nat, image; uptime comes from started_at; health is
  the ok field of `banger-health check` (ok, down, ? not known yet, - not
  running). An error from a tool shows in the status line above the key
  bar; the UI keeps running.

RECORDS:
  None: banger-tui prints nothing on stdout.

ENVIRONMENT:
  BANGER_LIBEXEC   a directory searched first for the banger-* tools
                   (then the directory of banger-tui, then PATH).

EXIT STATUS:
  0 on quit; 4 when stdout is not a terminal or a tool is not installed;
  1 when the terminal cannot be driven.

EXAMPLES:
  banger tui
  banger-tui --interval 2
  # the same data without the UI:
  banger-vm list | jq -r 'select(.state == \"running\") | .name'";

/// A terminal UI over banger: VMs, their state and health, and keys to
/// act on them.
#[derive(Parser, Debug)]
#[command(
    name = "banger-tui",
    version,
    about = "Terminal UI over the banger tools",
    after_long_help = AFTER
)]
pub struct Cli {
    #[command(flatten)]
    pub errors: banger_lib::run::ErrorArgs,
    /// Seconds between refreshes of the VM table
    #[arg(long, default_value_t = 1, value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub interval: u64,
}

/// The clap command, for the man page (tests/man.rs).
#[allow(dead_code)]
pub fn command() -> clap::Command {
    Cli::command()
}
