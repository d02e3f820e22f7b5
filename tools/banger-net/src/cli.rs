//! banger-net's command line.

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

const AFTER: &str = "\
WHAT A GUEST CAN REACH:
  A guest is untrusted. banger-net keeps two nftables tables of its own
  (`bridge banger` and `inet banger`; no other table or chain of the host is
  touched, and every chain banger adds accepts what it does not drop):
  - the host: only DNS (udp and tcp, dns_port) and ping on the gateway
    address, and the ports opened on purpose: `guest_host_ports` in
    config.json (e.g. [8080]) or `allow --port P` (kept in net.json until
    `deny --port P`); TCP and UDP, on the gateway address. Everything else a
    guest sends to the host is dropped (counter input); replies to what the
    host opened (ssh into a guest) pass.
  - other guests: none, unless both VMs are not isolated (`tap acquire
    --no-isolate`, `tap set --no-isolate`; banger vm create --no-isolate).
    Isolation is the bridge port flag (IFLA_BRPORT_ISOLATED) plus a bridge
    rule for an isolated VM and a non-isolated one (counter isolated). A
    guest cannot route through the host to another guest (counter hairpin).
  - no spoofing: each leased TAP (bgr-N) may send only frames from its
    lease's MAC, IPv4 from its lease's address and ARP for that pair; no
    IPv6 or other protocols; an idle tap-pool-N sends nothing (counter
    spoofed). NAT masquerades only NAT VMs' addresses, which this check has
    verified, so NAT follows the TAP.
  - routing: the host forwards only NAT VMs' traffic out of the uplink and
    the replies; other traffic from or to the bridge is dropped (counter
    forward). IPv4 forwarding (net.ipv4.ip_forward) is turned on by the
    first `nat enable` when it was off, and back off when the last VM
    leaves NAT or at teardown. While it is on, the host routes between all
    its interfaces, not only for banger.
  - the .vm DNS server answers only the guests and the host itself; a query
    from anywhere else (a neighbour routing to the gateway through this
    host) is dropped by the filter (counter outside) and ignored by the
    server, and so is any packet from outside the bridge that claims a
    guest's address.
  - port forwards (`forward add`) reach one port of one guest: the map
    `forwards` DNATs ADDRESS:HOST_PORT (tcp or udp) to the guest's leased
    address and GUEST_PORT, nothing else. On a loopback address (the
    default, 127.0.0.1) only in the output hook, so only the host's own
    processes reach it; those flows leave with a loopback source, so the
    bridge has route_localnet=1 while such a forward exists and they are
    SNATed to the gateway address (the guest sees connections from the
    gateway). Packets for 127.0.0.0/8 from elsewhere are never rewritten.
    On another address of the host (--address) also in prerouting for
    packets that do not come from the bridge (a guest never reaches
    another guest through a forward); the host routes only those
    connections (set forward_dests) and their replies, and turns IPv4
    forwarding on as NAT does while such a forward exists. A host port is
    taken (exit 5) when another forward holds it (same protocol and
    address) or a socket on the host is bound to it; a forward made first
    shadows a server that binds the port later. A VM's forwards go with
    its lease (tap release).
  `status` shows the counters and the open ports. The tables are made by
  setup (or the first tap acquire) and removed by teardown; leases, NAT and
  ports change only their set elements, so nothing of a VM is left once its
  lease is released.

