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
//!
//! Snapshots: a jailed Firecracker writes one into a dir of its chroot
//! (`Outbox`), whence banger-fc moves the files out as root's. A restored
//! VM gets the vmstate and memory in its chroot (`Jail::state`) beside
//! its drives, which are where every jail puts them (`/drive-ID`): what
//! a jailed vmstate names, so a snapshot of one jailed VM loads in the
//! jail of any other with that VM's own drives.

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
/// A restored VM's vmstate and memory inside its jail.
pub const VMSTATE: &str = "/vmstate";
pub const MEMORY: &str = "/memory";
/// Where a jailed Firecracker writes a snapshot.
const OUTBOX: &str = "/snapshot";
/// In a snapshot dir: its vmstate was written under the jailer and names
/// the drives where a jail puts them, which only a jail can load.
pub const JAILED_MARK: &str = "jailed";
const JAILED_TEXT: &str = "This snapshot was written by Firecracker under its jailer: \
its vmstate names the drives where a jail puts them (/drive-ID), so banger-fc loads it \
only in a jail.\n";

/// Mark the snapshot in `dir` as a jailed VM's.
pub fn mark_jailed(dir: &Path) -> Result<()> {
    let p = dir.join(JAILED_MARK);
    std::fs::write(&p, JAILED_TEXT).map_err(|e| io(format!("writing {}", p.display()), e))
}
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
    /// For a restore: the dir whose vmstate and memory go into the jail.
    pub state: Option<PathBuf>,
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
            state: None,
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
        match &self.state {
            Some(dir) => {
                self.put_state(&dir.join("vmstate"), VMSTATE)?;
                self.put_state(&dir.join("memory"), MEMORY)?;
            }
            // A loaded Firecracker is given no serial output path: the
            // console log stays out of the jail (and root's).
            None => {
                if let (Some(host), Some(jailed)) = (&spec.console_log, &inside.console_log) {
                    self.link_in(host, jailed, true)?;
                }
            }
        }
        Ok(inside)
    }

    /// Put a snapshot file in the jail, readable by the VMM user and never
    /// writable by it: Firecracker maps the memory MAP_PRIVATE, so the file
    /// stays for the VM's life and goes with the jail. Hard-linked when
    /// the user can already read it (a link shares the original's mode),
    /// else copied as root's, group the user's, 0440.
    fn put_state(&self, host: &Path, inside: &str) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let to = self.host(inside);
        let m = std::fs::metadata(host).map_err(|e| io(format!("stat {}", host.display()), e))?;
        if self.user_reads(&m) && !self.user_writes(&m) && std::fs::hard_link(host, &to).is_ok() {
            return Ok(());
        }
        banger_lib::diskcopy::copy(host, &to)?;
        let f = std::fs::File::open(&to).map_err(|e| io(format!("opening {}", to.display()), e))?;
        std::os::unix::fs::fchown(&f, Some(0), Some(self.user.gid.as_raw()))
            .and_then(|()| f.set_permissions(std::fs::Permissions::from_mode(0o440)))
            .map_err(|e| io(format!("giving {} to the VMM user", to.display()), e))
    }

    fn user_reads(&self, m: &std::fs::Metadata) -> bool {
        m.mode() & 0o004 != 0
            || m.uid() == self.user.uid.as_raw() && m.mode() & 0o400 != 0
            || m.gid() == self.user.gid.as_raw() && m.mode() & 0o040 != 0
    }

    fn user_writes(&self, m: &std::fs::Metadata) -> bool {
        m.mode() & 0o002 != 0
            || m.uid() == self.user.uid.as_raw()
            || m.gid() == self.user.gid.as_raw() && m.mode() & 0o020 != 0
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
            if !self.user_reads(&m) {
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

/// A dir in a running VM's chroot for its Firecracker to write a snapshot
/// into, made by root and given to the VMM user (0700). The user owns the
/// chroot and may swap anything in it for a symlink, a hard link or a
/// FIFO: the dir is held open and its files are reached through that fd,
/// never by a path through the chroot, and checked once out of the
/// user's reach. It is removed when dropped.
pub struct Outbox {
    dir: std::fs::File,
    host: PathBuf,
}

fn open_flags(extra: nix::libc::c_int) -> std::fs::OpenOptions {
    use std::os::unix::fs::OpenOptionsExt;
    let mut o = std::fs::OpenOptions::new();
    o.read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC | extra);
    o
}

impl Outbox {
    /// In the jail `jail_dir` (the record's "jail"), for the user the
    /// jailer gave its root to.
    pub fn make(jail_dir: &Path) -> Result<Outbox> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        let root = jail_dir.join("root");
        let owner = std::fs::symlink_metadata(&root)
            .map_err(|e| io(format!("stat {}", root.display()), e))?;
        let host = root.join(&OUTBOX[1..]);
        // One a killed snapshot left; a symlink is removed, not followed.
        let _ = std::fs::remove_dir_all(&host);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&host)
            .map_err(|e| io(format!("creating {}", host.display()), e))?;
        let out = Outbox {
            dir: open_flags(nix::libc::O_DIRECTORY)
                .open(&host)
                .map_err(|e| io(format!("opening {}", host.display()), e))?,
            host,
        };
        let m = out
            .dir
            .metadata()
            .map_err(|e| io(format!("stat {}", out.host.display()), e))?;
        if m.uid() != 0 {
            return Err(Error::failed(format!(
                "{} was replaced while it was made",
                out.host.display()
            )));
        }
        std::os::unix::fs::fchown(&out.dir, Some(owner.uid()), Some(owner.gid()))
            .and_then(|()| {
                out.dir
                    .set_permissions(std::fs::Permissions::from_mode(0o700))
            })
            .map_err(|e| io(format!("giving {} to the VMM user", out.host.display()), e))?;
        Ok(out)
    }

    /// File `name` in it as the jailed Firecracker sees it.
    pub fn inside(&self, name: &str) -> PathBuf {
        Path::new(OUTBOX).join(name)
    }

    /// Move `name` out to `to` (a new path in a root-owned dir): renamed,
    /// or copied across filesystems; then root's, 0600. Anything but a
    /// regular file with one link (a link to a drive, a device, a FIFO)
    /// is refused and its entry at `to` removed.
    pub fn take(&self, name: &str, to: &Path) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let what = || format!("moving {} to {}", self.inside(name).display(), to.display());
        let dest_dir = to.parent().unwrap_or(Path::new("/"));
        let dest_dir = open_flags(nix::libc::O_DIRECTORY)
            .open(dest_dir)
            .map_err(|e| io(format!("opening {}", dest_dir.display()), e))?;
        let file_name = to.file_name().unwrap_or_default();
        let mut renamed = nix::fcntl::renameat2(
            &self.dir,
            name,
            &dest_dir,
            file_name,
            nix::fcntl::RenameFlags::RENAME_NOREPLACE,
        );
        if renamed == Err(nix::errno::Errno::EINVAL) {
            // A filesystem without RENAME_NOREPLACE; `to` was checked free.
            renamed = nix::fcntl::renameat(&self.dir, name, &dest_dir, file_name);
        }
        match renamed {
            Ok(()) => {}
            Err(nix::errno::Errno::EXDEV) => self.copy_out(name, to).map_err(|e| io(what(), e))?,
            Err(e) => return Err(io(what(), e.into())),
        }
        // Out of the user's reach now: what is at `to` stays what it is.
        let checked = (|| -> std::io::Result<()> {
            let f = open_flags(nix::libc::O_NONBLOCK).open(to)?;
            let m = f.metadata()?;
            if !m.is_file() || m.nlink() != 1 {
                return Err(std::io::Error::other(
                    "the VMM left something other than a file of its own",
                ));
            }
            std::os::unix::fs::fchown(&f, Some(0), Some(0))?;
            f.set_permissions(std::fs::Permissions::from_mode(0o600))
        })();
        checked.map_err(|e| {
            let _ = std::fs::remove_file(to);
            io(what(), e)
        })
    }

    fn copy_out(&self, name: &str, to: &Path) -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let from = nix::fcntl::openat(
            &self.dir,
            name,
            nix::fcntl::OFlag::O_RDONLY
                | nix::fcntl::OFlag::O_NOFOLLOW
                | nix::fcntl::OFlag::O_NONBLOCK
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )?;
        let mut from = std::fs::File::from(from);
        if !from.metadata()?.is_file() {
            return Err(std::io::Error::other("not a regular file"));
        }
        let mut dest = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(to)?;
        let copied = std::io::copy(&mut from, &mut dest).and_then(|_| dest.sync_all());
        if copied.is_err() {
            let _ = std::fs::remove_file(to);
        }
        copied
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.host);
    }
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
            state: None,
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

    /// What the VMM user may leave in its outbox instead of a file: a
    /// symlink or a second link to a host file. Neither is followed nor
    /// changed; the entry moved out is removed.
    #[test]
    fn outbox_takes_files_and_refuses_links_as_root() {
        use std::os::unix::fs::PermissionsExt;
        if !banger_testkit::require_root("outbox_takes_files_and_refuses_links_as_root") {
            return;
        }
        let home = banger_testkit::Home::new();
        let jail = home.path().join("jail");
        std::fs::create_dir_all(jail.join("root")).unwrap();
        let (out_dir, host) = (home.path().join("out"), home.path().join("host"));
        std::fs::create_dir(&out_dir).unwrap();
        std::fs::write(&host, "host file").unwrap();
        std::fs::set_permissions(&host, std::fs::Permissions::from_mode(0o644)).unwrap();
        let outbox = Outbox::make(&jail).unwrap();
        let inbox = jail.join("root/snapshot");
        assert_eq!(std::fs::metadata(&inbox).unwrap().mode() & 0o7777, 0o700);
        std::fs::write(inbox.join("vmstate"), "state").unwrap();
        std::os::unix::fs::symlink(&host, inbox.join("memory")).unwrap();
        std::fs::hard_link(&host, inbox.join("other")).unwrap();

        outbox.take("vmstate", &out_dir.join("vmstate")).unwrap();
        let m = std::fs::metadata(out_dir.join("vmstate")).unwrap();
        assert_eq!((m.uid(), m.mode() & 0o7777), (0, 0o600));
        for f in ["memory", "other"] {
            assert!(outbox.take(f, &out_dir.join(f)).is_err(), "{f}");
            assert!(std::fs::symlink_metadata(out_dir.join(f)).is_err(), "{f}");
        }
        let m = std::fs::metadata(&host).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o644, "the host file was changed");
        assert_eq!(std::fs::read_to_string(&host).unwrap(), "host file");
        drop(outbox);
        assert!(!inbox.exists(), "the outbox is left");
    }
}
