//! What `banger-vm gc` and `banger-net gc` print, one line per leftover
//! they find (and banger-doctor counts):
//! `{"what","vm","detail","removed","error"?}`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcLine {
    /// What was found. banger-vm: `unfinished-create` (a record a killed
    /// create left), `vm-dir` (a VM dir without a record), `run-dir` (a
    /// runtime dir without a record), `jail`, `lease` (a lease without a
    /// record), `vmm` (a VMM running under a record that says it is not),
    /// `saved-state` (a suspend's state no record points at), `snapshot`
    /// (a snapshot dir without its record: a killed `vm snapshot`).
    /// banger-net: `intent` (a step a killed command left),
    /// `tap` (a TAP without a lease), `pool-entry`, `nft-element`,
    /// `forwarding`, `tmp-file`, `dns-pid-file`, `dns-tmp-file`.
    pub what: String,
    /// The VM name it belongs to; empty when none is known (a TAP or an
    /// nft element without a lease).
    pub vm: String,
    /// Where it is: a path, or the lease's TAP and address.
    pub detail: String,
    /// Whether gc removed it (false with --dry-run, or when it failed).
    pub removed: bool,
    /// Why removing it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
