//! Firecracker under its jailer: when banger-fc runs as root and a
//! `jailer` is found (bundle key `jailer`, or BANGER_JAILER), Firecracker
//! runs as the unprivileged VMM user (banger_lib::vmmuser), chrooted in
//! `STATE/jail/NAME/ID/root` (NAME: the firecracker binary's file name, as
//! the jailer lays it out), in a new pid namespace, and under cgroup v2
//! limits from the spec where the host has cgroup v2 with cpu and memory.
//!
//! What the VM needs is put in the chroot before the jailer runs: the
//! kernel, initrd and disks hard-linked (a read-only file on another
//! filesystem is copied), the console log hard-linked; files the VMM
//! writes are given to the user. Its API socket and the vsock socket are
//! made inside the chroot, where the host reaches them by the host path.
//! Everything goes on stop, delete, or a failed start (`remove`).

use banger_lib::vmmuser::{self, VmmUser};
use banger_lib::vmspec::VmSpec;
use banger_lib::{error::io, paths, Error, Result};
use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Where Firecracker's API socket is inside the jail.
pub const API_SOCKET: &str = "/run/firecracker.socket";
/// The vsock socket inside the jail.
const VSOCK: &str = "/vsock.sock";
const CONSOLE: &str = "/console.log";
/// The cgroup (under the v2 root) the VMs' cgroups are made in.
pub const CGROUP_PARENT: &str = "banger";
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The banger-owned base dir of every jail (`--chroot-base-dir`).
pub fn base_dir() -> PathBuf {
    paths::jail_dir()
}

/// The jailer to run Firecracker under, or None: `--no-jailer`, not root,
/// or the bundle's default `jailer` not found. A jailer named explicitly
/// (BANGER_JAILER, an absolute bundle path) that is missing is an error:
/// Firecracker does not silently run as root in its place.
pub fn find(no_jailer: bool) -> Result<Option<PathBuf>> {
    if no_jailer || !banger_lib::hosttools::is_root() {
        return Ok(None);
    }
    let (wanted, explicit) = match banger_lib::host::program_override("BANGER_JAILER") {
        Some(p) => (p, true),
        None => {
            let b = banger_lib::config::Bundle::load()?;
            (b.program(&b.jailer), Path::new(&b.jailer).is_absolute())
        }
    };
    match banger_lib::hosttools::which(&wanted) {
        Some(p) => Ok(Some(p)),
        None if explicit => Err(Error::prereq(format!(
            "the jailer {} is missing or not executable; firecracker will not run as root instead",
            wanted.display()
        ))
        .with_hint("install it, unset BANGER_JAILER, or start with --no-jailer")),
        None => Ok(None),
    }
}

/// cgroup v2 limits for one VM.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// `cpu.max`: the VM's vCPUs' worth of CPU time per period.
    pub cpu_max: String,
    /// `memory.max`: guest memory and Firecracker's own.
    pub memory_max: u64,
}

/// Firecracker's own memory beside the guest's, in MiB.
const VMM_OVERHEAD_MIB: u64 = 256;

pub fn limits(spec: &VmSpec) -> Limits {
    Limits {
        cpu_max: format!("{} 100000", u64::from(spec.vcpus) * 100_000),
        memory_max: (u64::from(spec.mem_mib) + VMM_OVERHEAD_MIB) << 20,
    }
}

/// Whether the host offers cgroup v2 with the cpu and memory controllers.
pub fn cgroup_v2() -> bool {
    std::fs::read_to_string(Path::new(CGROUP_ROOT).join("cgroup.controllers")).is_ok_and(|c| {
        let words: Vec<&str> = c.split_whitespace().collect();
        words.contains(&"cpu") && words.contains(&"memory")
    })
}

/// One VM's jail.
#[derive(Debug, Clone)]
pub struct Jail {
    pub jailer: PathBuf,
    pub user: VmmUser,
    /// The firecracker binary's file name: the jailer's directory level.
    pub exec_name: String,
    pub id: String,
    /// `BASE/NAME/ID`: what `remove` deletes.
    pub dir: PathBuf,
    /// `BASE/NAME/ID/root`: the chroot.
    pub root: PathBuf,
    pub limits: Option<Limits>,
}

