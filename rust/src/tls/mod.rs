//! TLS for every protocol: a rustls backend behind Mongoose's
//! `MG_TLS_CUSTOM` API (`conn.rs`) and the settings it runs with
//! (`config.rs`: one server configuration per listener, client
//! configurations shared per settings). It reaches the core only as a
//! [`crate::core::transport::Transport`]; no protocol knows about it.

pub mod config;
pub mod conn;

pub use config::{ClientTls, ServerTls, Spec};
