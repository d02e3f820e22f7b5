//! What `GET /healthz` reports about the guest, read from /proc.

use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Health {
    pub status: &'static str,
    pub hostname: String,
    pub uptime_s: u64,
    pub version: &'static str,
    /// 1, 5 and 15 minute load averages.
    pub load: [f64; 3],
    pub mem_available_kib: Option<u64>,
}

pub fn collect() -> Health {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    Health {
        status: "ok",
        hostname: read("/proc/sys/kernel/hostname").trim().to_string(),
        uptime_s: parse_uptime(&read("/proc/uptime")),
        version: env!("CARGO_PKG_VERSION"),
        load: parse_load(&read("/proc/loadavg")),
        mem_available_kib: parse_mem_available(&read("/proc/meminfo")),
    }
}

fn parse_uptime(s: &str) -> u64 {
    s.split_whitespace()
        .next()
        .and_then(|f| f.parse::<f64>().ok())
        .map(|f| f as u64)
        .unwrap_or(0)
}

fn parse_load(s: &str) -> [f64; 3] {
    let mut out = [0.0; 3];
    for (slot, field) in out.iter_mut().zip(s.split_whitespace()) {
        *slot = field.parse().unwrap_or(0.0);
    }
    out
}

fn parse_mem_available(s: &str) -> Option<u64> {
    s.lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        assert_eq!(parse_uptime("1234.56 99.0\n"), 1234);
        assert_eq!(parse_uptime(""), 0);
        assert_eq!(parse_load("0.50 0.25 1.00 1/123 456\n"), [0.5, 0.25, 1.0]);
        assert_eq!(
            parse_mem_available("MemTotal: 100 kB\nMemAvailable:   4321 kB\n"),
            Some(4321)
        );
        assert_eq!(parse_mem_available("MemTotal: 100 kB\n"), None);
    }

    #[test]
    fn collect_reads_this_machine() {
        let h = collect();
        assert_eq!(h.status, "ok");
        assert!(!h.hostname.is_empty());
        assert!(h.mem_available_kib.is_some());
    }
}
