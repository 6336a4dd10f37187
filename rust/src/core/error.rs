//! Status codes returned across the C ABI and the thread's last error text.
//!
//! Every export returns an integer: `>= 0` is success (often a count), a
//! negative value is one of [`Status`]. The message of the most recent
//! failure on the calling thread is kept for `mgnet_last_error`.

use std::cell::RefCell;

/// Negative status codes of the C ABI. Mirrored by `src/errors.ts`.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// The manager handle is unknown or already freed.
    BadHandle = -1,
    /// The connection is closed (or never existed).
    Closed = -2,
    /// An argument is out of range or malformed.
    Invalid = -3,
    /// The call does not fit the connection's state (e.g. answering a
    /// request twice).
    State = -4,
    /// An operating-system call failed.
    Io = -5,
    /// A bug: a Rust panic was caught at the ABI boundary.
    Panic = -6,
    /// Memory could not be allocated.
    NoMem = -7,
}

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Records `msg` as the last error and returns the status as an `i32`.
pub fn fail(status: Status, msg: impl Into<String>) -> i32 {
    let msg = msg.into();
    LAST_ERROR.with(|e| *e.borrow_mut() = msg);
    status as i32
}

/// Copies the last error message into `out` (truncated), returns its full length.
pub fn last_error_into(out: &mut [u8]) -> usize {
    LAST_ERROR.with(|e| {
        let e = e.borrow();
        let n = e.len().min(out.len());
        out[..n].copy_from_slice(&e.as_bytes()[..n]);
        e.len()
    })
}
