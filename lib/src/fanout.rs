//! Verbs over several names (`vm stop a b c`, `health check a b`): one
//! thread per name, one result line per name as it finishes
//! (`records::FanoutLine`), each failure also reported on stderr; exit 1
//! if any failed, or with one name that failure's own code.

use crate::records::FanoutLine;
use crate::{error, output::emit, Result};
use serde::Serialize;

/// Run `op` on every name (duplicates once), concurrently.
pub fn run<T: Serialize>(
    tool: &str,
    names: &[String],
    op: impl Fn(&str) -> Result<T> + Sync,
) -> i32 {
    let mut unique: Vec<&String> = Vec::new();
    for n in names {
        if !unique.contains(&n) {
            unique.push(n);
        }
    }
    let codes: Vec<i32> = std::thread::scope(|s| {
        let handles: Vec<_> = unique
            .iter()
            .map(|name| {
                let op = &op;
                s.spawn(move || report(tool, name, op(name)))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(1)).collect()
    });
    exit_code(&codes)
}

/// One name: its code; several: 1 if any failed.
pub fn exit_code(codes: &[i32]) -> i32 {
    match codes {
        [one] => *one,
        all if all.iter().any(|c| *c != 0) => 1,
        _ => 0,
    }
}

fn report<T: Serialize>(tool: &str, name: &str, r: Result<T>) -> i32 {
    match r {
        Ok(v) => {
            emit(&FanoutLine::ok(name, v));
            0
        }
        Err(e) => {
            error::report(tool, e.kind, &e.message, e.hint.as_deref());
            emit(&FanoutLine::failed(name, &e.message));
            e.exit_code()
        }
    }
}