RECORDS (one JSON object per line on stdout):
  tap acquire, lease list:
    {\"vm\", \"tap\", \"ip\", \"prefix\", \"gateway\", \"mac\", \"dns\", \"isolated\"}
    ip and gateway are dotted IPv4 without prefix; prefix is a number; dns is
    the address the guest should use as its resolver (the bridge address);
    mac is stable for a VM name; isolated says whether the VM is cut off
    from the other guests. `lease list` and `tap set` add \"nat\" (bool).
  tap release: {\"vm\", \"tap\", \"ip\", \"pooled_as\"} (pooled_as: the
    tap-pool-N name the TAP went back to the pool as, or null if deleted).
  setup: {\"bridge\", \"subnet\", \"gateway\", \"created\", \"address_added\",
    \"mac_set\", \"filter_installed\", \"changed\"}; changed is false when
    nothing was to do; filter_installed: banger's tables had to be made;
    mac_set: the bridge's MAC had to be set. That MAC (the gateway's, as
    guests see it) is fixed, derived from the bridge name, so it does not
    change as TAPs come and go; setup (or tap acquire) sets it on a bridge
    made by an older banger.
  teardown: {\"bridge\", \"removed\" (links), \"tables_removed\",
    \"dns_stopped\", \"forwarding_disabled\", \"changed\"}.
  status: one line per thing, each with \"kind\":
    bridge {\"name\", \"present\", \"up\", \"addresses\", \"subnet\", \"gateway\",
      \"forwarding\"}; lease {lease fields, \"tap_present\"}; pool {\"tap\",
      \"present\"}; nat {\"uplink\", \"vms\"}; filter {\"tables\" (null when
      they cannot be read), \"host_ports\", \"dropped\": {\"spoofed\",
      \"isolated\", \"hairpin\", \"input\", \"forward\", \"outside\"} (packets)};
      dns {\"running\", \"pid\", \"listen\", and \"resolver_hint\" when
      systemd-resolved does not run}.
  pool fill, pool drain: {\"tap\", \"action\": \"created\"|\"deleted\"} per TAP.
  pool list: {\"tap\", \"bridge\", \"present\"}.
  nat enable, nat disable, nat list: {\"vm\", \"ip\", \"nat\", \"uplink\"}.
  allow, deny: {\"port\", \"open\", \"source\"} (source: \"config\" or
    \"allow\"; null once closed).
  forward add, forward remove, forward list, and status (kind forward):
    {\"vm\", \"proto\" (tcp or udp), \"address\" (the host address),
    \"host_port\", \"guest_ip\" (the VM's leased address), \"guest_port\"}; add
    prints the forward, remove each forward it took away.
  dns ensure, dns status: {\"running\", \"pid\", \"listen\"}; ensure adds
    \"started\" (false when it was already running). dns stop:
    {\"was_running\", \"pid\"}.
  gc: {\"what\", \"vm\", \"detail\", \"removed\", \"error\"} per thing found
    (error only when removing it failed; vm empty when no VM is known).
    what: intent (a step a killed command left, detail `OP VM TAPS (pid
    N)`), tap, pool-entry (its TAP is gone), nft-element (detail `FAMILY
    banger SET ELEMENT`), forwarding (ip_forward on with no VM on NAT),
    tmp-file, dns-pid-file, dns-tmp-file.

A KILLED COMMAND:
  Every command that changes the kernel holds net.json's lock throughout
  and first records in net.json (\"intents\") what it is about to do: the
  TAP names it may make or rename, whether NAT found forwarding off. The
  result is stored with the intent cleared. A command killed in between
  (SIGKILL, the OOM killer, a reboot) leaves the intent, and the next
  mutating command (setup, teardown, tap, pool fill/drain, nat, allow,
  deny) or gc resolves it before its own work, saying so on stderr
  (`banger-net: recovered: ...`): a killed release, nat disable, pool
  drain, setup or teardown is finished (a released TAP is deleted, not
  pooled; the retried release then finds no lease, exit 3); a killed
  acquire, nat enable or tap set is undone (no lease is made, the NAT
  element goes, forwarding goes back off). Then, every time: pool entries
  whose TAP is gone are dropped; a bgr-N or tap-pool-N that no lease or
  pool entry holds is deleted when it is on the bridge, on no bridge, or
  named by an intent (never a lease's TAP, never one on another bridge);
  forwarding goes back off when no VM has NAT and NAT turned it on; the
  NAT set is read for addresses of no NAT lease; when anything was found
  the filter's sets are rewritten from the leases (those addresses go); and
  `.net.json.tmp.PID` files go. So a killed command leaves nothing that
  the next command or `gc` does not remove. A lease whose TAP is gone is
  kept (it is the VM's address): the next `tap acquire` for that VM makes
  the TAP again, as after a reboot. A lease whose VM is gone is banger-vm
  gc's to release.
  gc also finds what no intent names: elements of the other sets that no
  lease accounts for (from an older banger, or a hand edit), and a DNS server pid file
  whose process is dead (and its temp files). banger-net makes no socket
  files. `gc --dry-run` only reports (it takes the lock to read, or reads
  without it when it may not); gc itself needs CAP_NET_ADMIN. One world
  (state dir) per bridge: TAPs on banger's bridge are this world's.

NAMES:
  A leased TAP is bgr-N, an idle pooled one tap-pool-N (idle capacity, not a
  leak). The nftables tables are `bridge banger` (sets macs, addrs, shared)
  and `inet banger` (sets nat_guests, uplink, host_ports, forward_dests; map
  forwards).

FILES:
  $XDG_STATE_HOME/banger/net.json   leases, pool, NAT uplink, ports opened
    with allow, port forwards, intents of a command at work (locked
    updates; an older net.json without intents or forwards reads as none)
  $XDG_STATE_HOME/banger/net-dns.log   the DNS server's messages
  $XDG_RUNTIME_DIR/banger/net-dns.json   the DNS server's pid file
  Settings: bridge, subnet, gateway, dns_port, pool_size, uplink,
  guest_host_ports, vmm_user from bundle.json and
  $XDG_CONFIG_HOME/banger/config.json (guest_host_ports is applied at the
  next setup, tap, nat or allow/deny).

PRIVILEGES:
  setup also makes the unprivileged VMM user (vmm_user, default banger-vmm)
  with `useradd --system --user-group --no-create-home --home-dir
  /nonexistent --shell /usr/sbin/nologin` when it is missing. TAPs are
  made owned by that user and its group (TUNSETOWNER, TUNSETGROUP), so a
  VMM running as it can attach to its TAP. The DNS server, run as root,
  binds its socket and writes its pid file, then runs as that user with no
  capabilities and no_new_privs; a small helper that stays root reads the
  leases for it (one name in, one address out) and dies with it.

EXIT STATUS:
  0 ok (gc too when it could not remove something: that line says
  \"removed\": false with its \"error\"); 1 failed; 2 usage (bad flags, bad VM name, bad subnet settings, an
  interface name nft cannot take, a forward --address that is not one of
  the host's, or 0.0.0.0); 3 not found (VM without a lease, unknown uplink,
  a forward the VM does not have); 4 prerequisite missing (not root / no CAP_NET_ADMIN, nft missing:
  apt-get install nftables, no default route for NAT, bridge address missing
  for DNS, no VMM user for the DNS server, useradd missing); 5 conflict
  (subnet exhausted, subnet overlaps a host route, DNS port in use, a
  forward's host port taken by another forward or a host socket, leases
  left at teardown, deny of a port config.json opens, state locked).

EXAMPLES:
  banger-net tap acquire --vm web | jq -r .ip
  banger-net tap acquire --vm db --no-isolate     # may talk to other non-isolated VMs
  banger-net nat enable --vm web
  banger-net allow --port 8080                    # a dev server on the host, for guests
  banger-net forward add --vm web --host-port 18000 --guest-port 8000
  curl http://127.0.0.1:18000/                    # web's port 8000, from the host only
  banger-net forward remove --vm web --all
  banger-net dns ensure && dig @172.30.0.1 web.vm +short
  banger-net status | jq 'select(.kind == \"filter\") | .dropped'
  banger-net gc --dry-run                         # what killed commands left
  banger-net tap release --vm web && banger-net teardown";

/// Host networking for banger: bridge, TAPs and their pool, leases, the guests' filter, per-VM NAT, the .vm DNS server
#[derive(Parser, Debug)]
#[command(
    name = "banger-net",
    version,
    about = "Host networking for banger: bridge, TAPs, leases, guest isolation, NAT, .vm DNS",
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
    /// Create the bridge with its fixed MAC, the gateway address and the guests' packet filter (idempotent)
    Setup,
    /// Remove the bridge, every banger TAP, banger's nftables tables and the DNS server
    Teardown {
        /// Tear down even while VMs hold leases (their leases are dropped)
        #[arg(long)]
        force: bool,
    },
    /// Bridge, leases, pool, NAT and DNS state as JSON lines
    Status,
    /// Lease a TAP and an address to a VM, or release them
    Tap {
        #[command(subcommand)]
        cmd: TapCmd,
    },
    /// The pool of idle TAPs (tap-pool-N)
    Pool {
        #[command(subcommand)]
        cmd: PoolCmd,
    },
    /// The leases
    Lease {
        #[command(subcommand)]
        cmd: LeaseCmd,
    },
    /// Per-VM NAT out of the uplink
    Nat {
        #[command(subcommand)]
        cmd: NatCmd,
    },
    /// Open a host port to the guests (TCP and UDP, on the gateway address)
    Allow {
        #[arg(long, value_name = "P", value_parser = clap::value_parser!(u16).range(1..))]
        port: u16,
    },
    /// Close a host port opened with allow
    Deny {
        #[arg(long, value_name = "P", value_parser = clap::value_parser!(u16).range(1..))]
        port: u16,
    },
    /// Port forwards from a host address to a VM (kernel DNAT, no process)
    Forward {
        #[command(subcommand)]
        cmd: ForwardCmd,
    },
    /// The DNS server answering NAME.vm from the leases
    Dns {
        #[command(subcommand)]
        cmd: DnsCmd,
    },
    /// Find and remove what killed commands left: TAPs without a lease, nft elements, temp and pid files
    Gc {
        /// Only report, one line each; change nothing
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum TapCmd {
    /// Lease a TAP and the lowest free address to VM (the same lease again if it has one); sets up the bridge if needed; a new lease clears the host's stale ARP entry for its address
    Acquire {
        #[arg(long, value_name = "NAME")]
        vm: String,
        /// Let it reach the other VMs that are not isolated either (default: isolated)
        #[arg(long)]
        no_isolate: bool,
    },
    /// Change a leased VM's isolation from the other guests
    Set {
        #[arg(long, value_name = "NAME")]
        vm: String,
        /// Cut it off from every other guest
        #[arg(
            long,
            conflicts_with = "no_isolate",
            required_unless_present = "no_isolate"
        )]
        isolate: bool,
        /// Let it reach the other VMs that are not isolated either
        #[arg(long)]
        no_isolate: bool,
    },
    /// Free VM's lease; its TAP returns to the pool, or is deleted when the pool is full
    Release {
        #[arg(long, value_name = "NAME")]
        vm: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum PoolCmd {
    /// Create idle TAPs until the pool holds SIZE
    Fill {
        /// Pool size (default: pool_size from bundle.json)
        #[arg(long)]
        size: Option<u32>,
    },
    /// List the pool's TAPs
    List,
    /// Delete every idle TAP
    Drain,
}

#[derive(Subcommand, Debug)]
pub enum LeaseCmd {
    /// One line per lease
    List,
}

#[derive(Subcommand, Debug)]
pub enum NatCmd {
    /// Masquerade VM's traffic out of the uplink
    Enable {
        #[arg(long, value_name = "NAME")]
        vm: String,
        /// Interface to masquerade out of (default: that of the default route)
        #[arg(long, value_name = "IF")]
        uplink: Option<String>,
    },
    /// Stop NAT for VM; the last one removes the table
    Disable {
        #[arg(long, value_name = "NAME")]
        vm: String,
        /// Accepted for symmetry with enable; ignored
        #[arg(long, value_name = "IF")]
        uplink: Option<String>,
    },
    /// VMs with NAT
    List,
}

#[derive(Subcommand, Debug)]
pub enum ForwardCmd {
    /// Forward ADDRESS:HOST_PORT on the host to GUEST_PORT of VM's leased address (the same forward again is no change)
    Add {
        #[arg(long, value_name = "NAME")]
        vm: String,
        #[arg(long, value_name = "P", value_parser = clap::value_parser!(u16).range(1..))]
        host_port: u16,
        #[arg(long, value_name = "P", value_parser = clap::value_parser!(u16).range(1..))]
        guest_port: u16,
        /// UDP instead of TCP
        #[arg(long)]
        udp: bool,
        /// The host address to listen on: loopback reaches only the host's own processes; another address, whoever reaches it
        #[arg(long, value_name = "IPV4", default_value = "127.0.0.1")]
        address: std::net::Ipv4Addr,
    },
    /// Take away a VM's forward of a host port (any address unless --address), or all of them
    Remove {
        #[arg(long, value_name = "NAME")]
        vm: String,
        #[arg(long, value_name = "P", required_unless_present = "all", conflicts_with = "all",
              value_parser = clap::value_parser!(u16).range(1..))]
        host_port: Option<u16>,
        /// The UDP forward of that port
        #[arg(long, requires = "host_port")]
        udp: bool,
        /// Only the forward on this host address
        #[arg(long, value_name = "IPV4", requires = "host_port")]
        address: Option<std::net::Ipv4Addr>,
        /// Every forward of the VM (none is fine)
        #[arg(long)]
        all: bool,
    },
    /// The forwards in force, of every VM or one
    List {
        #[arg(long, value_name = "NAME")]
        vm: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum DnsCmd {
    /// Run the DNS server in the foreground
    Serve {
        /// Address to listen on (default: the gateway and dns_port)
        #[arg(long, value_name = "ADDR:PORT")]
        listen: Option<SocketAddr>,
        /// Answer REFUSED for names outside .vm instead of forwarding them
        #[arg(long)]
        no_forward: bool,
        /// Write a pid file once listening (used by `dns ensure`)
        #[arg(long, value_name = "PATH", hide = true)]
        pid_file: Option<PathBuf>,
    },
    /// Start the server detached unless it already runs
    Ensure {
        /// Address to listen on (default: the gateway and dns_port)
        #[arg(long, value_name = "ADDR:PORT")]
        listen: Option<SocketAddr>,
        /// Answer REFUSED for names outside .vm instead of forwarding them
        #[arg(long)]
        no_forward: bool,
    },
    /// Stop the detached server
    Stop,
    /// The server's root helper that reads the leases for it (internal)
    #[command(hide = true)]
    LeaseHelper,
    /// Whether the server runs, and where
    Status,
}

/// The clap command, for the man page test.
#[allow(dead_code)]
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}
