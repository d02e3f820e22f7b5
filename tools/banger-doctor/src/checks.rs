//! One function per readiness check. Each returns a `Check` whose hint, on
//! failure, is the command that fixes it. The host facts they report on
//! (KVM, reflink, the VMM `auto` picks) are `banger_lib::host`'s, the same
//! ones the other tools act on.

use banger_lib::config::Bundle;
use banger_lib::host::{self, find_firecracker, firecracker_program, kvm, Kvm};
use banger_lib::hosttools::{self, which};
use banger_lib::records::{DnsLine, GcLine, ImageLine, Lease};
use banger_lib::{paths, sibling, Kind};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// One readiness check: what was checked, whether it passed, whether banger
/// cannot work without it, what was found, and the command that fixes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub check: String,
    pub ok: bool,
    pub required: bool,
    pub detail: String,
    pub hint: Option<String>,
}

impl Check {
    pub fn pass(check: &str, required: bool, detail: impl Into<String>) -> Check {
        Check {
            check: check.into(),
            ok: true,
            required,
            detail: detail.into(),
            hint: None,
        }
    }

    pub fn fail(
        check: &str,
        required: bool,
        detail: impl Into<String>,
        hint: impl Into<String>,
    ) -> Check {
        Check {
            check: check.into(),
            ok: false,
            required,
            detail: detail.into(),
            hint: Some(hint.into()),
        }
    }
}

const RUNTIME_FIX: &str = "make runtime-local";

/// The runtime bundle: bundle.json (and the user's config over it) loads,
/// and the files it names that every VM needs (ssh key, guest agent) exist.
/// The loaded bundle comes back for the checks that need it.
pub fn runtime_bundle() -> (Check, Option<Bundle>) {
    const NAME: &str = "runtime bundle";
    let b = match Bundle::load() {
        Ok(b) => b,
        Err(e) => {
            let hint = e.hint.unwrap_or_else(|| RUNTIME_FIX.into());
            // A broken user config is fixed by editing it, not by rebuilding.
            let hint = if e.kind == Kind::Usage {
                hint
            } else {
                RUNTIME_FIX.into()
            };
            return (Check::fail(NAME, true, e.message, hint), None);
        }
    };
    (bundle_complete(&b), Some(b))
}

/// The bundle's own files: private key, its public half, the guest agent.
pub fn bundle_complete(b: &Bundle) -> Check {
    const NAME: &str = "runtime bundle";
    let wanted = [
        b.ssh_key.clone(),
        format!("{}.pub", b.ssh_key),
        b.agent_path.clone(),
    ];
    let missing: Vec<&str> = wanted
        .iter()
        .filter(|f| !b.path(f).is_file())
        .map(String::as_str)
        .collect();
    if missing.is_empty() {
        Check::pass(NAME, true, format!("{}", b.dir.display()))
    } else {
        Check::fail(
            NAME,
            true,
            format!("{} lacks {}", b.dir.display(), missing.join(", ")),
            RUNTIME_FIX,
        )
    }
}

fn bundle_file(name: &str, b: &Bundle, value: &str) -> Check {
    let p = b.path(value);
    if value.is_empty() {
        Check::pass(name, false, "none configured")
    } else if p.is_file() {
        Check::pass(name, true, p.display().to_string())
    } else {
        Check::fail(
            name,
            true,
            format!("{} does not exist", p.display()),
            RUNTIME_FIX,
        )
    }
}

/// The guest kernel (ELF vmlinux) named by the bundle.
pub fn kernel(b: &Bundle) -> Check {
    bundle_file("kernel", b, &b.kernel)
}

/// The initrd named by the bundle (none configured is fine). None is
/// needed beside banger's own kernel (rootfs/build-kernel.sh), whose
/// kernel.json says `"initrd": null`: banger then boots without one.
pub fn initrd(b: &Bundle) -> Check {
    let c = bundle_file("initrd", b, &b.initrd);
    if !c.ok && !b.path(&b.initrd).exists() && builtin_kernel(&b.path(&b.kernel)) {
        return Check::pass(
            "initrd",
            true,
            "none: the kernel has its drivers built in (kernel.json)",
        );
    }
    c
}

