//! `create --from SNAP`: a new VM restored from a golden snapshot. It gets
//! its own copies of the snapshot's disks, its own TAP, lease, MAC and
//! CID, and the VMM loads the snapshot's memory: the guest runs on as the
//! source was when it was saved, under the source's identity. Right after
//! the agent answers, the identity step sends it the clone's own
//! (hostname, address, gateway, DNS, MAC, a fresh machine-id, the host's
//! time, fresh entropy, a new ssh host key made here, where it costs no
//! emulation); the agent applies it and writes the key (an older agent
//! makes its own), which is pinned as for any new VM before sshd is
//! waited for. Until
//! then the guest's packets carry the source's MAC and address, which the
//! bridge's anti-spoofing rules drop.

use crate::cli::{CreateArgs, VmmChoice};
use crate::create::Created;
use crate::record::{self, VmRecord};
use crate::steps::{self, Mode, Run, Step};
use banger_lib::records::snapshot::{self as snaprec, SnapshotRecord};
use banger_lib::records::Disks;
use banger_lib::{config::Bundle, names, state, Error, Result};
use serde_json::json;
use std::path::Path;
use std::time::Duration;

/// What a clone cannot choose: the snapshot fixed it.
fn refuse_flags(a: &CreateArgs, snap: &SnapshotRecord) -> Result<()> {
    let fixed = |flag: &str, what: String| {
        Error::usage(format!(
            "--{flag} cannot be given with --from: a clone has its snapshot's {what}"
        ))
        .with_hint(format!(
            "drop --{flag}; banger vm snapshots shows {}'s",
            snap.name
        ))
    };
    if a.image.is_some() {
        return Err(fixed("image", format!("image ({})", snap.image)));
    }
    if a.vcpus.is_some_and(|v| v != snap.vcpus) {
        return Err(fixed("vcpus", format!("vCPUs ({})", snap.vcpus)));
    }
    if a.memory.is_some_and(|m| m != snap.memory_mib) {
        return Err(fixed("memory", format!("memory ({} MiB)", snap.memory_mib)));
    }
    if a.disk.is_some() {
        return Err(fixed(
            "disk",
            format!("work disk ({} bytes)", snap.disk_size),
        ));
    }
    if let Some(v) = a.vmm {
        if v != VmmChoice::Auto && v.name() != snap.vmm {
            return Err(fixed("vmm", format!("VMM ({})", snap.vmm)));
        }
    }
    if a.no_start {
        return Err(Error::usage(
            "--no-start cannot be given with --from: a clone is made by restoring its snapshot",
        ));
    }
    if a.no_jailer && snap.vmm != "firecracker" {
        return Err(Error::usage(format!(
            "--no-jailer is for Firecracker; snapshot {} is of a {} VM",
            snap.name, snap.vmm
        )));
    }
    Ok(())
}

pub fn create(a: &CreateArgs, from: &str) -> Result<Created> {
    names::validate("VM", &a.name)?;
    let snap = snaprec::view(from)?;
    refuse_flags(a, &snap)?;
    let saved = crate::suspend::Saved {
        subject: format!("snapshot {from}"),
        event: "was taken",
        vmm: &snap.vmm,
        vmm_version: &snap.vmm_version,
        kernel: &snap.kernel,
        kernel_size: snap.kernel_size,
        kernel_mtime: snap.kernel_mtime,
    };
    saved.check().map_err(|e| {
        e.with_hint(format!(
            "clones need what it was taken with; take a new one: banger vm snapshot {} --as NAME",
            snap.source
        ))
    })?;
    let scripts = crate::init::load(&a.init)?;
    let env = crate::init::parse_env(&a.env)?;
    let bundle = Bundle::load()?;

    let name = a.name.clone();
    let _lock = crate::create::claim(&name)?;
    let dir = record::vm_dir(&name);
    let in_dir = |p: &Path| dir.join(p.file_name().unwrap_or_default());
    let disks = Disks {
        rootfs: in_dir(&snap.disks.rootfs),
        work: in_dir(&snap.disks.work),
        rootfs_backing: snap.disks.rootfs_backing.clone(),
        work_backing: snap.disks.work_backing.clone(),
    };
    let mut rec = crate::create::creating(
        &name,
        &snap.image,
        &snap.vmm,
        disks,
        snap.kernel.clone(),
        snap.initrd.clone(),
    );
    rec.nat = a.nat || snap.nat;
    rec.isolated = !a.no_isolate;
    (rec.vcpus, rec.memory_mib, rec.disk_size) = (snap.vcpus, snap.memory_mib, snap.disk_size);
    rec.no_jailer = a.no_jailer || snap.no_jailer;
    rec.from_snapshot = Some(snap.name.clone());
    let nat = rec.nat;
    let mut run = Run::new(rec, Mode::Create, a.timeout, bundle.agent_port);
    run.restore = Some(snap.state.clone());
    run.snapshot = Some(snap);
    run.init = scripts;
    run.env = env;
    run.keep_failed = a.keep_failed;
    let mut list = vec![Step::Disks];
    // The identity step always runs: until it has, the guest is the
    // source under another MAC. --no-wait skips only the ssh waits.
    list.extend(steps::boot(nat, false, false));
    list.extend([Step::Healthy, Step::Identity]);
    if !a.no_wait {
        list.extend([Step::Pin, Step::Ssh]);
    }
    if !run.init.is_empty() {
        list.push(Step::Init);
    }
    run.run(&list)?;
    crate::create::finish(run, a.timings)
}

