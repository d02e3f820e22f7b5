//! What `POST /sync`, `/shutdown` and `/reboot` do to the guest: sync(2)
//! and a signal to init (and, for `/init` and `/identity`, scripts, the
//! clock and the entropy pool). The effects sit behind `System` so unit tests can
//! watch them instead of signalling pid 1; which signal to send is a pure
//! function of the request and the init system.

use libc::c_int;
use std::io;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Power {
    Poweroff,
    Reboot,
}

impl Power {
    /// The word the reply carries as `action`.
    pub fn name(self) -> &'static str {
        match self {
            Power::Poweroff => "poweroff",
            Power::Reboot => "reboot",
        }
    }
}

/// systemd(1): SIGRTMIN+4 powers off, SIGRTMIN+5 reboots, like `systemctl
/// poweroff|reboot` but without D-Bus or logind. systemd is built against
/// glibc, whose SIGRTMIN is 34 (two real-time signals are NPTL's), so these
/// are the numbers pid 1 listens on whatever libc the agent was built with.
pub const SYSTEMD_POWEROFF: c_int = 38;
pub const SYSTEMD_REBOOT: c_int = 39;

/// The signal that asks init to do `p`: systemd's numbers, or busybox
/// init's (SIGUSR2 powers off, SIGTERM reboots) in the initramfs-only
/// guest of rootfs/make-kernel.sh.
pub fn init_signal(p: Power, systemd: bool) -> c_int {
    match (p, systemd) {
        (Power::Poweroff, true) => SYSTEMD_POWEROFF,
        (Power::Reboot, true) => SYSTEMD_REBOOT,
        (Power::Poweroff, false) => libc::SIGUSR2,
        (Power::Reboot, false) => libc::SIGTERM,
    }
}

/// The guest's side effects.
pub trait System: Sync {
    /// Flush every filesystem's dirty data to its disk.
    fn sync(&self);
    /// Whether systemd is pid 1 (sd_booted(3): /run/systemd/system exists).
    fn under_systemd(&self) -> bool;
    /// kill(1, sig); signal 0 only checks that we may.
    fn signal_init(&self, sig: c_int) -> io::Result<()>;
    /// Run a first-boot script (init.rs) to its end.
    fn run_init(&self, r: &crate::init::InitRequest) -> io::Result<crate::init::Ran>;
    /// Set the wall clock to `unix_ns` (identity.rs).
    fn set_clock(&self, unix_ns: u64) -> io::Result<()>;
    /// Mix `bytes` into the kernel's entropy pool, credited (identity.rs).
    fn add_entropy(&self, bytes: &[u8]) -> io::Result<()>;
}

/// The real guest.
pub struct Real;

impl System for Real {
    fn sync(&self) {
        nix::unistd::sync();
    }

    fn under_systemd(&self) -> bool {
        std::path::Path::new("/run/systemd/system").is_dir()
    }

    fn run_init(&self, r: &crate::init::InitRequest) -> io::Result<crate::init::Ran> {
        let c = crate::init::command(r, crate::init::host_mount_ns());
        crate::init::run(c, r.script.as_bytes())
    }

    fn set_clock(&self, unix_ns: u64) -> io::Result<()> {
        crate::identity::set_clock(unix_ns)
    }

    fn add_entropy(&self, bytes: &[u8]) -> io::Result<()> {
        crate::identity::add_entropy(bytes)
    }

    fn signal_init(&self, sig: c_int) -> io::Result<()> {
        // SAFETY: kill(2) takes only integers and reads or writes no memory
        // of ours. Raw libc because systemd's signals are real-time ones,
        // numbered for glibc, which neither nix's Signal nor rustix's safe
        // constructors can name.
        if unsafe { libc::kill(1, sig) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemd_gets_its_real_time_signals() {
        assert_eq!(init_signal(Power::Poweroff, true), SYSTEMD_POWEROFF);
        assert_eq!(init_signal(Power::Reboot, true), SYSTEMD_REBOOT);
    }

    #[cfg(target_env = "gnu")]
    #[test]
    fn systemd_numbers_are_glibc_sigrtmin_plus_4_and_5() {
        assert_eq!(SYSTEMD_POWEROFF, libc::SIGRTMIN() + 4);
        assert_eq!(SYSTEMD_REBOOT, libc::SIGRTMIN() + 5);
    }

    #[test]
    fn busybox_init_gets_usr2_and_term() {
        assert_eq!(init_signal(Power::Poweroff, false), libc::SIGUSR2);
        assert_eq!(init_signal(Power::Reboot, false), libc::SIGTERM);
    }

    #[test]
    fn action_names() {
        assert_eq!(Power::Poweroff.name(), "poweroff");
        assert_eq!(Power::Reboot.name(), "reboot");
    }
}
