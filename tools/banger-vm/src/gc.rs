//! `gc`: find what killed commands left behind in this world and remove
//! it. A leftover is anything under a VM name that no finished record
//! accounts for: a record a killed create left `creating`, a VM dir
//! without a record, a runtime dir without a record, a lease without a
//! record, a Firecracker jail without a record; and a port forward in
//! force that its VM's record does not account for (the VM is not running,
//! or its record does not list it: a killed stop or `vm forward`), which is
//! taken away alone, the VM left as it is; and a VMM that runs while its
//! VM's record says it does not (a killed start), which is killed. A name whose lock is held is
//! being worked on and is skipped, so gc never touches a command in flight
//! or another, healthy VM.

use crate::record::{self, State};
use crate::{lifecycle, plumbing};
use banger_lib::records::{Forward, GcLine, Lease};
use banger_lib::{names, paths, vmspec, Result};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// Find (and unless `dry_run`, remove) leftovers; one line each.
pub fn gc(dry_run: bool) -> Result<Vec<GcLine>> {
    let found = find()?;
    let mut lines = Vec::new();
    for (vm, things) in found {
        // Zero wait: a held lock means a command is at work on it.
        let Ok(_lock) = record::lock(&vm, Duration::ZERO) else {
            continue;
        };
        // Found before the lock: look again now that nobody can change it.
        let Some(things) = find_one(&vm, things)? else {
            continue;
        };
        let (removed, error) = if dry_run {
            (false, None)
        } else {
            match lifecycle::sweep(&vm) {
                Ok(d) if d.warnings.is_empty() => (true, None),
                Ok(d) => (false, Some(d.warnings.join("; "))),
                Err(e) => (false, Some(e.to_string())),
            }
        };
        for (what, detail) in things {
            lines.push(GcLine {
                what: what.into(),
                vm: vm.clone(),
                detail,
                removed,
                error: error.clone(),
            });
        }
    }
    lines.extend(stray_vmms(dry_run)?);
    lines.extend(stray_states(dry_run)?);
    lines.extend(unfinished_snapshots(dry_run)?);
    lines.extend(stray_forwards(dry_run)?);
    Ok(lines)
}

/// Snapshot dirs without their record: a `vm snapshot` killed before it
/// finished (the VM it was taking ran on). A held lock is a snapshot being
/// made now.
fn unfinished_snapshots(dry_run: bool) -> Result<Vec<GcLine>> {
    use banger_lib::records::snapshot as snap;
    let mut lines = Vec::new();
    for name in crate::snapshot::unfinished()? {
        let Ok(_lock) = banger_lib::state::Lock::acquire(&snap::lock_path(&name), Duration::ZERO)
        else {
            continue;
        };
        let dir = snap::dir(&name);
        if snap::path(&name).exists() || paths::refuse_symlink(&dir).is_err() {
            continue;
        }
        let (removed, error) = if dry_run {
            (false, None)
        } else {
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => (true, None),
                Err(e) => (false, Some(e.to_string())),
            }
        };
        lines.push(GcLine {
            what: "snapshot".into(),
            vm: String::new(),
            detail: dir.display().to_string(),
            removed,
            error,
        });
    }
    Ok(lines)
}

/// Saved states no record points at: `suspended.part` (a suspend killed
/// while saving) and a `suspended` of a VM whose record is not suspended
/// on it (a suspend killed after the save, before the record said so).
fn stray_states_of(vm: &str) -> Vec<std::path::PathBuf> {
    let Ok(Some(rec)) = record::load(vm) else {
        return Vec::new();
    };
    let state = crate::suspend::state_path(vm);
    let mut part = state.clone().into_os_string();
    part.push(".part");
    let mut out = vec![std::path::PathBuf::from(part)];
    if rec.suspend.as_ref().map(|s| &s.path) != Some(&state) {
        out.push(state);
    }
    out.retain(|p| std::fs::symlink_metadata(p).is_ok());
    out
}

