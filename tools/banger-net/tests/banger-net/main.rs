//! banger-net's integration tests. One binary per crate: each links the
//! whole dependency tree, and linking is most of an incremental test build.

mod cli;
mod common;
mod forward;
mod isolation;
mod man;
mod net;
