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

/// Kernel arguments for a guest under TCG, each only where the command
/// line does not set it already:
///
/// - `tsc_early_khz`, `lapic_timer_period` (needed): QEMU's microvm ACPI
///   tables route the PIT to no pin the kernel knows, so the kernel can
///   calibrate neither the TSC nor the local APIC timer and hangs. Telling
///   it both rates skips the calibration. The APIC timer of QEMU runs at
///   1 GHz; 4000000 is one jiffy at HZ=250 (Debian's kernels).
/// - `tsc=reliable`: every TCG vCPU reads one host clock, but the kernel's
///   TSC sync check between vCPU threads fails under emulation, so it
///   falls back to the jiffies clocksource (4 ms resolution).
/// - `mitigations=off`: TCG runs no speculation of the guest's code, so
///   retpolines, RSB filling and barriers only cost emulated instructions.
/// - `cryptomgr.notests`: the crypto self-tests prove the host CPU's
///   instructions, not the guest's.
/// - `init_on_alloc=0`: zeroing every kernel allocation (Debian's default
///   hardening) is emulated memory writes; user pages are zeroed anyway.
/// - `initcall_blacklist=crypto_kdf108_init`: that initcall only runs the
///   SP800-108 KDF's self-test, 0.2 s under TCG (`initcall_debug`).
///
/// Together about a second of a TCG guest's boot (README, bench-create).
pub fn tcg_cmdline_extras(cmdline: &str, cpuinfo: &str) -> Vec<String> {
    let has = |k: &str| {
        cmdline
            .split_whitespace()
            .any(|w| w == k || w.starts_with(&format!("{k}=")))
    };
    let mut extra = Vec::new();
    if !has("tsc_early_khz") {
        let khz = host_khz(cpuinfo).unwrap_or(2_000_000);
        extra.push(format!("tsc_early_khz={khz}"));
    }
    for (key, arg) in [
        ("lapic_timer_period", "lapic_timer_period=4000000"),
        ("tsc", "tsc=reliable"),
        ("mitigations", "mitigations=off"),
        ("cryptomgr.notests", "cryptomgr.notests"),
        ("init_on_alloc", "init_on_alloc=0"),
        (
            "initcall_blacklist=crypto_kdf108_init",
            "initcall_blacklist=crypto_kdf108_init",
        ),
    ] {
        if !has(key) {
            extra.push(arg.to_string());
        }
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
        const ALL: [&str; 7] = [
            "tsc_early_khz=2599998",
            "lapic_timer_period=4000000",
            "tsc=reliable",
            "mitigations=off",
            "cryptomgr.notests",
            "init_on_alloc=0",
            "initcall_blacklist=crypto_kdf108_init",
        ];
        assert_eq!(tcg_cmdline_extras("console=ttyS0", VMX), ALL);
        assert_eq!(
            tcg_cmdline_extras("lapic_timer_period=1000000", "nothing"),
            ["tsc_early_khz=2000000"]
                .into_iter()
                .chain(ALL[2..].iter().copied())
                .collect::<Vec<_>>()
        );
        let set = "tsc_early_khz=1 lapic_timer_period=2 tsc=unstable mitigations=auto \
                   cryptomgr.notests init_on_alloc=1 initcall_blacklist=crypto_kdf108_init";
        assert!(tcg_cmdline_extras(set, VMX).is_empty());
        // A key is matched whole: tsc_early_khz does not set tsc.
        assert!(tcg_cmdline_extras("tsc_early_khz=1", VMX).contains(&"tsc=reliable".to_string()));
    }
}
