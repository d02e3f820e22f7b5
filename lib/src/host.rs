//! Facts about this host that more than one tool needs: what /dev/kvm is,
//! which VMM `auto` picks, how many CPUs and how much memory a guest may
//! get, and whether files can be cloned (reflink). banger-doctor's
//! readiness checks are built on these; the checks themselves are its own.

use crate::config::Bundle;
use crate::error::{Error, Result};
use crate::hosttools::which;
use std::path::{Path, PathBuf};

/// What `/dev/kvm` is on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kvm {
    /// vmx/svm in /proc/cpuinfo and /dev/kvm readable and writable:
    /// Firecracker and QEMU's `-accel kvm` can boot a guest.
    Hardware,
    /// Software KVM (`/sys/module/kvm_pvm`): a stock guest kernel cannot boot
    /// in Firecracker, and QEMU runs it with TCG.
    Pvm,
    /// /dev/kvm exists but cannot be used, and why.
    Unusable(String),
    /// No /dev/kvm at all.
    Absent,
}

impl Kvm {
    /// A short name for records: `hardware`, `pvm`, `unusable`, `absent`.
    pub fn name(&self) -> &'static str {
        match self {
            Kvm::Hardware => "hardware",
            Kvm::Pvm => "pvm",
            Kvm::Unusable(_) => "unusable",
            Kvm::Absent => "absent",
        }
    }
}

const DEV_KVM: &str = "/dev/kvm";
const PVM_MODULE: &str = "/sys/module/kvm_pvm";

/// Classify this host's KVM.
pub fn kvm() -> Kvm {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    kvm_from(&cpuinfo, Path::new(DEV_KVM), Path::new(PVM_MODULE))
}

/// `kvm()` with its inputs given, for tests.
pub fn kvm_from(cpuinfo: &str, dev_kvm: &Path, pvm_module: &Path) -> Kvm {
    // PVM first: it also provides /dev/kvm, and a nested host may even show
    // vmx, but guests still cannot boot in Firecracker there.
    if pvm_module.exists() {
        return Kvm::Pvm;
    }
    if !dev_kvm.exists() {
        return Kvm::Absent;
    }
    if !read_write(dev_kvm) {
        return Kvm::Unusable(format!(
            "{} is not readable and writable by this user",
            dev_kvm.display()
        ));
    }
    match cpu_virt_flag(cpuinfo) {
        Some(_) => Kvm::Hardware,
        None => Kvm::Unusable("the CPU shows neither vmx nor svm in /proc/cpuinfo".into()),
    }
}

/// `vmx` (Intel) or `svm` (AMD) when a `flags` line of /proc/cpuinfo has it.
pub fn cpu_virt_flag(cpuinfo: &str) -> Option<&'static str> {
    for line in cpuinfo.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        if key.trim() != "flags" {
            continue;
        }
        for flag in value.split_whitespace() {
            match flag {
                "vmx" => return Some("vmx"),
                "svm" => return Some("svm"),
                _ => {}
            }
        }
    }
    None
}

/// Whether this user may read and write `p` (access(2), which follows the
/// real uid as a device node's permissions do).
pub fn read_write(p: &Path) -> bool {
    use nix::unistd::{access, AccessFlags};
    access(p, AccessFlags::R_OK | AccessFlags::W_OK).is_ok()
}

