//! banger's own command line: the built-ins; anything else is a tool.

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use std::ffi::OsString;

const AFTER: &str = "\
TOOLS:
  vm       banger-vm: create, start, stop, ssh into and delete VMs
  image    banger-image: build, register and list guest images
  net      banger-net: bridge, TAPs, leases, NAT, the .vm DNS server
  fc       banger-fc: one Firecracker process from a VM spec
  qemu     banger-qemu: one QEMU process from the same spec
  health   banger-health: guest health over vsock
  ssh      banger-ssh: ssh into a guest
  doctor   banger-doctor: is this host ready?
  tui      banger-tui: a terminal UI over the tools

`banger SUB ARGS..` runs banger-SUB (found in BANGER_LIBEXEC, next to banger,
then on PATH: where the tools find each other) with ARGS, and exits with its
exit code. `banger commands` lists what is installed. `banger gc` runs
`banger vm gc` then `banger net gc` with the same arguments: it finds and
removes what killed commands left behind (half-made VMs, their dirs and
leases; then TAPs without a lease, nft elements, temp and pid files), one
JSON line each; `--dry-run` only reports. A usage error stops at the
first; else the exit code is the first non-zero one.

OUTPUT:
  Results go to stdout as one JSON object per line; messages go to stderr.
  `banger commands` prints {\"name\": \"vm\", \"path\": \"/usr/local/bin/banger-vm\"}
  for each tool found.

EXIT STATUS:
  0 ok, 1 failed, 2 usage, 3 not found, 4 prerequisite missing,
  5 conflict (exists, busy, locked).

ENVIRONMENT:
  BANGER_LIBEXEC  a directory searched first for the banger-* tools

FILES:
  runtime/bundle.json (BANGER_RUNTIME, else the source checkout's runtime/,
  else /usr/local/lib/banger/runtime) holds the defaults;
  $XDG_CONFIG_HOME/banger/config.json overrides any of its keys.

EXAMPLES:
  banger vm create --name box && banger vm ssh box
  banger commands | jq -r .name
  banger completions bash > /etc/bash_completion.d/banger";

/// Throwaway and long-lived microVMs for development.
#[derive(Parser, Debug)]
#[command(
    name = "banger",
    version,
    about = "Throwaway and long-lived microVMs for development",
    after_long_help = AFTER,
    allow_external_subcommands = true,
    subcommand_required = true,
    arg_required_else_help = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub sub: Sub,
}

#[derive(Subcommand, Debug)]
pub enum Sub {
    /// List the banger tools found, as JSON lines {"name","path"}
    Commands,
    /// Find and remove what killed commands left behind: banger-vm gc, then banger-net gc [--dry-run]
    Gc {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Print a shell completion script
    Completions {
        #[arg(value_enum)]
        shell: Shell,
    },
    #[command(external_subcommand)]
    External(Vec<OsString>),
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// The clap command, for man pages and completions.
pub fn command() -> clap::Command {
    Cli::command()
}

/// Completions for banger: the built-ins plus every tool found as a
/// subcommand, so `banger <TAB>` offers `vm`, `image`...
pub fn completions(shell: Shell, out: &mut dyn std::io::Write) {
    let mut cmd = command();
    for t in crate::tools::all() {
        let name: &'static str = Box::leak(t.name.into_boxed_str());
        cmd = cmd.subcommand(clap::Command::new(name).allow_external_subcommands(true));
    }
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(shell, &mut cmd, "banger", out);
}
