//! Ctrl-C (and SIGTERM, SIGHUP) during create or start: note it, so the
//! command stops at the next step and undoes what it made, instead of dying
//! with a TAP, a lease or a VMM process left behind.

use banger_lib::Error;
use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    REQUESTED.store(true, Ordering::SeqCst);
}

/// Catch SIGINT, SIGTERM and SIGHUP from now on.
pub fn install() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        unsafe {
            libc::signal(sig, on_signal as *const () as libc::sighandler_t);
        }
    }
}

pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

pub fn error() -> Error {
    Error::failed("interrupted")
}

/// Fail when an interrupt arrived since the last check.
pub fn check() -> banger_lib::Result<()> {
    if requested() {
        Err(error())
    } else {
        Ok(())
    }
}
