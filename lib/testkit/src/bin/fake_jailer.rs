//! fake-jailer: Firecracker v1.16's jailer command line, strictly (its
//! arg parser: required --id, --exec-file, --uid, --gid; --chroot-base-dir
//! defaulting to /srv/jailer; --netns, --daemonize, --new-pid-ns,
//! --cgroup (repeatable, FILE=VALUE), --resource-limit, --cgroup-version
//! (1 or 2), --parent-cgroup; Firecracker's own arguments after `--`), and
//! what the jailer does, for the fake firecracker behind it:
//!
//! - the chroot is BASE/EXEC_NAME/ID/root, the exec file is copied into
//!   it, /, /dev, /dev/net and /run in it are made 0700 and given to
//!   uid:gid, /dev/net/tun and /dev/kvm are made there with mknod;
//! - cgroup v2 values are written to /sys/fs/cgroup/PARENT/ID and the
//!   process is moved into it;
//! - a new mount namespace and chroot(2) into the chroot, then uid and gid
//!   are dropped, and with --new-pid-ns the exec file runs as pid 1 of a
//!   new pid namespace while the jailer writes its pid to
//!   /EXEC_NAME.pid in the chroot and exits 0;
//! - Firecracker gets `--id ID --start-time-us N --start-time-cpu-us N
//!   --parent-cpu-time-us N` and then the arguments after `--`.
//!
//! Emulated, not the jailer's: the fake firecracker is a dynamically
//! linked test binary that reads the OpenAPI document and writes its
//! request and violation logs, so the host's /usr (read-only) and those
//! files' directories are bind-mounted into the chroot, in the jail's own
//! mount namespace only (nothing shows on the host); and the FAKE_FC_*
//! variables pass (the jailer clears the environment). Each run appends
//! its argv as a JSON array to FAKE_JAILER_LOG when set.
//!
//! An argument the jailer would refuse exits 1 with the jailer's
//! "Arguments parsing error" or "Jailer error" message, and a line in
//! FAKE_FC_VIOLATIONS.

use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use nix::unistd::{chown, fork, ForkResult, Gid, Uid};
use std::collections::HashMap;
use std::os::unix::process::CommandExt;
use std::path::{Component, Path, PathBuf};

const WITH_VALUE: &[&str] = &[
    "id",
    "exec-file",
    "uid",
    "gid",
    "chroot-base-dir",
    "netns",
    "cgroup-version",
    "parent-cgroup",
];
const MULTIPLE: &[&str] = &["cgroup", "resource-limit"];
const FLAGS: &[&str] = &["daemonize", "new-pid-ns", "version", "help"];

struct Args {
    single: HashMap<String, String>,
    multi: HashMap<String, Vec<String>>,
    flags: Vec<String>,
    extra: Vec<String>,
}

fn violation(msg: &str) {
    if let Some(p) = std::env::var_os("FAKE_FC_VIOLATIONS") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
        {
            let _ = writeln!(f, "jailer: {msg}");
        }
    }
}

fn arg_error(msg: &str) -> ! {
    violation(msg);
    println!("Arguments parsing error: {msg} \n\nFor more information try --help.");
    std::process::exit(1)
}

fn jailer_error(msg: &str) -> ! {
    violation(msg);
    eprintln!("Jailer error: {msg}");
    std::process::exit(1)
}

