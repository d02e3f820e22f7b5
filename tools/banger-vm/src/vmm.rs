//! Which VMM driver runs a VM, and the spec handed to it on stdin.

use crate::cli::VmmChoice;
use crate::record::VmRecord;
use banger_lib::records::TapLine;
use banger_lib::{config::Bundle, vmspec, Error, Result};
use std::net::Ipv4Addr;

/// `firecracker` or `qemu` for a choice; `auto` asks what this host can
/// boot (banger_lib::host, the same answer banger-doctor reports).
pub fn pick(choice: VmmChoice, bundle: &Bundle) -> Result<String> {
    let mut b = bundle.clone();
    b.vmm = match choice {
        VmmChoice::Firecracker => "firecracker",
        VmmChoice::Qemu => "qemu",
        VmmChoice::Auto => "auto",
    }
    .into();
    banger_lib::host::pick_vmm(&b).map(str::to_string)
}

/// The driver tool for a VMM name.
pub fn tool(vmm: &str) -> &'static str {
    if vmm == "firecracker" {
        "banger-fc"
    } else {
        "banger-qemu"
    }
}

/// The guest's vsock CID: unique per lease, since addresses are.
pub fn cid_for(ip: &str, prefix: u8) -> Result<u32> {
    let addr: Ipv4Addr = ip
        .parse()
        .map_err(|_| Error::failed(format!("banger-net gave a bad address {ip:?}")))?;
    let host = u32::from(addr) & !mask_bits(prefix);
    Ok(1000 + host)
}

fn mask_bits(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix.min(32)))
    }
}

/// Take a lease from `banger-net tap acquire` into the record, with the
/// CID and kernel command line that follow from it.
pub fn apply_lease(rec: &mut VmRecord, t: &TapLine) -> Result<()> {
    if t.prefix > 32 {
        return Err(Error::failed(format!(
            "banger-net gave a bad prefix /{}",
            t.prefix
        )));
    }
    let (ip, gw, dns) = (t.ip.to_string(), t.gateway.to_string(), t.dns.to_string());
    rec.vsock_cid = Some(cid_for(&ip, t.prefix)?);
    rec.cmdline = cmdline(&rec.name, &ip, &gw, t.prefix, &dns);
    rec.tap = Some(t.tap.clone());
    rec.mac = Some(t.mac.clone());
    rec.ip = Some(ip);
    rec.prefix = Some(t.prefix);
    rec.gateway = Some(gw);
    rec.dns = Some(dns);
    Ok(())
}

/// The kernel command line (without root=, which the driver adds): serial
/// console and the static address in the `ip=` form the image applies.
pub fn cmdline(name: &str, ip: &str, gateway: &str, prefix: u8, dns: &str) -> String {
    let mask = Ipv4Addr::from(mask_bits(prefix));
    format!(
        "console=ttyS0 reboot=k panic=1 pci=off ip={ip}::{gateway}:{mask}:{name}:eth0:off:{dns}"
    )
}

/// A disk with a backing file is a qcow2 overlay of it.
fn format(backing: &Option<std::path::PathBuf>) -> vmspec::DiskFormat {
    match backing {
        Some(_) => vmspec::DiskFormat::Qcow2,
        None => vmspec::DiskFormat::Raw,
    }
}

/// The spec for the driver's `start`.
pub fn spec(rec: &VmRecord, agent_port: u32) -> vmspec::VmSpec {
    vmspec::VmSpec {
        id: rec.name.clone(),
        kernel: rec.kernel.clone(),
        initrd: rec.initrd.clone(),
        cmdline: rec.cmdline.clone(),
        vcpus: rec.vcpus,
        mem_mib: rec.memory_mib,
        drives: vec![
            vmspec::Drive {
                id: "rootfs".into(),
                path: rec.disks.rootfs.clone(),
                read_only: false,
                root: true,
                format: format(&rec.disks.rootfs_backing),
                backing: rec.disks.rootfs_backing.clone(),
            },
            vmspec::Drive {
                id: "work".into(),
                path: rec.disks.work.clone(),
                read_only: false,
                root: false,
                format: format(&rec.disks.work_backing),
                backing: rec.disks.work_backing.clone(),
            },
        ],
        tap: rec.tap.clone(),
        mac: rec.mac.clone(),
        vsock_cid: rec.vsock_cid,
        vsock_uds: None,
        agent_port: Some(agent_port),
        api_socket: None,
        vmm_log: None,
        console_log: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cid_and_cmdline() {
        assert_eq!(cid_for("172.30.0.5", 24).unwrap(), 1005);
        assert_eq!(cid_for("10.1.2.3", 16).unwrap(), 1000 + 2 * 256 + 3);
        assert!(cid_for("nope", 24).is_err());
        assert_eq!(
            cmdline("box", "172.30.0.5", "172.30.0.1", 24, "172.30.0.1"),
            "console=ttyS0 reboot=k panic=1 pci=off \
             ip=172.30.0.5::172.30.0.1:255.255.255.0:box:eth0:off:172.30.0.1"
        );
    }
}
