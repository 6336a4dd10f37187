//! Datagram protocols: UDP sockets (`udp.rs`), and the DNS (`dns.rs`) and
//! SNTP (`sntp.rs`) clients that run as modes of a UDP socket in the same
//! loop. One protocol is registered with the core: [`Udp`].

pub mod dns;
pub mod sntp;
pub mod udp;

pub use udp::Udp;
