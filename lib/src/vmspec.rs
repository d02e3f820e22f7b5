//! The VM spec banger-vm hands to a VMM driver (banger-fc, banger-qemu) on
//! stdin, and the record both drivers print and keep. One type for both so
//! the drivers are interchangeable.

use crate::agent::Endpoint;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// How a drive's file holds the disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiskFormat {
    /// The file is the disk, byte for byte (both VMMs).
    #[default]
    Raw,
    /// A qcow2 overlay on a raw backing file (QEMU only: Firecracker takes
    /// raw files).
    Qcow2,
}

impl DiskFormat {
    /// The name QEMU's `driver=` and the spec use.
    pub fn name(self) -> &'static str {
        match self {
            DiskFormat::Raw => "raw",
            DiskFormat::Qcow2 => "qcow2",
        }
    }
}

/// One disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Drive {
    /// Drive id (Firecracker's `drive_id`): `rootfs`, `work`...
    pub id: String,
    pub path: PathBuf,
    #[serde(default)]
    pub read_only: bool,
    /// The root device: at most one drive, and it comes first (`/dev/vda`).
    #[serde(default)]
    pub root: bool,
    /// `raw` (default) or `qcow2`.
    #[serde(default, skip_serializing_if = "is_raw")]
    pub format: DiskFormat,
    /// A qcow2 drive's backing file, a raw disk the VMM reads and never
    /// writes. The driver opens it (read-only) and hands it over: the name
    /// in the overlay's header is never opened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backing: Option<PathBuf>,
}

fn is_raw(f: &DiskFormat) -> bool {
    *f == DiskFormat::Raw
}

/// Everything needed to boot one VM. Paths left out get defaults under the
/// VM's runtime dir (sockets) and state dir (logs); see `resolve`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmSpec {
    /// The VM's name; also names its runtime dir.
    pub id: String,
    /// ELF vmlinux.
    pub kernel: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initrd: Option<PathBuf>,
    /// Kernel command line, without `root=` (the driver adds it for the root drive).
    #[serde(default)]
    pub cmdline: String,
    pub vcpus: u32,
    pub mem_mib: u32,
    #[serde(default)]
    pub drives: Vec<Drive>,
    /// Host TAP device for eth0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tap: Option<String>,
    /// Guest MAC of eth0 (`06:00:ac:1e:00:02`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// Guest vsock CID (>= 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vsock_cid: Option<u32>,
    /// Host side of the hybrid vsock (`CONNECT PORT\n`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vsock_uds: Option<PathBuf>,
    /// The guest agent's vsock port (bundle.json `agent_port`); default 52.
    /// The driver records where the agent is and asks it to shut down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_port: Option<u32>,
    /// Firecracker's API socket, or QEMU's QMP socket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_socket: Option<PathBuf>,
    /// The VMM's own stdout/stderr.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vmm_log: Option<PathBuf>,
    /// The guest's serial console.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_log: Option<PathBuf>,
    // No `binary`: the VMM program comes from the runtime bundle (or the
    // caller's BANGER_FIRECRACKER / BANGER_QEMU), never from a spec, which
    // a snapshot keeps on disk where root would run whatever it names.
}

/// The runtime dir of one VM: its sockets and the driver's record.
pub fn run_dir(id: &str) -> PathBuf {
    crate::paths::runtime_dir().join(id)
}

/// Where a driver keeps the record of the VM it started.
pub fn record_path(id: &str) -> PathBuf {
    run_dir(id).join("vmm.json")
}

/// The spec text a driver's `start` reads from stdin.
pub fn read_stdin() -> Result<String> {
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
        .map_err(|e| crate::error::io("reading the VM spec from stdin", e))?;
    Ok(text)
}

impl VmSpec {
    /// Parse a spec from JSON text (stdin), with usage errors that say what
    /// is wrong.
    pub fn parse(text: &str) -> Result<VmSpec> {
        if let Ok(serde_json::Value::Object(o)) = serde_json::from_str(text) {
            if o.contains_key("binary") {
                return Err(Error::usage(
                    "a VM spec may not name the VMM binary (\"binary\"); it comes from the \
                     runtime bundle",
                )
                .with_hint(
                    "remove \"binary\" from the spec; set the bundle's firecracker/qemu key, \
                     or BANGER_FIRECRACKER / BANGER_QEMU",
                ));
            }
        }
        serde_json::from_str(text).map_err(|e| {
            Error::usage(format!("bad VM spec on stdin: {e}"))
                .with_hint("see the SPEC section of banger-fc(1)")
        })
    }