impl Jail {
    pub fn new(jailer: PathBuf, firecracker: &Path, spec: &VmSpec) -> Result<Jail> {
        let user = vmmuser::lookup(&vmmuser::configured())?;
        let exec_name = std::fs::canonicalize(firecracker)
            .map_err(|e| io(format!("resolving {}", firecracker.display()), e))?
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| Error::usage("the firecracker path has no file name"))?;
        let dir = base_dir().join(&exec_name).join(&spec.id);
        let root = dir.join("root");
        // The host reaches the sockets through the chroot.
        for inside in [API_SOCKET, VSOCK] {
            paths::check_socket_path(&root.join(&inside[1..]))?;
        }
        Ok(Jail {
            jailer,
            user,
            exec_name,
            id: spec.id.clone(),
            dir,
            root,
            limits: cgroup_v2().then(|| limits(spec)),
        })
    }

    /// A path inside the jail as the host sees it.
    pub fn host(&self, inside: &str) -> PathBuf {
        self.root.join(inside.trim_start_matches('/'))
    }

    /// The spec as the host sees it: sockets in the chroot.
    pub fn host_spec(&self, spec: &VmSpec) -> VmSpec {
        let mut s = spec.clone();
        s.api_socket = Some(self.host(API_SOCKET));
        if s.vsock_cid.is_some() {
            s.vsock_uds = Some(self.host(VSOCK));
        }
        s
    }

    /// The spec as the jailed Firecracker sees it, where `prepare` puts
    /// each file (for `start --print-argv`, which lays nothing out).
    pub fn inside(&self, spec: &VmSpec) -> VmSpec {
        let mut inside = spec.clone();
        inside.kernel = "/vmlinux".into();
        if inside.initrd.is_some() {
            inside.initrd = Some("/initrd.img".into());
        }
        for d in inside.drives.iter_mut() {
            d.path = format!("/drive-{}", d.id).into();
        }
        if inside.console_log.is_some() {
            inside.console_log = Some(CONSOLE.into());
        }
        inside.api_socket = Some(API_SOCKET.into());
        if inside.vsock_cid.is_some() {
            inside.vsock_uds = Some(VSOCK.into());
        }
        inside.vmm_log = None;
        inside
    }

    /// Lay the chroot out for `spec` (host view, with its console log
    /// made) and return the spec as the jailed Firecracker sees it.
    pub fn prepare(&self, spec: &VmSpec) -> Result<VmSpec> {
        self.remove();
        std::fs::create_dir_all(&self.root)
            .map_err(|e| io(format!("creating {}", self.root.display()), e))?;
        // The paths `inside` names, each linked in from the host's.
        let inside = self.inside(spec);
        self.link_in(&spec.kernel, &inside.kernel, false)?;
        if let (Some(host), Some(jailed)) = (&spec.initrd, &inside.initrd) {
            self.link_in(host, jailed, false)?;
        }
        for (d, jailed) in spec.drives.iter().zip(&inside.drives) {
            self.link_in(&d.path, &jailed.path, !d.read_only)?;
        }
        if let (Some(host), Some(jailed)) = (&spec.console_log, &inside.console_log) {
            self.link_in(host, jailed, true)?;
        }
        Ok(inside)
    }

    /// Hard-link `host` into the chroot as `inside` (a read-only file on
    /// another filesystem is copied); a file the VMM writes becomes the
    /// user's, one it reads must be readable by it.
    fn link_in(&self, host: &Path, inside: &Path, writable: bool) -> Result<()> {
        let to = self.host(&inside.to_string_lossy());
        match std::fs::hard_link(host, &to) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(nix::libc::EXDEV) && !writable => {
                std::fs::copy(host, &to).map_err(|e| {
                    io(
                        format!("copying {} into {}", host.display(), self.root.display()),
                        e,
                    )
                })?;
            }
            Err(e) => {
                return Err(io(
                    format!("linking {} into {}", host.display(), self.root.display()),
                    e,
                )
                .with_hint(format!(
                    "the VM's files must be on the filesystem of {} (or run it with --no-jailer)",
                    base_dir().display()
                )))
            }
        }
        if writable {
            nix::unistd::chown(&to, Some(self.user.uid), Some(self.user.gid))
                .map_err(|e| Error::failed(format!("chown {}: {e}", to.display())))?;
        } else {
            let m = std::fs::metadata(&to).map_err(|e| io(format!("stat {}", to.display()), e))?;
            let readable = m.mode() & 0o004 != 0
                || m.uid() == self.user.uid.as_raw() && m.mode() & 0o400 != 0
                || m.gid() == self.user.gid.as_raw() && m.mode() & 0o040 != 0;
            if !readable {
                return Err(Error::prereq(format!(
                    "{} is not readable by the VMM user {}",
                    host.display(),
                    self.user.name
                ))
                .with_hint(format!("make it readable: chmod o+r {}", host.display())));
            }
        }
        Ok(())
    }

    /// The jailer's command line for `firecracker`, as the jailer documents
    /// it; Firecracker's own arguments follow `--`.
    pub fn argv(&self, firecracker: &Path) -> Vec<OsString> {
        let mut a: Vec<OsString> = Vec::new();
        let mut push = |k: &str, v: OsString| {
            a.push(format!("--{k}").into());
            a.push(v);
        };
        push("id", self.id.clone().into());
        push("exec-file", firecracker.into());
        push("uid", self.user.uid.to_string().into());
        push("gid", self.user.gid.to_string().into());
        push("chroot-base-dir", base_dir().into());
        if let Some(l) = &self.limits {
            push("cgroup-version", "2".into());
            push("parent-cgroup", CGROUP_PARENT.into());
            push("cgroup", format!("cpu.max={}", l.cpu_max).into());
            push("cgroup", format!("memory.max={}", l.memory_max).into());
        }
        a.push("--new-pid-ns".into());
        a.push("--".into());
        a.push("--api-sock".into());
        a.push(API_SOCKET.into());
        a
    }

    /// Where the jailer writes the jailed Firecracker's pid (new pid ns).
    pub fn pid_file(&self) -> PathBuf {
        self.root.join(format!("{}.pid", self.exec_name))
    }

    pub fn read_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.pid_file())
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Remove the chroot and the VM's cgroup (once its process is gone).
    pub fn remove(&self) {
        remove_dirs(&self.dir, &self.id);
    }
}

