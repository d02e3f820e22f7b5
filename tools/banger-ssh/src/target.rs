//! The VM's address and state, from banger-vm's record through
//! banger_lib's read-only view (typed, never parsed here), or given on the
//! command line by a caller that has them (banger-vm's `wait --ip`).

use banger_lib::agent::Endpoint;
use banger_lib::records::{vm, VmState};
use banger_lib::{names, Error, Result};

#[derive(Debug, Clone, PartialEq)]
pub struct Vm {
    pub name: String,
    pub state: VmState,
    pub ip: Option<String>,
    /// Where its guest agent answers (for its host keys).
    pub agent: Option<Endpoint>,
}

impl Vm {
    pub fn load(name: &str) -> Result<Vm> {
        let rec = vm::view(name)?;
        Ok(Vm {
            name: name.to_string(),
            state: rec.state,
            ip: rec.ip.filter(|s| !s.is_empty()),
            agent: rec.agent,
        })
    }

    /// A running VM at `ip`, as its caller says, without a record.
    pub fn at(name: &str, ip: &str) -> Result<Vm> {
        names::validate("VM", name)?;
        Ok(Vm {
            name: name.to_string(),
            state: VmState::Running,
            ip: Some(ip.to_string()),
            agent: None,
        })
    }

    /// The address of a running VM; exit 5 otherwise, as banger-vm does.
    pub fn running_ip(&self) -> Result<&str> {
        if self.state != VmState::Running {
            return Err(Error::conflict(format!(
                "{} is {}, not running",
                self.name,
                self.state.word()
            ))
            .with_hint(format!("start it with: banger vm start {}", self.name)));
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