/// The program an environment variable names (`BANGER_FIRECRACKER`,
/// `BANGER_QEMU`, `BANGER_VHOST_VSOCK`) when it is set and not empty: it
/// comes before the bundle's, for tests and one-off runs.
pub fn program_override(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The firecracker program: `BANGER_FIRECRACKER` when set, else the
/// bundle's `firecracker` (a file in the runtime dir, or a name on PATH).
pub fn firecracker_program(bundle: &Bundle) -> PathBuf {
    program_override("BANGER_FIRECRACKER").unwrap_or_else(|| bundle.program(&bundle.firecracker))
}

/// The firecracker executable, when there is one.
pub fn find_firecracker(bundle: &Bundle) -> Option<PathBuf> {
    which(firecracker_program(bundle))
}

/// The QEMU program: `BANGER_QEMU` when set, else the bundle's `qemu`,
/// else (no loadable bundle) `qemu-system-x86_64`.
pub fn qemu_program(bundle: Option<&Bundle>) -> PathBuf {
    program_override("BANGER_QEMU").unwrap_or_else(|| match bundle {
        Some(b) => b.program(&b.qemu),
        None => PathBuf::from("qemu-system-x86_64"),
    })
}

/// Which VMM to use: the bundle's explicit `firecracker` or `qemu`, or for
/// `auto` Firecracker where it can boot a guest (hardware KVM and a
/// firecracker binary), QEMU otherwise.
pub fn pick_vmm(bundle: &Bundle) -> Result<&'static str> {
    pick_vmm_with(&bundle.vmm, || {
        kvm() == Kvm::Hardware && find_firecracker(bundle).is_some()
    })
}

fn pick_vmm_with(
    setting: &str,
    firecracker_can_boot: impl FnOnce() -> bool,
) -> Result<&'static str> {
    match setting {
        "firecracker" => Ok("firecracker"),
        "qemu" => Ok("qemu"),
        "auto" if firecracker_can_boot() => Ok("firecracker"),
        "auto" => Ok("qemu"),
        other => Err(Error::usage(format!(
            "vmm is {other:?}; it must be auto, firecracker or qemu"
        ))),
    }
}

/// CPUs this process may run on: the most vCPUs a guest may get.
pub fn cpus() -> u32 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1)
}

/// The host's memory in MiB (MemTotal), the most a guest may get; None
/// when /proc/meminfo cannot be read.
pub fn memory_mib() -> Option<u64> {
    meminfo_total_mib(&std::fs::read_to_string("/proc/meminfo").ok()?)
}

fn meminfo_total_mib(meminfo: &str) -> Option<u64> {
    let kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024)
}

