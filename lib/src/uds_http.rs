//! HTTP/1.1 over a Unix stream socket with ureq: Firecracker's API socket,
//! and the guest agent through the hybrid vsock.
//! (Being written: see banger-fc.)
