//! banger-fc's command line.

use clap::{CommandFactory, Parser, Subcommand};
use std::path::PathBuf;

const AFTER: &str = "\
SPEC (stdin of `start`):
  One JSON object; unknown keys are refused.
    id            VM name (1-32 of a-z, 0-9, '-'); names the runtime dir
    kernel        ELF vmlinux, absolute path (Firecracker loads no bzImage)
    initrd        optional initrd, absolute path
    cmdline       kernel command line; Firecracker itself adds
                  `root=/dev/vda rw|ro` for the root drive
    vcpus         1-32
    mem_mib       at least 64
    drives        [{\"id\",\"path\",\"read_only\",\"root\",\"format\"}]; the root
                  drive first; format must be raw (the default): Firecracker
                  takes no qcow2 (exit 2)
    tap, mac      host TAP for eth0 (must exist) and the guest MAC
    vsock_cid     guest CID (>= 3); enables the hybrid vsock
    vsock_uds     its host socket (default RUNTIME/ID/vsock.sock)
    agent_port    the guest agent's vsock port (default 52): where stop asks
                  the guest to shut down
    api_socket    Firecracker's API socket (default RUNTIME/ID/api.sock)
    vmm_log       Firecracker's own output (default STATE/vms/ID/vmm.log)
    console_log   the guest serial console (default STATE/vms/ID/console.log)
  A spec may not name the firecracker binary: it is BANGER_FIRECRACKER,
  else `firecracker` from the runtime bundle, else PATH.
  RUNTIME is $XDG_RUNTIME_DIR/banger (else /run/banger); STATE is
  $XDG_STATE_HOME/banger. Socket paths must fit in 107 bytes.

RECORDS:
  start prints the VMM record, also kept in RUNTIME/ID/vmm.json:
    {\"schema\":1, \"id\", \"vmm\":\"firecracker\", \"accel\":\"kvm\", \"pid\",
     \"pid_start_time\" (clock ticks since boot, /proc/PID/stat field 22),
     \"api_socket\", \"vsock_uds\" (null without vsock), \"agent\"
     ({\"kind\":\"vsock\", \"uds\", \"port\"}: the guest agent, behind vsock_uds
     on the spec's agent_port; left out without vsock), \"vmm_version\",
     \"started_at\" (RFC 3339), \"vmm_log\", \"console_log\", and under the
     jailer \"jail\" (its directory; the chroot is its root/, and api_socket
     and vsock_uds are inside it)}
    The record type is shared with banger-qemu, whose own fields
    (qmp_socket, helper_pid, helper_pid_start_time) firecracker never has.
  status:   {\"id\", \"vmm\", \"pid\", \"alive\", \"state\"} where state is running,
            paused, not_started, unresponsive (alive, API silent) or dead;
            --config adds \"config\" (Firecracker's GET /vm/config)
  stop:     {\"id\", \"stopped\":true, \"how\", \"clean\", \"synced\"} where how is
            agent (the guest agent's reboot), ctrl_alt_del, killed (past the
            timeout, or --kill), already_dead or not_running (no record);
            clean is true when the guest shut down by itself (agent,
            ctrl_alt_del); synced is true when the disks are known to be
            synced: a clean stop, or a kill after the agent's sync
  pause, resume: {\"id\", \"state\":\"paused\"|\"running\"}
  snapshot create: {\"id\", \"state\":\"running\"|\"paused\" (as it was before),
            \"dir\" (resolved), \"bytes\" (vmstate and memory on disk), \"disks\"
            ([{\"id\", \"path\", \"method\":\"reflink\"|\"sparse\"}], the --disk
            copies in the order asked), \"paused_ms\" (how long the guest was
            paused), \"ms\" (the whole snapshot), \"vmm_version\"}
  snapshot load, restore: the VMM record, as start prints it
  suspend:  {\"id\", \"state\":\"suspended\", \"file\" (the directory), \"bytes\"
            (its files' size on disk), \"ms\" (how long the suspend took)}
  start --print-argv: the process, then one line per API request in the
            order start makes them (the last is InstanceStart), with the
            paths as that process sees them (inside the jail under the
            jailer); nothing is made, linked or started:
            {\"process\":\"jailer\"|\"firecracker\", \"program\", \"args\",
             \"cwd\", \"user\":null}
            {\"method\":\"PUT\", \"path\", \"body\"}

STOP:
  A paused guest is let run first (PATCH /vm Resumed; an unjailed one's
  drives put back on the spec's files), so it hears what follows; --kill
  does not.
  stop asks the guest agent (the record's agent endpoint) to reboot with
  POST /reboot, allowing it 2 s to answer, and waits for firecracker to
  exit. Reboot, not power off: on x86 Firecracker has no ACPI power
  management, so a guest that powers off halts and firecracker lives on,
  while a guest reboot (with reboot=k on the command line) makes
  firecracker exit. When the agent does not answer, stop sends
  Ctrl+Alt+Del (PUT /actions SendCtrlAltDel: the same reboot, through the
  guest's keyboard handler) at once; when it did answer, Ctrl+Alt+Del
  follows at half the timeout. When --timeout seconds pass and firecracker
  still runs, stop asks the agent to sync the guest's disks (POST /sync,
  up to 5 s), then sends SIGTERM and, 5 s later, SIGKILL, and warns on
  stderr whether the disks were synced first. --timeout 0 goes straight
  to the sync and the signals; --kill sends the signals at once, without
  asking the guest anything. A guest that shuts down ends the stop as soon
  as firecracker exits; one that ignores everything takes the timeout plus
  about 25 s at most. The sockets, spec and record are removed whatever
  happened.

SNAPSHOTS AND CLONES:
  snapshot create ID --dir DIR [--disk DRIVE=DEST]... [--diff] refuses a
  --disk naming no drive of the VM (exit 2) or a DEST that exists (exit 5)
  before anything is paused. Then it pauses the VM (PATCH /vm Paused) if
  it runs, copies each --disk drive to DEST (a reflink where the
  filesystem has it, else a sparse copy), points each copied drive at its
  copy (PATCH /drives/ID path_on_host=DEST), writes the snapshot (PUT
  /snapshot/create: DIR/vmstate, DIR/memory) and DIR/spec.json (the VM's
  own spec), points the drives back at the VM's own files, and resumes it
  if it was running. Firecracker's vmstate records each drive's host
  path, so the snapshot names the copies, never the VM's own disks (a
  jailed VM's drives are not pointed anywhere: see JAILER). A
  failure points the drives back, removes the snapshot files and the
  copies, and resumes the VM; should a drive not go back, the VM stays
  paused (resumed, it would write into the snapshot) and the files stay.
  --diff writes a Diff snapshot: DIR/memory holds only the pages dirtied
  since the VM's previous snapshot, so it is only whole layered on the
  Full snapshot it follows; banger-fc does not merge them. It needs a VM
  started (or loaded, restored) with --track-dirty-pages (machine-config
  or load track_dirty_pages); without it --diff is exit 2.
  restore --from DIR, with a spec on stdin, makes a clone from a snapshot
  dir as it restores a suspended VM: the spec is the clone's (its id, TAP,
  vsock socket, and drives naming its own copies of the snapshot's disks).

SUSPEND AND RESTORE:
  suspend ID --to DIR pauses the VM (PATCH /vm Paused), writes a Full
  snapshot (PUT /snapshot/create: DIR.part/vmstate and DIR.part/memory)
  and the VM's spec beside them, syncs and renames DIR.part to DIR, then
  ends Firecracker and removes its run dir as a stop does. A failure
  before that removes DIR.part and resumes the VM. restore --from DIR
  takes the VM's spec on stdin, as start does (its TAP, vsock socket,
  logs and sockets are this host's), starts a new Firecracker and loads
  DIR (PUT /snapshot/load with mem_backend File, network_overrides for
  the TAP, vsock_override for the socket, resume_vm false), points each
  of the spec's drives at the spec's file (PATCH /drives/ID: the vmstate
  names the files it was made with, which may be another VM's), then
  resumes it (PATCH /vm Resumed). `snapshot load` does the same with
  DIR/spec.json. Firecracker refuses a snapshot from another version
  or machine shape. For jailed VMs see JAILER.

JAILER:
  Run as root with a jailer found (BANGER_JAILER, else the bundle's
  `jailer`: a file in the runtime dir or a name on PATH), start runs
  Firecracker through it: as the unprivileged VMM user (bundle key
  vmm_user, default banger-vmm; `banger-net setup` makes it), chrooted in
  STATE/jail/NAME/ID/root (NAME: the firecracker binary's file name) and in
  a new pid namespace, with cgroup v2 limits (cpu.max from vcpus,
  memory.max from mem_mib plus 256 MiB, in the cgroup banger/ID) when the
  host has cgroup v2 with cpu and memory. The kernel, initrd and drives
  are hard-linked into the chroot (a read-only file on another filesystem
  is copied); writable drives and the console log become the VMM user's.
  stop, a failed start, and a later start of the same VM remove the jail
  and its cgroup. --no-jailer runs Firecracker as root as before (for
  debugging); without root or a jailer it runs as the caller.
  snapshot create and suspend of a jailed VM: Firecracker writes vmstate
  and memory into /snapshot in its chroot (made by root, the VMM user's,
  0700), whence they are moved (renamed, or copied across filesystems)
  to DIR as root's, 0600; anything there but a regular file of one link
  is refused. The vmstate names the drives as the chroot has them
  (/drive-ID), where every jail links its own VM's drive: --disk copies
  the drives while paused without pointing them at the copies, and a
  clone restored in its own jail opens its own disks. The dir gets a
  file `jailed`. restore and snapshot load of such a dir start Firecracker
  in a new jail as start does, with vmstate and memory in it (hard-linked
  when the VMM user can read but not write them, else copied: root's,
  its group, 0440; they go with the jail), load /vmstate and /memory and
  point the drives at /drive-ID. Without a jailer it is exit 4, with
  --no-jailer exit 2. A dir without `jailed` (saved without the jailer;
  its vmstate names host paths) loads without the jailer, as before.

FILES:
  Firecracker writes the guest console into a FIFO, STATE/vms/ID/console.fifo;
  a logger (this program, in its own session, until firecracker ends)
  copies it into console_log and keeps it under the bundle's
  console_log_max_mib (default 16): at half of that the log becomes
  console_log.1 and a new one starts. A start empties the console log (its
  .1 may still hold the end of an earlier boot); vmm.log is appended to. A failed start kills
  the process, removes its sockets and record, and removes the logs it
  created; the error ends with the last lines of Firecracker's output.
  `snapshot create` writes DIR/vmstate, DIR/memory and DIR/spec.json
  (and DIR/jailed for a jailed VM), and each --disk copy where it says.

EXIT STATUS:
  0 ok; 1 failed (Firecracker refused a request: its fault_message is
  shown); 2 usage (bad spec); 3 not found (no such VM, kernel or drive
  missing, TAP missing); 4 prerequisite missing (no firecracker binary,
  no VMM user for the jailer, a file the VMM user cannot read);
  5 conflict (the VM is already running, snapshot files exist, locked).

ENVIRONMENT:
  BANGER_FIRECRACKER   the firecracker binary (else the bundle's)
  BANGER_JAILER        the jailer (empty: the bundle's `jailer`); when set, or
                       when the bundle names an absolute path, a missing
                       jailer is exit 4 rather than Firecracker as root

EXAMPLES:
  banger-fc start < spec.json | jq -r .pid
  banger-vm spec box | banger-fc start --print-argv
  banger-fc status box | jq -r .state
  banger-fc pause box && banger-fc snapshot create box --dir /tmp/snap
  banger-fc snapshot create box --dir /s/gold --disk rootfs=/s/gold/rootfs.ext4
  banger-fc restore --from /s/gold < clone-spec.json
  banger-fc stop box --timeout 5 | jq -r .how
  banger-fc stop box --kill
  banger-fc snapshot load box --dir /tmp/snap | jq .
  banger-fc suspend box --to /var/tmp/box.suspend
  banger-fc restore --from /var/tmp/box.suspend < spec.json";

/// Drive one Firecracker microVM process.
#[derive(Parser, Debug)]
#[command(
    name = "banger-fc",
    version,
    about = "Drive one Firecracker microVM process",
    long_about = "Drive one Firecracker microVM process: spawn it from a VM spec, configure \
                  it over its API socket, start, pause, snapshot and stop it. The same verbs \
                  and spec as banger-qemu.",
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
    /// Spawn and boot a VM from the JSON spec on stdin; print its record
    Start {
        /// Run Firecracker as root, without its jailer, even when a jailer is
        /// found (for debugging; the record then has no "jail")
        #[arg(long)]
        no_jailer: bool,
        /// Start nothing: print the process start would run for this spec
        /// (the jailer or firecracker) and its API requests, in order
        #[arg(long)]
        print_argv: bool,
        /// Track dirty guest pages (machine-config track_dirty_pages), which
        /// `snapshot create --diff` needs; guest memory writes get a little slower
        #[arg(long)]
        track_dirty_pages: bool,
    },
    /// Show whether the VM's process is alive and its state
    Status {
        id: String,
        /// Also print Firecracker's full VM configuration
        #[arg(long)]
        config: bool,
    },
    /// Stop the VM: the guest agent's reboot or Ctrl+Alt+Del; past the timeout sync and kill
    Stop {
        id: String,
        /// Seconds to wait for a clean shutdown before the disks are synced and
        /// firecracker is killed (0: sync and kill now)
        #[arg(long, default_value_t = 30)]
        timeout: u64,
        /// Kill at once: no clean shutdown and no sync (for a VM whose disks
        /// are deleted next); --timeout does not apply
        #[arg(long)]
        kill: bool,
    },
    /// Pause the VM's vCPUs
    Pause { id: String },
    /// Resume a paused VM
    Resume { id: String },
    /// Snapshots: create from a running VM (with disk copies), load into a new process
    #[command(subcommand)]
    Snapshot(SnapshotCmd),
    /// Save the VM (a Full snapshot) into a directory and end Firecracker
    Suspend {
        id: String,
        /// The directory to write (must not exist; written as DIR.part first)
        #[arg(long, value_name = "DIR")]
        to: PathBuf,
    },
    /// Start Firecracker for the spec on stdin from a directory `suspend` or
    /// `snapshot create` wrote; its drives become the spec's before it runs
    Restore {
        /// The directory `suspend` or `snapshot create` wrote
        #[arg(long, value_name = "DIR")]
        from: PathBuf,
        /// Refuse a state saved under the jailer rather than load it in a
        /// jail (one saved without it always loads without it)
        #[arg(long)]
        no_jailer: bool,
        /// Track dirty guest pages in the restored VM (for later --diff snapshots)
        #[arg(long)]
        track_dirty_pages: bool,
    },
    /// Internal: copy a VM's console from its FIFO into the capped console log
    #[command(name = "console-log", hide = true)]
    ConsoleLog(banger_lib::console::LogArgs),
}

#[derive(Subcommand, Debug)]
pub enum SnapshotCmd {
    /// Pause, copy the --disk drives, write DIR/vmstate and DIR/memory,
    /// resume if it was running
    Create {
        id: String,
        /// Directory for the snapshot files (created)
        #[arg(long)]
        dir: PathBuf,
        /// Copy drive ID of the VM to DEST (absolute; must not exist) while the
        /// guest is paused; the snapshot's vmstate then names DEST, not the
        /// VM's own file. Repeatable
        #[arg(long = "disk", value_name = "ID=DEST",
              value_parser = clap::value_parser!(banger_lib::vmm::snapshot::DiskAsk))]
        disks: Vec<banger_lib::vmm::snapshot::DiskAsk>,
        /// A Diff snapshot: DIR/memory holds only the pages dirtied since the
        /// VM's last snapshot, to be layered on a Full one (banger-fc does not
        /// merge them); needs a VM started with --track-dirty-pages
        #[arg(long)]
        diff: bool,
    },
    /// Start a new Firecracker process from DIR and resume the VM
    Load {
        id: String,
        /// A directory written by `snapshot create`
        #[arg(long)]
        dir: PathBuf,
        /// Refuse a snapshot saved under the jailer rather than load it in
        /// a jail (one saved without it always loads without it)
        #[arg(long)]
        no_jailer: bool,
        /// Track dirty guest pages in the loaded VM (for later --diff snapshots)
        #[arg(long)]
        track_dirty_pages: bool,
    },
}

#[allow(dead_code)] // used by tests/man.rs
pub fn command() -> clap::Command {
    Cli::command()
}
