//! banger-qemu's command line.

use clap::{CommandFactory, Parser, Subcommand};

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
    vsock_cid     guest CID (>= 3); enables vsock through vhost-device-vsock
    vsock_uds     its host socket (default RUNTIME/ID/vsock.sock): the same
                  hybrid protocol as Firecracker (`CONNECT PORT\\n`, `OK N\\n`)
    agent_port    the guest agent's vsock port (default 52): where stop asks
                  the guest to shut down
    api_socket    QEMU's QMP socket (default RUNTIME/ID/qmp.sock)
    vmm_log       output of QEMU and vhost-device-vsock (default
                  STATE/vms/ID/vmm.log, appended to)
    console_log   the guest serial console (default STATE/vms/ID/console.log,
                  appended to)
  A spec may not name the QEMU binary: it is BANGER_QEMU, else `qemu` from
  the runtime bundle, else qemu-system-x86_64 on PATH.
  RUNTIME is $XDG_RUNTIME_DIR/banger (else /run/banger); STATE is
  $XDG_STATE_HOME/banger. Socket paths must fit in 107 bytes.

HOW QEMU RUNS:
  qemu-system-x86_64 -M microvm with a shared memfd memory backend (needed
  by vhost-user), -accel kvm when the host has vmx/svm and a usable
  /dev/kvm that is not PVM (/sys/module/kvm_pvm), else -accel tcg.
  Under TCG the microvm machine gives the guest no working timer
  calibration, so `tsc_early_khz=HOST_KHZ lapic_timer_period=4000000`
  (HZ=250, as Debian's kernels) is added to the command line unless it
  sets them. vhost-device-vsock (--guest-cid, --socket and --uds-path in
  RUNTIME/ID/vmm) is started first, then QEMU; both belong to the VM:
  stop, a failed start, and stop after a crash end both and remove their
  sockets.

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
  overlay's header is never opened), the TAP (attached with
  TUNSETIFF) and the bound QMP socket as descriptors. Both processes run
  in RUNTIME/ID/vmm, the one directory the VMM user owns, where
  vhost-device-vsock makes its sockets; vsock_uds is then moved out of the
  user's reach. Under KVM, QEMU also gets /dev/kvm's group. Run as
  another user, both run as that user, still under the sandbox.

STOP:
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
  anything. vhost-device-vsock is ended after QEMU (SIGTERM, SIGKILL). A
  guest that powers off ends the stop as soon as QEMU exits; processes
  that ignore everything take the timeout plus about a minute at most.
  The sockets, the RUNTIME/ID/vmm directory and the record are removed
  whatever happened.

FILES:
  QEMU writes the guest console into a FIFO, STATE/vms/ID/console.fifo; a
  logger (this program, in its own session, until QEMU ends) appends it to
  console_log and keeps it under the bundle's console_log_max_mib (default
  16): at half of that the log becomes console_log.1 and a new one starts.

RECORDS:
  start prints the VMM record, also kept in RUNTIME/ID/vmm.json:
    {\"schema\":1, \"id\", \"vmm\":\"qemu\", \"accel\":\"kvm\"|\"tcg\", \"pid\",
     \"pid_start_time\" (clock ticks since boot, /proc/PID/stat field 22),
     \"qmp_socket\", \"vsock_uds\" (null without vsock), \"agent\"
     ({\"kind\":\"vsock\", \"uds\", \"port\"}: the guest agent, behind vsock_uds
     on the spec's agent_port; left out without vsock),
     \"helper_pid\", \"helper_pid_start_time\" (vhost-device-vsock; left out
     without vsock), \"vmm_version\", \"started_at\" (RFC 3339), \"vmm_log\",
     \"console_log\"}; \"jail\" (banger-fc's jailer) is never set
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
  start --print-argv: one line per process start would run, in order
            (vhost-device-vsock when the VM has vsock, then qemu), and
            nothing is opened or started:
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
  0 ok; 1 failed (QEMU or vhost-device-vsock did not start: the error ends
  with the last lines of vmm.log; snapshot is not supported); 2 usage (bad
  spec); 3 not found (no such VM, kernel or drive missing, TAP missing);
  4 prerequisite missing (no qemu-system-x86_64 or vhost-device-vsock, no
  VMM user, a kernel or /dev/kvm the VMM user cannot use);
  5 conflict (the VM is already running, locked).

ENVIRONMENT:
  BANGER_QEMU          the QEMU binary (else the bundle's)
  BANGER_VHOST_VSOCK   the vhost-device-vsock binary
  BANGER_QEMU_ACCEL    kvm or tcg, instead of detecting it

EXAMPLES:
  banger-qemu start < spec.json | jq -r .accel
  banger-vm spec box | banger-qemu start --print-argv | jq -r .program
  banger-qemu status box | jq -r .state
  banger-qemu pause box && banger-qemu resume box
  banger-qemu stop box --timeout 5 | jq -r .how
  banger-qemu stop box --kill";

/// Drive one QEMU microvm process.
#[derive(Parser, Debug)]
#[command(
    name = "banger-qemu",
    version,
    about = "Drive one QEMU microvm process",
    long_about = "Drive one QEMU microvm process (and its vhost-device-vsock helper) from a \
                  VM spec: start, status, pause, resume and stop it over QMP. The same verbs, \
                  spec and records as banger-fc, for hosts where Firecracker cannot boot a guest.",
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
    /// Not supported by the qemu driver (exits 1)
    #[command(trailing_var_arg = true)]
    Snapshot {
        #[arg(allow_hyphen_values = true, hide = true)]
        args: Vec<String>,
    },
    /// Internal: copy a VM's console from its FIFO into the capped console log
    #[command(name = "console-log", hide = true)]
    ConsoleLog(banger_lib::console::LogArgs),
}

#[allow(dead_code)] // used by tests/man.rs
pub fn command() -> clap::Command {
    Cli::command()
}
