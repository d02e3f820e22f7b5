//! The records the TUI reads from the tools' JSON lines. Parsed leniently
//! (missing or oddly typed fields become "-") so that a field added or
//! changed in a tool degrades one cell, never the whole UI.

use banger_lib::output::human_duration;
pub use banger_lib::proc::parse_rfc3339;
use serde_json::Value;

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

/// A scalar field as display text; absent, null and structured values
/// are "-".
pub fn text(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => if *b { "yes" } else { "no" }.into(),
        _ => "-".into(),
    }
}

fn flag(v: &Value, key: &str) -> bool {
    matches!(v.get(key), Some(Value::Bool(true)))
}

impl Vm {
    /// None when the line has no name: such a line cannot be acted on.
    pub fn from_json(v: &Value) -> Option<Vm> {
        let name = v.get("name")?.as_str()?.to_string();
        Some(Vm {
            name,
            state: text(v, "state"),
            vmm: text(v, "vmm"),
            ip: text(v, "ip"),
            nat: flag(v, "nat"),
            image: text(v, "image"),
            started_at: v
                .get("started_at")
                .and_then(Value::as_str)
                .map(str::to_string),
            uptime_s: v.get("uptime_s").and_then(Value::as_u64),
        })
    }

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

impl Image {
    pub fn from_json(v: &Value) -> Option<Image> {
        let name = v.get("name")?.as_str()?.to_string();
        let size = match v.get("size") {
            Some(Value::Number(n)) => n.as_u64().map(human_bytes).unwrap_or_else(|| n.to_string()),
            _ => text(v, "size"),
        };
        Some(Image {
            name,
            default: flag(v, "default"),
            managed: text(v, "managed"),
            size,
            from: text(v, "from"),
            created_at: text(v, "created_at"),
        })
    }
}

impl Health {
    pub fn from_json(v: &Value) -> Option<Health> {
        let name = v.get("name")?.as_str()?.to_string();
        let error = ["error", "reason"]
            .iter()
            .find_map(|k| v.get(*k).and_then(Value::as_str))
            .map(str::to_string);
        Some(Health {
            name,
            ok: flag(v, "ok"),
            error,
        })
    }
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "K", "M", "G", "T"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 || v >= 10.0 {
        format!("{v:.0}{}", UNITS[u])
    } else {
        format!("{v:.1}{}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn vm_from_full_and_sparse_lines() {
        let vm = Vm::from_json(&json!({
            "name": "box", "state": "running", "vmm": "qemu", "ip": "172.30.0.2",
            "nat": true, "image": "debian", "started_at": "2026-01-01T00:00:00Z",
            "vcpus": 2
        }))
        .unwrap();
        assert_eq!(vm.name, "box");
        assert!(vm.nat && vm.running());
        assert_eq!(
            vm.uptime(parse_rfc3339("2026-01-01T01:02:03Z").unwrap()),
            "1h02m"
        );

        let sparse = Vm::from_json(&json!({"name": "x", "ip": null, "nat": "weird"})).unwrap();
        assert_eq!((sparse.state.as_str(), sparse.ip.as_str()), ("-", "-"));
        assert!(!sparse.nat);
        assert_eq!(sparse.uptime(0), "-");
        assert!(Vm::from_json(&json!({"state": "running"})).is_none());
    }

    #[test]
    fn stopped_vm_has_no_uptime() {
        let vm = Vm::from_json(&json!({
            "name": "b", "state": "stopped", "started_at": "2026-01-01T00:00:00Z"
        }))
        .unwrap();
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
        let i = Image::from_json(&json!({
            "name": "debian", "default": true, "managed": true, "size": 4294967296u64,
            "from": "debian:bookworm"
        }))
        .unwrap();
        assert!(i.default);
        assert_eq!((i.size.as_str(), i.created_at.as_str()), ("4.0G", "-"));
        let h = Health::from_json(&json!({"name": "b", "ok": false, "error": "no agent"})).unwrap();
        assert_eq!(h.error.as_deref(), Some("no agent"));
    }
}
