//! The report: every check of `banger_lib::host`, in order, with what is
//! required decided by the VMM this host will use.

use banger_lib::config::{runtime_dir, Bundle};
use banger_lib::host::{self, Check};

/// Run every check. Nothing here changes the host.
pub fn run() -> Vec<Check> {
    let (bundle_check, bundle) = host::runtime_bundle();
    // Without a loadable bundle the host checks still run, against the
    // defaults, so one report shows everything that is missing.
    let b = bundle.unwrap_or_else(|| {
        Bundle::defaults(
            runtime_dir().unwrap_or_else(|_| banger_lib::config::INSTALLED_RUNTIME.into()),
        )
    });
    let on_qemu = host::pick_vmm(&b).map_or(true, |v| v == "qemu");
    let [net_state, dns] = host::network();
    vec![
        bundle_check,
        host::kernel(&b),
        host::initrd(&b),
        host::default_image(&b),
        host::kvm_check(&b),
        host::firecracker(&b),
        host::qemu(&b, on_qemu),
        host::vhost_vsock(&b, on_qemu),
        host::tun(),
        host::tool("ip", "ip", "iproute2", true),
        host::tool("nft", "nft", "nftables", false),
        host::tool("ssh", "ssh", "openssh-client", true),
        host::tool("mkfs.ext4", "mkfs.ext4", "e2fsprogs", true),
        host::tool("debootstrap", "debootstrap", "debootstrap", false),
        host::net_admin(),
        host::ip_forward(),
        host::bridge(&b),
        net_state,
        dns,
        host::reflink(),
    ]
}

/// The exit code: 1 when a required check failed.
pub fn exit_code(checks: &[Check]) -> i32 {
    i32::from(checks.iter().any(|c| c.required && !c.ok))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_required_failures_fail() {
        let info = Check::fail("nft", false, "missing", "apt-get install nftables");
        let need = Check::fail("ip", true, "missing", "apt-get install iproute2");
        let fine = Check::pass("ssh", true, "/usr/bin/ssh");
        assert_eq!(exit_code(&[info.clone(), fine.clone()]), 0);
        assert_eq!(exit_code(&[info, need, fine]), 1);
    }
}
