//! A guest's ssh host keys: what the agent's `GET /hostkeys` answers and
//! what `banger-ssh pin` prints once it has pinned them.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The agent's `GET /hostkeys` answer: one `TYPE BASE64` line per key;
/// empty while the guest has not made its keys yet. A guest's word:
/// banger-ssh checks every line before it pins one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentHostKeys {
    pub keys: Vec<String>,
}

/// What `banger-ssh pin` (and `--rekey`) prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinLine {
    pub name: String,
    /// The address the keys are pinned for.
    pub ip: String,
    /// The pinned keys, `TYPE BASE64` each.
    pub keys: Vec<String>,
    /// The VM's known_hosts file.
    pub known_hosts: PathBuf,
    /// Whether other keys were pinned before (and are now replaced).
    pub replaced: bool,
}
