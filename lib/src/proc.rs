//! Process identity: a pid plus its start time, so a recorded VMM process is
//! never confused with an unrelated process that reused its pid.

use nix::sys::prctl::set_pdeathsig;
pub use nix::sys::signal::Signal;
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet};
use nix::unistd::{sysconf, Pid, SysconfVar};
use std::path::Path;

/// The start time of `pid` in clock ticks since boot (field 22 of
/// /proc/PID/stat), or None when there is no such process.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: parse
    // from the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    // rest starts at field 3 (state); field 22 is index 19 here.
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether `pid` is the process that was recorded with `start`. A zombie
/// counts as gone.
pub fn is_alive(pid: u32, start: u64) -> bool {
    if pid == 0 {
        return false;
    }
    if state(pid) == Some('Z') {
        return false;
    }
    start_time(pid) == Some(start)
}

/// Wait until the recorded process is gone or `timeout` passes; true if
/// gone.
pub fn wait_gone(pid: u32, start: u64, timeout: std::time::Duration) -> bool {
    crate::wait::poll(timeout, || (!is_alive(pid, start)).then_some(())).is_some()
}

/// Send `sig` if the process is still the recorded one, so a reused pid is
/// never hit.
pub fn signal(pid: u32, start: u64, sig: Signal) {
    if is_alive(pid, start) {
        let _ = kill(pid, sig);
    }
}

/// kill(2) to the one process `pid`. A pid that does not fit a positive
/// `pid_t` is refused rather than wrapped, since 0 and negative pids mean
/// process groups, and -1 every process we may signal.
pub fn kill(pid: u32, sig: Signal) -> std::io::Result<()> {
    let pid = i32::try_from(pid)
        .ok()
        .filter(|p| *p > 0)
        .ok_or(std::io::ErrorKind::InvalidInput)?;
    Ok(nix::sys::signal::kill(Pid::from_raw(pid), sig)?)
}

/// SIGTERM, wait 5 s, SIGKILL, wait 10 s. Returns "sigterm", "sigkill", or
/// None when the process outlived SIGKILL.
pub fn terminate(pid: u32, start: u64) -> Option<&'static str> {
    use std::time::Duration;
    signal(pid, start, Signal::SIGTERM);
    if wait_gone(pid, start, Duration::from_secs(5)) {
        return Some("sigterm");
    }
    signal(pid, start, Signal::SIGKILL);
    wait_gone(pid, start, Duration::from_secs(10)).then_some("sigkill")
}

/// For a process being detached (in `pre_exec`, between fork and exec):
/// mark every descriptor from 3 up close-on-exec, so the daemon keeps
/// nothing its caller inherited (a script's lock fd, a CI runner's pipe
/// that someone waits to see closed). Async-signal-safe: only syscalls.
pub fn cloexec_inherited() -> std::io::Result<()> {
    use libc::{c_int, c_uint};
    // SAFETY: close_range(2) with CLOSE_RANGE_CLOEXEC only sets flags on
    // our own descriptor table and reads or writes no memory of ours. Raw
    // libc because neither nix nor rustix wraps close_range.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3 as c_uint,
            c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if r == 0 {
        return Ok(());
    }
    // Kernels before 5.11: one descriptor at a time, up to the limit.
    let max = sysconf(SysconfVar::OPEN_MAX)
        .ok()
        .flatten()
        .unwrap_or(1024)
        .clamp(1024, 1 << 16) as c_int;
    for fd in 3..max {
        // SAFETY: F_GETFD on a descriptor number reads only the kernel's
        // flags for it, and fails with EBADF when it is not open. Raw libc
        // because nix's fcntl takes a BorrowedFd, which may only be made
        // for a descriptor known to be open, and here most are not.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        if flags >= 0 {
            // SAFETY: as above; F_SETFD changes only that descriptor's
            // close-on-exec flag.
            unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) };
        }
    }
    Ok(())
}

/// Die with the parent: the kernel sends SIGKILL to this process when the
/// thread that started it exits. For helpers that only serve one command
/// (`banger-health wait`, `banger-ssh wait`): a killed `banger vm create`
/// must not leave them polling. Checked after arming, since the parent may
/// already have gone between our start and the arming (then we were
/// handed to init or a subreaper and exit at once).
pub fn die_with_parent() {
    let parent = std::os::unix::process::parent_id();
    // Only an invalid signal makes it fail.
    let _ = set_pdeathsig(Signal::SIGKILL);
    if std::os::unix::process::parent_id() != parent {
        std::process::exit(1);
    }
}

