//! Pieces of outbound connections ([`Core::connect`]), shared by every
//! protocol that connects out: the wall clock and the reason a connect
//! failed. (TLS settings are a [`Transport`](super::transport::Transport).)
//!
//! [`Core::connect`]: super::manager::Core::connect

use std::ffi::{c_int, c_void};

use crate::sys;

/// Gives Mongoose's clock a wall-clock origin (its built-in TLS asked an
/// SNTP server for one first; the time it reports stays meaningful).
pub(super) fn set_wall_clock() {
    unsafe {
        if sys::mg_boot_timestamp_ms == 0 {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0);
            sys::mg_boot_timestamp_ms = now.saturating_sub(sys::mg_millis());
        }
    }
}

/// The pending socket error of a connection that has not connected yet.
pub(super) unsafe fn connect_errno(c: *mut sys::mg_connection) -> Option<c_int> {
    if (*c).is_connecting() == 0 && (*c).is_resolving() == 0 {
        return None;
    }
    let mut err: c_int = 0;
    let mut len = std::mem::size_of::<c_int>() as libc::socklen_t;
    let fd = (*c).fd as usize as c_int;
    let rc = libc::getsockopt(
        fd,
        libc::SOL_SOCKET,
        libc::SO_ERROR,
        &mut err as *mut c_int as *mut c_void,
        &mut len,
    );
    (rc == 0 && err != 0).then_some(err)
}
