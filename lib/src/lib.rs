//! banger-lib: what two or more banger tools need, and nothing else.
//!
//! Paths, the runtime bundle and user config, locked atomic state files,
//! JSON-lines output, errors with exit codes, host facts and host
//! programs, finding and running sibling tools, name validation, process
//! identity, signals and timestamps, the VM spec that banger-vm hands to a
//! VMM driver and the runtime files the drivers keep, polling with a
//! deadline, HTTP over Unix sockets, the host side of the guest agent, and
//! how a driver stops a VM.

pub mod agent;
pub mod config;
pub mod console;
pub mod diskcopy;
pub mod error;
pub mod fanout;
pub mod host;
pub mod hosttools;
pub mod interrupt;
pub mod names;
pub mod output;
pub mod paths;
pub mod proc;
pub mod records;
pub mod run;
pub mod sibling;
pub mod state;
pub mod trust;
pub mod tun;
pub mod uds_http;
pub mod vmm;
pub mod vmmuser;
pub mod vmspec;
pub mod wait;

pub use error::{Error, Kind, Result};