/// In a child between fork and exec (`pre_exec`): the same, for a process
/// this one starts. Async-signal-safe.
pub fn pre_exec_die_with_parent() -> std::io::Result<()> {
    Ok(set_pdeathsig(Signal::SIGKILL)?)
}

/// SIGINT and SIGQUIT ignored while a child owns the terminal (an ssh
/// session): the terminal's ^C and ^\ are the child's, and this
/// process only waits for it. Dropping it puts back the actions there were.
pub struct InterruptsIgnored {
    old: [Option<SigAction>; 2],
}

const INTERRUPTS: [Signal; 2] = [Signal::SIGINT, Signal::SIGQUIT];

impl InterruptsIgnored {
    pub fn new() -> Self {
        InterruptsIgnored {
            old: INTERRUPTS.map(|sig| set_action(sig, SigHandler::SigIgn).ok()),
        }
    }
}

impl Default for InterruptsIgnored {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for InterruptsIgnored {
    fn drop(&mut self) {
        for (sig, old) in INTERRUPTS.iter().zip(&self.old) {
            if let Some(old) = old {
                // SAFETY: this puts back the very action sigaction(2)
                // returned for this signal, so only a handler that was
                // installed (and could run) before can run again.
                let _ = unsafe { sigaction(*sig, old) };
            }
        }
    }
}

/// In a child between fork and exec (`pre_exec`): SIGINT and SIGQUIT back
/// to their default actions, which the program would otherwise inherit
/// ignored from `InterruptsIgnored`. Async-signal-safe.
pub fn pre_exec_default_interrupts() -> std::io::Result<()> {
    for sig in INTERRUPTS {
        set_action(sig, SigHandler::SigDfl)?;
    }
    Ok(())
}

/// Ignore `sig` from now on (a test stand-in that must outlive SIGTERM).
pub fn ignore_signal(sig: Signal) -> std::io::Result<()> {
    set_action(sig, SigHandler::SigIgn).map(drop)
}

/// Give `sig` its default action back. Async-signal-safe.
pub fn default_signal(sig: Signal) -> std::io::Result<()> {
    set_action(sig, SigHandler::SigDfl).map(drop)
}

/// Set `sig` to SIG_IGN or SIG_DFL; returns the action it had. Private so
/// that no caller can pass a handler of its own.
fn set_action(sig: Signal, how: SigHandler) -> std::io::Result<SigAction> {
    debug_assert!(matches!(how, SigHandler::SigIgn | SigHandler::SigDfl));
    let action = SigAction::new(how, SaFlags::empty(), SigSet::empty());
    // SAFETY: SIG_IGN and SIG_DFL run no code of ours when the signal
    // comes, so nothing of ours runs in signal context; the old action is
    // only handed back to sigaction (see `InterruptsIgnored::drop`), never
    // called. sigaction(2) is async-signal-safe and nix allocates nothing
    // here, so this may also run between fork and exec.
    Ok(unsafe { sigaction(sig, &action) }?)
}

/// Seconds since `pid` started, from /proc.
pub fn uptime_s(pid: u32) -> Option<u64> {
    let start_ticks = start_time(pid)?;
    let up = std::fs::read_to_string("/proc/uptime").ok()?;
    let up: f64 = up.split_whitespace().next()?.parse().ok()?;
    // USER_HZ: 100 on every Linux we run on.
    let hz = sysconf(SysconfVar::CLK_TCK).ok().flatten().unwrap_or(100);
    let hz = hz.max(1) as f64;
    Some((up - start_ticks as f64 / hz).max(0.0) as u64)
}

/// The one-letter state of a process (R, S, D, Z, T...).
pub fn state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..].chars().next()
}

/// The executable name of a process (`comm`).
pub fn comm(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim().to_string())
}

/// Read a pid file: a decimal pid, whitespace allowed.
pub fn read_pid_file(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Seconds since the Unix epoch.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// An RFC 3339 UTC timestamp for records, to the second
/// (`2026-11-28T12:00:00Z`).
pub fn rfc3339(unix: u64) -> String {
    let max = jiff::Timestamp::MAX.as_second();
    let secs = i64::try_from(unix).unwrap_or(max).min(max);
    jiff::Timestamp::from_second(secs)
        .expect("clamped into jiff's range")
        .to_string()
}

/// Seconds since the epoch of an RFC 3339 timestamp (what `rfc3339`
/// writes; fractional seconds and offsets allowed), None for anything
/// else or a time before 1970.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let t: jiff::Timestamp = s.parse().ok()?;
    u64::try_from(t.as_second()).ok()
}

