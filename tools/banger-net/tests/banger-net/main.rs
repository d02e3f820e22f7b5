//! banger-net's integration tests. One binary per crate: each links the
//! whole dependency tree, and linking is most of an incremental test build.

mod cli;
mod common;
#[cfg(feature = "fault-injection")]
mod fault;
mod forward;
mod gc;
mod isolation;
mod man;
mod net;
