//! The output contract: results on stdout as one JSON object per line;
//! porcelain listings as an aligned table when stdout is a terminal.

use serde::Serialize;
use serde_json::Value;
use std::io::{IsTerminal, Write};

/// Write one JSON line to stdout.
pub fn emit<T: Serialize + ?Sized>(value: &T) {
    let mut out = std::io::stdout().lock();
    let line = serde_json::to_string(value).expect("records always serialize");
    // A closed pipe ends the program through SIGPIPE (see run::main).
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Whether porcelain output should be a table: stdout is a terminal and
/// `--json` was not given.
pub fn want_table(force_json: bool) -> bool {
    !force_json && std::io::stdout().is_terminal()
}

/// Print a listing: a table on a terminal, JSON lines otherwise.
/// `columns` are the record keys shown, in order, as (key, header).
pub fn print_list<T: Serialize>(items: &[T], columns: &[(&str, &str)], force_json: bool) {
    if want_table(force_json) {
        let rows: Vec<Value> = items
            .iter()
            .map(|i| serde_json::to_value(i).expect("records always serialize"))
            .collect();
        print!("{}", table(&rows, columns));
    } else {
        for item in items {
            emit(item);
        }
    }
}

/// `print_list`, with `humanize` applied to each row of the table (sizes,
/// times as people read them); JSON lines keep the exact values.
pub fn print_list_human<T: Serialize>(
    items: &[T],
    columns: &[(&str, &str)],
    force_json: bool,
    humanize: impl Fn(&mut Value),
) {
    if !want_table(force_json) {
        return print_list(items, columns, true);
    }
    let rows: Vec<Value> = items
        .iter()
        .map(|i| {
            let mut v = serde_json::to_value(i).expect("records always serialize");
            humanize(&mut v);
            v
        })
        .collect();
    print!("{}", table(&rows, columns));
}

/// Render records as an aligned table, headers upper-cased, missing and
/// null fields as `-`.
pub fn table(rows: &[Value], columns: &[(&str, &str)]) -> String {
    let cell = |row: &Value, key: &str| -> String {
        match row.get(key) {
            None | Some(Value::Null) => "-".into(),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Bool(b)) => if *b { "yes" } else { "no" }.into(),
            Some(v) => v.to_string(),
        }
    };
    let mut grid: Vec<Vec<String>> = vec![columns.iter().map(|(_, h)| h.to_uppercase()).collect()];
    for row in rows {
        grid.push(columns.iter().map(|(k, _)| cell(row, k)).collect());
    }
    let widths: Vec<usize> = (0..columns.len())
        .map(|c| grid.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in grid {
        let mut line = String::new();
        for (c, text) in r.iter().enumerate() {
            if c + 1 == columns.len() {
                line.push_str(text);
            } else {
                line.push_str(&format!("{text:<w$}  ", w = widths[c]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A table cell's duration: `42s`, `5m07s`, `3h04m`, `2d03h`.
pub fn human_duration(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s if s < 86_400 => format!("{}h{:02}m", s / 3600, s / 60 % 60),
        s => format!("{}d{:02}h", s / 86_400, s / 3600 % 24),
    }
}

/// A table cell's size, as `ls -h` prints it: `512B`, `4.0G`, `20M`.
pub fn human_bytes(n: u64) -> String {
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

/// A table cell's time, relative to `now` (Unix seconds), as `podman ps`
/// prints it: `just now`, `3 minutes ago`, `2 days ago`. A time that is not
/// RFC 3339 is shown as it is.
pub fn human_ago(rfc3339: &str, now: u64) -> String {
    let Some(t) = crate::proc::parse_rfc3339(rfc3339) else {
        return rfc3339.to_string();
    };
    let s = now.saturating_sub(t);
    let (n, unit) = match s {
        0..=9 => return "just now".into(),
        10..=59 => (s, "second"),
        60..=3599 => (s / 60, "minute"),
        3600..=86_399 => (s / 3600, "hour"),
        86_400..=2_591_999 => (s / 86_400, "day"),
        2_592_000..=31_535_999 => (s / 2_592_000, "month"),
        _ => (s / 31_536_000, "year"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sizes_and_ages() {
        assert_eq!(human_bytes(512), "512B");
        assert_eq!(human_bytes(4 << 30), "4.0G");
        assert_eq!(human_bytes(2147483648), "2.0G");
        assert_eq!(human_bytes(20 << 20), "20M");
        let t = "2026-01-01T00:00:00Z";
        let base = crate::proc::parse_rfc3339(t).unwrap();
        assert_eq!(human_ago(t, base + 3), "just now");
        assert_eq!(human_ago(t, base + 180), "3 minutes ago");
        assert_eq!(human_ago(t, base + 3600), "1 hour ago");
        assert_eq!(human_ago(t, base + 2 * 86_400), "2 days ago");
        assert_eq!(human_ago("whenever", base), "whenever");
    }

    #[test]
    fn durations() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(59), "59s");
        assert_eq!(human_duration(125), "2m05s");
        assert_eq!(human_duration(7300), "2h01m");
        assert_eq!(human_duration(90_000), "1d01h");
        assert_eq!(human_duration(2 * 86_400 + 3 * 3600 + 5), "2d03h");
    }

    #[test]
    fn table_aligns_and_fills_blanks() {
        let rows = vec![
            json!({"name": "box", "state": "running", "nat": true}),
            json!({"name": "longer-name", "state": null, "nat": false}),
        ];
        let t = table(
            &rows,
            &[("name", "name"), ("state", "state"), ("nat", "nat")],
        );
        assert_eq!(
            t,
            "NAME         STATE    NAT\n\
             box          running  yes\n\
             longer-name  -        no\n"
        );
    }
}