fn parse(argv: &[String]) -> Args {
    let mut a = Args {
        single: HashMap::new(),
        multi: HashMap::new(),
        flags: Vec::new(),
        extra: Vec::new(),
    };
    let mut it = argv.iter();
    while let Some(arg) = it.next() {
        if arg == "--" {
            a.extra = it.by_ref().cloned().collect();
            break;
        }
        let Some(name) = arg.strip_prefix("--") else {
            arg_error(&format!(
                "Found argument '{arg}' which wasn't expected, or isn't valid in this context."
            ));
        };
        if FLAGS.contains(&name) {
            a.flags.push(name.into());
            continue;
        }
        let multiple = MULTIPLE.contains(&name);
        if !multiple && !WITH_VALUE.contains(&name) {
            arg_error(&format!(
                "Found argument '{arg}' which wasn't expected, or isn't valid in this context."
            ));
        }
        let Some(v) = it.next().filter(|v| !v.starts_with("--")) else {
            arg_error(&format!(
                "The argument '{arg}' requires a value, but none was supplied"
            ));
        };
        if multiple {
            a.multi.entry(name.into()).or_default().push(v.clone());
        } else if a.single.insert(name.into(), v.clone()).is_some() {
            arg_error(&format!(
                "The argument '{arg}' was provided more than once."
            ));
        }
    }
    a
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if let Some(log) = std::env::var_os("FAKE_JAILER_LOG") {
        use std::io::Write;
        let line = serde_json::to_string(&argv).expect("strings serialize");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("opening FAKE_JAILER_LOG");
        writeln!(f, "{line}").expect("writing FAKE_JAILER_LOG");
    }
    let a = parse(&argv);
    if a.flags.iter().any(|f| f == "version") {
        println!("Jailer v1.16.1\n");
        return;
    }
    for required in ["id", "exec-file", "uid", "gid"] {
        if !a.single.contains_key(required) {
            arg_error(&format!("Missing required argument '--{required}'"));
        }
    }
    let id = &a.single["id"];
    let id_ok = (1..=64).contains(&id.len()) && id.chars().all(|c| c == '-' || c.is_alphanumeric());
    if !id_ok {
        jailer_error(&format!("Invalid instance ID: {id:?}"));
    }
    let exec = std::fs::canonicalize(&a.single["exec-file"]).unwrap_or_else(|e| {
        jailer_error(&format!(
            "Failed to canonicalize path {}: {e}",
            a.single["exec-file"]
        ))
    });
    if !exec.is_file() {
        jailer_error(&format!("{} is not a file", exec.display()));
    }
    let exec_name = exec
        .file_name()
        .expect("a file")
        .to_string_lossy()
        .into_owned();
    let base = a
        .single
        .get("chroot-base-dir")
        .map_or("/srv/jailer", String::as_str);
    let base = std::fs::canonicalize(base)
        .unwrap_or_else(|e| jailer_error(&format!("Failed to canonicalize path {base}: {e}")));
    if !base.is_dir() {
        jailer_error(&format!("{} is not a directory", base.display()));
    }
    let num = |k: &str| -> u32 {
        a.single[k]
            .parse()
            .unwrap_or_else(|_| jailer_error(&format!("Invalid {k}: {}", a.single[k])))
    };
    let (uid, gid) = (Uid::from_raw(num("uid")), Gid::from_raw(num("gid")));
    let version = a.single.get("cgroup-version").map_or("1", String::as_str);
    if !matches!(version, "1" | "2") {
        jailer_error(&format!("{version} is an invalid cgroup version specifier"));
    }
    let parent = PathBuf::from(a.single.get("parent-cgroup").unwrap_or(&exec_name));
    if parent.components().any(|c| {
        matches!(
            c,
            Component::CurDir | Component::ParentDir | Component::RootDir
        )
    }) {
        jailer_error(
            "Parent cgroup path is invalid. Path should not be absolute or contain '..' or '.'",
        );
    }
    let cgroups: Vec<(String, String)> = a
        .multi
        .get("cgroup")
        .into_iter()
        .flatten()
        .map(|cg| match cg.split('=').collect::<Vec<_>>()[..] {
            [file, value] if !value.is_empty() && file.contains('.') => (file.into(), value.into()),
            _ => jailer_error(&format!("Invalid format for cgroups: {cg}")),
        })
        .collect();
    if !cgroups.is_empty() && version != "2" {
        jailer_error("fake-jailer emulates cgroup v2 only; pass --cgroup-version 2");
    }
    if a.single.contains_key("netns") || a.multi.contains_key("resource-limit") {
        jailer_error("fake-jailer does not emulate --netns or --resource-limit");
    }

    let root = base.join(&exec_name).join(id).join("root");
    std::fs::create_dir_all(&root).unwrap_or_else(|e| {
        jailer_error(&format!(
            "Failed to create directory {}: {e}",
            root.display()
        ))
    });
    let inside_exec = root.join(&exec_name);
    std::fs::copy(&exec, &inside_exec)
        .unwrap_or_else(|e| jailer_error(&format!("Failed to copy {}: {e}", exec.display())));

    // cgroups before the chroot, as the jailer does.
    if !cgroups.is_empty() {
        let dir = Path::new("/sys/fs/cgroup").join(&parent).join(id);
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| jailer_error(&format!("Failed to create {}: {e}", dir.display())));
        for (file, value) in &cgroups {
            std::fs::write(dir.join(file), format!("{value}\n"))
                .unwrap_or_else(|e| jailer_error(&format!("Failed to write {file}: {e}")));
        }
        std::fs::write(
            dir.join("cgroup.procs"),
            format!("{}\n", std::process::id()),
        )
        .unwrap_or_else(|e| jailer_error(&format!("Failed to attach to the cgroup: {e}")));
    }

    enter_chroot(&root, uid, gid);
    for d in ["/", "/dev", "/dev/net", "/run"] {
        std::fs::create_dir_all(d).unwrap_or_else(|e| jailer_error(&format!("mkdir {d}: {e}")));
        std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap_or_else(|e| jailer_error(&format!("chmod {d}: {e}")));
        chown(d, Some(uid), Some(gid)).unwrap_or_else(|e| jailer_error(&format!("chown {d}: {e}")));
    }
    for (dev, minor) in [("/dev/net/tun", 200), ("/dev/kvm", 232)] {
        mknod(
            dev,
            SFlag::S_IFCHR,
            Mode::S_IRUSR | Mode::S_IWUSR,
            makedev(10, minor),
        )
        .unwrap_or_else(|e| jailer_error(&format!("Failed to create {dev} via mknod: {e}")));
        chown(dev, Some(uid), Some(gid))
            .unwrap_or_else(|e| jailer_error(&format!("chown {dev}: {e}")));
    }

    let mut cmd = std::process::Command::new(format!("/{exec_name}"));
    cmd.args(["--id", id])
        .args(["--start-time-us", "0", "--start-time-cpu-us", "0"])
        .args(["--parent-cpu-time-us", "0"])
        .args(&a.extra)
        // As root, std also drops the supplementary groups with uid().
        .uid(uid.as_raw())
        .gid(gid.as_raw());
    if !a.flags.iter().any(|f| f == "new-pid-ns") {
        let e = cmd.exec();
        jailer_error(&format!("Failed to exec into Firecracker: {e}"));
    }
    unshare(CloneFlags::CLONE_NEWPID)
        .unwrap_or_else(|e| jailer_error(&format!("unshare(CLONE_NEWPID): {e}")));
    // SAFETY: this process is single-threaded (nothing above spawns a
    // thread), so the child may run any code after fork.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            let e = cmd.exec();
            jailer_error(&format!("Failed to exec into Firecracker: {e}"));
        }
        Ok(ForkResult::Parent { child }) => {
            let pid_file = format!("/{exec_name}.pid");
            let written = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&pid_file)
                .and_then(|mut f| std::io::Write::write_all(&mut f, child.to_string().as_bytes()));
            if let Err(e) = written {
                jailer_error(&format!("Failed to write {pid_file}: {e}"));
            }
        }
        Err(e) => jailer_error(&format!("Failed cloning into a new child process: {e}")),
    }
}

