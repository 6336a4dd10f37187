//! Raw networking protocols: `tcp://` ([`Tcp`]), with framing done here
//! ([`framing`]).

pub mod framing;
pub mod tcp;

pub use framing::{FrameSpec, Framing, DEFAULT_MAX_FRAME, MAX_MAX_FRAME};
pub use tcp::{Tcp, KIND_TCP_DATA, KIND_TCP_END};
