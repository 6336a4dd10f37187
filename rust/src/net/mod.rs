//! Networking beside HTTP that is not a connection protocol of its own:
//! timers owned by a manager (`timer.rs`) and messages posted into a
//! manager from other threads (`post.rs`).
//!
//! Depends on `crate::core` only.

pub mod post;
pub mod timer;
