//! banger-ssh's command line.

use clap::{CommandFactory, Parser, Subcommand};

const AFTER: &str = "\
HOW IT CONNECTS:
  ssh -F /dev/null -i KEY -o IdentitiesOnly=yes -o BatchMode=yes
      -o UserKnownHostsFile=$XDG_STATE_HOME/banger/known_hosts/NAME
      -o StrictHostKeyChecking=accept-new root@IP [-- CMD..]
  IP is the record field ip of $XDG_STATE_HOME/banger/vms/NAME/vm.json;
  KEY is the runtime bundle's ssh_key, refused when its mode is wider than
  0600. Each VM has its own known_hosts file, forgotten when the VM is
  deleted (banger-ssh forget), so a re-created VM does not trip a host key
  warning while a changed key on a live VM still does. Your own ssh config
  is not read (-F /dev/null).

  With CMD, ssh replaces banger-ssh: the command's exit code, stdin, stdout
  and stderr pass through unchanged (a TTY is requested when stdin and
  stdout are terminals). Without CMD, you get a login shell; when it ends
  and the VM is still running (banger-health check), a reminder goes to
  stderr: `box is still running; stop it with: banger vm stop box`.

RECORDS:
  wait: {\"name\": \"box\", \"ok\": true, \"ip\": \"172.30.0.5\",
         \"banner\": \"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\", \"waited_ms\": 812}
        ok:false with \"error\" when sshd did not answer in time.
  forget: {\"name\": \"box\", \"ok\": true, \"removed\": true}
        removed: whether there was a known_hosts file to remove.
  config prints ssh_config text, not JSON: append it to ~/.ssh/config.

EXIT STATUS:
  NAME [-- CMD]: the exit status of ssh, which is the remote command's
  (255 when ssh itself fails); before ssh runs: 2 usage, 3 no such VM,
  4 ssh or the key missing, or the key's mode too wide, 5 the VM is not
  running.
  wait: 0 sshd answered, 1 it did not in time, 3 no such VM.
  config, forget: 0, 2 usage, 3 no such VM (config).
  cp: scp's exit status (1 when a remote path is missing, with scp's
  message); before scp runs: 2 usage (no NAME:PATH side, a directory
  without -r), 3 a missing local source or no such VM, 5 the VM is not
  running.

EXAMPLES:
  banger-ssh box
  banger-ssh box -- uname -r
  banger-ssh box -- sh -c 'exit 3'; echo $?          # 3
  tar c src | banger-ssh box -- tar x -C /root
  banger-ssh wait box --timeout 120 | jq .waited_ms
  banger-ssh config box >> ~/.ssh/config && ssh box.vm
  banger-ssh cp ./notes.txt box:/root/
  banger-ssh cp -r box:/root/project ./project-copy
  banger-ssh forget box

SEE ALSO:
  ssh(1), banger-vm(1), banger-health(1), banger-workflows(7)";

/// ssh into a banger guest
#[derive(Debug, Parser)]
#[command(
    name = "banger-ssh",
    version,
    after_long_help = AFTER,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    override_usage = "banger-ssh NAME [-- CMD..]\n       banger-ssh <wait|config|cp|forget> ..."
)]
pub struct Cli {
    #[command(flatten)]
    pub errors: banger_lib::run::ErrorArgs,
    #[command(subcommand)]
    pub cmd: Option<Cmd>,
    /// The VM to log into
    #[arg(required = true)]
    pub name: Option<String>,
    /// Run this command instead of a login shell
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Wait until the VM's sshd answers with its banner
    Wait {
        name: String,
        /// Wait for sshd at this address instead of the one in NAME's record
        #[arg(long, value_name = "IP")]
        ip: Option<std::net::IpAddr>,
        /// Give up after this many seconds
        #[arg(long, value_name = "S", default_value_t = 60.0, value_parser = banger_lib::run::seconds)]
        timeout: f64,
    },
    /// Print an ssh_config stanza (Host NAME.vm) so plain `ssh NAME.vm` works
    Config {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Copy files between the host and a VM with scp: one side is NAME:PATH
    Cp {
        /// Copy directories recursively
        #[arg(short = 'r', long)]
        recursive: bool,
        /// What to copy: a local path, or NAME:PATH in a VM
        src: String,
        /// Where to: a local path, or NAME:PATH in a VM
        dst: String,
    },
    /// Forget the VMs' host keys (their banger known_hosts files)
    Forget {
        #[arg(required = true)]
        names: Vec<String>,
    },
}

#[allow(dead_code)] // for tests/man.rs
pub fn command() -> clap::Command {
    Cli::command()
}