/// The current time as RFC 3339.
pub fn now_rfc3339() -> String {
    rfc3339(now_unix())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive() {
        let me = std::process::id();
        let st = start_time(me).unwrap();
        assert!(is_alive(me, st));
        assert!(
            !is_alive(me, st + 1),
            "a different start time is another process"
        );
        assert!(!is_alive(0, 0));
    }

    #[test]
    fn dead_child_is_not_alive() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let st = start_time(pid);
        child.wait().unwrap();
        if let Some(st) = st {
            assert!(!is_alive(pid, st));
        }
    }

    #[test]
    fn terminate_ends_a_child_and_spares_a_reused_pid() {
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let pid = child.id();
        let st = start_time(pid).unwrap();
        // A wrong start time stands for another process on the same pid.
        signal(pid, st + 1, Signal::SIGKILL);
        assert!(is_alive(pid, st));
        assert!(!wait_gone(pid, st, std::time::Duration::ZERO));
        // The zombie counts as gone, so terminate returns before the reap.
        assert_eq!(terminate(pid, st), Some("sigterm"));
        child.wait().unwrap();
        assert_eq!(terminate(pid, st), Some("sigterm"), "gone stays gone");
    }

    #[test]
    fn kill_refuses_pids_that_mean_groups() {
        // 0 is our own group; past i32::MAX a pid_t turns negative: a
        // group, or with -1 every process we may signal.
        for pid in [0, 1 << 31, u32::MAX] {
            let e = kill(pid, Signal::SIGKILL).unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{pid}");
        }
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        kill(child.id(), Signal::SIGKILL).unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(child.wait().unwrap().signal(), Some(9));
    }

    /// SIGINT and SIGQUIT in a SigIgn mask of /proc/PID/status.
    fn interrupts_ignored(status: &str) -> [bool; 2] {
        let mask = status
            .lines()
            .find_map(|l| l.strip_prefix("SigIgn:"))
            .map(|m| u64::from_str_radix(m.trim(), 16).unwrap())
            .unwrap();
        INTERRUPTS.map(|sig| mask & (1 << (sig as i32 - 1)) != 0)
    }

    fn status_of(cmd: &mut std::process::Command) -> String {
        let out = cmd.args(["SigIgn", "/proc/self/status"]).output().unwrap();
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn interrupts_ignored_while_held_and_default_for_a_child_that_asks() {
        use std::os::unix::process::CommandExt;
        let own = || std::fs::read_to_string("/proc/self/status").unwrap();
        // Whatever the runner gave us (a background job has them ignored).
        let before = interrupts_ignored(&own());
        let held = InterruptsIgnored::new();
        assert_eq!(interrupts_ignored(&own()), [true, true]);
        // A child inherits the ignoring, unless it resets it before exec.
        let inherits = status_of(&mut std::process::Command::new("grep"));
        assert_eq!(interrupts_ignored(&inherits), [true, true]);
        let mut cmd = std::process::Command::new("grep");
        // SAFETY: the closure only calls sigaction(2), which is
        // async-signal-safe and allocates nothing.
        unsafe {
            cmd.pre_exec(pre_exec_default_interrupts);
        }
        assert_eq!(interrupts_ignored(&status_of(&mut cmd)), [false, false]);
        drop(held);
        assert_eq!(interrupts_ignored(&own()), before, "put back on drop");
    }

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_869_138), "2026-11-28T12:32:18Z");
        // Past jiff's range (year 9999) it clamps rather than panics.
        assert!(rfc3339(u64::MAX).starts_with("9999-12-"));
        let now = now_rfc3339();
        assert_eq!(now.len(), "2026-11-28T12:32:18Z".len(), "{now}");
        assert!(now.ends_with('Z'), "{now}");
    }

    #[test]
    fn rfc3339_parses_what_it_writes() {
        for t in [0, 951_782_400, 1_795_869_138] {
            assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t));
        }
        assert_eq!(
            parse_rfc3339("2026-11-28T12:32:18.123+01:00"),
            Some(1_795_869_138 - 3600)
        );
        for bad in [
            "",
            "yesterday",
            "2026-13-01T00:00:00Z",
            "2026-01-01 00:00:00",
            "1969-12-31T23:59:59Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