/// Whether the kernel.json beside `kernel` (what build-kernel.sh wrote)
/// says that kernel boots with no initramfs.
fn builtin_kernel(kernel: &Path) -> bool {
    let Some(meta) = kernel.parent().map(|d| d.join("kernel.json")) else {
        return false;
    };
    std::fs::read_to_string(meta)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .is_some_and(|v| v.get("initrd").is_some_and(|i| i.is_null()))
}

/// The default image, as `banger-image default` prints it (the user's
/// choice over the bundle's `default_image`).
pub fn default_image(b: &Bundle) -> Check {
    const NAME: &str = "default image";
    let hint = format!("banger-image build --name {}", b.default_image);
    if sibling::find("banger-image").is_none() {
        return Check::fail(NAME, true, "banger-image is not installed", "make install");
    }
    match sibling::run_typed::<ImageLine>("banger-image", &["default"], None) {
        Ok(l) if l.len() == 1 => Check::pass(
            NAME,
            true,
            format!("{} ({})", l[0].name, l[0].rootfs.display()),
        ),
        Ok(_) => Check::fail(NAME, true, "banger-image default printed no image", hint),
        Err(e) if e.kind == Kind::NotFound => Check::fail(NAME, true, e.message, hint),
        Err(e) => Check::fail(NAME, true, e.message.clone(), e.hint.unwrap_or(hint)),
    }
}

/// The firecracker binary and its version. Required only when the bundle
/// says `vmm: firecracker`.
pub fn firecracker(b: &Bundle) -> Check {
    const NAME: &str = "firecracker";
    let required = b.vmm == "firecracker";
    let Some(path) = find_firecracker(b) else {
        let wanted = firecracker_program(b);
        let dest = b.dir.join("firecracker");
        return Check::fail(
            NAME,
            required,
            format!("no firecracker binary ({} not found)", wanted.display()),
            format!(
                "install -m 0755 /path/to/firecracker {} (a release binary), or export BANGER_FIRECRACKER=/path/to/firecracker",
                dest.display()
            ),
        );
    };
    match hosttools::version(&path, "firecracker") {
        Ok(v) => Check::pass(NAME, required, format!("{v} at {}", path.display())),
        Err(e) => Check::fail(
            NAME,
            required,
            e.message,
            format!(
                "replace {} with a working firecracker release binary",
                path.display()
            ),
        ),
    }
}

/// The unprivileged user VMMs and the DNS server run as
/// (banger_lib::vmmuser): required as root, where the drivers refuse to run
/// a VMM without it.
pub fn vmm_user(b: &Bundle) -> Check {
    const NAME: &str = "vmm_user";
    let required = hosttools::is_root();
    match banger_lib::vmmuser::lookup(&b.vmm_user) {
        Ok(u) => Check::pass(
            NAME,
            required,
            format!("{} (uid {}, gid {})", u.name, u.uid, u.gid),
        ),
        Err(e) => Check::fail(NAME, required, e.message, e.hint.unwrap_or_default()),
    }
}

/// Firecracker's jailer (BANGER_JAILER, else the bundle's `jailer`): with
/// it, banger-fc runs Firecracker unprivileged in a chroot; without, as
/// root.
pub fn jailer(b: &Bundle) -> Check {
    const NAME: &str = "jailer";
    let wanted = host::program_override("BANGER_JAILER").unwrap_or_else(|| b.program(&b.jailer));
    match which(&wanted) {
        Some(p) => Check::pass(
            NAME,
            false,
            format!("{}: Firecracker runs jailed as the VMM user", p.display()),
        ),
        None => Check::fail(
            NAME,
            false,
            format!(
                "no jailer ({} not found): Firecracker would run as root",
                wanted.display()
            ),
            format!(
                "install -m 0755 /path/to/jailer {} (from the same Firecracker release)",
                b.dir.join("jailer").display()
            ),
        ),
    }
}

