//! A transport under a connection's protocol (a protocol-free facility of
//! the core): TLS today. The core knows it only through [`Transport`]: a
//! listener may carry one, started on every connection it accepts, and an
//! outbound connection may carry one, started once it connects. What the
//! transport does with the bytes happens behind Mongoose's `mg_tls_*` calls
//! (`MG_TLS_CUSTOM`), which the transport's module implements.
//!
//! Two hand-offs the core needs from a transport, both protocol-free:
//! - [`note_pending`]: input the transport already holds (decrypted bytes
//!   that did not fit, records read ahead) must be read by another poll even
//!   though the socket has nothing more; the core then does not sleep.
//! - [`end_stream`]: a graceful close (the core's lingering close) ends the
//!   transport's stream first (TLS `close_notify`).

use std::any::Any;
use std::cell::Cell;

use crate::sys;

/// A transport's settings, shared by the connections it is started on.
pub trait Transport {
    /// Starts the transport on `c`, a connection just accepted (inside
    /// Mongoose's accept) or just connected. An error closes only `c`.
    ///
    /// # Safety
    /// `c` is a live connection.
    unsafe fn start(&self, c: *mut sys::mg_connection) -> Result<(), String>;

    /// For typed access (e.g. replacing a listener's settings).
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

/// Index in `mg_connection.data` of the "end the stream" mark (the slot
/// takes bytes 0..4, sys_io's marks 4, 5 and 8): the transport's next flush
/// ends its stream (see [`end_stream`]).
pub const DATA_END_STREAM: usize = 6;

/// Index in `mg_connection.data` of "reads were paused during the
/// handshake": a handshake needs its reads, so [`super::sys_io::set_read_paused`]
/// defers a pause until [`handshake_done`].
pub const DATA_PAUSE_AFTER_HANDSHAKE: usize = 7;

/// Index in `mg_connection.data` of a transport's "nothing to do" mark:
/// set by the transport when it holds no input and no output, cleared when
/// it is entered for I/O. Mongoose visits every connection's transport on
/// every poll (`mg_tls_pending`, `mg_tls_flush`); with the mark set those
/// visits read only the connection, not the transport's state. Measured at
/// TLS keep-alive, 100 connections (`perf record`): the two went from 2.3 %
/// to 0.6 % of the server's CPU, but Mongoose's own walk (`mg_iotest`,
/// `mg_mgr_poll`) rose from 1.8 % to 3.1 %, now taking the cache misses of
/// visiting 100 connections: 4.3 % → 3.9 % in all.
pub const DATA_TRANSPORT_IDLE: usize = 9;

thread_local! {
    /// A transport holds input that needs another poll (see [`note_pending`]).
    static PENDING: Cell<bool> = const { Cell::new(false) };
}

/// Called by a transport that holds input the socket will not announce again.
pub fn note_pending() {
    PENDING.with(|p| p.set(true));
}

/// Takes the mark set by [`note_pending`] since the last call.
pub fn take_pending() -> bool {
    PENDING.with(|p| p.replace(false))
}

/// True while the mark set by [`note_pending`] is up.
pub fn pending() -> bool {
    PENDING.with(|p| p.get())
}

/// Ends the transport's stream of `c` (for TLS: sends `close_notify`) before
/// the core half-closes the socket. No-op for a connection without one.
///
/// # Safety
/// `c` is a live connection.
pub unsafe fn end_stream(c: *mut sys::mg_connection) {
    if (*c).is_tls() != 0 && (*c).is_tls_hs() == 0 {
        (*c).data[DATA_END_STREAM] = 1;
        sys::mg_tls_flush(c);
    }
}

/// Called by a transport when its handshake completed: applies a read pause
/// asked for during it (a protocol closing or pausing a connection before
/// the handshake ended).
///
/// # Safety
/// `c` is a live connection.
pub unsafe fn handshake_done(c: *mut sys::mg_connection) {
    if (*c).data[DATA_PAUSE_AFTER_HANDSHAKE] != 0 {
        (*c).data[DATA_PAUSE_AFTER_HANDSHAKE] = 0;
        super::sys_io::set_read_paused(c, true);
    }
}
