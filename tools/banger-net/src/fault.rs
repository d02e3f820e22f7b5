//! Test-only fault injection. Built with the `fault-injection` feature,
//! `BANGER_NET_FAULT=N` kills this process with SIGKILL at the Nth point
//! it passes, each right after a change to the kernel (a link, an nft
//! transaction, a sysctl) or to net.json; the tests walk N = 1, 2, ... to
//! kill a command after each of its changes in turn. Without the feature
//! `point` is nothing and no variable is read.

#[cfg(feature = "fault-injection")]
pub fn point(name: &str) {
    use std::sync::atomic::{AtomicU32, Ordering};
    static PASSED: AtomicU32 = AtomicU32::new(0);
    let Some(at) = std::env::var("BANGER_NET_FAULT")
        .ok()
        .and_then(|s| s.parse::<u32>().ok())
    else {
        return;
    };
    let n = PASSED.fetch_add(1, Ordering::SeqCst) + 1;
    if n == at {
        eprintln!("banger-net: fault injection: killed after {name} (point {n})");
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn point(_name: &str) {}
