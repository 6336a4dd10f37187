//! Outbound connections: plain TCP or TLS (Mongoose's built-in TLS) to an
//! address JS has already resolved. Their bytes cross to JS raw (DATA
//! events), where the HTTP client parses them; JS writes with `send`.
//!
//! Events: OPEN (listener id 0) once connected (for TLS: once the
//! handshake is done), DATA for received bytes, ERROR, CLOSE.

use std::ffi::{c_int, c_void, CStr};
use std::ptr;

use super::{guard, set_slot_of, slot_of, Kind, Manager};
use crate::error::{fail, Status};
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
}

/// State of an outbound connection.
pub struct ClientConn {
    tls: Option<ClientTls>,
    /// Received bytes JS has not consumed yet; reading pauses above
    /// [`UNACKED_HIGH`] and resumes at [`UNACKED_LOW`].
    unacked: usize,
    /// JS waits until at most this many bytes remain unsent (a DRAIN event).
    drain_at: Option<usize>,
}

impl ClientConn {
    /// True (once) when JS waited for the send buffer to fall to its mark
    /// and `queued` bytes are now below it.
    pub(super) fn drained(&mut self, queued: usize) -> bool {
        match self.drain_at {
            Some(mark) if queued <= mark => {
                self.drain_at = None;
                true
            }
            _ => false,
        }
    }
}

/// Unconsumed received bytes at which reading an outbound connection pauses...
const UNACKED_HIGH: usize = 1 << 20;
/// ...and resumes.
const UNACKED_LOW: usize = 256 * 1024;

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

impl Manager {
    /// Connects to `addr` (`tcp://IP:port`, `tcp://[IPv6]:port`). Returns
    /// (slot, id); the OPEN or ERROR/CLOSE events follow.
    ///
    /// # Safety
    /// `this` is a live manager, no `&mut` to it is held.
    pub unsafe fn connect(this: *mut Manager, addr: &str, tls: Option<ClientTls>) -> Result<(u32, u64), i32> {
        if !addr.starts_with("tcp://") {
            return Err(fail(Status::Invalid, format!("invalid address {addr:?}")));
        }
        let caddr =
            std::ffi::CString::new(addr).map_err(|_| fail(Status::Invalid, "address contains NUL"))?;
        let c = sys::mg_connect(
            ptr::addr_of_mut!((*this).mgr),
            caddr.as_ptr(),
            Some(on_client),
            this as *mut c_void,
        );
        if c.is_null() {
            return Err(fail(Status::Io, format!("cannot connect to {addr}")));
        }
        let m = &mut *this;
        let id = (*c).id;
        let slot = m.alloc_slot(
            id,
            c,
            Kind::Client(Box::new(ClientConn {
                tls,
                unacked: 0,
                drain_at: None,
            })),
        );
        set_slot_of(c, slot);
        m.needs_poll = true;
        Ok((slot, id))
    }

    /// Queues bytes on an outbound connection. Returns the bytes queued
    /// and not yet sent.
    pub fn send(&mut self, slot: u32, id: u64, data: &[u8]) -> Result<usize, i32> {
        let c = self.conn(slot, id)?;
        if !matches!(self.slots[slot as usize].kind, Kind::Client(_)) {
            return Err(fail(Status::State, "not an outbound connection"));
        }
        unsafe {
            if !sys::mg_send(c, data.as_ptr() as *const c_void, data.len()) {
                return Err(fail(Status::NoMem, "out of memory for the send buffer"));
            }
            self.mark_dirty(slot);
            Ok((*c).send.len)
        }
    }

    /// Asks for a DRAIN event once at most `mark` bytes remain unsent on an
    /// outbound connection. Returns the bytes queued now, or 0 if that is
    /// already the case (no event).
    pub fn client_want_drain(&mut self, slot: u32, id: u64, mark: usize) -> Result<usize, i32> {
        let c = self.conn(slot, id)?;
        let Kind::Client(cl) = &mut self.slots[slot as usize].kind else {
            return Err(fail(Status::State, "not an outbound connection"));
        };
        let queued = unsafe { (*c).send.len };
        if queued <= mark {
            return Ok(0);
        }
        cl.drain_at = Some(mark);
        Ok(queued)
    }

