//! banger-ssh's command line.

use clap::{CommandFactory, Parser, Subcommand};

const AFTER: &str = "\
HOW IT CONNECTS:
  ssh -F /dev/null -i KEY -o IdentitiesOnly=yes -o BatchMode=yes
      -o UserKnownHostsFile=$XDG_STATE_HOME/banger/known_hosts/NAME
      -o StrictHostKeyChecking=yes root@IP [-- CMD..]
  IP is the record field ip of $XDG_STATE_HOME/banger/vms/NAME/vm.json;
  KEY is the runtime bundle's ssh_key, refused when its mode is wider than
  0600. Your own ssh config is not read (-F /dev/null).

HOST KEYS ARE PINNED, NEVER LEARNED:
  Each VM has its own known_hosts file. The guest's ssh host public keys
  come from its guest agent (GET /hostkeys over the VM's vsock, a channel
  only that guest can answer on, unlike its address on the bridge) and are
  written there before the first ssh: `banger vm create` and `start` run
  `pin`, and every login checks them against the agent again (pinning them
  if none are yet). ssh runs with StrictHostKeyChecking=yes, so something
  else answering at the guest's address is refused on first contact too.
  Keys that differ from the pinned ones are an error (exit 5) until you
  accept them on purpose with --rekey (banger vm ssh NAME --rekey). The
  file is forgotten when the VM is deleted (banger-ssh forget).

  With CMD, ssh replaces banger-ssh: the command's exit code, stdin, stdout
  and stderr pass through unchanged (a TTY is requested when stdin and
  stdout are terminals). Without CMD, you get a login shell; when it ends
  and the VM is still running (banger-health check), a reminder goes to
  stderr: `box is still running; stop it with: banger vm stop box`.

RECORDS:
  wait: {\"name\": \"box\", \"ok\": true, \"ip\": \"172.30.0.5\",
         \"banner\": \"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\", \"waited_ms\": 812}
        ok:false with \"error\" when sshd did not answer in time.
  pin: {\"name\": \"box\", \"ip\": \"172.30.0.5\", \"keys\": [\"ssh-ed25519 AAAA..\"],
        \"known_hosts\": PATH, \"replaced\": false}
        keys: TYPE BASE64 each; replaced: other keys were pinned before
        (only with --rekey).
  forget: {\"name\": \"box\", \"ok\": true, \"removed\": true}
        removed: whether there was a known_hosts file to remove.
  config prints ssh_config text, not JSON: append it to ~/.ssh/config.

EXIT STATUS:
  NAME [-- CMD]: the exit status of ssh, which is the remote command's
  (255 when ssh itself fails); before ssh runs: 2 usage, 3 no such VM,
  4 ssh or the key missing, or the key's mode too wide, or no host keys
  to check (the agent gave none and none are pinned), 5 the VM is not
  running, or its host keys changed (accept them with --rekey).
  pin: 0 pinned, 1 the agent gave no keys in time (or keys banger does not
  take), 3 no such VM, 4 an agent that does not report keys (an older
  image), 5 other keys are pinned (use --rekey).
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
  banger-ssh pin box --rekey                          # the guest's keys changed on purpose
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
    override_usage = "banger-ssh [--rekey] NAME [-- CMD..]\n       banger-ssh <wait|pin|config|cp|forget> ..."
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
    /// Accept the guest's current host keys (from its agent) in place of the pinned ones
    #[arg(long)]
    pub rekey: bool,
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
    /// Pin the guest's ssh host keys, asked of its guest agent, in the VM's known_hosts
    Pin {
        name: String,
        /// Replace keys pinned before with the agent's
        #[arg(long)]
        rekey: bool,
        /// The agent's hybrid vsock socket, instead of the one in NAME's record (needs --port and --ip)
        #[arg(long, value_name = "PATH", requires_all = ["port", "ip"], conflicts_with = "serial")]
        uds: Option<std::path::PathBuf>,
        /// The agent's virtio-serial socket (QEMU's), instead of the one in NAME's record (needs --ip)
        #[arg(long, value_name = "PATH", requires = "ip")]
        serial: Option<std::path::PathBuf>,
        /// The agent's vsock port (with --uds)
        #[arg(long, value_name = "P", requires = "uds")]
        port: Option<u32>,
        /// The address to pin the keys for (with --uds or --serial)
        #[arg(long, value_name = "IP")]
        ip: Option<std::net::IpAddr>,
        /// Give up after this many seconds (the guest makes its keys on its first boot)
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
