//! banger-fc's integration tests. One binary per crate: each links the whole
//! dependency tree, and linking is most of an incremental test build.

mod clone;
mod common;
mod console;
mod fake;
mod jailer;
mod live;
mod man;
mod stop;
mod trust;
