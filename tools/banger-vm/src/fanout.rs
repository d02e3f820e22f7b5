//! Verbs over several VMs: one thread per VM, one result line per VM as it
//! finishes, exit 1 if any failed (with one VM, that failure's own code).

use banger_lib::{names, output::emit, Result};
use serde_json::{json, Map, Value};

pub fn run(vms: &[String], op: impl Fn(&str) -> Result<Value> + Sync) -> i32 {
    let mut unique: Vec<&String> = Vec::new();
    for n in vms {
        if !unique.contains(&n) {
            unique.push(n);
        }
    }
    let codes: Vec<i32> = std::thread::scope(|s| {
        let handles: Vec<_> = unique
            .iter()
            .map(|name| {
                let op = &op;
                s.spawn(move || {
                    let r = names::validate("VM", name).and_then(|_| op(name));
                    report(name, r)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(1)).collect()
    });
    match codes.as_slice() {
        [one] => *one,
        all if all.iter().any(|c| *c != 0) => 1,
        _ => 0,
    }
}

fn report(name: &str, r: Result<Value>) -> i32 {
    let mut line = Map::new();
    line.insert("name".into(), json!(name));
    match r {
        Ok(v) => {
            line.insert("ok".into(), json!(true));
            if let Value::Object(m) = v {
                for (k, v) in m {
                    if k != "name" {
                        line.insert(k, v);
                    }
                }
            }
            emit(&Value::Object(line));
            0
        }
        Err(e) => {
            eprintln!("banger-vm: error: {e}");
            if let Some(h) = &e.hint {
                eprintln!("hint: {h}");
            }
            line.insert("ok".into(), json!(false));
            line.insert("error".into(), json!(e.message));
            emit(&Value::Object(line));
            e.exit_code()
        }
    }
}