    /// JS consumed `n` received bytes: resume reading once few are left.
    /// Returns whether reading resumed.
    pub fn client_ack(&mut self, slot: u32, id: u64, n: usize) -> Result<bool, i32> {
        let c = self.conn(slot, id)?;
        let Kind::Client(cl) = &mut self.slots[slot as usize].kind else {
            return Err(fail(Status::State, "not an outbound connection"));
        };
        cl.unacked = cl.unacked.saturating_sub(n);
        if cl.unacked <= UNACKED_LOW && unsafe { (*c).is_full() } != 0 {
            super::set_read_paused(c, false);
            self.needs_poll = true;
            return Ok(true);
        }
        Ok(false)
    }

    fn on_client_event(&mut self, c: *mut sys::mg_connection, ev: c_int, ev_data: *mut c_void) {
        let slot = unsafe { slot_of(c) };
        let valid = self
            .slots
            .get(slot as usize)
            .is_some_and(|s| s.c == c && s.id != 0);
        if !valid {
            return; // before `connect` registered it: the CLOSE will still come
        }
        let id = self.slots[slot as usize].id;
        unsafe {
            match ev as u32 {
                sys::MG_EV_CONNECT => {
                    let Kind::Client(cl) = &self.slots[slot as usize].kind else {
                        return;
                    };
                    match &cl.tls {
                        Some(t) => {
                            let opts = sys::mg_tls_opts {
                                ca: mg_str(&t.ca),
                                name: mg_str(&t.name),
                                skip_verification: t.insecure,
                                ..Default::default()
                            };
                            sys::mg_tls_init(c, &opts);
                        }
                        None => self.connected(slot, c),
                    }
                }
                sys::MG_EV_TLS_HS => self.connected(slot, c),
                sys::MG_EV_WRITE => self.after_send(slot),
                sys::MG_EV_READ => {
                    let io = &mut (*c).recv;
                    if io.len > 0 {
                        self.events
                            .data(id, slot, std::slice::from_raw_parts(io.buf, io.len));
                        let n = io.len;
                        io.len = 0;
                        if let Kind::Client(cl) = &mut self.slots[slot as usize].kind {
                            cl.unacked += n;
                            if cl.unacked > UNACKED_HIGH {
                                super::set_read_paused(c, true);
                            }
                        }
                    }
                }
                sys::MG_EV_ERROR => {
                    let msg = if ev_data.is_null() {
                        &b"error"[..]
                    } else {
                        CStr::from_ptr(ev_data as *const libc::c_char).to_bytes()
                    };
                    // A failed connect: say why (refused, unreachable...).
                    match connect_errno(c) {
                        Some(e) => {
                            let why = format!("connect failed: {}", std::io::Error::from_raw_os_error(e));
                            self.events.error(id, slot, why.as_bytes());
                        }
                        None => self.events.error(id, slot, msg),
                    }
                }
                sys::MG_EV_CLOSE => {
                    self.events.close(id, slot);
                    self.release_slot(slot);
                }
                _ => {}
            }
        }
    }

    fn connected(&mut self, slot: u32, c: *mut sys::mg_connection) {
        unsafe {
            let rem = &(*c).rem;
            let loc = &(*c).loc;
            self.events.open(
                (*c).id,
                slot,
                0,
                rem.is_ip6,
                (&super::addr_bytes(rem), u16::from_be(rem.port)),
                (&super::addr_bytes(loc), u16::from_be(loc.port)),
            );
        }
    }
}

/// The pending socket error of a connection that has not connected yet.
unsafe fn connect_errno(c: *mut sys::mg_connection) -> Option<c_int> {
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

/// Event handler of outbound connections.
unsafe extern "C" fn on_client(c: *mut sys::mg_connection, ev: c_int, ev_data: *mut c_void) {
    if ev == sys::MG_EV_POLL as c_int {
        return;
    }
    let m = (*c).fn_data as *mut Manager;
    guard(|| (*m).on_client_event(c, ev, ev_data));
}
