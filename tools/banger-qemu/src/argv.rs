//! The qemu-system-x86_64 command line for a resolved spec. Pure, so the
//! mapping from spec to QEMU options is tested without running QEMU.

use banger_lib::vmspec::{DiskFormat, VmSpec};
use std::ffi::OsString;

/// Everything besides the spec that decides the command line.
pub struct Plan<'a> {
    pub spec: &'a VmSpec,
    /// `kvm` or `tcg`.
    pub accel: &'a str,
    /// The final kernel command line (root= and TCG extras included).
    pub cmdline: String,
    /// Restoring a suspended VM: start with `-incoming defer` (the state
    /// comes later over QMP, see suspend.rs).
    pub incoming: bool,
    /// What banger-qemu opened for QEMU, which runs unprivileged and
    /// opens none of the VM's files or sockets by path.
    pub fds: Fds,
}

/// Descriptors QEMU inherits, by number. The numbers are fixed by the
/// spec (`Fds::layout`): banger-qemu moves what it opened onto them in the
/// child, so `start --print-argv` prints the command line start runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Fds {
    pub kernel: i32,
    pub initrd: Option<i32>,
    /// Per drive, in the spec's order.
    pub drives: Vec<DriveFds>,
    /// The console FIFO's write end.
    pub console: i32,
    /// /dev/net/tun attached to the spec's TAP.
    pub tap: Option<i32>,
    /// The QMP socket, bound and listening.
    pub qmp: i32,
    /// The guest agent's virtio-serial port: its host socket, bound and
    /// listening.
    pub agent: i32,
}

/// The agent's port name in the guest (`/dev/virtio-ports/NAME`), which
/// banger-vsock-agent looks for.
pub const AGENT_PORT: &str = "org.banger.agent";

/// One drive's descriptors.
#[derive(Debug, Clone, PartialEq)]
pub struct DriveFds {
    /// The drive's file in its mode (read-write or read-only).
    pub fd: i32,
    /// For a read-write drive a read-only one too (QEMU's block layer
    /// opens read-only first when it probes).
    pub ro: Option<i32>,
    /// A qcow2 overlay's backing file, read-only.
    pub backing: Option<i32>,
}

impl Fds {
    /// The numbers for a spec: 3 upwards, in the order kernel, initrd,
    /// console, QMP, TAP, then each drive (its file, read-only twin,
    /// backing file), then the agent's port socket.
    pub fn layout(s: &VmSpec) -> Fds {
        let mut next = 3..;
        let mut take = || next.next().expect("unbounded");
        let kernel = take();
        let initrd = s.initrd.as_ref().map(|_| take());
        let console = take();
        let qmp = take();
        let tap = s.tap.as_ref().map(|_| take());
        let drives = s
            .drives
            .iter()
            .map(|d| DriveFds {
                fd: take(),
                ro: (!d.read_only).then(&mut take),
                backing: d.backing.as_ref().map(|_| take()),
            })
            .collect();
        let agent = take();
        Fds {
            kernel,
            initrd,
            drives,
            console,
            tap,
            qmp,
            agent,
        }
    }
}

/// QEMU's seccomp filter with everything a running microvm never needs
/// denied: it cannot exec, fork, change its ids or scheduling.
pub const SANDBOX: &str = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny";

const CONSOLE_SET: i32 = 1;
/// fd set of drive N: DRIVE_SETS + N; of its backing file BACKING_SETS + N.
const DRIVE_SETS: i32 = 10;
const BACKING_SETS: i32 = 100;

fn fd_path(fd: i32) -> String {
    format!("/proc/self/fd/{fd}")
}

