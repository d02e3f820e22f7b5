//! banger's integration tests. One binary per crate: each links the whole
//! dependency tree, and linking is most of an incremental test build.

mod dispatcher;
mod man;
mod plumbing;

// The clap definition, for the man page test. It names `crate::tools`, so
// both sit at the crate root, as in the binary.
#[path = "../../src/cli.rs"]
#[allow(dead_code)]
mod cli;
#[path = "../../src/tools.rs"]
#[allow(dead_code)]
mod tools;
