//! Signals and waiting for a recorded process to end. The pid and its
//! start time are checked before each signal, so a reused pid is never hit.

use banger_lib::proc::is_alive;
use nix::sys::signal::Signal;
use std::time::{Duration, Instant};

/// Wait until the process is gone or the timeout passes; true if gone.
pub fn wait_gone(pid: u32, start: u64, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        if !is_alive(pid, start) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// Send `sig` if the process is still the recorded one.
pub fn signal(pid: u32, start: u64, sig: Signal) {
    if is_alive(pid, start) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig);
    }
}

/// SIGTERM, wait, SIGKILL, wait. Returns "sigterm", "sigkill", or None
/// when the process outlived SIGKILL.
pub fn terminate(pid: u32, start: u64) -> Option<&'static str> {
    signal(pid, start, Signal::SIGTERM);
    if wait_gone(pid, start, Duration::from_secs(5)) {
        return Some("sigterm");
    }
    signal(pid, start, Signal::SIGKILL);
    wait_gone(pid, start, Duration::from_secs(10)).then_some("sigkill")
}
