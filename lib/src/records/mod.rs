//! The records that cross a tool boundary: what one tool prints or stores
//! and another reads. Writer and reader use the same type, so they cannot
//! drift; readers that must be strict refuse unknown fields. Stored records
//! carry a `schema`.
//!
//! Each type lists its field names (`fields::<T>()`), which the man-page
//! test compares with the RECORDS sections.

pub mod fanout;
pub mod fields;
pub mod gc;
pub mod health;
pub mod hostkeys;
pub mod image;
pub mod net;
pub mod snapshot;
pub mod vm;
pub mod vmm;

pub use fanout::FanoutLine;
pub use fields::fields;
pub use gc::GcLine;
pub use health::HealthLine;
pub use hostkeys::{AgentHostKeys, PinLine};
pub use image::{ImageLine, ImageRecord};
pub use net::{DnsLine, Forward, Lease, Proto, TapLine};
pub use vm::{
    Disks, ForwardLine, InitRun, Pending, PortForward, SuspendInfo, VmLine, VmRecord, VmState,
};
pub use vmm::{
    FdLine, ProcessLine, RequestLine, SnapshotDisk, SnapshotLine, StopLine, SuspendLine,
};
