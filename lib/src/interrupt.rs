//! Ctrl-C (and SIGTERM, SIGHUP) during a command that makes things: note
//! it, so the command stops at its next step and undoes what it made,
//! instead of dying with a TAP, a lease or a half-built image behind it.
//! One flag per process, set by signal-hook's handler.

use crate::Error;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();

fn flag() -> &'static Arc<AtomicBool> {
    FLAG.get_or_init(|| Arc::new(AtomicBool::new(false)))
}

/// Catch SIGINT, SIGTERM and SIGHUP from now on (idempotent).
pub fn install() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        for sig in [
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGHUP,
        ] {
            // Only fails for signals that cannot be caught; these can.
            let _ = signal_hook::flag::register(sig, flag().clone());
        }
    });
}

/// Whether an interrupt arrived.
pub fn requested() -> bool {
    flag().load(Ordering::SeqCst)
}

/// The cause of an interrupt error, so it is told apart by type.
#[derive(Debug)]
pub struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted")
    }
}

impl std::error::Error for Interrupted {}

pub fn error() -> Error {
    Error::failed("interrupted").with_cause(Interrupted)
}

/// Whether `e` is (or was reworded from) an interrupt.
pub fn is_interrupt(e: &Error) -> bool {
    e.cause
        .as_deref()
        .is_some_and(|c| c.downcast_ref::<Interrupted>().is_some())
}

/// Fail when an interrupt arrived.
pub fn check() -> crate::Result<()> {
    if requested() {
        Err(error())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interrupt_is_told_by_its_cause() {
        assert!(is_interrupt(&error()));
        assert!(is_interrupt(
            &error().reword("create x failed: interrupted")
        ));
        assert!(!is_interrupt(&Error::failed("interrupted")));
    }
}
