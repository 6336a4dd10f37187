//! The WebSocket protocol (RFC 6455, with permessage-deflate, RFC 7692):
//! framing and its checks (`frame.rs`), the opening handshake
//! (`handshake.rs`), the protocol registered with the core (`socket.rs`:
//! server sockets upgraded from HTTP, client sockets), compression
//! (`deflate.rs`) and the event records (`record.rs`).
//!
//! Depends on `crate::core` only; Mongoose's own WebSocket code is not used.

pub mod deflate;
pub mod frame;
pub mod handshake;
pub mod record;
pub mod socket;

pub use socket::{
    Options, WsProtocol, DEFAULT_CLOSE_TIMEOUT_MS, DEFAULT_MAX_BUFFERED, DEFAULT_MAX_MESSAGE, OPT_DEFLATE,
    OPT_NO_AUTO_PONG,
};
