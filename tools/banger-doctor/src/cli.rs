//! banger-doctor's command line.

use clap::{CommandFactory, Parser};

const AFTER: &str = "\
CHECKS (in order; * required, ? required in some set-ups):
  runtime bundle *  bundle.json and config load; the ssh key,
                    its .pub and the guest agent exist
  kernel *          the guest kernel the bundle names
  initrd *          the initrd the bundle names; none is needed
                    when the kernel.json beside the kernel says
                    \"initrd\": null (banger's own kernel)
  default image *   `banger-image default` (else the bundle's
                    default_image) exists: `banger-image show`,
                    else its image.json
  kvm ?             /dev/kvm: hardware (vmx/svm), PVM
                    (/sys/module/kvm_pvm), unusable or absent,
                    and which VMM `vmm: auto` picks: Firecracker
                    only with hardware KVM and its binary;
                    required when vmm is firecracker
  firecracker ?     the binary (BANGER_FIRECRACKER, else the
                    bundle's) and its --version; required when
                    vmm is firecracker
  qemu-system-x86_64 ?
                    required when the VMM picked is QEMU (its guests'
                    agent is on a virtio-serial port: no vsock helper)
  tun *             /dev/net/tun readable and writable
  ip *, ssh *, mkfs.ext4 *
  nft *             banger's packet filter, which every VM's lease
                    comes with (isolation, anti-spoofing, host ports)
  debootstrap       image builds only
  net admin *       root or CAP_NET_ADMIN
  ipv4 forwarding   a report: on means this host routes between all
                    its interfaces, not only for banger; banger-net
                    turns it on while a VM has NAT or a port forward
                    on a non-loopback address (and off after the last
                    one when it was off), and its rules forward only
                    NAT VMs' traffic from the bridge and connections
                    to such forwarded ports
  bridge            the bundle's bridge (`banger-net setup`)
  guest filter      while the bridge exists, banger's nftables tables
                    (bridge banger, inet banger) exist too; a firewall
                    reload that flushes the ruleset removes them, and
                    guests are then not isolated (`banger-net setup`
                    puts them back); required then
  dns               `banger-net dns status` says running
  leftovers         nothing left by killed commands (`banger vm gc
                    --dry-run` and `banger net gc --dry-run` find nothing)
  reflink           which disks a VM gets: QEMU VMs qcow2 overlays
                    on the image's files (constant time); Firecracker
                    VMs reflinks when the data and state dirs are one
                    btrfs/xfs filesystem, else sparse copies

  A failed check's hint is the command that fixes it, e.g.
    make runtime-local
    banger-image build --name debian
    apt-get install nftables
  No check changes the host.

RECORDS:
  One line per check:
  {\"check\": \"nft\", \"ok\": false, \"required\": true,
   \"detail\": \"nft not found\", \"hint\": \"apt-get install nftables\"}
  check     the check's name (above)
  ok        whether it passed
  required  whether banger cannot run VMs on this host without it
  detail    what was found: a path, a version, what is missing
  hint      on failure, the command that fixes it; null when ok

EXIT STATUS:
  0 every required check passed (others may have failed),
  1 a required check failed, 2 usage.

ENVIRONMENT:
  BANGER_RUNTIME      the runtime dir (else the checkout's
                      runtime/, else /usr/local/lib/banger/runtime)
  BANGER_FIRECRACKER  the firecracker binary to use
  BANGER_QEMU         the QEMU binary banger-qemu uses
  BANGER_PATH_ONLY=1  look for host programs only on PATH, not
                      also in the sbin dirs

EXAMPLES:
  banger-doctor
  banger-doctor --json |
    jq -r 'select(.ok|not) | \"\\(.check): \\(.hint)\"'
  banger-doctor --json | jq -r 'select(.check==\"kvm\") | .detail'
  banger-doctor > /dev/null && echo ready";

/// Is this host ready to run banger VMs? One line per check.
#[derive(Parser, Debug)]
#[command(
    name = "banger-doctor",
    version,
    about = "Is this host ready to run banger VMs? One JSON line per check",
    after_long_help = AFTER
)]
pub struct Cli {
    #[command(flatten)]
    pub errors: banger_lib::run::ErrorArgs,
    /// Print JSON lines even on a terminal
    #[arg(long)]
    pub json: bool,
}

/// The clap command, for the man page test.
#[allow(dead_code)]
pub fn command() -> clap::Command {
    Cli::command()
}
