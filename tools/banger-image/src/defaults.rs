//! The default image: `default_image` in the user's config.json over the
//! bundle's. Setting it edits only that key of config.json.

use banger_lib::{error::io, paths, state, Error, Result};
use serde_json::{Map, Value};
use std::path::PathBuf;

fn config_path() -> PathBuf {
    paths::config_dir().join("config.json")
}

fn read_config() -> Result<Map<String, Value>> {
    let p = config_path();
    match std::fs::read_to_string(&p) {
        Ok(t) => match serde_json::from_str::<Value>(&t) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(_) | Err(_) => Err(
                Error::usage(format!("{} is not a JSON object", p.display()))
                    .with_hint("fix or remove the file"),
            ),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Map::new()),
        Err(e) => Err(io(format!("reading {}", p.display()), e)),
    }
}

/// The user's own setting, if any (used when no bundle can be loaded).
pub fn from_config() -> Option<String> {
    read_config()
        .ok()?
        .get("default_image")?
        .as_str()
        .map(str::to_string)
}

/// Make NAME the default image; it must exist.
pub fn set(name: &str) -> Result<()> {
    crate::record::load(name)?;
    let p = config_path();
    let _lock = state::lock(&p)?;
    let mut cfg = read_config()?;
    cfg.insert("default_image".into(), Value::String(name.into()));
    state::store(&p, &Value::Object(cfg))
}
