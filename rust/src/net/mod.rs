//! Networking beside HTTP, each on the core only:
//! - raw TCP: `tcp://` ([`Tcp`], `tcp.rs`) with its framing done here
//!   (`framing.rs`);
//! - datagram protocols: UDP sockets (`udp.rs`), and the DNS (`dns.rs`) and
//!   SNTP (`sntp.rs`) clients that run as modes of a UDP socket in the same
//!   loop ([`Udp`]);
//! - timers owned by a manager (`timer.rs`) and messages posted into a
//!   manager from other threads (`post.rs`), which are not connection
//!   protocols.

pub mod dns;
pub mod framing;
pub mod post;
pub mod sntp;
pub mod tcp;
pub mod timer;
pub mod udp;

pub use framing::{FrameSpec, Framing, DEFAULT_MAX_FRAME, MAX_MAX_FRAME};
pub use tcp::{Tcp, KIND_TCP_DATA, KIND_TCP_END};
pub use udp::Udp;