/// /dev/kvm: hardware, PVM or unusable, and hence which VMM `auto` picks.
/// Required only when the bundle says `vmm: firecracker`.
pub fn kvm_check(b: &Bundle) -> Check {
    const NAME: &str = "kvm";
    let required = b.vmm == "firecracker";
    let k = kvm();
    let picks = match host::pick_vmm(b) {
        Ok(v) => v,
        Err(e) => return Check::fail(NAME, true, e.message, "set vmm to auto in config.json"),
    };
    let choice = if b.vmm == "auto" {
        format!("vmm auto picks {picks}")
    } else {
        format!("vmm is set to {picks}")
    };
    match k {
        Kvm::Hardware => {
            let why = if picks == "qemu" && b.vmm == "auto" {
                " (no firecracker binary)"
            } else {
                ""
            };
            Check::pass(
                NAME,
                required,
                format!("hardware KVM; {choice}{why}"),
            )
        }
        Kvm::Pvm => Check::fail(
            NAME,
            required,
            format!("PVM (software KVM): Firecracker cannot boot a stock guest; QEMU uses TCG; {choice}"),
            "none on this host: keep vmm auto (or qemu); Firecracker needs a host with VT-x/AMD-V",
        ),
        Kvm::Unusable(why) => Check::fail(
            NAME,
            required,
            format!("{why}; {choice}"),
            "sudo -i (or: usermod -aG kvm $USER, then log in again)",
        ),
        Kvm::Absent => {
            let module = match host::cpu_virt_flag(
                &std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default(),
            ) {
                Some("svm") => "kvm_amd",
                _ => "kvm_intel",
            };
            Check::fail(
                NAME,
                required,
                format!("no /dev/kvm; {choice}"),
                format!("modprobe {module}"),
            )
        }
    }
}

/// /dev/net/tun, needed for every VM's TAP device.
pub fn tun() -> Check {
    const NAME: &str = "tun";
    let p = Path::new("/dev/net/tun");
    if !p.exists() {
        Check::fail(NAME, true, "no /dev/net/tun", "modprobe tun")
    } else if !host::read_write(p) {
        Check::fail(
            NAME,
            true,
            "/dev/net/tun is not readable and writable by this user",
            "sudo -i",
        )
    } else {
        Check::pass(NAME, true, "/dev/net/tun")
    }
}

/// A host program, by name or path, with the Debian package that has it.
pub fn tool(check: &str, program: impl AsRef<Path>, package: &str, required: bool) -> Check {
    let program = program.as_ref();
    match which(program) {
        Some(p) => Check::pass(check, required, p.display().to_string()),
        None => Check::fail(
            check,
            required,
            format!("{} not found", program.display()),
            format!("apt-get install {package}"),
        ),
    }
}

/// QEMU, required when it is the VMM that will run guests: the program
/// banger-qemu would run (BANGER_QEMU, else the bundle's).
pub fn qemu(b: &Bundle, required: bool) -> Check {
    tool(
        "qemu-system-x86_64",
        host::qemu_program(Some(b)),
        "qemu-system-x86",
        required,
    )
}

/// Root or CAP_NET_ADMIN: bridge, TAPs and NAT change the host's network.
pub fn net_admin() -> Check {
    const NAME: &str = "net admin";
    if hosttools::has_net_admin() {
        let who = if hosttools::is_root() {
            "root"
        } else {
            "CAP_NET_ADMIN"
        };
        Check::pass(NAME, true, who)
    } else {
        Check::fail(NAME, true, "neither root nor CAP_NET_ADMIN", "sudo -i")
    }
}

