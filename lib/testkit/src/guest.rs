//! Guest kernels for live tests, each built once under a lock (parallel
//! tests and test binaries build it once; the scripts skip the work when
//! their output is current): Debian's packaged kernel and banger's
//! busybox initramfs (rootfs/make-kernel.sh, `target/guest/kernel/`), plus
//! initrds with extra files appended; and banger's own kernel with
//! everything built in (rootfs/build-kernel.sh, `target/guest/kernel-built/`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// Paths of the built kernel.
#[derive(Debug, Clone)]
pub struct Kernel {
    pub dir: PathBuf,
    /// ELF vmlinux (Firecracker and QEMU/PVH).
    pub vmlinux: PathBuf,
    /// The busybox initramfs: switch_root to root=, or without root= an
    /// initramfs-only guest that prints `INITRAMFS_READY` on the console.
    pub initrd: PathBuf,
}

/// The console line an initramfs-only guest prints when it is up.
pub const INITRAMFS_READY: &str = "banger-init: initramfs guest ready";

/// Build (once) and return the guest kernel. Panics when the script fails,
/// with its output.
pub fn kernel() -> Kernel {
    static K: OnceLock<Kernel> = OnceLock::new();
    K.get_or_init(|| {
        let dir = run_kernel_script("make-kernel.sh", "kernel", &[]);
        let k = Kernel {
            vmlinux: dir.join("vmlinux"),
            initrd: dir.join("initrd.img"),
            dir,
        };
        assert!(
            k.vmlinux.is_file() && k.initrd.is_file(),
            "{k:?} incomplete"
        );
        k
    })
    .clone()
}

/// banger's own guest kernel (rootfs/build-kernel.sh): everything a
/// microVM needs built in, booted with no initramfs.
#[derive(Debug, Clone)]
pub struct BuiltKernel {
    pub dir: PathBuf,
    pub vmlinux: PathBuf,
}

/// Build (once per source version and config) and return banger's own
/// guest kernel in `target/guest/kernel-built/`; its source tree stays in
/// `target/guest/kernel-build/` for the next build. About ten minutes on
/// two cores the first time. Panics when the script fails, with its
/// output.
pub fn built_kernel() -> BuiltKernel {
    static K: OnceLock<BuiltKernel> = OnceLock::new();
    K.get_or_init(|| {
        let build = crate::workspace_root().join("target/guest/kernel-build");
        let dir = run_kernel_script(
            "build-kernel.sh",
            "kernel-built",
            &[("KERNEL_BUILD_DIR", &build)],
        );
        let k = BuiltKernel {
            vmlinux: dir.join("vmlinux"),
            dir,
        };
        assert!(k.vmlinux.is_file(), "{k:?} incomplete");
        k
    })
    .clone()
}

/// Run rootfs/SCRIPT into target/guest/OUT under OUT's lock (one build for
/// every test binary; the scripts skip the work when OUT is current).
fn run_kernel_script(script: &str, out: &str, env: &[(&str, &Path)]) -> PathBuf {
    let dir = crate::workspace_root().join("target/guest").join(out);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    // A kernel build takes about ten minutes on two cores.
    let _lock =
        banger_lib::state::Lock::acquire(&dir.with_extension("lock"), Duration::from_secs(3600))
            .unwrap_or_else(|e| panic!("locking {}: {e}", dir.display()));
    let path = crate::workspace_root().join("rootfs").join(script);
    let mut cmd = Command::new(&path);
    cmd.arg(&dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = cmd
        .output()
        .unwrap_or_else(|e| panic!("running rootfs/{script}: {e}"));
    assert!(
        o.status.success(),
        "rootfs/{script} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    dir
}

/// Write `out`: `base` with a gzip'd newc cpio of `extra` appended, each
/// (host file, path in the guest) kept executable as on the host. The
/// kernel unpacks concatenated archives in order, so these files land on
/// top of the base initramfs.
pub fn initrd_with(base: &Path, extra: &[(&Path, &str)], out: &Path) {
    let stage = tempfile::tempdir().expect("temp dir");
    let mut names = Vec::new();
    for (src, dest) in extra {
        let dest = dest.trim_start_matches('/');
        let target = stage.path().join(dest);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(src, &target)
            .unwrap_or_else(|e| panic!("copying {} into the initrd: {e}", src.display()));
        // Parent dirs first, as cpio wants them.
        let mut parts = Vec::new();
        for p in Path::new(dest).ancestors().skip(1) {
            if !p.as_os_str().is_empty() {
                parts.push(p.to_string_lossy().into_owned());
            }
        }
        names.extend(parts.into_iter().rev());
        names.push(dest.to_string());
    }
    names.dedup();
    let script = format!(
        "printf '%s\\n' {} | cpio -o -H newc --quiet -R 0:0 | gzip -9",
        names
            .iter()
            .map(|n| format!("'{}'", n.replace('\'', "'\\''")))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let cpio = Command::new("sh")
        .args(["-c", &script])
        .current_dir(stage.path())
        .output()
        .expect("running cpio");
    assert!(
        cpio.status.success(),
        "cpio: {}",
        String::from_utf8_lossy(&cpio.stderr)
    );
    let mut data = std::fs::read(base).expect("reading the base initrd");
    // The kernel looks for the next archive on a 4-byte boundary and
    // skips zero padding.
    while !data.len().is_multiple_of(4) {
        data.push(0);
    }
    data.extend_from_slice(&cpio.stdout);
    std::fs::write(out, data).expect("writing the initrd");
}

/// `ssh root@IP CMD` from inside `ns` with the test image's key, for tests
/// that boot a guest without banger-ssh. The guest's host key is made at
/// its first boot, so it is not checked here (banger-ssh's tests pin it).
pub fn ssh(ns: &crate::NetNs, key: &Path, ip: &str, cmd: &str) -> std::process::Output {
    ns.command("ssh")
        .arg("-i")
        .arg(key)
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=5",
            "-o",
            "LogLevel=ERROR",
            &format!("root@{ip}"),
            cmd,
        ])
        .output()
        .expect("running ssh")
}
