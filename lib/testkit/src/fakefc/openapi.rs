//! Firecracker's OpenAPI (Swagger 2.0) document as a request validator:
//! method + path against `paths`, the JSON body against the operation's
//! body schema (`$ref`, `type`, `required`, `enum`, `minimum`/`maximum`,
//! `items`, `additionalProperties`).
//!
//! Objects are closed unless the schema says `additionalProperties: true`:
//! the document never says `false`, but Firecracker itself deserializes
//! every body with `deny_unknown_fields`, so an unknown key is an error
//! there and has to be one here.

use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The loaded document.
#[derive(Debug, Clone)]
pub struct Api {
    doc: Value,
}

/// A matched operation.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    /// The path template, e.g. `/drives/{drive_id}`.
    pub template: String,
    /// Path parameters by name.
    pub params: BTreeMap<String, String>,
    /// The body schema, when the operation takes a body.
    pub body: Option<Value>,
    pub body_required: bool,
}

/// Where the document is: `BANGER_FC_OPENAPI`, else
/// `../shared/firecracker/firecracker.yaml` beside the workspace.
pub fn default_path() -> PathBuf {
    match std::env::var_os("BANGER_FC_OPENAPI").filter(|v| !v.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => crate::shared_dir().join("firecracker/firecracker.yaml"),
    }
}

/// YAML allows integer keys (`200:` under `responses`); JSON does not.
fn yaml_to_json(v: yaml_serde::Value) -> Value {
    use yaml_serde::Value as Y;
    match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::from(n.as_f64().unwrap_or(0.0))
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(s) => Value::Array(s.into_iter().map(yaml_to_json).collect()),
        Y::Mapping(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let key = match k {
                    Y::String(s) => s,
                    other => yaml_serde::to_string(&other)
                        .unwrap_or_default()
                        .trim()
                        .to_string(),
                };
                out.insert(key, yaml_to_json(v));
            }
            Value::Object(out)
        }
        Y::Tagged(t) => yaml_to_json(t.value),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