    /// Fill in default paths for sockets and logs.
    pub fn resolve(&mut self, socket_name: &str) {
        let run = run_dir(&self.id);
        let state = crate::paths::vms_dir().join(&self.id);
        self.api_socket.get_or_insert_with(|| run.join(socket_name));
        if self.vsock_cid.is_some() {
            self.vsock_uds.get_or_insert_with(|| run.join("vsock.sock"));
        }
        self.vmm_log.get_or_insert_with(|| state.join("vmm.log"));
        self.console_log
            .get_or_insert_with(|| state.join("console.log"));
    }

    /// Check everything that can be checked before spawning anything.
    pub fn validate(&self) -> Result<()> {
        crate::names::validate("VM", &self.id)?;
        let must_exist = |what: &str, p: &Path| -> Result<()> {
            if !p.is_absolute() {
                return Err(Error::usage(format!(
                    "{what} path must be absolute: {}",
                    p.display()
                )));
            }
            crate::paths::require_file(what, p, crate::Kind::NotFound)
        };
        must_exist("kernel", &self.kernel)?;
        if let Some(i) = &self.initrd {
            must_exist("initrd", i)?;
        }
        if self.vcpus == 0 || self.vcpus > 32 {
            return Err(Error::usage(format!(
                "vcpus must be 1-32, not {}",
                self.vcpus
            )));
        }
        if self.mem_mib < 64 {
            return Err(Error::usage(format!(
                "mem_mib must be at least 64, not {}",
                self.mem_mib
            )));
        }
        let mut ids = std::collections::HashSet::new();
        for (i, d) in self.drives.iter().enumerate() {
            must_exist(&format!("drive {}", d.id), &d.path)?;
            if !ids.insert(&d.id) {
                return Err(Error::usage(format!("drive id {} is used twice", d.id)));
            }
            if d.root && i != 0 {
                return Err(Error::usage("the root drive must be the first drive"));
            }
            match (d.format, &d.backing) {
                (DiskFormat::Raw, Some(_)) => {
                    return Err(Error::usage(format!(
                        "drive {} is raw: only a qcow2 drive has a backing file",
                        d.id
                    )))
                }
                (DiskFormat::Qcow2, Some(b)) => must_exist(&format!("drive {} backing", d.id), b)?,
                _ => {}
            }
        }
        if let Some(tap) = &self.tap {
            if tap.is_empty() || tap.len() > 15 || tap.contains('/') {
                return Err(Error::usage(format!("bad TAP name {tap:?}")));
            }
            if !Path::new("/sys/class/net").join(tap).exists() {
                return Err(Error::not_found(format!("TAP device {tap} does not exist"))
                    .with_hint(format!(
                        "make it with: banger-net tap acquire --vm {}",
                        self.id
                    )));
            }
            if self.mac.is_none() {
                return Err(Error::usage("a spec with a tap needs a mac"));
            }
        }
        if let Some(mac) = &self.mac {
            let ok = mac.split(':').count() == 6
                && mac
                    .split(':')
                    .all(|b| b.len() == 2 && u8::from_str_radix(b, 16).is_ok());
            if !ok {
                return Err(Error::usage(format!("bad MAC address {mac:?}")));
            }
        }
        if self.agent_port == Some(0) {
            return Err(Error::usage("agent_port must be 1 or more"));
        }
        if let Some(cid) = self.vsock_cid {
            if cid < 3 {
                return Err(Error::usage(format!(
                    "vsock_cid must be 3 or more, not {cid}"
                )));
            }
        }
        for p in [&self.api_socket, &self.vsock_uds].into_iter().flatten() {
            crate::paths::check_socket_path(p)?;
            // Firecracker makes `uds_path_PORT` for guest-initiated streams.
        }
        Ok(())
    }

    /// Where the guest agent will be reached (for the VMM record): the
    /// vsock socket and `agent_port`, when the VM has vsock.
    pub fn agent_endpoint(&self) -> Option<Endpoint> {
        let uds = self
            .vsock_uds
            .clone()
            .filter(|_| self.vsock_cid.is_some())?;
        Some(Endpoint::Vsock {
            uds,
            port: self.agent_port.unwrap_or(crate::agent::DEFAULT_PORT),
        })
    }

