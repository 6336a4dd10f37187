//! Networking beside HTTP, each on the core only:
//! - datagram protocols: UDP sockets (`udp.rs`), and the DNS (`dns.rs`) and
//!   SNTP (`sntp.rs`) clients that run as modes of a UDP socket in the same
//!   loop; one protocol is registered with the core: [`Udp`];
//! - timers owned by a manager (`timer.rs`) and messages posted into a
//!   manager from other threads (`post.rs`), which are not connection
//!   protocols.

pub mod dns;
pub mod post;
pub mod sntp;
pub mod timer;
pub mod udp;

pub use udp::Udp;