impl Api {
    pub fn load(path: &Path) -> Result<Api, String> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            format!(
                "reading the Firecracker API document {}: {e}",
                path.display()
            )
        })?;
        Api::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Api, String> {
        let y: yaml_serde::Value = yaml_serde::from_str(text).map_err(|e| e.to_string())?;
        let doc = yaml_to_json(y);
        if !doc["paths"].is_object() || !doc["definitions"].is_object() {
            return Err("not a Swagger 2.0 document with paths and definitions".into());
        }
        Ok(Api { doc })
    }

    /// The API version the document describes (`info.version`).
    pub fn version(&self) -> &str {
        self.doc["info"]["version"].as_str().unwrap_or("")
    }

    /// Match `METHOD path` (query string ignored) to an operation.
    pub fn operation(&self, method: &str, path: &str) -> Result<Operation, String> {
        let path = path.split('?').next().unwrap_or(path);
        let segs: Vec<&str> = path.split('/').collect();
        let paths = self.doc["paths"].as_object().expect("checked in parse");
        for (template, ops) in paths {
            let tsegs: Vec<&str> = template.split('/').collect();
            if tsegs.len() != segs.len() {
                continue;
            }
            let mut params = BTreeMap::new();
            let matched = tsegs.iter().zip(&segs).all(|(t, s)| {
                if let Some(name) = t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
                    params.insert(name.to_string(), s.to_string());
                    !s.is_empty()
                } else {
                    t == s
                }
            });
            if !matched {
                continue;
            }
            let Some(op) = ops.get(method.to_ascii_lowercase()) else {
                return Err(format!(
                    "Invalid request method and/or path: {method} {path} (the API has no {method} on {template})"
                ));
            };
            let mut body = None;
            let mut body_required = false;
            for p in op["parameters"].as_array().into_iter().flatten() {
                if p["in"] == "body" {
                    body = Some(p["schema"].clone());
                    body_required = p["required"].as_bool().unwrap_or(false);
                }
            }
            return Ok(Operation {
                template: template.clone(),
                params,
                body,
                body_required,
            });
        }
        Err(format!(
            "Invalid request method and/or path: {method} {path}"
        ))
    }

    /// Check a whole request. `body` is None when the request had none.
    pub fn check(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Operation, String> {
        let op = self.operation(method, path)?;
        match (&op.body, body) {
            (Some(schema), Some(b)) => self.validate(schema, b, "body")?,
            (Some(_), None) if op.body_required => {
                return Err(format!("{method} {path}: a JSON body is required"))
            }
            (None, Some(_)) => {
                return Err(format!("{method} {path}: this operation takes no body"))
            }
            _ => {}
        }
        Ok(op)
    }

    fn resolve<'a>(&'a self, schema: &'a Value) -> Result<&'a Value, String> {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let name = r
                    .strip_prefix("#/definitions/")
                    .ok_or_else(|| format!("unsupported $ref {r}"))?;
                let def = &self.doc["definitions"][name];
                if def.is_null() {
                    return Err(format!("dangling $ref {r}"));
                }
                self.resolve(def)
            }
            None => Ok(schema),
        }
    }

    /// Validate `v` against `schema`; `at` names the place for messages
    /// (`body.drives[0].path_on_host`).
    pub fn validate(&self, schema: &Value, v: &Value, at: &str) -> Result<(), String> {
        let s = self.resolve(schema)?;
        if let Some(choices) = s.get("enum").and_then(Value::as_array) {
            if !choices.contains(v) {
                return Err(format!(
                    "{at}: {v} is not one of {}",
                    Value::from(choices.clone())
                ));
            }
        }
        let ty =
            s.get("type")
                .and_then(Value::as_str)
                .unwrap_or(if s.get("properties").is_some() {
                    "object"
                } else {
                    ""
                });
        let actual = type_name(v);
        let type_ok = match ty {
            "" => true,
            "number" => matches!(actual, "number" | "integer"),
            t => t == actual,
        };
        if !type_ok {
            return Err(format!("{at}: expected {ty}, got {actual} {v}"));
        }
        match v {
            Value::Number(n) => {
                let x = n.as_f64().unwrap_or(0.0);
                if let Some(min) = s.get("minimum").and_then(Value::as_f64) {
                    if x < min {
                        return Err(format!("{at}: {n} is below the minimum {min}"));
                    }
                }
                if let Some(max) = s.get("maximum").and_then(Value::as_f64) {
                    if x > max {
                        return Err(format!("{at}: {n} is above the maximum {max}"));
                    }
                }
                let fits = match s.get("format").and_then(Value::as_str) {
                    Some("int32") => n.as_i64().is_some_and(|i| i32::try_from(i).is_ok()),
                    Some("int64") => n.as_i64().is_some(),
                    _ => true,
                };
                if !fits {
                    return Err(format!("{at}: {n} does not fit {}", s["format"]));
                }
            }
            Value::Array(items) => {
                if let Some(item_schema) = s.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        self.validate(item_schema, item, &format!("{at}[{i}]"))?;
                    }
                }
            }
            Value::Object(obj) => self.validate_object(s, obj, at)?,
            _ => {}
        }
        Ok(())
    }

    fn validate_object(&self, s: &Value, obj: &Map<String, Value>, at: &str) -> Result<(), String> {
        let empty = Map::new();
        let props = s
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        for req in s
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = req.as_str().unwrap_or_default();
            if !obj.contains_key(name) {
                return Err(format!("{at}: missing required field `{name}`"));
            }
        }
        for (k, val) in obj {
            let here = format!("{at}.{k}");
            match props.get(k) {
                Some(p) => self.validate(p, val, &here)?,
                None => match s.get("additionalProperties") {
                    Some(Value::Bool(true)) => {}
                    Some(extra @ Value::Object(_)) => self.validate(extra, val, &here)?,
                    _ => {
                        let known: Vec<&str> = props.keys().map(String::as_str).collect();
                        return Err(format!(
                            "{at}: unknown field `{k}` (expected one of: {})",
                            known.join(", ")
                        ));
                    }
                },
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn api() -> Api {
        Api::load(&default_path()).expect("the Firecracker API document")
    }

    #[test]
    fn loads_the_real_document() {
        assert_eq!(api().version(), "1.16.1");
    }

    #[test]
    fn paths_and_methods() {
        let a = api();
        let op = a.operation("PUT", "/drives/rootfs").unwrap();
        assert_eq!(op.template, "/drives/{drive_id}");
        assert_eq!(op.params["drive_id"], "rootfs");
        assert!(op.body_required);
        assert!(a.operation("GET", "/").unwrap().body.is_none());
        assert!(a.operation("GET", "/vm/config").is_ok());
        assert!(a.operation("DELETE", "/drives/rootfs").is_err());
        assert!(a.operation("PUT", "/drives/").is_err());
        assert!(a.operation("PUT", "/nonsense").is_err());
        assert!(a.operation("PUT", "/drives/a/b").is_err());
    }

    #[test]
    fn good_bodies_pass() {
        let a = api();
        for (m, p, b) in [
            (
                "PUT",
                "/machine-config",
                json!({"vcpu_count": 2, "mem_size_mib": 512}),
            ),
            (
                "PUT",
                "/boot-source",
                json!({"kernel_image_path": "/k", "boot_args": "console=ttyS0"}),
            ),
            (
                "PUT",
                "/drives/rootfs",
                json!({"drive_id": "rootfs", "path_on_host": "/r", "is_root_device": true, "is_read_only": false}),
            ),
            (
                "PUT",
                "/network-interfaces/eth0",
                json!({"iface_id": "eth0", "host_dev_name": "tap0", "guest_mac": "06:00:00:00:00:01"}),
            ),
            (
                "PUT",
                "/vsock",
                json!({"guest_cid": 3, "uds_path": "/v.sock"}),
            ),
            ("PUT", "/actions", json!({"action_type": "InstanceStart"})),
            ("PATCH", "/vm", json!({"state": "Paused"})),
            (
                "PUT",
                "/logger",
                json!({"level": "Info", "show_level": true}),
            ),
            ("PUT", "/serial", json!({"serial_out_path": "/c.log"})),
            (
                "PUT",
                "/snapshot/create",
                json!({"snapshot_type": "Full", "snapshot_path": "/s", "mem_file_path": "/m"}),
            ),
            (
                "PUT",
                "/snapshot/load",
                json!({"snapshot_path": "/s", "mem_backend": {"backend_type": "File", "backend_path": "/m"}, "resume_vm": true}),
            ),
            ("PUT", "/mmds", json!({"anything": {"goes": [1, 2]}})),
        ] {
            a.check(m, p, Some(&b))
                .unwrap_or_else(|e| panic!("{m} {p}: {e}"));
        }
    }

    #[test]
    fn bad_bodies_fail_with_a_reason() {
        let a = api();
        let bad = |m: &str, p: &str, b: Value, why: &str| {
            let e = a.check(m, p, Some(&b)).unwrap_err();
            assert!(e.contains(why), "{m} {p} {b}: {e}");
        };
        bad(
            "PUT",
            "/machine-config",
            json!({"vcpu_count": 2}),
            "mem_size_mib",
        );
        bad(
            "PUT",
            "/machine-config",
            json!({"vcpu_count": 0, "mem_size_mib": 1}),
            "minimum",
        );
        bad(
            "PUT",
            "/machine-config",
            json!({"vcpu_count": "2", "mem_size_mib": 1}),
            "expected integer",
        );
        bad(
            "PUT",
            "/machine-config",
            json!({"vcpu_count": 1, "mem_size_mib": 1, "ht_enabled": true}),
            "unknown field `ht_enabled`",
        );
        bad(
            "PUT",
            "/actions",
            json!({"action_type": "Reboot"}),
            "not one of",
        );
        bad("PATCH", "/vm", json!({"state": "Running"}), "not one of");
        bad(
            "PUT",
            "/vsock",
            json!({"guest_cid": 2, "uds_path": "/v"}),
            "minimum",
        );
        bad(
            "PUT",
            "/drives/rootfs",
            json!({"drive_id": "rootfs", "is_root_device": true, "rate_limiter": {"ops": {"size": 1}}}),
            "refill_time",
        );
        bad(
            "PUT",
            "/drives/x",
            json!({"drive_id": "x", "is_root_device": "yes"}),
            "body.is_root_device",
        );
        let e = a.check("PUT", "/actions", None).unwrap_err();
        assert!(e.contains("body is required"), "{e}");
        let e = a.check("GET", "/", Some(&json!({}))).unwrap_err();
        assert!(e.contains("no body"), "{e}");
    }
}