    /// The kernel command line with the root device, as Firecracker itself
    /// would append it.
    pub fn cmdline_with_root(&self) -> String {
        let mut c = self.cmdline.trim().to_string();
        if let Some(root) = self.drives.first().filter(|d| d.root) {
            if !c.split_whitespace().any(|w| w.starts_with("root=")) {
                let mode = if root.read_only { "ro" } else { "rw" };
                if !c.is_empty() {
                    c.push(' ');
                }
                c.push_str(&format!("root=/dev/vda {mode}"));
            }
        }
        c
    }
}

/// What a driver prints after `start` and keeps in `record_path(id)`.
/// Keys shared by both drivers come first; driver-specific ones are left
/// out when not set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VmmRecord {
    pub schema: u64,
    pub id: String,
    /// `firecracker` or `qemu`.
    pub vmm: String,
    /// `kvm` or `tcg`.
    pub accel: String,
    pub pid: u32,
    pub pid_start_time: u64,
    /// Firecracker's API socket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_socket: Option<PathBuf>,
    /// Firecracker under its jailer: the jail's directory (its chroot is
    /// `root` in it). Left out when the VMM runs without the jailer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jail: Option<PathBuf>,
    /// QEMU's QMP socket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qmp_socket: Option<PathBuf>,
    pub vsock_uds: Option<PathBuf>,
    /// Where the guest agent is reached; set when the VM has vsock. Left
    /// out by drivers older than it: see `agent_endpoint`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<Endpoint>,
    /// A helper process that belongs to the VM (QEMU's vhost-device-vsock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helper_pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helper_pid_start_time: Option<u64>,
    /// `firecracker --version` / `qemu-system-x86_64 --version`, first line.
    pub vmm_version: String,
    pub started_at: String,
    pub vmm_log: PathBuf,
    pub console_log: PathBuf,
}

impl VmmRecord {
    pub fn is_alive(&self) -> bool {
        crate::proc::is_alive(self.pid, self.pid_start_time)
    }

