//! What the TUI shows of the tools' records. The lines themselves are read
//! as banger_lib's types (the same the tools print), so a tool and the TUI
//! cannot drift apart; these are the display forms.

use banger_lib::output::{human_bytes, human_duration};
pub use banger_lib::proc::parse_rfc3339;
use banger_lib::records::{HealthLine, ImageLine, VmLine};

/// One line of `banger-vm list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vm {
    pub name: String,
    pub state: String,
    pub vmm: String,
    pub ip: String,
    pub nat: bool,
    pub image: String,
    /// RFC 3339, set while running.
    pub started_at: Option<String>,
    /// Seconds running, as banger-vm computed it (preferred when given).
    pub uptime_s: Option<u64>,
}

/// One line of `banger-image list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub name: String,
    pub default: bool,
    pub managed: String,
    pub size: String,
    pub from: String,
    pub created_at: String,
}

/// One line of `banger-health check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub name: String,
    pub ok: bool,
    pub error: Option<String>,
}

impl From<VmLine> for Vm {
    fn from(l: VmLine) -> Vm {
        let r = l.record;
        Vm {
            state: match r.state {
                banger_lib::records::VmState::Creating => "creating",
                banger_lib::records::VmState::Created => "created",
                banger_lib::records::VmState::Running => "running",
                banger_lib::records::VmState::Stopped => "stopped",
                banger_lib::records::VmState::Crashed => "crashed",
                banger_lib::records::VmState::Suspended => "suspended",
            }
            .into(),
            vmm: r.vmm,
            ip: r.ip.filter(|s| !s.is_empty()).unwrap_or_else(|| "-".into()),
            nat: r.nat,
            image: r.image,
            started_at: r.started_at,
            uptime_s: l.uptime_s,
            name: r.name,
        }
    }
}

impl Vm {
    pub fn running(&self) -> bool {
        self.state == "running"
    }

    /// How long the VM has run, for the table; "-" unless running.
    pub fn uptime(&self, now_unix: u64) -> String {
        match (
            self.running(),
            self.started_at.as_deref().and_then(parse_rfc3339),
        ) {
            (true, Some(start)) => human_duration(now_unix.saturating_sub(start)),
            _ => "-".into(),
        }
    }
}

impl From<ImageLine> for Image {
    fn from(l: ImageLine) -> Image {
        Image {
            name: l.name,
            default: l.default,
            managed: if l.managed { "yes" } else { "no" }.into(),
            size: human_bytes(l.size),
            from: l.from.unwrap_or_else(|| "-".into()),
            created_at: l.created_at,
        }
    }
}

impl From<HealthLine> for Health {
    fn from(l: HealthLine) -> Health {
        Health {
            name: l.name,
            ok: l.ok,
            error: l.error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(state: &str, started_at: Option<&str>) -> VmLine {
        let mut record = banger_testkit::records::vm("box", state, Some("172.30.0.2"), None);
        record.nat = true;
        record.started_at = started_at.map(str::to_string);
        VmLine {
            record,
            uptime_s: None,
        }
    }

    #[test]
    fn vm_from_its_line() {
        let vm = Vm::from(line("running", Some("2026-01-01T00:00:00Z")));
        assert_eq!(vm.name, "box");
        assert!(vm.nat && vm.running());
        assert_eq!(vm.ip, "172.30.0.2");
        assert_eq!(
            vm.uptime(parse_rfc3339("2026-01-01T01:02:03Z").unwrap()),
            "1h02m"
        );
        // What banger-vm prints reads back into the same line.
        let text = serde_json::to_string(&line("created", None)).unwrap();
        let back: VmLine = serde_json::from_str(&text).unwrap();
        assert_eq!(Vm::from(back).uptime(0), "-");
    }

    #[test]
    fn stopped_vm_has_no_uptime() {
        let vm = Vm::from(line("stopped", Some("2026-01-01T00:00:00Z")));
        assert_eq!(vm.uptime(u64::MAX), "-");
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(human_duration(42), "42s");
        assert_eq!(human_duration(307), "5m07s");
        assert_eq!(human_duration(2 * 86_400 + 3 * 3600 + 5), "2d03h");
        assert_eq!(human_bytes(512), "512B");
        assert_eq!(human_bytes(4 << 30), "4.0G");
        assert_eq!(human_bytes(20 << 20), "20M");
    }

    #[test]
    fn image_and_health_lines() {
        let mut l = banger_testkit::records::image_line(
            "debian",
            std::path::Path::new("/nonexistent"),
            None,
        );
        l.size = 4 << 30;
        l.from = Some("debian:bookworm".into());
        let i = Image::from(l);
        assert!(i.default);
        assert_eq!(i.size, "4.0G");
        let h = Health::from(banger_lib::records::HealthLine::down("b", "no agent"));
        assert_eq!(h.error.as_deref(), Some("no agent"));
        assert!(!h.ok);
    }
}