/// What a jail of VM `id` left, with or without its record: its dir under
/// every binary name, its cgroup. remove_dir_all does not follow the
/// symlinks the jailed user may have made in the chroot.
pub fn remove_for(id: &str) {
    if let Ok(names) = std::fs::read_dir(base_dir()) {
        for n in names.flatten() {
            remove_dirs(&n.path().join(id), id);
        }
    }
}

fn remove_dirs(dir: &Path, id: &str) {
    let _ = std::fs::remove_dir_all(dir);
    if let Some(name_dir) = dir.parent() {
        // Only when no other VM's jail is in it.
        let _ = std::fs::remove_dir(name_dir);
    }
    let _ = std::fs::remove_dir(Path::new(CGROUP_ROOT).join(CGROUP_PARENT).join(id));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> VmSpec {
        serde_json::from_value(serde_json::json!({
            "id": "web", "kernel": "/k/vmlinux", "vcpus": 2, "mem_mib": 512,
        }))
        .unwrap()
    }

    fn jail(limits: Option<Limits>) -> Jail {
        Jail {
            jailer: "/usr/bin/jailer".into(),
            user: VmmUser {
                name: "banger-vmm".into(),
                uid: nix::unistd::Uid::from_raw(999),
                gid: nix::unistd::Gid::from_raw(995),
            },
            exec_name: "firecracker".into(),
            id: "web".into(),
            dir: "/s/jail/firecracker/web".into(),
            root: "/s/jail/firecracker/web/root".into(),
            limits,
        }
    }

    #[test]
    fn argv_is_the_jailers_then_firecrackers() {
        let j = jail(Some(limits(&spec())));
        let line: Vec<String> = j
            .argv(Path::new("/opt/fc/firecracker"))
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let line = line.join(" ");
        let base = base_dir();
        let want = format!(
            "--id web --exec-file /opt/fc/firecracker --uid 999 --gid 995 \
             --chroot-base-dir {} --cgroup-version 2 --parent-cgroup banger \
             --cgroup cpu.max=200000 100000 --cgroup memory.max={} \
             --new-pid-ns -- --api-sock /run/firecracker.socket",
            base.display(),
            (512u64 + 256) << 20
        );
        assert_eq!(line, want);
        // Without cgroup v2, no cgroup arguments at all.
        let plain = jail(None).argv(Path::new("/opt/fc/firecracker"));
        assert!(!plain.iter().any(|a| a.to_string_lossy().contains("cgroup")));
    }

    #[test]
    fn host_view_puts_sockets_in_the_chroot() {
        let mut s = spec();
        s.vsock_cid = Some(3);
        let h = jail(None).host_spec(&s);
        assert_eq!(
            h.api_socket.unwrap(),
            Path::new("/s/jail/firecracker/web/root/run/firecracker.socket")
        );
        assert_eq!(
            h.vsock_uds.unwrap(),
            Path::new("/s/jail/firecracker/web/root/vsock.sock")
        );
        assert_eq!(
            jail(None).pid_file(),
            Path::new("/s/jail/firecracker/web/root/firecracker.pid")
        );
    }
}