fn stray_states(dry_run: bool) -> Result<Vec<GcLine>> {
    let mut lines = Vec::new();
    for vm in record::names()? {
        if stray_states_of(&vm).is_empty() {
            continue;
        }
        // A held lock: a suspend or resume may be writing it right now.
        let Ok(_lock) = record::lock(&vm, Duration::ZERO) else {
            continue;
        };
        for path in stray_states_of(&vm) {
            let (removed, error) = if dry_run {
                (false, None)
            } else {
                let r = match std::fs::symlink_metadata(&path) {
                    Ok(m) if m.is_dir() => std::fs::remove_dir_all(&path),
                    _ => std::fs::remove_file(&path),
                };
                match r {
                    Ok(()) => (true, None),
                    Err(e) => (false, Some(e.to_string())),
                }
            };
            lines.push(GcLine {
                what: "saved-state".into(),
                vm: vm.clone(),
                detail: path.display().to_string(),
                removed,
                error,
            });
        }
    }
    Ok(lines)
}

/// VMMs that run for VMs whose record says they do not (record.rs
/// `stray_vmm`): killed through their driver, the record left as it is.
fn stray_vmms(dry_run: bool) -> Result<Vec<GcLine>> {
    let mut lines = Vec::new();
    for vm in record::names()? {
        let stray = |vm: &str| {
            record::load(vm)
                .ok()
                .flatten()
                .and_then(|r| record::stray_vmm(&r).map(|pid| (r, pid)))
        };
        if stray(&vm).is_none() {
            continue;
        }
        let Ok(_lock) = record::lock(&vm, Duration::ZERO) else {
            continue;
        };
        // Again under the lock: a start may have just recorded it.
        let Some((rec, pid)) = stray(&vm) else {
            continue;
        };
        let (removed, error) = if dry_run {
            (false, None)
        } else {
            let tool = crate::vmm::tool(&rec.vmm);
            match crate::stop::stop_vmm(tool, &vm, crate::stop::StopMode::Kill) {
                Ok(_) => (true, None),
                Err(e) => (false, Some(e.to_string())),
            }
        };
        lines.push(GcLine {
            what: "vmm".into(),
            vm,
            detail: format!("pid {pid}; the record says {}", rec.state.word()),
            removed,
            error,
        });
    }
    Ok(lines)
}

/// Whether forward `f` in force is one `rec` does not account for.
fn stray(rec: &record::VmRecord, f: &Forward) -> bool {
    rec.state != State::Running
        || !rec.forwards.iter().any(|p| {
            p.proto == f.proto
                && p.address == f.address
                && p.host_port == f.host_port
                && p.guest_port == f.guest_port
        })
}

/// Forwards in force that their VM's record does not account for; those
/// of VMs without a record go with their lease (above).
fn stray_forwards(dry_run: bool) -> Result<Vec<GcLine>> {
    let mut lines = Vec::new();
    for f in plumbing::call_many::<Forward>("banger-net", &["forward", "list"])? {
        if !matches!(record::load(&f.vm), Ok(Some(r)) if stray(&r, &f)) {
            continue;
        }
        let Ok(_lock) = record::lock(&f.vm, Duration::ZERO) else {
            continue;
        };
        // Again under the lock: a start may have just put it in force.
        if !matches!(record::load(&f.vm), Ok(Some(r)) if stray(&r, &f)) {
            continue;
        }
        let (removed, error) = if dry_run {
            (false, None)
        } else {
            let (port, address) = (f.host_port.to_string(), f.address.to_string());
            let mut args = vec![
                "forward",
                "remove",
                "--vm",
                &f.vm,
                "--host-port",
                &port,
                "--address",
                &address,
            ];
            if f.proto == banger_lib::records::Proto::Udp {
                args.push("--udp");
            }
            match plumbing::run_gone_ok("banger-net", &args) {
                Ok(()) => (true, None),
                Err(e) => (false, Some(e.to_string())),
            }
        };
        lines.push(GcLine {
            what: "forward".into(),
            vm: f.vm.clone(),
            detail: format!(
                "{}:{}/{} -> {}:{}",
                f.address, f.host_port, f.proto, f.guest_ip, f.guest_port
            ),
            removed,
            error,
        });
    }
    Ok(lines)
}

