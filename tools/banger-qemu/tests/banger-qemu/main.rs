//! banger-qemu's integration tests. One binary per crate: each links the whole
//! dependency tree, and linking is most of an incremental test build.

mod cli;
mod common;
mod live;
mod live_poweroff;
mod live_stop;
mod man;
