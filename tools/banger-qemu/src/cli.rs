//! banger-qemu's command line.

use clap::{CommandFactory, Parser, Subcommand};
use std::path::PathBuf;

const AFTER: &str = "\
SPEC (stdin of `start`): the same JSON object as banger-fc(1); unknown keys
  are refused.
    id            VM name (1-32 of a-z, 0-9, '-'); names the runtime dir
    kernel        ELF vmlinux (booted through PVH), absolute path
    initrd        optional initrd, absolute path
    cmdline       kernel command line; `root=/dev/vda rw|ro` is added for
                  the root drive, as Firecracker does
    vcpus         1-32
    mem_mib       at least 64
    drives        [{\"id\",\"path\",\"read_only\",\"root\",\"format\",\"backing\"}];
                  the root drive first (one virtio-blk-device each, in
                  order: vda, vdb, ...); format raw (default) or qcow2;
                  backing: a qcow2 overlay's backing file (a raw disk,
                  absolute path), read and never written
    tap, mac      host TAP for eth0 (must exist) and the guest MAC
                  (virtio-net-device on -netdev tap)
    vsock_cid, vsock_uds, agent_port
                  accepted for the spec's sake and not used: QEMU's agent
                  channel is the virtio-serial port (AGENT CHANNEL)
    api_socket    QEMU's QMP socket (default RUNTIME/ID/qmp.sock)
    vmm_log       output of QEMU (default STATE/vms/ID/vmm.log, appended to)
    console_log   the guest serial console (default STATE/vms/ID/console.log,
                  appended to)
  A spec may not name the QEMU binary: it is BANGER_QEMU, else `qemu` from
  the runtime bundle, else qemu-system-x86_64 on PATH.
  RUNTIME is $XDG_RUNTIME_DIR/banger (else /run/banger); STATE is
  $XDG_STATE_HOME/banger. Socket paths must fit in 107 bytes.

HOW QEMU RUNS:
  qemu-system-x86_64 -M microvm, -accel kvm when the host has vmx/svm and a usable
  /dev/kvm that is not PVM (/sys/module/kvm_pvm), else -accel tcg.
  Under TCG the microvm machine gives the guest no working timer
  calibration, so `tsc_early_khz=HOST_KHZ lapic_timer_period=4000000`
  (HZ=250, as Debian's kernels) is added to the command line, and with
  it what speeds an emulated guest's boot by about a second:
  `tsc=reliable` (the TSC sync check fails under emulation),
  `mitigations=off` (TCG runs no speculation of the guest's code),
  `cryptomgr.notests`, `init_on_alloc=0` and
  `initcall_blacklist=crypto_kdf108_init` (a 0.2 s self-test). A command
  line that sets one of these keeps its own. A stop, a failed start, and a stop after a crash end QEMU
  and remove its sockets (and the vhost-device-vsock helper that a VM
  started by an older banger-qemu may still have).

AGENT CHANNEL:
  The guest agent is reached through a virtio-serial port named
  org.banger.agent (-device virtio-serial-device, virtserialport), whose
  host side is RUNTIME/ID/agent.sock, a socket banger-qemu binds and hands
  QEMU as a descriptor (a chardev socket server, one client at a time).
  Unlike vhost-user-vsock, QEMU can save a VM with it (suspend). Each
  exchange: the host sends `\\nBANGER-SYNC NONCE\\n`, the agent answers
  `BANGER-ACK NONCE\\n` (whatever comes before it is a reply to an earlier
  client that went away, and is skipped), then one HTTP request and its
  response. The record's agent is {\"kind\":\"serial\", \"uds\"}.

SUSPEND AND RESTORE:
  suspend ID --to FILE pauses the guest (QMP stop), hands QEMU FILE.part
  as a descriptor (getfd) and migrates into it (migrate fd:NAME; the
  sandbox denies exec: URIs), polling query-migrate until it completed or
  --timeout passed, syncs it, renames it to FILE and ends QEMU (quit); the
  run dir goes as after a stop, and the guest's memory is freed. A failure
  before the save completed removes FILE.part and lets the guest run on.
  restore --from FILE, with the same spec on stdin as start, starts QEMU
  with -incoming defer, hands it FILE (getfd) and loads it
  (migrate-incoming fd:NAME), then the guest runs on where it was (cont
  when QEMU left it paused); it prints the record as start does. FILE must
  come from the same QEMU binary, spec and accelerator: QEMU refuses a
  state that does not fit its machine, and the restore fails with the
  lines it wrote to vmm.log, leaving nothing behind.
PRIVILEGES:
  Run as root, banger-qemu starts both processes as the unprivileged VMM
  user (bundle key vmm_user, default banger-vmm; `banger-net setup` makes
  it), never as root: groups, gid and uid are set between fork and exec.
  QEMU runs under `-sandbox on,obsolete=deny,elevateprivileges=deny,
  spawn=deny,resourcecontrol=deny`; it cannot exec, fork or change ids, so
  banger-qemu detaches it itself instead of -daemonize. QEMU opens none of
  the VM's paths: banger-qemu hands it the kernel and initrd (read through
  /proc/self/fd: they must be readable by the VMM user, as 0644 files
  are), the drives and console log (fd sets; a qcow2 drive's backing
  file is a read-only node of its own on its fd set, so the name in the
  overlay's header is never opened), the TAP (attached with TUNSETIFF),
  the bound QMP and agent sockets, and a suspend's or restore's state
  file (getfd) as descriptors. QEMU runs in RUNTIME/ID/vmm, the one
  directory the VMM user owns. Under KVM, QEMU also gets /dev/kvm's
  group. Run as another user, QEMU runs as that user, still under the
  sandbox.

STOP:
  A paused guest (pause, or a save cut short: the save is cancelled) is
  let run first (cont), so it hears what follows; --kill does not.
  stop asks the guest agent (the record's agent endpoint) to power off with
  POST /shutdown, allowing it 2 s to answer, and waits for QEMU to exit
  (the guest's poweroff ends QEMU). When the agent does not answer, stop
  presses the ACPI power button (QMP system_powerdown) at once; when it
  did answer, the button follows at half the timeout. When --timeout
  seconds pass and QEMU still runs, stop asks the agent to sync the
  guest's disks (POST /sync, up to 5 s), then sends QMP quit and, if QEMU
  is still there 5 s later, SIGTERM and SIGKILL, and warns on stderr
  whether the disks were synced first. --timeout 0 goes straight to the
  sync and the kill; --kill kills at once, without asking the guest
  anything. A guest that powers off ends the stop as soon as QEMU exits; processes
  that ignore everything take the timeout plus about a minute at most.
  The sockets, the RUNTIME/ID/vmm directory and the record are removed
  whatever happened.

FILES:
  QEMU writes the guest console into a FIFO, STATE/vms/ID/console.fifo; a
  logger (this program, in its own session, until QEMU ends) appends it to
  console_log and keeps it under the bundle's console_log_max_mib (default
  16): at half of that the log becomes console_log.1 and a new one starts.

GOLDEN SNAPSHOTS:
  snapshot create ID --dir DIR [--disk ID=DEST].. pauses the guest, saves
  its state into DIR/state as suspend does, copies each asked drive (by
  its id in the spec) to DEST while the guest is still paused (a reflink
  where the filesystem has one, else a sparse copy), writes DIR/spec.json
  and lets the guest continue (cont; a completed migration has flushed
  the drives and cont takes them back). It prints {\"id\", \"state\"
  (running), \"dir\", \"bytes\", \"disks\": [{\"id\", \"path\",
  \"method\"}], \"paused_ms\", \"ms\", \"vmm_version\"}. A failure at any
  point removes DIR/state, the copies and DIR (when it made it) and lets
  the guest run on. A clone is `restore --from DIR/state` with its own
  spec of the same shape (its own TAP, MAC, drives, sockets).

RECORDS:
  start prints the VMM record, also kept in RUNTIME/ID/vmm.json:
    {\"schema\":1, \"id\", \"vmm\":\"qemu\", \"accel\":\"kvm\"|\"tcg\", \"pid\",
     \"pid_start_time\" (clock ticks since boot, /proc/PID/stat field 22),
     \"qmp_socket\", \"vsock_uds\" (null: QEMU VMs have no vsock), \"agent\"
     ({\"kind\":\"serial\", \"uds\": RUNTIME/ID/agent.sock}: the guest
     agent's virtio-serial port), \"vmm_version\", \"started_at\" (RFC 3339),
     \"vmm_log\", \"console_log\"}; \"helper_pid\" and
     \"helper_pid_start_time\" only in records of VMs started with
     vhost-device-vsock by an older banger-qemu; \"jail\" (banger-fc's
     jailer) is never set. restore prints the same record.
  status:   {\"id\", \"vmm\", \"pid\", \"alive\", \"state\", \"helper_alive\"} where
            state is QMP's run state (running, paused, shutdown, ...),
            unresponsive (alive, QMP silent) or dead; helper_alive is null
            without vsock
  stop:     {\"id\", \"stopped\":true, \"how\", \"clean\", \"synced\"} where how is
            agent (the guest agent's poweroff), acpi (the ACPI power
            button, QMP system_powerdown), killed (past the timeout, or
            --kill), already_dead or not_running (no record); clean is true
            when the guest shut down by itself (agent, acpi); synced is true
            when the disks are known to be synced: a clean stop, or a kill
            after the agent's sync
  pause, resume: {\"id\", \"state\":\"paused\"|\"running\"}
  suspend:  {\"id\", \"state\":\"suspended\", \"file\", \"bytes\" (the state
            file's size), \"ms\" (how long the suspend took)}
  start --print-argv: one line for the process start would run (qemu),
            and nothing is opened or started:
            {\"process\", \"program\", \"args\", \"cwd\", \"user\" (the VMM
             user, null: the caller), \"groups\" (qemu under KVM: /dev/kvm's
             gid), \"fds\": [{\"fd\", \"open\", \"path\"}]}; args are exactly
            what start runs, and each fd is what start hands over at that
            number: open is read, read-write, write (the console FIFO's
            write end), tap (/dev/net/tun attached to the TAP named by
            path: IFF_TAP|IFF_NO_PI|IFF_VNET_HDR) or listen (a Unix socket
            bound at path). Opening the same and running the same boots
            the VM without banger (tools/banger-vm/bench-create.sh does)

EXIT STATUS:
  0 ok; 1 failed (QEMU did not start, or the state did not save or load:
  the error ends with the last lines of vmm.log; snapshot is not
  supported); 2 usage (bad spec); 3 not found (no such VM, kernel, drive,
  TAP or state file); 4 prerequisite missing (no qemu-system-x86_64, no
  VMM user, a kernel or /dev/kvm the VMM user cannot use); 5 conflict (the
  VM is already running, the state file exists, locked).

ENVIRONMENT:
  BANGER_QEMU          the QEMU binary (else the bundle's)
  BANGER_QEMU_ACCEL    kvm or tcg, instead of detecting it

EXAMPLES:
  banger-qemu start < spec.json | jq -r .accel
  banger-vm spec box | banger-qemu start --print-argv | jq -r .program
  banger-qemu status box | jq -r .state
  banger-qemu pause box && banger-qemu resume box
  banger-qemu suspend box --to /var/tmp/box.state
  banger-qemu restore --from /var/tmp/box.state < spec.json
  banger-qemu stop box --timeout 5 | jq -r .how
  banger-qemu stop box --kill";

/// Drive one QEMU microvm process.
#[derive(Parser, Debug)]
#[command(
    name = "banger-qemu",
    version,
    about = "Drive one QEMU microvm process",
    long_about = "Drive one QEMU microvm process from a VM spec: start, status, pause, \
                  resume, suspend, restore and stop it over QMP. The same verbs, spec and \
                  records as banger-fc, for hosts where Firecracker cannot boot a guest.",
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
        /// Start nothing: print the processes start would run for this
        /// spec, one per line, in order, with their descriptors
        #[arg(long)]
        print_argv: bool,
    },
    /// Show whether the VM's processes are alive and its QMP run state
    Status { id: String },
    /// Stop the VM: the guest agent's poweroff or the ACPI power button; past the timeout sync and kill
    Stop {
        id: String,
        /// Seconds to wait for a clean shutdown before the disks are synced and
        /// QEMU is killed (0: sync and kill now)
        #[arg(long, default_value_t = 30)]
        timeout: u64,
        /// Kill at once: no clean shutdown and no sync (for a VM whose disks
        /// are deleted next); --timeout does not apply
        #[arg(long)]
        kill: bool,
    },
    /// Pause the VM's vCPUs (QMP stop)
    Pause { id: String },
    /// Resume a paused VM (QMP cont)
    Resume { id: String },
    /// Save the VM's memory and device state to a file and end QEMU
    Suspend {
        id: String,
        /// The state file to write (must not exist; written as FILE.part first)
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
        /// Seconds the save may take before it is given up (the VM runs on)
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// Start QEMU from the spec on stdin and load a suspended VM's state into it
    Restore {
        /// The state file `suspend` wrote
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
    },
    /// Golden snapshots of a running VM, which runs on
    #[command(subcommand)]
    Snapshot(SnapshotCmd),
    /// Internal: copy a VM's console from its FIFO into the capped console log
    #[command(name = "console-log", hide = true)]
    ConsoleLog(banger_lib::console::LogArgs),
}

#[derive(Subcommand, Debug)]
pub enum SnapshotCmd {
    /// Pause, save the state into DIR/state, copy the asked drives, continue
    Create {
        id: String,
        /// The snapshot's directory (made if missing; DIR/state and
        /// DIR/spec.json must not exist)
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// Copy drive ID of the VM's spec to DEST (absolute, must not
        /// exist) while the guest is paused; repeatable
        #[arg(long = "disk", value_name = "ID=DEST")]
        disks: Vec<banger_lib::vmm::snapshot::DiskAsk>,
        /// Seconds the save may take before it is given up (the VM runs on)
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
}

#[allow(dead_code)] // used by tests/man.rs
pub fn command() -> clap::Command {
    Cli::command()
}