pub fn qemu_args(plan: &Plan) -> Vec<OsString> {
    let s = plan.spec;
    let mut a: Vec<String> = Vec::new();
    let mut push = |items: &[&str]| a.extend(items.iter().map(|i| i.to_string()));
    let mem = format!("{}M", s.mem_mib);
    push(&["-name", &s.id]);
    push(&["-M", "microvm"]);
    push(&["-m", &mem, "-smp", &s.vcpus.to_string()]);
    push(&["-accel", plan.accel]);
    push(&["-cpu", if plan.accel == "kvm" { "host" } else { "max" }]);
    push(&["-nodefaults", "-no-user-config", "-nographic", "-no-reboot"]);
    push(&["-sandbox", SANDBOX]);
    let fds = &plan.fds;
    push(&[
        "-add-fd",
        &format!("fd={},set={CONSOLE_SET}", fds.console),
        "-chardev",
        &format!("file,id=console,path=/dev/fdset/{CONSOLE_SET},append=on"),
        "-serial",
        "chardev:console",
    ]);
    // The kernel and initrd are read through the inherited descriptor.
    push(&["-kernel", &fd_path(fds.kernel)]);
    if let Some(i) = fds.initrd.filter(|_| s.initrd.is_some()) {
        push(&["-initrd", &fd_path(i)]);
    }
    let mut a: Vec<OsString> = a.into_iter().map(OsString::from).collect();
    a.push("-append".into());
    a.push(plan.cmdline.clone().into());
    let mut push = |items: &[String]| a.extend(items.iter().map(OsString::from));
    let numbered = (0..)
        .zip(DRIVE_SETS..)
        .zip(s.drives.iter().zip(&fds.drives));
    for ((n, set), (d, f)) in numbered {
        let ro = if d.read_only { "on" } else { "off" };
        for fd in std::iter::once(f.fd).chain(f.ro) {
            push(&["-add-fd".into(), format!("fd={fd},set={set}")]);
        }
        match (d.format, f.backing) {
            // A qcow2 overlay: its backing file is a node of its own, on
            // the descriptor; the name in the overlay's header is never
            // opened.
            (DiskFormat::Qcow2, Some(bfd)) => {
                let bset = BACKING_SETS + n;
                push(&[
                    "-add-fd".into(),
                    format!("fd={bfd},set={bset}"),
                    "-blockdev".into(),
                    format!(
                        "driver=file,node-name=backing{n}-file,filename=/dev/fdset/{bset},read-only=on"
                    ),
                    "-blockdev".into(),
                    format!("driver=raw,node-name=backing{n},file=backing{n}-file,read-only=on"),
                    "-blockdev".into(),
                    format!(
                        "driver=file,node-name=drive{n}-file,filename=/dev/fdset/{set},read-only={ro}"
                    ),
                    "-blockdev".into(),
                    format!(
                        "driver=qcow2,node-name=drive{n},file=drive{n}-file,backing=backing{n},read-only={ro}"
                    ),
                ]);
            }
            (format, _) => push(&[
                "-drive".into(),
                format!(
                    "id=drive{n},file=/dev/fdset/{set},format={},if=none,readonly={ro}",
                    format.name()
                ),
            ]),
        }
        // microvm gives devices virtio-mmio slots in order: vda, vdb...
        push(&[
            "-device".into(),
            format!("virtio-blk-device,drive=drive{n}"),
        ]);
    }
    if let (Some(fd), Some(mac)) = (fds.tap.filter(|_| s.tap.is_some()), &s.mac) {
        push(&[
            "-netdev".into(),
            format!("tap,id=net0,fd={fd}"),
            "-device".into(),
            format!("virtio-net-device,netdev=net0,mac={mac}"),
        ]);
    }
    // The agent's channel: a virtio-serial port (QEMU cannot save a VM
    // with vhost-user-vsock), its host side the socket banger-qemu bound.
    push(&[
        "-device".into(),
        "virtio-serial-device,id=vser0,max_ports=2".into(),
        "-chardev".into(),
        format!("socket,id=agent,fd={},server=on,wait=off", fds.agent),
        "-device".into(),
        format!("virtserialport,bus=vser0.0,chardev=agent,name={AGENT_PORT}"),
    ]);
    push(&[
        "-chardev".into(),
        format!("socket,id=qmp,fd={},server=on,wait=off", fds.qmp),
        "-mon".into(),
        "chardev=qmp,mode=control".into(),
    ]);
    if plan.incoming {
        push(&["-incoming".into(), "defer".into()]);
    }
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
                    path: "/d/root,fs.qcow2".into(),
                    read_only: false,
                    root: true,
                    format: DiskFormat::Qcow2,
                    backing: Some("/i/rootfs.ext4".into()),
                },
                Drive {
                    id: "work".into(),
                    path: "/d/work.ext4".into(),
                    read_only: true,
                    root: false,
                    format: DiskFormat::Raw,
                    backing: None,
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
            incoming: false,
            fds: Fds::layout(&s),
        };
        assert_eq!(
            plan.fds,
            Fds {
                kernel: 3,
                initrd: Some(4),
                console: 5,
                qmp: 6,
                tap: Some(7),
                drives: vec![
                    DriveFds {
                        fd: 8,
                        ro: Some(9),
                        backing: Some(10)
                    },
                    DriveFds {
                        fd: 11,
                        ro: None,
                        backing: None
                    }
                ],
                agent: 12,
            }
        );
        let args = qemu_args(&plan);
        let append = args.iter().position(|a| a == "-append").unwrap();
        assert_eq!(args[append + 1], "console=ttyS0 root=/dev/vda rw");
        let line = joined(&plan);
        for want in [
            "-M microvm -m 512M -smp 2 -accel tcg -cpu max",
            "-sandbox on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
            "-kernel /proc/self/fd/3 -initrd /proc/self/fd/4",
            "-add-fd fd=8,set=10 -add-fd fd=9,set=10 -add-fd fd=10,set=100 \
             -blockdev driver=file,node-name=backing0-file,filename=/dev/fdset/100,read-only=on \
             -blockdev driver=raw,node-name=backing0,file=backing0-file,read-only=on \
             -blockdev driver=file,node-name=drive0-file,filename=/dev/fdset/10,read-only=off \
             -blockdev driver=qcow2,node-name=drive0,file=drive0-file,backing=backing0,read-only=off \
             -device virtio-blk-device,drive=drive0 \
             -add-fd fd=11,set=11 \
             -drive id=drive1,file=/dev/fdset/11,format=raw,if=none,readonly=on \
             -device virtio-blk-device,drive=drive1",
            "-netdev tap,id=net0,fd=7 \
             -device virtio-net-device,netdev=net0,mac=06:00:ac:1e:00:02",
            "-device virtio-serial-device,id=vser0,max_ports=2 \
             -chardev socket,id=agent,fd=12,server=on,wait=off \
             -device virtserialport,bus=vser0.0,chardev=agent,name=org.banger.agent",
            "-add-fd fd=5,set=1 \
             -chardev file,id=console,path=/dev/fdset/1,append=on -serial chardev:console",
            "-chardev socket,id=qmp,fd=6,server=on,wait=off -mon chardev=qmp,mode=control",
        ] {
            assert!(line.contains(want), "missing {want:?} in {line}");
        }
        // No path of the VM's is opened by QEMU, and it never daemonizes
        // (spawn=deny forbids the fork).
        for absent in [
            "/d/",
            "/k/",
            "/i/",
            "/s/",
            "/r/",
            "-daemonize",
            "-runas",
            "vhost",
            "-incoming",
        ] {
            assert!(!line.contains(absent), "{absent} in {line}");
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
            incoming: true,
            fds: Fds::layout(&s),
        };
        let line = joined(&plan);
        assert!(line.ends_with("-incoming defer"), "{line}");
        assert!(line.contains("-accel kvm -cpu host"), "{line}");
        assert!(line.contains("-kernel /proc/self/fd/3 "), "{line}");
        assert!(line.contains("fd=4,set=1 "), "{line}");
        for absent in ["-drive", "-netdev", "vhost-user", "-initrd", "root="] {
            assert!(!line.contains(absent), "{absent} in {line}");
        }
    }
}
