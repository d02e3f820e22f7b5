//! banger-image's command line.

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

const AFTER: &str = "\
RECORDS:
  An image prints (build, register, show, list) one JSON object per image:
    schema      record format version (1)
    name        the image's name
    managed     true for a built image whose files live in its folder;
                false for a registered one (its files are never deleted)
    rootfs      absolute path of the root filesystem (ext4)
    work_seed   absolute path of the work-disk seed (ext4 holding /root), or null
    kernel      the guest kernel; null in the file means the bundle's, and
                show/list print the bundle's path then
    initrd      the initramfs, the same way
    size        size of rootfs in bytes
    sha256      sha256 of rootfs when built or registered
    created_at  RFC 3339 time of build or last register
    from        debian:SUITE for a built image, null for a registered one
    profile     default or dev (built images)
    packages    extra packages asked for at build time
    default     whether this is the default image (output only)
  verify prints {\"name\",\"ok\",\"sha256\",\"expected\"}.
  rm prints {\"name\",\"ok\":true,\"removed\":[paths]} per image, or
  {\"name\",\"ok\":false,\"error\"} for one it could not remove.
  default prints the default image's record (exit 3 when it does not exist).
  bundle fetch prints {\"version\",\"url\",\"sha256\",\"into\",\"files\":[..]}.

FILES:
  $XDG_DATA_HOME/banger/images/NAME/  image.json, rootfs.ext4, work-seed.ext4,
                                      build.log (managed images)
  $XDG_CONFIG_HOME/banger/config.json default_image (set by `default NAME`)
  rootfs/make-rootfs.sh, customize.sh  what build runs (BANGER_ROOTFS_DIR,
                                      else the checkout's or installed rootfs/)

ENVIRONMENT:
  BANGER_CA_FILE  bundle fetch: a PEM file of CA certificates to trust for
                  https instead of the built-in public (Mozilla) roots, for a
                  private mirror with its own CA

EXIT STATUS:
  0 ok; 1 failed (build stage, checksum mismatch, download, untrusted TLS
  certificate); 2 usage (bad name, relative path, not ext4, bad manifest,
  BANGER_CA_FILE without a certificate); 3 no such image or file;
  4 prerequisite missing (root, debootstrap, key, agent); 5 conflict (the
  image exists, is in use by a VM, or is locked; rm --force of a built
  image whose files a VM's qcow2 overlay disks read).

EXAMPLES:
  banger-image build --name debian
  banger-image build --name dev --profile dev --packages git,make
  banger-image register --name mine --rootfs /srv/img/rootfs.ext4 --kernel /srv/img/vmlinux
  banger-image list | jq -r .name
  banger-image show debian | jq -r .rootfs
  banger-image default mine
  banger-image verify debian | jq .ok
  banger-image rm mine
  banger-image bundle fetch --manifest runtime/runtime-bundle.toml";

/// banger guest images: build, register, list.
#[derive(Parser, Debug)]
#[command(
    name = "banger-image",
    version,
    about = "banger guest images: build a Debian image, register, list, show, rm, default, verify",
    after_long_help = AFTER,
    subcommand_required = true,
    arg_required_else_help = true
)]
pub struct Cli {
    #[command(flatten)]
    pub errors: banger_lib::run::ErrorArgs,
    #[command(subcommand)]
    pub sub: Sub,
}

#[derive(Subcommand, Debug)]
pub enum Sub {
    /// Build a Debian image with debootstrap from this machine's apt mirror (root)
    Build(BuildArgs),
    /// Record an existing rootfs (and kernel, initrd, work seed) as an image; files are not copied
    Register(RegisterArgs),
    /// List images: a table on a terminal, JSON lines otherwise
    List {
        /// JSON lines even on a terminal
        #[arg(long)]
        json: bool,
    },
    /// Print one image's record
    Show { name: String },
    /// Remove images; a built image's files go too, a registered image's files stay
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
        /// Remove it even while a VM uses it, unless the VM's disks are overlays on its files
        #[arg(long)]
        force: bool,
    },
    /// Print the default image, or set it (in the user's config.json)
    Default { name: Option<String> },
    /// Check an image's rootfs against the sha256 in its record
    Verify { name: String },
    /// The runtime bundle: fetch a released one
    #[command(subcommand)]
    Bundle(BundleSub),
}

#[derive(Args, Debug)]
pub struct BuildArgs {
    /// The image's name
    #[arg(long)]
    pub name: String,
    /// What to bootstrap: debian:SUITE
    #[arg(long, default_value = "debian:bookworm")]
    pub from: String,
    /// Size of rootfs.ext4 (mkfs.ext4 size: 2G, 1500M)
    #[arg(long, default_value = "2G")]
    pub size: String,
    /// Size of work-seed.ext4
    #[arg(long, default_value = "1G")]
    pub work_size: String,
    /// Extra Debian packages, comma separated
    #[arg(long, value_delimiter = ',')]
    pub packages: Vec<String>,
    /// A script run inside the image's chroot after banger's own customization
    #[arg(long)]
    pub customize: Option<PathBuf>,
    /// default: the lean image; dev: adds mise, opencode and tmux session restore
    #[arg(long, value_enum, default_value = "default")]
    pub profile: Profile,
    /// The public key to authorize for root (default: the bundle's ssh_key + .pub)
    #[arg(long)]
    pub pubkey: Option<PathBuf>,
    /// The guest agent binary (default: the bundle's agent_path, else `make agent`'s)
    #[arg(long)]
    pub agent: Option<PathBuf>,
    /// The Debian mirror (default: the one in /etc/apt/sources.list*)
    #[arg(long)]
    pub mirror: Option<String>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq)]
pub enum Profile {
    Default,
    Dev,
}

impl Profile {
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Default => "default",
            Profile::Dev => "dev",
        }
    }
}

#[derive(Args, Debug)]
pub struct RegisterArgs {
    #[arg(long)]
    pub name: String,
    /// Absolute path of an ext4 root filesystem
    #[arg(long)]
    pub rootfs: PathBuf,
    /// Absolute path of the guest kernel (default: the bundle's)
    #[arg(long)]
    pub kernel: Option<PathBuf>,
    /// Absolute path of the initramfs (default: the bundle's)
    #[arg(long)]
    pub initrd: Option<PathBuf>,
    /// Absolute path of an ext4 work-disk seed holding /root
    #[arg(long)]
    pub work_seed: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum BundleSub {
    /// Download the archive a manifest names (https, http or file), check its sha256, unpack it
    Fetch {
        /// The manifest (url, sha256, version), like runtime/runtime-bundle.toml
        #[arg(long)]
        manifest: PathBuf,
        /// Where to unpack (default: the runtime dir)
        #[arg(long)]
        into: Option<PathBuf>,
        /// Give up on a download that takes longer than this (seconds)
        #[arg(long, value_name = "S", default_value = "1800", value_parser = banger_lib::run::seconds)]
        timeout: f64,
        /// Refuse an archive larger than this (MiB); what it unpacks to may be 16 times that
        #[arg(long, value_name = "MIB", default_value_t = 4096,
              value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
        max_mib: u64,
    },
}

/// The clap command, for man pages and completions.
#[allow(dead_code)]
pub fn command() -> clap::Command {
    Cli::command()
}
