//! `start`: QEMU, then the record. Anything that fails on the way ends it
//! and removes what this start made. `restore` is the same start with
//! `-incoming defer`, then the saved state loaded over QMP (suspend.rs).
//!
//! Run as root, QEMU runs as the unprivileged VMM user
//! (`banger_lib::vmmuser`) from the start, never root: it gets its
//! kernel, disks, console log, QMP socket and agent socket as inherited
//! descriptors opened here, its TAP is owned by that user (banger-net),
//! and the only directory it can write is `record::vmm_dir`, its working
//! directory. QEMU runs under its strictest seccomp filter
//! (`argv::SANDBOX`), so it is detached here rather than with -daemonize,
//! whose fork the filter denies.

use crate::argv::{qemu_args, Fds, Plan};
use crate::{accel, binary, qmp::Qmp, record};
use banger_lib::agent::Endpoint;
use banger_lib::error::io;
use banger_lib::proc::{now_rfc3339, start_time};
use banger_lib::records::{FdLine, ProcessLine};
use banger_lib::tun;
use banger_lib::vmmuser::{self, VmmUser};
use banger_lib::vmspec::{record_path, VmSpec, VmmRecord};
use banger_lib::{paths, state, Error, Result};
use std::fs::{File, OpenOptions};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// What a start made so far; dropped while armed, it undoes all of it.
struct Undo {
    id: String,
    qemu: Option<(u32, u64)>,
    files: Vec<PathBuf>,
    dirs: Vec<PathBuf>,
    armed: bool,
}

impl Drop for Undo {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some((pid, start)) = self.qemu {
            banger_lib::proc::terminate(pid, start);
        }
        for f in &self.files {
            record::VMM.remove_file(f);
        }
        record::remove_leftovers(&self.id, None);
        for d in self.dirs.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// Create `dir` and its missing parents; remember the ones made.
fn make_dir(dir: &Path, undo: &mut Undo) -> Result<()> {
    let missing: Vec<PathBuf> = dir
        .ancestors()
        .take_while(|d| !d.exists())
        .map(Path::to_path_buf)
        .collect();
    paths::ensure_dir(dir)?;
    undo.dirs.extend(missing.into_iter().rev());
    Ok(())
}

fn open_log(path: &Path, undo: &mut Undo) -> Result<File> {
    if !path.exists() {
        undo.files.push(path.to_path_buf());
    }
    std::os::unix::fs::OpenOptionsExt::custom_flags(
        OpenOptions::new().create(true).append(true),
        nix::libc::O_NOFOLLOW,
    )
    .open(path)
    .map_err(|e| io(format!("opening {}", path.display()), e))
}

/// The last lines `path` got since byte `from`, for error messages.
fn log_tail(path: &Path, from: u64) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(text.get(from as usize..).unwrap_or_default());
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(8)..].join("\n  ");
    if tail.is_empty() {
        format!("{} has nothing new", path.display())
    } else {
        format!("{}:\n  {tail}", path.display())
    }
}

/// What a child runs as, decided before it is forked.
struct Identity<'a> {
    user: Option<VmmUser>,
    groups: Vec<nix::unistd::Gid>,
    /// Descriptors it inherits, each at the number its command line names
    /// (`argv::Fds::layout`).
    keep: Vec<(i32, BorrowedFd<'a>)>,
}

/// Descriptors handed to a child are first copied this high, out of the
/// way of the numbers they are moved to in the child (3 and up).
const HIGH_FD: i32 = 200;

fn dup_high(fd: BorrowedFd) -> std::io::Result<OwnedFd> {
    let raw = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(HIGH_FD))?;
    // SAFETY: fcntl just returned this new descriptor; nothing else owns it.
    Ok(unsafe { std::os::fd::FromRawFd::from_raw_fd(raw) })
}

/// dup2(from, to), for between fork and exec.
fn move_fd(from: i32, to: i32) -> std::io::Result<()> {
    // SAFETY: dup2 on two plain descriptor numbers touches no memory.
    match unsafe { nix::libc::dup2(from, to) } {
        -1 => Err(std::io::Error::last_os_error()),
        _ => Ok(()),
    }
}

/// Clear `fd`'s close-on-exec flag, for between fork and exec.
fn inherit(fd: i32) -> std::io::Result<()> {
    // SAFETY: fcntl F_SETFD on a descriptor number touches no memory.
    match unsafe { nix::libc::fcntl(fd, nix::libc::F_SETFD, 0) } {
        -1 => Err(std::io::Error::last_os_error()),
        _ => Ok(()),
    }
}

