//! The protocol-free core: the Mongoose manager and its poll loop
//! (`manager.rs`), raw system calls and buffer helpers (`sys_io.rs`), the
//! event batch encoding (`event.rs`), output queued behind a send buffer
//! (`overflow.rs`), outbound connect errors (`outbound.rs`), the transport
//! seam TLS plugs into (`transport.rs`), status codes (`error.rs`), the
//! seam protocols implement (`protocol.rs`) and the metric families every
//! layer describes its counters with (`metrics.rs`).
//!
//! Nothing here refers to a protocol module; protocols build on this.

pub mod error;
pub mod event;
pub mod manager;
pub mod metrics;
pub mod outbound;
pub mod overflow;
pub mod protocol;
pub mod sys_io;
#[cfg(test)]
mod tests;
pub mod transport;
pub mod watcher;

pub use manager::Core;
pub use protocol::Protocol;
