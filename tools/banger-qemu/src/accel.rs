//! KVM or TCG, and what a TCG guest needs on its command line.

use banger_lib::host::{self, Kvm};

/// `kvm` when the host has hardware KVM (`banger_lib::host::kvm`, the same
/// answer `vmm: auto` and banger-doctor go by: PVM, a software KVM a stock
/// guest kernel cannot run on, does not count), else `tcg`.
/// BANGER_QEMU_ACCEL overrides the guess.
pub fn detect() -> &'static str {
    match std::env::var("BANGER_QEMU_ACCEL").as_deref() {
        Ok("kvm") => return "kvm",
        Ok("tcg") => return "tcg",
        _ => {}
    }
    for_kvm(&host::kvm())
}

fn for_kvm(kvm: &Kvm) -> &'static str {
    match kvm {
        Kvm::Hardware => "kvm",
        Kvm::Pvm | Kvm::Unusable(_) | Kvm::Absent => "tcg",
    }
}

/// The host's TSC rate in kHz from /proc/cpuinfo (`cpu MHz`): under TCG
/// the guest reads the host's TSC.
fn host_khz(cpuinfo: &str) -> Option<u64> {
    let mhz: f64 = cpuinfo
        .lines()
        .find(|l| l.starts_with("cpu MHz"))?
        .split(':')
        .nth(1)?
        .trim()
        .parse()
        .ok()?;
    (mhz > 0.0).then(|| (mhz * 1000.0).round() as u64)
}

/// Kernel arguments a guest needs under TCG on `-M microvm`: QEMU's
/// microvm ACPI tables route the PIT to no pin the kernel knows, so the
/// kernel can calibrate neither the TSC nor the local APIC timer and
/// hangs. Telling it both rates skips the calibration. The APIC timer of
/// QEMU runs at 1 GHz; 4000000 is one jiffy at HZ=250 (Debian's kernels).
/// Arguments the command line already sets are left alone.
pub fn tcg_cmdline_extras(cmdline: &str, cpuinfo: &str) -> Vec<String> {
    let has = |k: &str| cmdline.split_whitespace().any(|w| w.starts_with(k));
    let mut extra = Vec::new();
    if !has("tsc_early_khz=") {
        let khz = host_khz(cpuinfo).unwrap_or(2_000_000);
        extra.push(format!("tsc_early_khz={khz}"));
    }
    if !has("lapic_timer_period=") {
        extra.push("lapic_timer_period=4000000".to_string());
    }
    extra
}

#[cfg(test)]
mod tests {
    use super::*;

    const VMX: &str = "processor\t: 0\nflags\t\t: fpu vme vmx sse\ncpu MHz\t\t: 2599.998\n";

    #[test]
    fn kvm_only_with_hardware_and_not_pvm() {
        assert_eq!(for_kvm(&Kvm::Hardware), "kvm");
        assert_eq!(for_kvm(&Kvm::Pvm), "tcg", "PVM is not hardware KVM");
        assert_eq!(for_kvm(&Kvm::Unusable("no access".into())), "tcg");
        assert_eq!(for_kvm(&Kvm::Absent), "tcg");
    }

    #[test]
    fn tcg_extras_use_host_rate_and_respect_the_cmdline() {
        assert_eq!(
            tcg_cmdline_extras("console=ttyS0", VMX),
            ["tsc_early_khz=2599998", "lapic_timer_period=4000000"]
        );
        assert_eq!(
            tcg_cmdline_extras("lapic_timer_period=1000000", "nothing"),
            ["tsc_early_khz=2000000"]
        );
        assert!(tcg_cmdline_extras("tsc_early_khz=1 lapic_timer_period=2", VMX).is_empty());
    }
}