/// A command for `bin` that execs it through a descriptor opened here, so
/// the unprivileged user needs no access to the directories on its path
/// (a program in root's ~/.cargo/bin); argv[0] stays its path. The
/// descriptor is inherited (a script's interpreter reopens it) and must
/// outlive the spawn; it sits above the handed-over numbers.
fn program(bin: &Path) -> Result<(Command, OwnedFd)> {
    let f = File::open(bin).map_err(|e| io(format!("opening {}", bin.display()), e))?;
    let f = dup_high(f.as_fd()).map_err(|e| io(format!("duplicating {}", bin.display()), e))?;
    let mut cmd = Command::new(format!("/proc/self/fd/{}", f.as_raw_fd()));
    cmd.arg0(bin);
    Ok((cmd, f))
}

/// Spawn `cmd` (from `program`, whose file is `exe`) detached, in its own
/// session, as `who`, in `cwd`, with `who.keep` at their numbers.
fn spawn_as(
    cmd: &mut Command,
    exe: &OwnedFd,
    who: &Identity,
    cwd: &Path,
) -> std::io::Result<std::process::Child> {
    // std changes directory (as root, so any path works) before the
    // pre_exec closure drops privileges.
    cmd.current_dir(cwd);
    let (user, groups) = (who.user.clone(), who.groups.clone());
    let mut high = Vec::new();
    for (target, fd) in &who.keep {
        high.push((*target, dup_high(*fd)?));
    }
    let moves: Vec<(i32, i32)> = high.iter().map(|(t, h)| (*t, h.as_raw_fd())).collect();
    let exe = exe.as_raw_fd();
    let setup = move || -> std::io::Result<()> {
        // dup2's copy is inherited (no close-on-exec); the high copies
        // close at exec.
        for (target, from) in &moves {
            move_fd(*from, *target)?;
        }
        inherit(exe)?;
        nix::unistd::setsid()?;
        if let Some(u) = &user {
            vmmuser::become_user(u, &groups)?;
        }
        Ok(())
    };
    // SAFETY: the closure runs between fork and exec, where only
    // async-signal-safe calls are sound: dup2, fcntl, setsid, setgroups,
    // setresgid and setresuid are syscalls, and nothing is allocated (the
    // lists were built before the fork).
    unsafe {
        cmd.pre_exec(setup);
    }
    let child = cmd.spawn();
    drop(high);
    child
}

/// The supplementary groups QEMU runs with: under KVM the group of
/// /dev/kvm (usually root:kvm 0660), which the unprivileged user needs.
fn kvm_groups(accel: &str, user: Option<&VmmUser>) -> Result<Vec<nix::unistd::Gid>> {
    let (Some(u), "kvm") = (user, accel) else {
        return Ok(Vec::new());
    };
    let m = std::fs::metadata("/dev/kvm").map_err(|e| io("stat /dev/kvm", e))?;
    if m.mode() & 0o006 == 0o006 || m.gid() != 0 && m.mode() & 0o060 == 0o060 {
        return Ok(vec![nix::unistd::Gid::from_raw(m.gid())]);
    }
    Err(Error::prereq(format!(
        "/dev/kvm (mode {:o}, group {}) cannot be opened by the VMM user {}",
        m.mode() & 0o777,
        m.gid(),
        u.name
    ))
    .with_hint("give it to the kvm group, as udev does on Debian: chgrp kvm /dev/kvm && chmod 660 /dev/kvm"))
}

fn open_read(what: &str, p: &Path, user: Option<&VmmUser>) -> Result<File> {
    let f = File::open(p).map_err(|e| io(format!("opening {what} {}", p.display()), e))?;
    // QEMU reads the kernel and initrd through /proc/self/fd, which checks
    // the file's own permissions (not its directories').
    if let Some(u) = user {
        let m = f
            .metadata()
            .map_err(|e| io(format!("stat {}", p.display()), e))?;
        let readable = m.mode() & 0o004 != 0
            || m.uid() == u.uid.as_raw() && m.mode() & 0o400 != 0
            || m.gid() == u.gid.as_raw() && m.mode() & 0o040 != 0;
        if !readable {
            return Err(Error::prereq(format!(
                "{what} {} is not readable by the VMM user {}",
                p.display(),
                u.name
            ))
            .with_hint(format!("make it readable: chmod o+r {}", p.display())));
        }
    }
    Ok(f)
}

/// What a start decides from the spec before it opens or runs anything;
/// `start --print-argv` prints the processes it makes of it.
struct Prepared {
    spec: VmSpec,
    user: Option<VmmUser>,
    agent_socket: PathBuf,
    qemu_bin: PathBuf,
    accel: &'static str,
    cmdline: String,
}

