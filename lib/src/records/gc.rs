//! What `banger-vm gc` prints, one line per leftover it finds (and
//! banger-doctor counts): `{"what","vm","detail","removed","error"?}`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcLine {
    /// What was found: `unfinished-create` (a record a killed create left),
    /// `vm-dir` (a VM dir without a record), `run-dir` (a runtime dir
    /// without a record), `lease` (a lease without a record).
    pub what: String,
    /// The VM name it belongs to.
    pub vm: String,
    /// Where it is: a path, or the lease's TAP and address.
    pub detail: String,
    /// Whether gc removed it (false with --dry-run, or when it failed).
    pub removed: bool,
    /// Why removing it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
