//! The VM's address and state, from the record banger-vm keeps at
//! vms_dir()/NAME/vm.json (read as plain JSON: banger-vm owns its type).

use banger_lib::{names, paths, state, Error, Result};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub struct Vm {
    pub name: String,
    pub state: String,
    pub ip: Option<String>,
}

impl Vm {
    pub fn load(name: &str) -> Result<Vm> {
        names::validate("VM", name)?;
        let path = paths::vms_dir().join(name).join("vm.json");
        let rec: Value = state::load(&path)?.ok_or_else(|| {
            Error::not_found(format!("no VM named {name}"))
                .with_hint("list VMs with: banger vm list")
        })?;
        Ok(Vm {
            name: name.to_string(),
            state: rec
                .get("state")
                .and_then(Value::as_str)
                .unwrap_or("unknown")
                .to_string(),
            ip: rec
                .get("ip")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        })
    }

    /// The address of a running VM; exit 5 otherwise, as banger-vm does.
    pub fn running_ip(&self) -> Result<&str> {
        if self.state != "running" {
            return Err(
                Error::conflict(format!("{} is {}, not running", self.name, self.state))
                    .with_hint(format!("start it with: banger vm start {}", self.name)),
            );
        }
        self.ip()
            .map_err(|e| e.with_hint(format!("see: banger vm show {}", self.name)))
    }

    pub fn ip(&self) -> Result<&str> {
        self.ip
            .as_deref()
            .ok_or_else(|| Error::failed(format!("{}'s record has no ip", self.name)))
    }
}
