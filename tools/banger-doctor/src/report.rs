//! The report: every check, in order, with what is required decided by
//! the VMM this host will use.

use crate::checks::{self, Check};
use banger_lib::config::{runtime_dir, Bundle};
use banger_lib::host;

/// Run every check. Nothing here changes the host.
pub fn run() -> Vec<Check> {
    let (bundle_check, bundle) = checks::runtime_bundle();
    // Without a loadable bundle the host checks still run, against the
    // defaults, so one report shows everything that is missing.
    let b = bundle.unwrap_or_else(|| {
        Bundle::defaults(
            runtime_dir().unwrap_or_else(|_| banger_lib::config::INSTALLED_RUNTIME.into()),
        )
    });
    let on_qemu = host::pick_vmm(&b).map_or(true, |v| v == "qemu");
    let [net_state, dns] = checks::network();
    vec![
        bundle_check,
        checks::kernel(&b),
        checks::initrd(&b),
        checks::default_image(&b),
        checks::kvm_check(&b),
        checks::firecracker(&b),
        checks::jailer(&b),
        checks::vmm_user(&b),
        checks::qemu(&b, on_qemu),
        checks::tun(),
        checks::tool("ip", "ip", "iproute2", true),
        // Every lease comes with banger's packet filter.
        checks::tool("nft", "nft", "nftables", true),
        checks::tool("ssh", "ssh", "openssh-client", true),
        checks::tool("mkfs.ext4", "mkfs.ext4", "e2fsprogs", true),
        checks::tool("debootstrap", "debootstrap", "debootstrap", false),
        checks::net_admin(),
        checks::ip_forward(),
        checks::bridge(&b),
        checks::guest_filter(&b),
        net_state,
        dns,
        checks::leftovers(),
        checks::reflink(),
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