/// IPv4 forwarding: a report, not a requirement. banger-net turns it on
/// for the first VM with NAT (or port forward on a non-loopback address)
/// and back off after the last one when it was off; what it means for the host is worth saying either way.
pub fn ip_forward() -> Check {
    ip_forward_from(std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").ok())
}

fn ip_forward_from(value: Option<String>) -> Check {
    const NAME: &str = "ipv4 forwarding";
    match value.as_deref().map(str::trim) {
        Some("1") => Check::pass(
            NAME,
            false,
            "on (net.ipv4.ip_forward = 1): this host routes packets between all its \
             interfaces, not only for banger; banger's own rules forward only NAT VMs' \
             traffic from its bridge and connections to ports forwarded on a \
             non-loopback address (banger-net(1))",
        ),
        Some(v) => Check::pass(
            NAME,
            false,
            format!(
                "off (net.ipv4.ip_forward = {v}): banger-net turns it on while a VM has \
                 NAT or a port forward on a non-loopback address, and off again after \
                 the last one"
            ),
        ),
        None => Check::fail(
            NAME,
            false,
            "cannot read /proc/sys/net/ipv4/ip_forward",
            "mount /proc (guests' NAT needs IPv4 forwarding)",
        ),
    }
}

/// The bridge guests attach to. `banger-net setup` (which `vm create`
/// runs) makes it, so its absence is not fatal.
pub fn bridge(b: &Bundle) -> Check {
    const NAME: &str = "bridge";
    let dir = PathBuf::from("/sys/class/net").join(&b.bridge);
    if dir.join("bridge").is_dir() {
        Check::pass(NAME, false, format!("{} is up", b.bridge))
    } else if dir.exists() {
        Check::fail(
            NAME,
            false,
            format!("{} exists but is not a bridge", b.bridge),
            format!("ip link delete {} && banger-net setup", b.bridge),
        )
    } else {
        Check::fail(
            NAME,
            false,
            format!("{} does not exist yet", b.bridge),
            "banger-net setup",
        )
    }
}

/// banger's packet filter (banger-net(1)): while the bridge exists, its
/// two nftables tables must too, or guests reach the host and each other
/// and may spoof. A firewall reload that flushes the whole ruleset
/// (`nft flush ruleset`, nftables.service) removes them; setup puts them
/// back.
pub fn guest_filter(b: &Bundle) -> Check {
    let bridge = Path::new("/sys/class/net")
        .join(&b.bridge)
        .join("bridge")
        .is_dir();
    let nft = which("nft");
    let tables = match (&nft, hosttools::has_net_admin()) {
        (Some(nft), true) => Some(["bridge", "inet"].map(|family| {
            std::process::Command::new(nft)
                .args(["list", "table", family, "banger"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })),
        _ => None,
    };
    guest_filter_from(&b.bridge, bridge, tables)
}

fn guest_filter_from(bridge: &str, bridge_up: bool, tables: Option<[bool; 2]>) -> Check {
    const NAME: &str = "guest filter";
    match (bridge_up, tables) {
        (false, _) => Check::pass(
            NAME,
            false,
            format!("no {bridge} yet: setup makes the filter with it"),
        ),
        (true, None) => Check::pass(
            NAME,
            false,
            "cannot read the nftables ruleset (needs root and nft) to see banger's tables",
        ),
        (true, Some([true, true])) => Check::pass(
            NAME,
            false,
            "banger's tables (bridge banger, inet banger) are in place",
        ),
        (true, Some(_)) => Check::fail(
            NAME,
            true,
            format!(
                "{bridge} exists but banger's nftables tables do not (a firewall reload that \
                 flushed the ruleset?): guests are not isolated from the host or each other"
            ),
            "banger-net setup",
        ),
    }
}

/// banger-net's state (its leases, from net.json) and the .vm DNS server,
/// as `banger-net lease list` and `dns status` print them. A corrupt or
/// too-new net.json fails the first check: every create needs it.
pub fn network() -> [Check; 2] {
    const STATE: &str = "network state";
    const DNS: &str = "dns";
    if sibling::find("banger-net").is_none() {
        return [
            Check::fail(STATE, true, "banger-net is not installed", "make install"),
            Check::fail(DNS, false, "banger-net is not installed", "make install"),
        ];
    }
    let state = match sibling::run_typed::<Lease>("banger-net", &["lease", "list"], None) {
        Ok(l) => Check::pass(STATE, true, format!("{} leases", l.len())),
        Err(e) => {
            let hint = e.hint.clone().unwrap_or_else(|| {
                format!(
                    "fix or move away {}",
                    paths::state_dir().join("net.json").display()
                )
            });
            Check::fail(STATE, true, e.message, hint)
        }
    };
    let dns = match sibling::run_typed::<DnsLine>("banger-net", &["dns", "status"], None) {
        Ok(l) => match l.first() {
            Some(d) if d.running => Check::pass(
                DNS,
                false,
                format!(
                    "the .vm DNS server runs (pid {}) on {}",
                    d.pid.unwrap_or(0),
                    d.listen
                ),
            ),
            Some(d) => Check::fail(
                DNS,
                false,
                format!(
                    "the .vm DNS server is not running (it would listen on {})",
                    d.listen
                ),
                "banger-net dns ensure (vm create runs it)",
            ),
            None => Check::fail(
                DNS,
                false,
                "banger-net dns status printed nothing",
                "banger-net dns status",
            ),
        },
        Err(e) => Check::fail(
            DNS,
            false,
            e.message.clone(),
            e.hint.unwrap_or_else(|| "banger-net dns status".into()),
        ),
    };
    [state, dns]
}

/// What killed commands left behind (`banger-vm gc --dry-run`, then
/// `banger-net gc --dry-run`): not required, but worth a `banger gc`.
pub fn leftovers() -> Check {
    const CHECK: &str = "leftovers";
    let mut found: Vec<GcLine> = Vec::new();
    let mut ran = 0;
    for tool in ["banger-vm", "banger-net"] {
        if sibling::find(tool).is_none() {
            continue;
        }
        ran += 1;
        match sibling::run_typed::<GcLine>(tool, &["gc", "--dry-run"], None) {
            Ok(l) => found.extend(l),
            Err(e) => {
                return Check::fail(
                    CHECK,
                    false,
                    format!("{tool} gc --dry-run: {}", e.message),
                    e.hint.unwrap_or_else(|| format!("{tool} gc --dry-run")),
                )
            }
        }
    }
    if ran == 0 {
        return Check::fail(
            CHECK,
            false,
            "neither banger-vm nor banger-net is installed",
            "make install",
        );
    }
    if found.is_empty() {
        return Check::pass(CHECK, false, "nothing left behind by killed commands");
    }
    let mut vms: Vec<&str> = found
        .iter()
        .map(|g| g.vm.as_str())
        .filter(|v| !v.is_empty())
        .collect();
    vms.dedup();
    let net = found.iter().filter(|g| g.vm.is_empty()).count();
    let mut whose = vms.join(", ");
    if net > 0 {
        if !whose.is_empty() {
            whose.push_str("; ");
        }
        whose.push_str(&format!("{net} of no VM: TAPs, nft elements, files"));
    }
    Check::fail(
        CHECK,
        false,
        format!(
            "{} {} left by killed commands ({whose})",
            found.len(),
            if found.len() == 1 { "thing" } else { "things" },
        ),
        "banger gc --dry-run shows them; banger gc removes them",
    )
}

/// Which disks this host gives a VM. QEMU VMs get qcow2 overlays on the
/// image's files: constant time anywhere. Firecracker VMs get raw disks of
/// their own, made from the image (data dir) into the VM's dir (state
/// dir): a reflink (FICLONE) when both are on one btrfs or xfs filesystem,
/// else a sparse copy that takes time with the image's data.
pub fn reflink() -> Check {
    const NAME: &str = "reflink";
    // Probe where disks will go; before a dir exists, the nearest existing
    // parent is the filesystem it will be made on.
    let nearest = |p: &std::path::Path| p.ancestors().find(|d| d.is_dir()).map(Path::to_path_buf);
    let (Some(data), Some(state)) = (nearest(&paths::data_dir()), nearest(&paths::state_dir()))
    else {
        return Check::fail(
            NAME,
            false,
            "no existing directory to probe",
            "mkdir -p ~/.local/share ~/.local/state",
        );
    };
    let qemu = "QEMU VMs: qcow2 overlays on the image's files (constant time)";
    let hint = "put XDG_DATA_HOME and XDG_STATE_HOME on one btrfs or xfs filesystem \
                (optional: only Firecracker VMs' create time)";
    let dev = |p: &Path| std::fs::metadata(p).map(|m| std::os::unix::fs::MetadataExt::dev(&m));
    match (host::reflink_supported(&data), dev(&data), dev(&state)) {
        (Ok(true), Ok(a), Ok(b)) if a == b => Check::pass(
            NAME,
            false,
            format!(
                "{qemu}; Firecracker VMs: reflinks, {} clones files (instant)",
                data.display()
            ),
        ),
        (Ok(true), ..) => Check::fail(
            NAME,
            false,
            format!(
                "{qemu}; Firecracker VMs: sparse copies ({} and {} are on different \
                 filesystems: no reflink between them)",
                data.display(),
                state.display()
            ),
            hint,
        ),
        (Ok(false), ..) => Check::fail(
            NAME,
            false,
            format!(
                "{qemu}; Firecracker VMs: sparse copies ({} does not support reflink)",
                data.display()
            ),
            hint,
        ),
        (Err(e), ..) => Check::fail(
            NAME,
            false,
            format!("probing {}: {e}", data.display()),
            format!("chmod u+w {}", data.display()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bridge_without_banger_tables_fails() {
        assert!(guest_filter_from("banger0", false, None).ok);
        assert!(guest_filter_from("banger0", true, None).ok);
        assert!(guest_filter_from("banger0", true, Some([true, true])).ok);
        for half in [[true, false], [false, true], [false, false]] {
            let c = guest_filter_from("banger0", true, Some(half));
            assert!(!c.ok && c.required, "{half:?}");
            assert_eq!(c.hint.as_deref(), Some("banger-net setup"));
            assert!(c.detail.contains("not isolated"), "{}", c.detail);
        }
    }

    #[test]
    fn ip_forward_is_reported_and_explained() {
        let on = ip_forward_from(Some("1\n".into()));
        assert!(on.ok);
        assert!(
            on.detail
                .contains("routes packets between all its interfaces"),
            "{}",
            on.detail
        );
        // banger-net turns it on when NAT needs it: off is no failure.
        let off = ip_forward_from(Some("0\n".into()));
        assert!(off.ok);
        assert!(
            off.detail.contains("turns it on while a VM has NAT"),
            "{}",
            off.detail
        );
        assert!(!ip_forward_from(None).ok);
    }

    #[test]
    fn missing_tool_hint_names_package() {
        let c = tool("nft", "no-such-tool-banger", "nftables", true);
        assert!(!c.ok);
        assert_eq!(c.hint.as_deref(), Some("apt-get install nftables"));
        assert!(tool("sh", "sh", "dash", true).ok);
    }

    #[test]
    fn bundle_files() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("bundle.json"), "{}").unwrap();
        let b = Bundle::load_from(t.path(), &t.path().join("none.json")).unwrap();
        let c = bundle_complete(&b);
        assert!(!c.ok);
        assert!(c.detail.contains("id_ed25519"), "{}", c.detail);
        assert_eq!(c.hint.as_deref(), Some(RUNTIME_FIX));
        for f in [
            "id_ed25519",
            "id_ed25519.pub",
            "banger-vsock-agent",
            "vmlinux",
        ] {
            std::fs::write(t.path().join(f), "").unwrap();
        }
        assert!(bundle_complete(&b).ok);
        assert!(kernel(&b).ok);
        let missing = initrd(&b);
        assert!(!missing.ok && missing.required);
        // A packaged kernel's kernel.json: its initramfs is still needed.
        let meta = t.path().join("kernel.json");
        std::fs::write(&meta, r#"{"package":"linux-image-cloud-amd64"}"#).unwrap();
        assert!(!initrd(&b).ok);
        // banger's own kernel needs none.
        std::fs::write(&meta, r#"{"package":"linux-source-6.1","initrd":null}"#).unwrap();
        let none = initrd(&b);
        assert!(none.ok, "{none:?}");
        assert!(none.detail.contains("built in"), "{}", none.detail);
    }
}
