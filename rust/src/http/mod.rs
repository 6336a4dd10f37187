//! The HTTP protocol: the server (`server.rs` registers as a protocol with
//! the core; `response.rs` is its response queue), request parsing
//! (`parser.rs`; the head in `head.rs`), response framing (`writer.rs`),
//! its event records (`record.rs`), the native response cache (`cache.rs`)
//! and the client's outbound connections (`client.rs`, a second protocol).
//!
//! Depends on `crate::core` only.

pub mod cache;
pub mod client;
mod head;
pub mod parser;
pub mod record;
mod response;
pub mod server;
pub mod writer;

pub use client::HttpClient;
pub use parser::{Limits, MAX_HEADERS_CAP};
pub use server::{HttpServer, REPLY_CLOSE, REPLY_OWN_DATE, SEQ_OLDEST};