type Found = BTreeMap<String, Vec<(&'static str, String)>>;

fn find() -> Result<Found> {
    let mut found = Found::new();
    for vm in dir_names(&paths::vms_dir()) {
        if let Some(t) = leftover_dir(&vm) {
            found.entry(vm).or_default().push(t);
        }
    }
    for vm in dir_names(&paths::runtime_dir()) {
        if let Some(t) = leftover_run_dir(&vm) {
            found.entry(vm).or_default().push(t);
        }
    }
    for (vm, t) in leftover_jails(None) {
        found.entry(vm).or_default().push(t);
    }
    for l in leases()? {
        if record_state(&l.vm).is_none() {
            let detail = format!("{} {}", l.tap, l.ip);
            found.entry(l.vm).or_default().push(("lease", detail));
        }
    }
    Ok(found)
}

/// `vm`'s leftovers re-checked under its lock (leases as found before: only
/// banger-net changes them, and a VM without a record cannot get one).
fn find_one(
    vm: &str,
    before: Vec<(&'static str, String)>,
) -> Result<Option<Vec<(&'static str, String)>>> {
    let mut now: Vec<_> = [leftover_dir(vm), leftover_run_dir(vm)]
        .into_iter()
        .flatten()
        .collect();
    now.extend(leftover_jails(Some(vm)).into_iter().map(|(_, t)| t));
    now.extend(before.into_iter().filter(|(w, _)| *w == "lease"));
    // A record that appeared meanwhile (a create that finished) accounts
    // for its lease.
    if matches!(record_state(vm), Some(Ok(s)) if s != State::Creating) {
        return Ok(None);
    }
    Ok((!now.is_empty()).then_some(now))
}

/// The state in `vm`'s record: None without a record, Err for a record
/// that cannot be read (left to `delete --force`).
fn record_state(vm: &str) -> Option<std::result::Result<State, ()>> {
    match record::load(vm) {
        Ok(Some(r)) => Some(Ok(r.state)),
        Ok(None) => None,
        Err(_) => Some(Err(())),
    }
}

fn leftover_dir(vm: &str) -> Option<(&'static str, String)> {
    let dir = record::vm_dir(vm);
    let detail = dir.display().to_string();
    match record_state(vm) {
        Some(Ok(State::Creating)) => Some(("unfinished-create", detail)),
        Some(_) => None,
        // Only the lock file: what any lock on a name makes; not worth a line
        // unless something else is there.
        None if only_lock(&dir) => None,
        None => Some(("vm-dir", detail)),
    }
}

fn leftover_run_dir(vm: &str) -> Option<(&'static str, String)> {
    let dir = vmspec::run_dir(vm);
    (dir.is_dir() && record_state(vm).is_none()).then(|| ("run-dir", dir.display().to_string()))
}

/// Jails (`paths::jail_dir()/NAME/VM`) of VMs without a record, or of
/// `only` that VM; the sweep's `banger-fc stop` removes them.
fn leftover_jails(only: Option<&str>) -> Vec<(String, (&'static str, String))> {
    let mut out = Vec::new();
    for name_dir in dir_entries(&paths::jail_dir()) {
        for vm in dir_names(&name_dir) {
            if only.is_some_and(|o| o != vm) || record_state(&vm).is_some() {
                continue;
            }
            let detail = name_dir.join(&vm).display().to_string();
            out.push((vm, ("jail", detail)));
        }
    }
    out
}

fn dir_entries(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default()
}

fn only_lock(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|d| {
        d.flatten()
            .all(|e| e.file_name().to_string_lossy().ends_with(".lock"))
    })
}

/// Directory entries that are directories with a valid VM name.
fn dir_names(dir: &Path) -> Vec<String> {
    let Ok(d) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<String> = d
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| names::validate("VM", n).is_ok())
        .collect();
    v.sort();
    v
}

fn leases() -> Result<Vec<Lease>> {
    plumbing::call_many::<Lease>("banger-net", &["lease", "list"])
}
