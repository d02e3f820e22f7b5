//! banger-vm's command line. The man page is generated from this file.

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

const AFTER: &str = "\
RECORDS:
  A VM record ($XDG_STATE_HOME/banger/vms/NAME/vm.json; printed by create,
  show, list, start, restart and set) has these keys:
    schema          record format, 1
    name            the VM's name (also its hostname and NAME.vm)
    image           the image it was made from
    vmm             firecracker or qemu
    state           creating (a create is under way, or was killed: see gc),
                    created (never booted), running, stopped, crashed
                    (its VMM process died without a stop), or suspended
                    (saved to disk by `vm suspend`, no VMM process)
    ip, prefix, gateway, dns, mac, tap
                    its network lease from banger-net
    nat             whether guest traffic is masqueraded out of the host
    isolated        whether it is cut off from the other guests (true unless
                    created or set with --no-isolate; two VMs reach each
                    other only when neither is isolated)
    vsock_cid       guest vsock CID (1000 + host part of the IP)
    vsock_uds       host side of Firecracker's hybrid vsock (null under QEMU)
    agent           where the guest agent is reached while it runs, as the
                    driver said: {kind: vsock, uds, port} (Firecracker) or
                    {kind: serial, uds} (QEMU's virtio-serial port);
                    banger-health and banger-ssh use it
    pid, pid_start_time
                    the VMM process (null when not running)
    vcpus, memory_mib
    disk_size       bytes of the work disk
    disks           {rootfs, work, rootfs_backing, work_backing}: the VM's
                    own disks. QEMU VMs: qcow2 overlays (rootfs.qcow2,
                    work.qcow2) whose backing files, rootfs_backing and
                    work_backing, are the image's rootfs and work seed, read
                    and never written (image rm is refused while a VM reads
                    them). Firecracker VMs: raw files of their own (no
                    *_backing keys)
    kernel, initrd, cmdline
                    what it boots (cmdline without root=)
    created_at, started_at
                    RFC 3339 UTC (started_at null when never started)
    no_jailer       true when made with --no-jailer: Firecracker runs as root,
                    not under its jailer (left out otherwise)
    init            the --init scripts that ran, in order: [{name, exit}]
                    (name is NN-FILE; a failed one is the last)
    forwards        its port forwards (vm forward): [{proto, address,
                    host_port, guest_port}]; proto tcp or udp, address the
                    host address listened on
    suspend         while suspended (left out otherwise): {path (the saved
                    state, STATE/vms/NAME/suspended: QEMU's file,
                    Firecracker's directory), vmm_version, kernel_size,
                    kernel_mtime, vcpus, memory_mib (what it was saved
                    from: a resume refuses a change), bytes (its size),
                    synced (the agent synced the disks first),
                    suspended_at}
    from_snapshot   the golden snapshot it was cloned from (create --from);
                    left out otherwise
    pending         a suspend, resume or snapshot under way: {op: suspend,
                    info (the suspend it will record)}, {op: resume} or
                    {op: snapshot, snapshot}; left out otherwise (see WHAT A
                    KILLED COMMAND LEAVES)
  list and show add uptime_s (null unless running); create --timings adds
  timings_ms {image, disks, tap, vmm_start, dns, nat, healthy, pin, ssh,
  total}.

  Verbs over several names (start, stop, restart, delete, set, suspend,
  resume) run concurrently and print one line per VM:
    {\"name\": \"box\", \"ok\": true, \"state\": \"stopped\", \"clean\": true, \"how\": \"agent\"}
    {\"name\": \"web\", \"ok\": false, \"error\": \"no VM named web\"}
  stop adds clean (the guest shut down by itself, so everything it wrote is on
  its disks) and how (agent, acpi, ctrl_alt_del, killed, crashed,
  not_running, discarded: a suspended VM's saved state was thrown away);
  restart adds clean. suspend adds state (suspended), bytes (the saved
  state's size) and ms (how long the save took); resume adds the record. delete --force of a VM without a readable
  record adds removed, the list of what it found and removed; a delete
  --force whose cleanup steps failed adds warnings, one per failed step.

  spec prints the VM spec start would hand the driver now (banger-fc(1)
  SPEC): its drives name a QEMU VM's overlays with format qcow2 and their
  backing files; pipe it to `banger-qemu start --print-argv` for the
  command lines (tools/banger-vm/bench-create.sh does).

  forward prints one line per forward it added, removed or (--list, a
  table on a terminal) has:
    {\"vm\": \"box\", \"proto\": \"tcp\", \"address\": \"127.0.0.1\", \"host_port\": 18000,
     \"guest_port\": 8000, \"active\": true}
  active: in force now (the VM runs); a removed forward is never active.

  gc prints one line per leftover it finds:
    {\"what\": \"unfinished-create\", \"vm\": \"box\", \"detail\": \"/...\", \"removed\": true}
    what      unfinished-create (a record a killed create left creating),
              vm-dir (a VM dir without a record), run-dir (a runtime dir
              without a record), lease (a banger-net lease without a record),
              jail (a Firecracker jail, STATE/jail/NAME/VM, without a record),
              forward (a port forward in force that the VM's record does not
              account for: the VM is not running or does not list it; only
              the forward is taken away), vmm (a VMM that runs while the
              VM's record says it does not: a killed start; it is killed,
              the record left as it is, as the next command on that VM
              does too), saved-state (a suspend's state no record points
              at: STATE/vms/NAME/suspended.part, or suspended while the
              record is not suspended; only that file goes), snapshot (a
              snapshot dir without its record: a killed `vm snapshot`;
              vm is empty)
    vm        the VM name it belongs to
    detail    the path, or the lease's TAP and address
    removed   false with --dry-run, or when removing it failed
    error     why removing it failed (only then)

SUSPEND AND RESUME:
  suspend asks the guest agent to sync the disks, then the driver pauses
  the guest and saves its memory and device state into
  STATE/vms/NAME/suspended (banger-qemu: QMP migrate to a descriptor;
  banger-fc: a Full snapshot) and ends the VMM, so its RAM is free. The
  TAP, lease, NAT element, disks and CID stay. resume (or start) restores
  it in place through the driver's restore and waits for the guest agent:
  its processes, files in /tmp and uptime go on. The state survives a host
  reboot (the TAP is made again from the lease). A resume refuses, before
  starting anything, a missing state file (exit 3) or a VMM binary,
  kernel, vCPU count or memory size other than the ones it was saved with
  (exit 5): the VM stays suspended. A restore that fails leaves it
  suspended too; once the restored guest runs, the state file is removed.
  stop of a suspended VM discards the state (how: discarded); the next
  start boots the disks afresh; a start also removes a saved state that
  no record points at (a suspend killed before it recorded the VM as
  suspended). set --vcpus/--memory is refused while suspended.

GOLDEN SNAPSHOTS AND CLONES:
  snapshot NAME --as SNAP asks the agent to sync, then the VM's driver
  pauses the guest, saves its memory and device state into
  STATE/snapshots/SNAP and copies its disks there while it is still
  paused (banger-qemu/banger-fc snapshot create --disk), and the guest
  runs on. It prints the snapshot record (snapshots/SNAP/snapshot.json,
  written last):
    {\"schema\", \"name\", \"source\" (the VM), \"image\", \"vmm\", \"vmm_version\",
     \"kernel\", \"kernel_size\", \"kernel_mtime\", \"initrd\", \"vcpus\",
     \"memory_mib\", \"disk_size\", \"nat\", \"isolated\", \"no_jailer\" (only
     when true: clones run without the jailer too), \"disks\" (as a VM
     record's: QEMU's are qcow2 overlays on the image's files), \"state\"
     (QEMU's state file, Firecracker's dir), \"bytes\", \"disk_bytes\",
     \"paused_ms\", \"created_at\"}
  snapshots lists them (a table on a terminal, JSON lines otherwise);
  snapshots rm SNAP.. removes them, one line each; it is refused (exit 5)
  while a clone is being made from it. banger-image rm refuses an image
  a snapshot's disks read.
  create --name B --from SNAP: B gets its own copies of the snapshot's
  disks, its own TAP, lease, MAC and CID; its VMM loads the snapshot's
  state (no boot), and once the agent answers, B's identity is sent to it
  (POST /identity: hostname, address, prefix, gateway, DNS, MAC, a fresh
  machine-id, the host's time, entropy, a new ssh host key made on the
  host); the agent applies it and writes the key, which is pinned before
  sshd is waited for (an older agent that refuses the key is sent the
  identity again without it and makes its own). --no-wait
  skips only the pin and ssh waits. --image, --vcpus, --memory, --disk,
  --no-start and another --vmm are refused with --from (exit 2); a
  snapshot taken under another VMM binary or kernel is exit 5, a missing
  one exit 3. A clone shares no file with its snapshot once made.

WHAT A KILLED COMMAND LEAVES:
  create writes the record (state creating) before it makes anything, so a
  create killed outright (SIGKILL, OOM) leaves a record that `vm list` shows
  and that `vm delete` or `gc` removes with its disks, lease, NAT element and
  VMM. A killed start leaves the record as it was and perhaps a VMM that
  runs for it: the next command on that VM (start, stop, delete, ...) or
  `gc` kills that VMM. gc skips any VM whose lock is held (a command is at
  work on it) and never touches a VM with a finished record, or the VMM of
  a VM whose record says it runs.
  suspend, resume and snapshot write their intent (pending) before the
  driver touches the guest. The next command on that VM waits for the
  driver the killed command called (drivers finish what they started),
  then: a suspend whose state is whole on disk is recorded suspended (a
  VMM still there is killed); one cut short lets the guest run on (the
  driver cancels the save and resumes it) and drops the partial state; a
  resume whose VMM runs the restored guest is adopted (running, the state
  spent), else the VM stays suspended; a snapshot lets the guest run on
  and removes the snapshot's dir unless its record was written. A killed
  create --from is an unfinished create like any other.

FIRST-BOOT SCRIPTS:
  create --init FILE (repeatable) runs each script once, in order, as root,
  through the guest agent once sshd is up (not over ssh), in the guest's
  own mount namespace (outside the agent's read-only sandbox), so it may
  install packages and write anywhere. --env K=V passes variables to every script. Each script's
  output (its first 256 KiB) is kept in STATE/vms/NAME/init/NN-FILE.log and
  printed by `vm logs --init`; the record's init lists exit codes. Each
  script may take --timeout seconds. A script that fails (exit != 0) fails
  the create, which prints the end of its output and undoes everything;
  with --keep-failed the VM is kept as the script left it, its record is
  printed, and create still exits 1. Scripts never run again on start.

PORT FORWARDS:
  forward NAME HOSTPORT:GUESTPORT makes HOSTPORT on the host lead to
  GUESTPORT in the guest (TCP; --udp for UDP). It listens on 127.0.0.1,
  so only the host's own processes reach it, unless --address names
  another address of the host (0.0.0.0 is refused: name the address).
  It is kernel DNAT in banger's nftables table (banger-net forward; no
  process), and it opens that one port of that one guest: no other port,
  no other guest, and no guest reaches another guest through it. The
  guest sees loopback connections coming from its gateway address. The
  record keeps the forwards: start puts them in force (before the VMM
  starts: a host port that is taken fails the start, exit 5), stop takes
  them away, delete removes them with the VM. A host port is taken (exit
  5, nothing changed) when another VM's record forwards it, a forward in
  force holds it, or a socket on the host is bound to it (checked when
  the forward is put in force: at once on a running VM, else at start).
  --remove HOSTPORT (with --udp: the UDP one; with --address: only on it)
  takes a forward away; --list shows them. Forwards are IPv4: use
  127.0.0.1 (a client given `localhost` may try ::1 first).

HOW STOP WORKS:
  stop asks the guest agent to power off (it syncs first); if the agent does
  not answer, the VMM's own request (QEMU: the ACPI power button; Firecracker:
  Ctrl-Alt-Del). A guest under QEMU/TCG shuts down in a few seconds. Only
  after --timeout (default 30 s) does it ask the agent to sync the disks and
  kill the VMM; it then says so on stderr and prints \"clean\": false.
  delete kills the VMM at once (the disks are removed anyway) unless
  --graceful. restart is a clean stop, then start.

HOW CREATE WORKS:
  image (banger-image show) -> disks (QEMU: qcow2 overlays on the image's
  files, a few KiB written whatever the image's size; Firecracker: a FICLONE
  reflink, else a sparse copy with a progress line on a terminal; made
  under the image's lock, so banger-image rm sees the VM; the work disk is
  made --disk big and the guest grows its filesystem online once it is up:
  the image's banger-grow-work unit) -> TAP and lease (banger-net
  tap acquire) -> VMM (banger-fc start or banger-qemu start) -> .vm DNS
  (banger-net dns ensure; a failure is only a warning) -> NAT (--nat) ->
  guest agent healthy (banger-health wait) -> the guest's ssh host keys,
  from its agent, pinned in its known_hosts (banger-ssh pin) -> sshd up
  (banger-ssh wait). ssh then refuses any other key: a guest whose keys
  changed on purpose is accepted with `banger vm ssh NAME --rekey`.
  A failing step, or Ctrl-C, undoes every step before it (VMM process,
  sockets, NAT element, TAP and lease, disks, record) and the error names the
  step. Every command first marks VMs whose VMM process died as crashed;
  `start` boots a crashed VM again. Commands on the same VM wait for each
  other (a lock beside vm.json; BANGER_LOCK_TIMEOUT seconds, default 300);
  a killed command never leaves the lock held.

ENVIRONMENT:
  BANGER_LIBEXEC    a directory searched first for the banger-* tools
  BANGER_RUNTIME    the runtime bundle directory (bundle.json)
  BANGER_LOCK_TIMEOUT
                    seconds to wait for a VM's lock before exit 5

EXIT STATUS:
  0 ok; 1 failed (for several names: any of them failed); 2 usage (bad name,
  bad size, a --disk smaller than the image's work disk, more vCPUs or memory
  than the host has, a bad HOSTPORT:GUESTPORT, a forward --address that is
  not the host's); 3 not found (no such VM or image, no such forward to
  remove); 4 prerequisite missing (a banger tool, the runtime bundle, an
  uplink for NAT, an image file a VM's overlay disks read);
  5 conflict (the VM exists, is running when it must be stopped, or is
  locked; a forward's host port is taken). With one name, a failure
  exits with that failure's own code.

EXAMPLES:
  banger vm create --name box && banger vm ssh box
  banger vm create --name web --nat --vcpus 4 --memory 4096 --disk 20G
  banger vm create --name db --no-isolate; banger vm set --no-isolate web
                                              # web and db may talk
  banger vm ssh box -- uname -r
  banger vm cp ./app.tar.gz box:/root/ && banger vm cp -r box:/root/out ./out
  banger vm create --name web --nat --init ./install.sh --env VERSION=2.1
  banger vm logs --init web
  banger vm ssh-config > ~/.ssh/banger.conf   # Include it; then: ssh box.vm
  banger vm forward box 18000:8000 && curl http://127.0.0.1:18000/
  banger vm forward box --list; banger vm forward box --remove 18000
  banger vm list | jq -r 'select(.state == \"running\") | .name'
  banger vm show box | jq -r .ip
  banger vm stop box web; banger vm start box
  banger vm snapshot box --as gold && banger vm create --name b2 --from gold
  banger vm snapshots | jq -r .name
  banger vm delete $(banger vm list | jq -r .name)
  banger vm gc --dry-run | jq -c 'select(.removed == false)'";

/// Create, start, stop, ssh into and delete microVMs
#[derive(Parser, Debug)]
#[command(
    name = "banger-vm",
    version,
    about = "Create, start, stop, ssh into and delete microVMs",
    after_long_help = AFTER,
    subcommand_required = true,
    arg_required_else_help = true
)]
pub struct Cli {
    #[command(flatten)]
    pub errors: banger_lib::run::ErrorArgs,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Create a VM from an image, boot it and wait until ssh works
    Create(CreateArgs),
    /// Boot stopped or crashed VMs
    Start(StartArgs),
    /// Shut VMs down cleanly, keeping their disks and lease
    Stop(StopArgs),
    /// Stop (cleanly), then start VMs
    Restart(StartArgs),
    /// Save running VMs to disk (memory and device state) and end their VMMs, freeing their RAM
    Suspend {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Keep a running VM's memory, device state and disk copies as a golden snapshot; the VM runs on
    Snapshot {
        name: String,
        /// The snapshot's name: 1-32 of a-z, 0-9, '-'
        #[arg(long = "as", value_name = "SNAP")]
        as_: String,
    },
    /// List the golden snapshots (a table on a terminal, JSON lines otherwise), or remove some
    Snapshots {
        /// Print JSON lines even on a terminal
        #[arg(long)]
        json: bool,
        #[command(subcommand)]
        cmd: Option<SnapshotsCmd>,
    },
    /// Restore suspended VMs in place and wait for their guest agents
    Resume {
        #[arg(required = true)]
        names: Vec<String>,
        /// Seconds to wait for the guest agent
        #[arg(long, default_value_t = 180)]
        timeout: u64,
    },
    /// Kill VMs and remove their disks, lease, NAT entry, port forwards, known_hosts entry and record
    Delete(DeleteArgs),
    /// List VMs (a table on a terminal, JSON lines otherwise)
    List {
        /// Print JSON lines even on a terminal
        #[arg(long)]
        json: bool,
    },
    /// Print one VM's record
    Show { name: String },
    /// Print the VM spec start hands the VM's driver (banger-fc or banger-qemu start; see their --print-argv)
    Spec { name: String },
    /// Change settings: NAT and isolation of several VMs, vCPUs/memory of a stopped VM
    Set(SetArgs),
    /// ssh into a running VM as root, or run CMD there (exit code passes through)
    Ssh {
        name: String,
        /// Accept the guest's current ssh host keys in place of the pinned ones (they changed on purpose)
        #[arg(long)]
        rekey: bool,
        /// The command to run instead of a shell
        #[arg(last = true)]
        cmd: Vec<String>,
    },
    /// Copy files between the host and a VM: one side is NAME:PATH (banger-ssh cp)
    Cp {
        /// Copy directories recursively
        #[arg(short = 'r', long)]
        recursive: bool,
        /// What to copy: a local path, or NAME:PATH in a VM
        src: String,
        /// Where to: a local path, or NAME:PATH in a VM
        dst: String,
    },
    /// Forward a host port to a VM's port (loopback unless --address), or list or remove its forwards
    Forward(ForwardArgs),
    /// Print ssh_config stanzas (Host NAME.vm) for all or the named VMs, for Include in ~/.ssh/config
    SshConfig { names: Vec<String> },
    /// Ask the guest agent of each VM whether it is healthy (banger-health check)
    Health {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Find what killed commands left behind (half-made VMs, dirs, leases) and remove it
    Gc {
        /// Only report what would be removed
        #[arg(long)]
        dry_run: bool,
    },
    /// Print the end of a VM's serial console log (its last MiB, control characters as ?)
    Logs {
        name: String,
        /// Keep printing what the console writes (until Ctrl-C)
        #[arg(long, short, conflicts_with = "init")]
        follow: bool,
        /// Print the --init scripts' output instead, each under a header
        #[arg(long)]
        init: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum SnapshotsCmd {
    /// Remove snapshots (their clones are VMs of their own and stay)
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
}

#[derive(Args, Debug, Clone)]
pub struct CreateArgs {
    /// The VM's name: 1-32 of a-z, 0-9, '-'
    #[arg(long)]
    pub name: String,
    /// Image to make it from (default: the bundle's default image)
    #[arg(long)]
    pub image: Option<String>,
    /// Clone it from a golden snapshot (vm snapshot): restored, not booted, then given its own identity
    #[arg(long, value_name = "SNAP", conflicts_with_all = ["image", "no_start"])]
    pub from: Option<String>,
    /// Virtual CPUs (default: bundle vcpus)
    #[arg(long)]
    pub vcpus: Option<u32>,
    /// Memory in MiB (default: bundle memory_mib)
    #[arg(long)]
    pub memory: Option<u32>,
    /// Size of the work disk mounted at /root, e.g. 8G, 512M (default: bundle disk_size)
    #[arg(long)]
    pub disk: Option<String>,
    /// Let the guest reach the outside through the host (masquerade)
    #[arg(long)]
    pub nat: bool,
    /// Let it reach the other VMs created or set with --no-isolate (default: cut off from every other guest)
    #[arg(long)]
    pub no_isolate: bool,
    /// Which VMM runs it (default: bundle vmm; auto picks firecracker where it can boot a guest)
    #[arg(long, value_enum)]
    pub vmm: Option<VmmChoice>,
    /// Make the disks, lease and record but do not boot it
    #[arg(long)]
    pub no_start: bool,
    /// Boot it but do not wait for the guest agent and sshd
    #[arg(long)]
    pub no_wait: bool,
    /// Seconds to wait for the guest agent and then for sshd
    #[arg(long, default_value_t = 180)]
    pub timeout: u64,
    /// Add per-step timings (timings_ms) to the printed record
    #[arg(long)]
    pub timings: bool,
    /// Run Firecracker as root without its jailer (debugging; shown as no_jailer)
    #[arg(long)]
    pub no_jailer: bool,
    /// A script to run once as root at first boot, through the guest agent (repeatable: in order)
    #[arg(long = "init", value_name = "FILE", conflicts_with_all = ["no_start", "no_wait"])]
    pub init: Vec<std::path::PathBuf>,
    /// A variable for the --init scripts, K=V (repeatable)
    #[arg(long = "env", value_name = "K=V", requires = "init")]
    pub env: Vec<String>,
    /// When an --init script fails, keep the VM (running) instead of undoing the create
    #[arg(long, requires = "init")]
    pub keep_failed: bool,
}

#[derive(Args, Debug, Clone)]
pub struct ForwardArgs {
    pub name: String,
    /// The host port and the guest port it leads to
    #[arg(
        value_name = "HOSTPORT:GUESTPORT",
        required_unless_present_any = ["list", "remove"],
        conflicts_with_all = ["list", "remove"]
    )]
    pub ports: Option<String>,
    /// UDP instead of TCP (with --remove: the UDP forward)
    #[arg(long, conflicts_with = "list")]
    pub udp: bool,
    /// The host address to listen on (default 127.0.0.1: the host's own processes only); with --remove, only the forward on it
    #[arg(long, value_name = "IPV4", conflicts_with = "list")]
    pub address: Option<std::net::Ipv4Addr>,
    /// List the VM's forwards
    #[arg(long)]
    pub list: bool,
    /// Remove the VM's forward of this host port
    #[arg(long, value_name = "HOSTPORT", conflicts_with = "list",
          value_parser = clap::value_parser!(u16).range(1..))]
    pub remove: Option<u16>,
}

#[derive(Args, Debug, Clone)]
pub struct StartArgs {
    #[arg(required = true)]
    pub names: Vec<String>,
    /// Do not wait for the guest agent and sshd
    #[arg(long)]
    pub no_wait: bool,
    /// Seconds to wait for the guest agent and then for sshd
    #[arg(long, default_value_t = 180)]
    pub timeout: u64,
    /// Seconds a stop waits for a clean shutdown before killing (restart)
    #[arg(long, default_value_t = 30)]
    pub stop_timeout: u64,
}

#[derive(Args, Debug, Clone)]
pub struct StopArgs {
    #[arg(required = true)]
    pub names: Vec<String>,
    /// Seconds to wait for a clean shutdown (guest agent, then ACPI / Ctrl-Alt-Del) before the disks are synced and the VMM is killed
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
}

#[derive(Args, Debug, Clone)]
pub struct DeleteArgs {
    #[arg(required = true)]
    pub names: Vec<String>,
    /// Remove the VM even when a cleanup step fails or its record is corrupt or missing (prints what it removed)
    #[arg(long)]
    pub force: bool,
    /// Shut the guest down cleanly before removing it (default: kill the VMM at once, its disks are deleted anyway)
    #[arg(long)]
    pub graceful: bool,
    /// With --graceful: seconds to wait for a clean shutdown before the VMM is killed
    #[arg(long, default_value_t = 30, requires = "graceful")]
    pub timeout: u64,
}

#[derive(Args, Debug, Clone)]
pub struct SetArgs {
    #[arg(required = true)]
    pub names: Vec<String>,
    /// Masquerade the guests' traffic out of the host
    #[arg(long, conflicts_with = "no_nat")]
    pub nat: bool,
    /// Stop masquerading the guests' traffic
    #[arg(long)]
    pub no_nat: bool,
    /// Cut the VMs off from every other guest (the default for a new VM)
    #[arg(long, conflicts_with = "no_isolate")]
    pub isolate: bool,
    /// Let the VMs reach each other and the other VMs set with --no-isolate
    #[arg(long)]
    pub no_isolate: bool,
    /// Virtual CPUs (the VM must be stopped)
    #[arg(long)]
    pub vcpus: Option<u32>,
    /// Memory in MiB (the VM must be stopped)
    #[arg(long)]
    pub memory: Option<u32>,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmmChoice {
    Auto,
    Firecracker,
    Qemu,
}

impl VmmChoice {
    pub fn parse(s: &str) -> Option<VmmChoice> {
        <VmmChoice as ValueEnum>::from_str(s, true).ok()
    }

    /// The VMM's name as records spell it.
    pub fn name(self) -> &'static str {
        match self {
            VmmChoice::Auto => "auto",
            VmmChoice::Firecracker => "firecracker",
            VmmChoice::Qemu => "qemu",
        }
    }
}

#[allow(dead_code)] // used by tests/man.rs
pub fn command() -> clap::Command {
    Cli::command()
}