/// A private mount namespace, the fake firecracker's needs bind-mounted
/// in (see the module doc), chroot(2), chdir /.
fn enter_chroot(root: &Path, uid: Uid, gid: Gid) {
    unshare(CloneFlags::CLONE_NEWNS).unwrap_or_else(|e| jailer_error(&format!("unshare: {e}")));
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        None::<&str>,
    )
    .unwrap_or_else(|e| jailer_error(&format!("making / private: {e}")));
    let bind = |host: &Path, writable: bool| {
        let at = root.join(host.strip_prefix("/").expect("absolute"));
        std::fs::create_dir_all(&at).expect("a mount point in the chroot");
        mount(
            Some(host),
            &at,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .unwrap_or_else(|e| jailer_error(&format!("bind {}: {e}", host.display())));
        if !writable {
            let ro = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
            mount(None::<&str>, &at, None::<&str>, ro, None::<&str>)
                .unwrap_or_else(|e| jailer_error(&format!("read-only {}: {e}", host.display())));
        }
    };
    bind(Path::new("/usr"), false);
    for link in ["bin", "lib", "lib64"] {
        if let Ok(target) = std::fs::read_link(Path::new("/").join(link)) {
            let _ = std::os::unix::fs::symlink(target, root.join(link));
        }
    }
    let openapi = banger_testkit::fakefc::openapi::default_path();
    // SAFETY (not unsafe in this edition, but the reason it is sound):
    // single-threaded, nothing reads the environment concurrently.
    std::env::set_var("BANGER_FC_OPENAPI", &openapi);
    if let Some(dir) = openapi.parent() {
        bind(dir, false);
    }
    // The fake's logs: their directory, given to the jailed user so it can
    // write them (test files only).
    for var in ["FAKE_FC_VIOLATIONS", "FAKE_FC_REQUESTS"] {
        if let Some(dir) =
            std::env::var_os(var).and_then(|p| Path::new(&p).parent().map(Path::to_path_buf))
        {
            let _ = chown(&dir, Some(uid), Some(gid));
            for f in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let _ = chown(&f.path(), Some(uid), Some(gid));
            }
            bind(&dir, true);
        }
    }
    nix::unistd::chroot(root).unwrap_or_else(|e| jailer_error(&format!("chroot: {e}")));
    std::env::set_current_dir("/")
        .unwrap_or_else(|e| jailer_error(&format!("Failed to chdir into chroot directory: {e}")));
    // The jailer clears the environment; the fake keeps its own controls.
    for (k, _) in std::env::vars_os() {
        let keep = k
            .to_str()
            .is_some_and(|k| k.starts_with("FAKE_FC_") || k == "BANGER_FC_OPENAPI");
        if !keep {
            std::env::remove_var(k);
        }
    }
}
