//! The qemu-system-x86_64 command line for a resolved spec. Pure, so the
//! mapping from spec to QEMU options is tested without running QEMU.

use banger_lib::vmspec::VmSpec;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Everything besides the spec that decides the command line.
pub struct Plan<'a> {
    pub spec: &'a VmSpec,
    /// `kvm` or `tcg`.
    pub accel: &'a str,
    /// The final kernel command line (root= and TCG extras included).
    pub cmdline: String,
    pub pid_file: PathBuf,
    /// vhost-device-vsock's control socket, when the VM has vsock.
    pub vhost_socket: Option<PathBuf>,
}

/// QEMU option values are comma separated; a comma inside one is doubled.
fn esc(p: &Path) -> String {
    p.to_string_lossy().replace(',', ",,")
}

pub fn qemu_args(plan: &Plan) -> Vec<OsString> {
    let s = plan.spec;
    let mut a: Vec<String> = Vec::new();
    let mut push = |items: &[&str]| a.extend(items.iter().map(|i| i.to_string()));
    let mem = format!("{}M", s.mem_mib);
    push(&["-name", &s.id]);
    // vhost-user needs guest memory the helper can map: a shared memfd.
    push(&["-M", "microvm,memory-backend=mem"]);
    push(&[
        "-object",
        &format!("memory-backend-memfd,id=mem,size={mem},share=on"),
    ]);
    push(&["-m", &mem, "-smp", &s.vcpus.to_string()]);
    push(&["-accel", plan.accel]);
    push(&["-cpu", if plan.accel == "kvm" { "host" } else { "max" }]);
    push(&["-nodefaults", "-no-user-config", "-nographic", "-no-reboot"]);
    let console = s.console_log.as_deref().unwrap_or(Path::new("/dev/null"));
    push(&[
        "-chardev",
        &format!("file,id=console,path={},append=on", esc(console)),
        "-serial",
        "chardev:console",
    ]);
    let mut a: Vec<OsString> = a.into_iter().map(OsString::from).collect();
    a.push("-kernel".into());
    a.push(s.kernel.clone().into());
    if let Some(i) = &s.initrd {
        a.push("-initrd".into());
        a.push(i.clone().into());
    }
    a.push("-append".into());
    a.push(plan.cmdline.clone().into());
    let mut push = |items: &[String]| a.extend(items.iter().map(OsString::from));
    for (n, d) in s.drives.iter().enumerate() {
        let ro = if d.read_only { "on" } else { "off" };
        // microvm gives devices virtio-mmio slots in order: vda, vdb...
        push(&[
            "-drive".into(),
            format!(
                "id=drive{n},file={},format=raw,if=none,readonly={ro}",
                esc(&d.path)
            ),
            "-device".into(),
            format!("virtio-blk-device,drive=drive{n}"),
        ]);
    }
    if let (Some(tap), Some(mac)) = (&s.tap, &s.mac) {
        push(&[
            "-netdev".into(),
            format!("tap,id=net0,ifname={tap},script=no,downscript=no"),
            "-device".into(),
            format!("virtio-net-device,netdev=net0,mac={mac}"),
        ]);
    }
    if let Some(sock) = &plan.vhost_socket {
        push(&[
            "-chardev".into(),
            format!("socket,id=vsock,path={}", esc(sock)),
            "-device".into(),
            "vhost-user-vsock-device,chardev=vsock".into(),
        ]);
    }
    if let Some(qmp) = &s.api_socket {
        push(&[
            "-qmp".into(),
            format!("unix:{},server=on,wait=off", esc(qmp)),
        ]);
    }
    push(&["-daemonize".into(), "-pidfile".into()]);
    a.push(plan.pid_file.clone().into());
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use banger_lib::vmspec::Drive;

    fn spec() -> VmSpec {
        VmSpec {
            id: "box".into(),
            kernel: "/k/vmlinux".into(),
            initrd: Some("/k/initrd.img".into()),
            cmdline: "console=ttyS0".into(),
            vcpus: 2,
            mem_mib: 512,
            drives: vec![
                Drive {
                    id: "rootfs".into(),
                    path: "/d/root,fs.ext4".into(),
                    read_only: false,
                    root: true,
                },
                Drive {
                    id: "work".into(),
                    path: "/d/work.ext4".into(),
                    read_only: true,
                    root: false,
                },
            ],
            tap: Some("tap0".into()),
            mac: Some("06:00:ac:1e:00:02".into()),
            vsock_cid: Some(3),
            vsock_uds: Some("/r/vsock.sock".into()),
            agent_port: None,
            api_socket: Some("/r/qmp.sock".into()),
            vmm_log: Some("/s/vmm.log".into()),
            console_log: Some("/s/console.log".into()),
            binary: None,
        }
    }

    fn joined(plan: &Plan) -> String {
        qemu_args(plan)
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn full_spec_maps_to_microvm_options() {
        let s = spec();
        let plan = Plan {
            spec: &s,
            accel: "tcg",
            cmdline: s.cmdline_with_root(),
            pid_file: "/r/qemu.pid".into(),
            vhost_socket: Some("/r/vhost-vsock.sock".into()),
        };
        let args = qemu_args(&plan);
        let append = args.iter().position(|a| a == "-append").unwrap();
        assert_eq!(args[append + 1], "console=ttyS0 root=/dev/vda rw");
        let line = joined(&plan);
        for want in [
            "-M microvm,memory-backend=mem",
            "-object memory-backend-memfd,id=mem,size=512M,share=on",
            "-m 512M -smp 2 -accel tcg -cpu max",
            "-kernel /k/vmlinux -initrd /k/initrd.img",
            "-drive id=drive0,file=/d/root,,fs.ext4,format=raw,if=none,readonly=off \
             -device virtio-blk-device,drive=drive0 \
             -drive id=drive1,file=/d/work.ext4,format=raw,if=none,readonly=on",
            "-netdev tap,id=net0,ifname=tap0,script=no,downscript=no \
             -device virtio-net-device,netdev=net0,mac=06:00:ac:1e:00:02",
            "-chardev socket,id=vsock,path=/r/vhost-vsock.sock \
             -device vhost-user-vsock-device,chardev=vsock",
            "-chardev file,id=console,path=/s/console.log,append=on -serial chardev:console",
            "-qmp unix:/r/qmp.sock,server=on,wait=off",
            "-daemonize -pidfile /r/qemu.pid",
        ] {
            assert!(line.contains(want), "missing {want:?} in {line}");
        }
    }

    #[test]
    fn minimal_spec_has_no_devices_and_kvm_uses_host_cpu() {
        let mut s = spec();
        s.drives.clear();
        s.tap = None;
        s.mac = None;
        s.initrd = None;
        let plan = Plan {
            spec: &s,
            accel: "kvm",
            cmdline: s.cmdline_with_root(),
            pid_file: "/r/qemu.pid".into(),
            vhost_socket: None,
        };
        let line = joined(&plan);
        assert!(line.contains("-accel kvm -cpu host"), "{line}");
        for absent in ["-drive", "-netdev", "vhost-user", "-initrd", "root="] {
            assert!(!line.contains(absent), "{absent} in {line}");
        }
    }
}