fn prepare(text: &str) -> Result<Prepared> {
    let mut spec = VmSpec::parse(text)?;
    spec.resolve("qmp.sock");
    spec.validate()?;
    let user = vmmuser::for_children()?;
    let agent_socket = record::agent_socket(&spec.id);
    paths::check_socket_path(&agent_socket)?;
    let qemu_bin = binary::qemu()?;
    let accel = accel::detect();
    let mut cmdline = spec.cmdline_with_root();
    if accel == "tcg" {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        for extra in accel::tcg_cmdline_extras(&cmdline, &cpuinfo) {
            cmdline.push(' ');
            cmdline.push_str(&extra);
        }
        cmdline = cmdline.trim().to_string();
    }
    Ok(Prepared {
        spec,
        user,
        agent_socket,
        qemu_bin,
        accel,
        cmdline,
    })
}

/// What each descriptor of `Fds::layout` is, for `--print-argv`.
fn fd_lines(spec: &VmSpec, fds: &Fds, agent_socket: &Path) -> Vec<FdLine> {
    let line = |fd: i32, open: &str, path: &Path| FdLine {
        fd,
        open: open.into(),
        path: path.to_path_buf(),
    };
    let mut out = vec![line(fds.kernel, "read", &spec.kernel)];
    out.extend(
        fds.initrd
            .zip(spec.initrd.as_ref())
            .map(|(fd, p)| line(fd, "read", p)),
    );
    out.push(line(
        fds.console,
        "write",
        &banger_lib::console::fifo_path(&spec.id),
    ));
    out.push(line(
        fds.qmp,
        "listen",
        spec.api_socket.as_ref().expect("resolved"),
    ));
    out.extend(
        fds.tap
            .zip(spec.tap.as_ref())
            .map(|(fd, t)| line(fd, "tap", Path::new(t))),
    );
    for (d, f) in spec.drives.iter().zip(&fds.drives) {
        let mode = if d.read_only { "read" } else { "read-write" };
        out.push(line(f.fd, mode, &d.path));
        out.extend(f.ro.map(|fd| line(fd, "read", &d.path)));
        out.extend(
            f.backing
                .zip(d.backing.as_ref())
                .map(|(fd, b)| line(fd, "read", b)),
        );
    }
    out.push(line(fds.agent, "listen", agent_socket));
    out
}

/// `start --print-argv`: the processes `start` would run for this spec, in
/// order, with their exact arguments, working directory, user and the
/// descriptors they inherit. Nothing is opened, made or started.
pub fn print_argv(text: &str) -> Result<Vec<ProcessLine>> {
    let p = prepare(text)?;
    let cwd = record::vmm_dir(&p.spec.id);
    let user = p.user.as_ref().map(|u| u.name.clone());
    let mut out = Vec::new();
    let fds = Fds::layout(&p.spec);
    let fd_lines = fd_lines(&p.spec, &fds, &p.agent_socket);
    let plan = Plan {
        spec: &p.spec,
        accel: p.accel,
        cmdline: p.cmdline.clone(),
        incoming: false,
        fds,
    };
    out.push(ProcessLine {
        process: "qemu".into(),
        program: p.qemu_bin.clone(),
        args: qemu_args(&plan)
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        cwd,
        user,
        groups: kvm_groups(p.accel, p.user.as_ref())?
            .iter()
            .map(|g| g.as_raw())
            .collect(),
        fds: fd_lines,
    });
    Ok(out)
}

pub fn start(text: &str) -> Result<VmmRecord> {
    launch(text, None)
}

