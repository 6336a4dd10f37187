//! Raw networking protocols. `tcp://` ([`Tcp`], `tcp.rs`) with its framing
//! done here (`framing.rs`). Datagram protocols: UDP sockets (`udp.rs`),
//! and the DNS (`dns.rs`) and SNTP (`sntp.rs`) clients that run as modes of
//! a UDP socket in the same loop ([`Udp`]).

pub mod dns;
pub mod framing;
pub mod sntp;
pub mod tcp;
pub mod udp;

pub use framing::{FrameSpec, Framing, DEFAULT_MAX_FRAME, MAX_MAX_FRAME};
pub use tcp::{Tcp, KIND_TCP_DATA, KIND_TCP_END};
pub use udp::Udp;
