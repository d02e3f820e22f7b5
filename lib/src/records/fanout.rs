//! The line a verb over several names prints per name (`vm stop a b`,
//! `health check a b`): `{"name","ok","error"?, ...the verb's own fields}`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FanoutLine {
    pub name: String,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The verb's own fields (`state`, `clean`, ...), after the three above.
    #[serde(flatten)]
    pub fields: Map<String, Value>,
}

impl FanoutLine {
    /// A success line with the fields of `value` (an object; `name`, `ok`
    /// and `error` in it are ours and dropped).
    pub fn ok(name: &str, value: impl Serialize) -> FanoutLine {
        let mut fields = match serde_json::to_value(value) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        for k in ["name", "ok", "error"] {
            fields.remove(k);
        }
        FanoutLine {
            name: name.into(),
            ok: true,
            error: None,
            fields,
        }
    }

    pub fn failed(name: &str, error: &str) -> FanoutLine {
        FanoutLine {
            name: name.into(),
            ok: false,
            error: Some(error.into()),
            fields: Map::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ok_keeps_the_verbs_fields_after_ours() {
        let l = FanoutLine::ok("box", serde_json::json!({"state": "stopped", "name": "x"}));
        assert_eq!(
            serde_json::to_string(&l).unwrap(),
            r#"{"name":"box","ok":true,"state":"stopped"}"#
        );
        let f = FanoutLine::failed("web", "no VM named web");
        assert_eq!(
            serde_json::to_string(&f).unwrap(),
            r#"{"name":"web","ok":false,"error":"no VM named web"}"#
        );
    }
}