/// The snapshot's lock, shared: clones of one snapshot are made side by
/// side, and `vm snapshots rm` (exclusive) waits for them. Exit 3 when
/// the snapshot went away meanwhile.
pub fn lock_snapshot(name: &str) -> Result<state::Lock> {
    // Made (exclusively, briefly) if missing, then taken shared.
    drop(snaprec::lock(name)?);
    let lock = state::Lock::try_shared(&snaprec::lock_path(name), state::default_lock_timeout())
        .ok_or_else(|| {
            Error::conflict(format!("snapshot {name} is being made or removed"))
                .with_hint("try again in a moment")
        })?;
    if !snaprec::path(name).is_file() {
        return Err(snaprec::not_found(name));
    }
    Ok(lock)
}

/// Random bytes from the kernel, as hex.
fn random_hex(bytes: usize) -> Result<String> {
    use std::io::Read;
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| banger_lib::error::io("reading /dev/urandom", e))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// A new ed25519 host key for the guest, as the agent takes it: the
/// private key's PEM body on one line and the public key's blob, both
/// base64. ssh-keygen writes it in the VM's directory, which the key
/// leaves at once (a killed create's directory goes with its undo).
fn host_key(rec: &VmRecord) -> Result<serde_json::Value> {
    let keygen = banger_lib::hosttools::which("ssh-keygen").ok_or_else(|| {
        Error::failed("ssh-keygen is missing").with_hint("install openssh-client")
    })?;
    let path = record::vm_dir(&rec.name).join("hostkey.new");
    let pub_path = path.with_extension("new.pub");
    let remove = || {
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(&pub_path);
    };
    remove();
    let out = std::process::Command::new(keygen)
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "", "-f"])
        .arg(&path)
        .stdin(std::process::Stdio::null())
        .output();
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|e| banger_lib::error::io("reading the new host key", e))
    };
    let keys = match out {
        Ok(o) if o.status.success() => read(&path).and_then(|k| Ok((k, read(&pub_path)?))),
        Ok(o) => Err(Error::failed(format!(
            "ssh-keygen failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ))),
        Err(e) => Err(banger_lib::error::io("running ssh-keygen", e)),
    };
    remove();
    let (private, public) = keys?;
    let body: String = private
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let public = public
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string();
    Ok(json!({"private": body, "public": public}))
}

/// The body of the agent's `POST /identity` for this VM.
pub fn identity(rec: &VmRecord) -> Result<serde_json::Value> {
    let need = |v: &Option<String>, what: &str| {
        v.clone()
            .ok_or_else(|| Error::failed(format!("{} has no {what} yet", rec.name)))
    };
    let time_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut machine_id = random_hex(16)?;
    if machine_id.bytes().all(|b| b == b'0') {
        machine_id.replace_range(0..1, "1");
    }
    Ok(json!({
        "hostname": rec.name,
        "address": need(&rec.ip, "address")?,
        "prefix": rec.prefix.ok_or_else(|| Error::failed(format!("{} has no prefix yet", rec.name)))?,
        "gateway": need(&rec.gateway, "gateway")?,
        "dns": rec.dns.iter().collect::<Vec<_>>(),
        "mac": need(&rec.mac, "MAC")?,
        "machine_id": machine_id,
        "time_ns": time_ns,
        "entropy": random_hex(64)?,
        "host_key": host_key(rec)?,
    }))
}

/// The identity step: the agent applies the clone's identity.
pub fn apply_identity(rec: &VmRecord, timeout: u64) -> Result<()> {
    let ep = rec
        .agent
        .as_ref()
        .ok_or_else(|| Error::failed(format!("{}'s VMM gave no guest agent endpoint", rec.name)))?;
    let mut body = identity(rec)?;
    // Moving the network (and, for an older agent, making a host key)
    // takes a few seconds under emulation; never longer than the create's
    // own wait.
    let wait = Duration::from_secs(timeout.clamp(10, 120));
    let post = |body: &serde_json::Value| {
        banger_lib::agent::request_with(ep, "POST", "/identity", Some(body), 64 << 10, wait)
    };
    let mut r = post(&body)?;
    // An agent from before host_key (in a snapshot taken then) refuses
    // the field it does not know, before changing anything: it makes its
    // own key instead.
    let error = |r: &banger_lib::agent::Reply| {
        r.body
            .get("error")
            .and_then(|e| e.as_str())
            .unwrap_or("")
            .to_string()
    };
    if r.status == 400 && error(&r).contains("unknown field `host_key`") {
        if let Some(m) = body.as_object_mut() {
            m.remove("host_key");
        }
        r = post(&body)?;
    }
    if !r.ok() {
        let why = error(&r);
        let why = if why.is_empty() {
            "no reason given"
        } else {
            &why
        };
        let at = r.body.get("step").and_then(|s| s.as_str()).unwrap_or("");
        return Err(Error::failed(format!(
            "the guest agent did not take its new identity (HTTP {}{}{}): {why}",
            r.status,
            if at.is_empty() { "" } else { ", at " },
            at
        ))
        .with_hint("an image whose agent predates clones cannot be cloned: rebuild it"));
    }
    Ok(())
}
