//! Transport pieces of outbound connections ([`Core::connect`]), shared by
//! every protocol that connects out: TLS settings (Mongoose's built-in
//! TLS), the wall clock TLS needs, and the reason a connect failed.
//!
//! [`Core::connect`]: super::manager::Core::connect

use std::ffi::{c_int, c_void};

use crate::sys;

/// TLS settings of an outbound connection.
pub struct ClientTls {
    /// Server name for SNI and certificate verification.
    name: Vec<u8>,
    /// Trusted CA certificates (PEM or DER); empty: none given.
    ca: Vec<u8>,
    /// Skip certificate and host name verification.
    insecure: bool,
}

impl ClientTls {
    /// Copies the settings. Each buffer keeps a NUL after its bytes:
    /// `mg_tls_init` copies the name with `strncpy`, which reads on to a
    /// NUL (AddressSanitizer caught it reading past an unterminated name).
    pub fn new(name: &[u8], ca: &[u8], insecure: bool) -> ClientTls {
        let terminated = |b: &[u8]| {
            let mut v = Vec::with_capacity(b.len() + 1);
            v.extend_from_slice(b);
            v.push(0);
            v
        };
        ClientTls {
            name: terminated(name),
            ca: terminated(ca),
            insecure,
        }
    }

    /// Starts TLS on a connection that just connected (OPEN follows the
    /// handshake).
    ///
    /// # Safety
    /// `c` is a live connection.
    pub(super) unsafe fn init(&self, c: *mut sys::mg_connection) {
        let opts = sys::mg_tls_opts {
            ca: mg_str(&self.ca),
            name: mg_str(&self.name),
            skip_verification: self.insecure,
            ..Default::default()
        };
        sys::mg_tls_init(c, &opts);
    }
}

/// An `mg_str` over a NUL-terminated buffer, the NUL not counted.
fn mg_str(b: &[u8]) -> sys::mg_str {
    sys::mg_str {
        buf: b.as_ptr() as *mut libc::c_char,
        len: b.len().saturating_sub(1),
    }
}

/// Lets built-in TLS verify certificate dates against the system clock
/// instead of asking an SNTP server first (Mongoose's default for devices
/// without a clock; this process has one).
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