/// Start QEMU for the spec and, with `state`, restore the VM saved there
/// (by `suspend`) instead of booting it.
pub fn launch(text: &str, state_file: Option<&Path>) -> Result<VmmRecord> {
    let Prepared {
        spec,
        user,
        agent_socket,
        qemu_bin,
        accel,
        cmdline,
    } = prepare(text)?;
    let id = spec.id.clone();
    // The saved state, opened before anything is made: a missing one is
    // a clear error that leaves nothing behind.
    let saved = match state_file {
        Some(p) => Some(crate::suspend::open_state(p)?),
        None => None,
    };
    // What QEMU reads, opened now: a file it could not read fails here.
    let kernel = open_read("kernel", &spec.kernel, user.as_ref())?;
    let initrd = match &spec.initrd {
        Some(p) => Some(open_read("initrd", p, user.as_ref())?),
        None => None,
    };
    // Per drive: its file in its mode, a read-only twin of a writable one,
    // and a qcow2 overlay's backing file (read-only).
    let mut drives: Vec<(File, Option<File>, Option<File>)> = Vec::new();
    for d in &spec.drives {
        let open = |write: bool| {
            OpenOptions::new()
                .read(true)
                .write(write)
                .open(&d.path)
                .map_err(|e| io(format!("opening drive {} {}", d.id, d.path.display()), e))
        };
        let (f, ro) = match d.read_only {
            true => (open(false)?, None),
            false => (open(true)?, Some(open(false)?)),
        };
        let backing = match &d.backing {
            Some(b) => Some(File::open(b).map_err(|e| {
                io(
                    format!("opening drive {}'s backing file {}", d.id, b.display()),
                    e,
                )
            })?),
            None => None,
        };
        drives.push((f, ro, backing));
    }
    let groups = kvm_groups(accel, user.as_ref())?;

    let _lock = record::VMM.lock(&id)?;
    if let Some(old) = record::VMM.load(&id)? {
        if old.is_alive() {
            return Err(record::VMM.already_running(&id, old.pid));
        }
        // A crashed VM: an older banger-qemu's vsock helper may still
        // run, and its sockets remain.
        record::end_helper(&old)?;
        record::remove_leftovers(&id, Some(&old));
    }

    let mut undo = Undo {
        id: id.clone(),
        qemu: None,
        files: Vec::new(),
        dirs: Vec::new(),
        armed: true,
    };
    let vmm_log = spec.vmm_log.clone().expect("resolved");
    let console_log = spec.console_log.clone().expect("resolved");
    let qmp_socket = spec.api_socket.clone().expect("resolved");
    let vmm_dir = record::vmm_dir(&id);
    for p in [&vmm_log, &console_log, &qmp_socket, &agent_socket] {
        if let Some(parent) = p.parent() {
            make_dir(parent, &mut undo)?;
        }
    }
    // A stale one (a crash) may hold anything its owner put there.
    let _ = std::fs::remove_dir_all(&vmm_dir);
    make_dir(&vmm_dir, &mut undo)?;
    if let Some(u) = &user {
        nix::unistd::chown(&vmm_dir, Some(u.uid), Some(u.gid))
            .map_err(|e| Error::failed(format!("chown {}: {e}", vmm_dir.display())))?;
    }
    let log = open_log(&vmm_log, &mut undo)?;
    // QEMU writes the console into a FIFO that a logger copies into
    // console.log under the cap (banger_lib::console); QEMU gets the
    // FIFO's write end, never the log file.
    if !console_log.exists() {
        undo.files.push(console_log.clone());
    }
    let fifo = banger_lib::console::fifo_path(&id);
    let console_logger = banger_lib::console::Logger::start(
        &fifo,
        &console_log,
        banger_lib::console::max_bytes(),
        log.try_clone().ok(),
    )?;
    let console = std::os::unix::fs::OpenOptionsExt::custom_flags(
        OpenOptions::new().write(true),
        nix::libc::O_NOFOLLOW,
    )
    .open(&fifo)
    .map_err(|e| io(format!("opening {}", fifo.display()), e))?;
    let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
    let fail = |what: &str| Error::failed(format!("{what}; {}", log_tail(&vmm_log, log_start)));

    // Stale sockets from a crash would make the new processes fail to
    // bind; the new ones go when this start fails.
    for p in [&qmp_socket, &agent_socket] {
        record::VMM.remove_file(p);
        undo.files.push(p.clone());
    }
    // QEMU gets its TAP attached, so it needs no access to /dev/net/tun.
    let tap = match &spec.tap {
        Some(name) => Some(banger_lib::tun::attach(
            name,
            tun::IFF_TAP | tun::IFF_NO_PI | tun::IFF_VNET_HDR,
        )?),
        None => None,
    };
    let qmp_listener = UnixListener::bind(&qmp_socket)
        .map_err(|e| io(format!("binding {}", qmp_socket.display()), e))?;

    // The agent's serial port: QEMU gets the bound socket, like QMP's.
    let agent_listener = UnixListener::bind(&agent_socket)
        .map_err(|e| io(format!("binding {}", agent_socket.display()), e))?;

    // Each descriptor goes to its number in the layout the command line
    // names; `start --print-argv` prints the same.
    let fds = Fds::layout(&spec);
    let mut keep = vec![
        (fds.kernel, kernel.as_fd()),
        (fds.console, console.as_fd()),
        (fds.qmp, qmp_listener.as_fd()),
        (fds.agent, agent_listener.as_fd()),
    ];
    keep.extend(fds.initrd.zip(initrd.as_ref().map(|f| f.as_fd())));
    keep.extend(fds.tap.zip(tap.as_ref().map(|f| f.as_fd())));
    for (n, (f, ro, backing)) in fds.drives.iter().zip(&drives) {
        keep.push((n.fd, f.as_fd()));
        keep.extend(n.ro.zip(ro.as_ref().map(|r| r.as_fd())));
        keep.extend(n.backing.zip(backing.as_ref().map(|b| b.as_fd())));
    }
    let plan = Plan {
        spec: &spec,
        accel,
        cmdline,
        incoming: saved.is_some(),
        fds,
    };
    let (mut cmd, exe) = program(&qemu_bin)?;
    cmd.args(qemu_args(&plan))
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| io("duplicating the log", e))?)
        .stderr(log.try_clone().map_err(|e| io("duplicating the log", e))?);
    let who = Identity {
        user: user.clone(),
        groups,
        keep,
    };
    let child = spawn_as(&mut cmd, &exe, &who, &vmm_dir)
        .map_err(|e| spawn_error(&qemu_bin, user.as_ref(), e))?;
    drop(who);
    // QEMU holds its own copies now; with ours closed, its exit resets a
    // QMP connection still waiting for the greeting.
    let handed: Vec<OwnedFd> = [kernel, console]
        .into_iter()
        .chain(initrd)
        .chain(tap)
        .chain(
            drives
                .into_iter()
                .flat_map(|(f, ro, b)| std::iter::once(f).chain(ro).chain(b)),
        )
        .map(OwnedFd::from)
        .chain([OwnedFd::from(qmp_listener), OwnedFd::from(agent_listener)])
        .collect();
    drop(handed);
    let pid = child.id();
    let pst = start_time(pid).ok_or_else(|| fail("qemu exited right after starting"))?;
    undo.qemu = Some((pid, pst));

    // The greeting comes once QEMU has set the VM up.
    // Its version from QMP too: `qemu --version` would cost a second
    // QEMU start-up on every VM start.
    let (mut q, vmm_version) = Qmp::connect(&qmp_socket, READY_TIMEOUT)
        .and_then(|mut q| {
            let v = q.version()?;
            Ok((q, v))
        })
        // A QEMU that is exiting has closed the socket (the reset) a moment
        // before it is gone: give it that moment before telling which.
        .map_err(
            |e| match banger_lib::proc::wait_gone(pid, pst, Duration::from_secs(1)) {
                false => fail(&format!("qemu does not answer QMP: {}", e.message)),
                true => fail("qemu failed to start"),
            },
        )?;
    let state = match &saved {
        Some(file) => crate::suspend::load_state(&mut q, file).map_err(|e| Error {
            message: format!(
                "restoring {}: {}; {}",
                state_file.expect("restoring").display(),
                e.message,
                log_tail(&vmm_log, log_start)
            ),
            ..e
        })?,
        None => q.run_state().map_err(|e| fail(&e.message))?,
    };
    drop(q);
    if state != "running" {
        return Err(fail(&format!("qemu is {state}, not running")));
    }

    let rec = VmmRecord {
        schema: state::SCHEMA,
        id: id.clone(),
        vmm: "qemu".into(),
        accel: accel.into(),
        pid,
        pid_start_time: pst,
        api_socket: None,
        jail: None,
        qmp_socket: Some(qmp_socket),
        vsock_uds: None,
        agent: Some(Endpoint::Serial { uds: agent_socket }),
        helper_pid: None,
        helper_pid_start_time: None,
        vmm_version,
        started_at: now_rfc3339(),
        vmm_log,
        console_log,
    };
    // `snapshot create` copies drives by the ids the spec gave them.
    let spec_text = serde_json::to_vec_pretty(&spec).expect("a spec serializes");
    std::fs::write(record::spec_path(&id), spec_text)
        .map_err(|e| io("writing the VM's spec", e))?;
    state::store(&record_path(&id), &rec)?;
    undo.armed = false;
    console_logger.watch(pid, pst);
    Ok(rec)
}

fn spawn_error(bin: &Path, user: Option<&VmmUser>, e: std::io::Error) -> Error {
    let err = io(format!("starting {}", bin.display()), e);
    match (err.io_kind(), user) {
        (Some(std::io::ErrorKind::PermissionDenied), Some(u)) => err.with_hint(format!(
            "it runs as the VMM user {}: the program and its directories must be executable by that user",
            u.name
        )),
        _ => err,
    }
}