/// Clone `from`'s contents into `to` with FICLONE (`to` open for writing,
/// typically empty): `Ok(true)` when the blocks are now shared, `Ok(false)`
/// when this filesystem (or this pair of files) cannot share extents, so
/// the caller copies instead; any other failure is an error.
pub fn reflink(from: &std::fs::File, to: &std::fs::File) -> std::io::Result<bool> {
    match rustix::fs::ioctl_ficlone(to, from) {
        Ok(()) => Ok(true),
        Err(e) if clone_unsupported(e) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// The errors FICLONE gives when the filesystem cannot share extents.
fn clone_unsupported(e: rustix::io::Errno) -> bool {
    use rustix::io::Errno;
    matches!(
        e,
        Errno::OPNOTSUPP | Errno::INVAL | Errno::XDEV | Errno::NOTTY | Errno::NOSYS
    )
}

/// Whether files in `dir` can be cloned with FICLONE: probe with two
/// temporary files, removed again. Filesystems without reflink answer
/// `Ok(false)`; an error means the probe itself could not run.
pub fn reflink_supported(dir: &Path) -> std::io::Result<bool> {
    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let base = format!(".banger-reflink-{}-{n}", std::process::id());
    let src_path = dir.join(format!("{base}.src"));
    let dst_path = dir.join(format!("{base}.dst"));
    let result = (|| {
        let open = |p: &Path| {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(p)
        };
        let src = open(&src_path)?;
        std::io::Write::write_all(&mut &src, &[0x42; 4096])?;
        let dst = open(&dst_path)?;
        reflink(&src, &dst)
    })();
    let _ = std::fs::remove_file(&src_path);
    let _ = std::fs::remove_file(&dst_path);
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::statfs::{statfs, FsType, BTRFS_SUPER_MAGIC, TMPFS_MAGIC, XFS_SUPER_MAGIC};

    #[test]
    fn memory_from_meminfo() {
        let m = "MemTotal:       24571000 kB\nMemFree:         1000 kB\n";
        assert_eq!(meminfo_total_mib(m), Some(23995));
        assert_eq!(meminfo_total_mib("MemFree: 1 kB\n"), None);
        assert!(memory_mib().unwrap() > 0);
        assert!(cpus() >= 1);
    }

    const INTEL: &str =
        "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu vme de pse vmx ssse3\n\n";
    const AMD: &str = "processor\t: 0\nflags\t\t: fpu svm lm\n";
    const NONE: &str = "processor\t: 0\nflags\t\t: fpu vme hypervisor\nvmx flags\t: vnmi\n";

    #[test]
    fn cpu_flags() {
        assert_eq!(cpu_virt_flag(INTEL), Some("vmx"));
        assert_eq!(cpu_virt_flag(AMD), Some("svm"));
        // `vmx flags` is its own line, not the `flags` line.
        assert_eq!(cpu_virt_flag(NONE), None);
        assert_eq!(cpu_virt_flag(""), None);
        // A flag that merely contains the letters does not count.
        assert_eq!(cpu_virt_flag("flags : vmxe svm_lock\n"), None);
    }

    #[test]
    fn kvm_classification() {
        let t = tempfile::tempdir().unwrap();
        let dev = t.path().join("kvm");
        let pvm = t.path().join("kvm_pvm");
        assert_eq!(kvm_from(INTEL, &dev, &pvm), Kvm::Absent);
        std::fs::write(&dev, "").unwrap();
        assert_eq!(kvm_from(INTEL, &dev, &pvm), Kvm::Hardware);
        assert!(matches!(kvm_from(NONE, &dev, &pvm), Kvm::Unusable(_)));
        std::fs::create_dir(&pvm).unwrap();
        assert_eq!(kvm_from(INTEL, &dev, &pvm), Kvm::Pvm);
    }

    #[test]
    fn vmm_choice() {
        assert_eq!(pick_vmm_with("auto", || true).unwrap(), "firecracker");
        assert_eq!(pick_vmm_with("auto", || false).unwrap(), "qemu");
        // An explicit choice is honoured without looking at the host.
        assert_eq!(pick_vmm_with("qemu", || panic!()).unwrap(), "qemu");
        assert_eq!(
            pick_vmm_with("firecracker", || panic!()).unwrap(),
            "firecracker"
        );
        assert_eq!(pick_vmm_with("xen", || true).unwrap_err().exit_code(), 2);
    }

    fn is_fs(dir: &Path, fs: FsType) -> bool {
        statfs(dir).is_ok_and(|st| st.filesystem_type() == fs)
    }

    #[test]
    fn reflink_probe_on_tmpfs_and_a_dir() {
        let shm = Path::new("/dev/shm");
        if shm.is_dir() && is_fs(shm, TMPFS_MAGIC) {
            let t = tempfile::tempdir_in(shm).unwrap();
            assert!(!reflink_supported(t.path()).unwrap());
            assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 0);
        }
        let t = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let expect = is_fs(t.path(), BTRFS_SUPER_MAGIC) || is_fs(t.path(), XFS_SUPER_MAGIC);
        assert_eq!(reflink_supported(t.path()).unwrap(), expect);
        // The probe leaves nothing behind.
        assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 0);
        assert!(reflink_supported(&t.path().join("missing")).is_err());
        assert!(clone_unsupported(rustix::io::Errno::OPNOTSUPP));
        assert!(!clone_unsupported(rustix::io::Errno::ACCESS));
    }

    #[test]
    fn reflink_clones_or_says_it_cannot() {
        let t = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let src_path = t.path().join("src");
        std::fs::write(&src_path, [7u8; 8192]).unwrap();
        let src = std::fs::File::open(&src_path).unwrap();
        let dst_path = t.path().join("dst");
        let dst = std::fs::File::create(&dst_path).unwrap();
        let shares = is_fs(t.path(), BTRFS_SUPER_MAGIC) || is_fs(t.path(), XFS_SUPER_MAGIC);
        assert_eq!(reflink(&src, &dst).unwrap(), shares);
        if shares {
            assert_eq!(std::fs::read(&dst_path).unwrap(), [7u8; 8192]);
        }
        // A destination not open for writing is the caller's mistake
        // (EBADF), not a filesystem without reflink.
        let read_only = std::fs::File::open(&dst_path).unwrap();
        assert!(reflink(&src, &read_only).is_err());
    }
}
