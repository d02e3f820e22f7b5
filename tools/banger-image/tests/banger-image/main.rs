//! banger-image's integration tests. One binary per crate: each links the whole
//! dependency tree, and linking is most of an incremental test build.

mod boot;
mod bundle;
mod bundle_unsafe;
mod cli;
mod common;
mod live;
mod man;
mod scripts;
