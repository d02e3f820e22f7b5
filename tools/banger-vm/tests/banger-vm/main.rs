//! banger-vm's integration tests. One binary per crate: each links the
//! whole dependency tree, and linking is most of an incremental test build.

mod clone;
#[allow(dead_code)]
mod common;
mod console;
mod contract;
mod forward;
mod gc;
mod killed;
mod lifecycle;
mod live;
mod man;
mod trust;
mod with_net;