    /// The guest agent's endpoint: the recorded one, else (a record
    /// written before `agent` existed) the vsock socket on the default port.
    pub fn agent_endpoint(&self) -> Option<Endpoint> {
        self.agent.clone().or_else(|| {
            self.vsock_uds.clone().map(|uds| Endpoint::Vsock {
                uds,
                port: crate::agent::DEFAULT_PORT,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dir: &Path) -> VmSpec {
        let k = dir.join("vmlinux");
        std::fs::write(&k, b"x").unwrap();
        let r = dir.join("rootfs.ext4");
        std::fs::write(&r, b"x").unwrap();
        VmSpec::parse(&format!(
            r#"{{"id":"box","kernel":"{}","vcpus":1,"mem_mib":128,
                "drives":[{{"id":"rootfs","path":"{}","root":true}}]}}"#,
            k.display(),
            r.display()
        ))
        .unwrap()
    }

    #[test]
    fn unknown_and_missing_fields_are_usage_errors() {
        let e = VmSpec::parse(r#"{"id":"x"}"#).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.message.contains("missing field"), "{}", e.message);
        let e = VmSpec::parse(r#"{"id":"x","kernel":"/k","vcpus":1,"mem_mib":128,"colour":"red"}"#)
            .unwrap_err();
        assert!(e.message.contains("colour"), "{}", e.message);
    }

    #[test]
    fn validate_checks_files_and_values() {
        let t = tempfile::tempdir().unwrap();
        let mut s = spec(t.path());
        s.validate().unwrap();
        assert_eq!(s.cmdline_with_root(), "root=/dev/vda rw");
        s.cmdline = "console=ttyS0".into();
        assert_eq!(s.cmdline_with_root(), "console=ttyS0 root=/dev/vda rw");

        let mut bad = s.clone();
        bad.kernel = t.path().join("nope");
        assert_eq!(bad.validate().unwrap_err().exit_code(), 3);
        let mut bad = s.clone();
        bad.tap = Some("banger-no-such-tap".into());
        assert!(bad.validate().is_err());
        let mut bad = s.clone();
        bad.tap = Some("bngr-nosuch0".into());
        bad.mac = Some("06:00:00:00:00:01".into());
        assert_eq!(bad.validate().unwrap_err().exit_code(), 3);
        let mut bad = s.clone();
        bad.mac = Some("zz:00:00:00:00:01".into());
        assert_eq!(bad.validate().unwrap_err().exit_code(), 2);
        let mut bad = s.clone();
        bad.api_socket = Some(PathBuf::from(format!("/{}", "s".repeat(120))));
        assert_eq!(bad.validate().unwrap_err().exit_code(), 2);
        let mut bad = s.clone();
        bad.id = "../x".into();
        assert_eq!(bad.validate().unwrap_err().exit_code(), 2);
        let mut bad = s.clone();
        bad.vsock_cid = Some(2);
        assert_eq!(bad.validate().unwrap_err().exit_code(), 2);
        let mut bad = s.clone();
        bad.agent_port = Some(0);
        assert_eq!(bad.validate().unwrap_err().exit_code(), 2);
    }

    #[test]
    fn a_backing_file_belongs_to_a_qcow2_drive_and_must_exist() {
        let t = tempfile::tempdir().unwrap();
        let s = spec(t.path());
        let base = t.path().join("base.ext4");
        std::fs::write(&base, b"x").unwrap();
        let mut ok = s.clone();
        ok.drives[0].format = DiskFormat::Qcow2;
        ok.drives[0].backing = Some(base.clone());
        ok.validate().unwrap();
        // The spec reads back as written; a raw drive says nothing new.
        let text = serde_json::to_string(&ok).unwrap();
        assert!(text.contains(r#""format":"qcow2","backing":"#), "{text}");
        assert_eq!(VmSpec::parse(&text).unwrap(), ok);
        assert!(!serde_json::to_string(&s).unwrap().contains("format"));
        let mut bad = ok.clone();
        bad.drives[0].format = DiskFormat::Raw;
        assert_eq!(bad.validate().unwrap_err().exit_code(), 2);
        let mut bad = ok.clone();
        bad.drives[0].backing = Some(t.path().join("gone.ext4"));
        let e = bad.validate().unwrap_err();
        assert_eq!(e.exit_code(), 3);
        assert!(e.message.contains("backing"), "{}", e.message);
        let mut bad = ok;
        bad.drives[0].backing = Some("rel.ext4".into());
        assert_eq!(bad.validate().unwrap_err().exit_code(), 2);
        let e = VmSpec::parse(&text.replace("qcow2", "vmdk")).unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn agent_endpoint_needs_vsock_and_defaults_its_port() {
        let t = tempfile::tempdir().unwrap();
        let mut s = spec(t.path());
        assert_eq!(s.agent_endpoint(), None);
        s.vsock_cid = Some(3);
        s.resolve("api.sock");
        let Some(Endpoint::Vsock { uds, port }) = s.agent_endpoint() else {
            panic!("no endpoint")
        };
        assert!(uds.ends_with("box/vsock.sock"), "{}", uds.display());
        assert_eq!(port, 52);
        s.agent_port = Some(1024);
        assert!(matches!(
            s.agent_endpoint(),
            Some(Endpoint::Vsock { port: 1024, .. })
        ));
    }

    #[test]
    fn records_without_agent_still_read() {
        let old = r#"{"schema":1,"id":"box","vmm":"qemu","accel":"tcg","pid":1,
            "pid_start_time":2,"qmp_socket":"/r/qmp.sock","vsock_uds":"/r/v.sock",
            "vmm_version":"QEMU 7.2","started_at":"2026-01-01T00:00:00Z",
            "vmm_log":"/s/vmm.log","console_log":"/s/console.log"}"#;
        let rec: VmmRecord = serde_json::from_str(old).unwrap();
        assert_eq!(rec.agent, None);
        assert_eq!(
            rec.agent_endpoint(),
            Some(Endpoint::Vsock {
                uds: "/r/v.sock".into(),
                port: 52
            })
        );
        let mut rec = rec;
        rec.agent = Some(Endpoint::Vsock {
            uds: "/r/v.sock".into(),
            port: 7,
        });
        let text = serde_json::to_string(&rec).unwrap();
        assert!(
            text.contains(r#""agent":{"kind":"vsock","uds":"/r/v.sock","port":7}"#),
            "{text}"
        );
        let back: VmmRecord = serde_json::from_str(&text).unwrap();
        assert_eq!(back.agent_endpoint(), rec.agent);
        // A spec written before agent_port still parses.
        let spec = VmSpec::parse(r#"{"id":"x","kernel":"/k","vcpus":1,"mem_mib":128}"#).unwrap();
        assert_eq!(spec.agent_port, None);
    }
}
