//! Mongoose's TLS backend API (`MG_TLS_CUSTOM`), implemented with rustls.
//!
//! How Mongoose drives it (mongoose.c 7.23, `read_conn`/`write_conn`/
//! `mg_mgr_poll`): Mongoose reads the socket into `c->rtls` (ciphertext),
//! then calls [`mg_tls_handshake`] while `c->is_tls_hs` is set, else
//! [`mg_tls_recv`] to decrypt into `c->recv`; a positive result becomes
//! MG_EV_READ. It writes `c->send` through [`mg_tls_send`], which returns
//! how much plaintext it took. It calls [`mg_tls_flush`] on every poll of a
//! connection whose `send` is empty, and asks [`mg_tls_pending`] whether
//! plaintext waits (then the connection counts as readable).
//!
//! Here: ciphertext leaves `c->rtls` for rustls at once (rustls keeps
//! partial records), so `rtls` is empty between calls unless rustls'
//! plaintext buffer was full. Plaintext that did not fit into `c->recv` is
//! [`mg_tls_pending`]'s figure and marks the core's transport-pending flag,
//! so the loop polls again instead of sleeping on a socket that has nothing
//! more. Ciphertext the socket did not take stays in rustls; the socket is
//! then registered for EPOLLOUT (Mongoose only does that while `c->send` has
//! bytes) and [`mg_tls_flush`] sends the rest. The handshake ends with
//! MG_EV_TLS_HS; an error calls `mg_error` with rustls' reason (the
//! connection alone closes) after sending the alert.
//!
//! Every function is called from Mongoose's C frames: bodies run under
//! `catch_unwind` (a panic closes the connection, nothing unwinds into C).

use std::ffi::{c_int, c_long, c_void, CString};
use std::io::{self, Read, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};

use rustls::Connection;

use crate::core::sys_io::{half_close_fin, iobuf_consume};
use crate::core::transport::{handshake_done, note_pending, DATA_END_STREAM, DATA_TRANSPORT_IDLE};
use crate::sys;

const IO_ERR: c_long = -1;
const IO_WAIT: c_long = -2;

/// Most plaintext one `mg_tls_send` takes (rustls' own buffer limit, 64 KiB
/// by default, bounds it further).
const SEND_MAX: usize = 256 * 1024;

/// The TLS state of one connection (`c->tls`).
pub struct TlsConn {
    conn: Connection,
    /// Decrypted bytes rustls holds that were not handed to Mongoose yet.
    plain: usize,
    /// The socket is registered for EPOLLOUT for ciphertext rustls holds.
    want_out: bool,
    /// Bytes at the start of `c->send` already encrypted (see [`mg_tls_send`]).
    held: usize,
    /// The peer ended the stream (close_notify): once the plaintext before
    /// it is read, the next read reports the end.
    eof: bool,
}

/// Starts TLS on `c` with a ready rustls connection (server or client).
///
/// # Safety
/// `c` is a live connection without TLS state.
pub unsafe fn attach(c: *mut sys::mg_connection, conn: Connection) {
    let t = Box::new(TlsConn {
        conn,
        plain: 0,
        want_out: false,
        held: 0,
        eof: false,
    });
    (*c).tls = Box::into_raw(t) as *mut c_void;
    (*c).set_is_tls(1);
    (*c).set_is_tls_hs(1);
    (*c).data[DATA_END_STREAM] = 0;
    (*c).data[DATA_TRANSPORT_IDLE] = 0;
}

unsafe fn state<'a>(c: *mut sys::mg_connection) -> Option<&'a mut TlsConn> {
    ((*c).tls as *mut TlsConn).as_mut()
}

/// Writes ciphertext straight to the socket (a raw `sendmsg`: see
/// core/sys_io.rs for why not glibc's).
struct Sock(c_int);

impl Write for Sock {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[io::IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
        msg.msg_iovlen = bufs.len().min(64) as _;
        let n = unsafe {
            libc::syscall(
                libc::SYS_sendmsg,
                self.0,
                &msg as *const libc::msghdr,
                libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reads from a Mongoose I/O buffer, consuming what was read.
struct Rtls(*mut sys::mg_iobuf);

impl Read for Rtls {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        unsafe {
            let io = &mut *self.0;
            let n = io.len.min(out.len());
            std::ptr::copy_nonoverlapping(io.buf, out.as_mut_ptr(), n);
            iobuf_consume(self.0, n);
            Ok(n)
        }
    }
}

fn fd(c: *mut sys::mg_connection) -> c_int {
    unsafe { (*c).fd as usize as c_int }
}

/// Registers the socket for EPOLLOUT (`out`) or not, keeping EPOLLIN unless
/// reads are paused. Level-triggered, as Mongoose registers.
unsafe fn epoll_out(c: *mut sys::mg_connection, out: bool) {
    let mut events = (libc::EPOLLERR | libc::EPOLLHUP) as u32;
    if (*c).is_full() == 0 {
        events |= libc::EPOLLIN as u32;
    }
    if out || (*c).send.len > 0 {
        events |= libc::EPOLLOUT as u32;
    }
    let mut ev = libc::epoll_event {
        events,
        u64: c as u64,
    };
    libc::epoll_ctl((*(*c).mgr).epoll_fd, libc::EPOLL_CTL_MOD, fd(c), &mut ev);
}

/// Sends the ciphertext rustls holds. Ok(true): all of it left.
unsafe fn write_out(c: *mut sys::mg_connection, t: &mut TlsConn) -> io::Result<bool> {
    let mut sock = Sock(fd(c));
    while t.conn.wants_write() {
        match t.conn.write_tls(&mut sock) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let done = !t.conn.wants_write();
    // `want_out` must become `!done`; re-register only on a change.
    if done == t.want_out {
        t.want_out = !done;
        epoll_out(c, t.want_out);
    }
    Ok(done)
}

/// Reports a TLS failure on `c`: MG_EV_ERROR with `why`, and the connection
/// closes.
unsafe fn fail(c: *mut sys::mg_connection, why: &str) {
    if (*c).is_closing() != 0 {
        return;
    }
    // What mg_error does, without its 64-byte message buffer (rustls'
    // reasons are longer).
    let msg = CString::new(why.replace('\0', " ")).unwrap_or_default();
    (*c).set_is_closing(1);
    sys::mg_call(c, sys::MG_EV_ERROR as c_int, msg.as_ptr() as *mut c_void);
}

/// Feeds `c->rtls` to rustls and processes the records. Err: the reason,
/// after the alert went out.
unsafe fn feed(c: *mut sys::mg_connection, t: &mut TlsConn) -> Result<(), String> {
    let rtls = std::ptr::addr_of_mut!((*c).rtls);
    // `read_tls` consumes from `rtls` through the raw pointer.
    #[allow(clippy::while_immutable_condition)]
    while (*rtls).len > 0 {
        match t.conn.read_tls(&mut Rtls(rtls)) {
            Ok(0) => break,
            Ok(_) => {}
            // rustls' plaintext buffer is full: read it out first.
            Err(_) => break,
        }
        match t.conn.process_new_packets() {
            Ok(st) => t.plain = st.plaintext_bytes_to_read(),
            Err(e) => {
                let _ = write_out(c, t);
                return Err(e.to_string());
            }
        }
    }
    Ok(())
}

/// Runs `f` for a connection with TLS state; a panic closes it.
/// Entering one for I/O clears the connection's idle mark
/// ([`DATA_TRANSPORT_IDLE`]); [`mg_tls_flush`] sets it again once nothing is
/// left to read or send.
fn guarded(c: *mut sys::mg_connection, dflt: c_long, f: impl FnOnce(&mut TlsConn) -> c_long) -> c_long {
    catch_unwind(AssertUnwindSafe(|| match unsafe { state(c) } {
        Some(t) => {
            unsafe { (*c).data[DATA_TRANSPORT_IDLE] = 0 };
            f(t)
        }
        None => dflt,
    }))
    .unwrap_or_else(|_| {
        unsafe { fail(c, "TLS: internal error") };
        IO_ERR
    })
}

/// Not used by mgnet (its transports attach TLS themselves, with settings
/// parsed once per listener or client configuration); Mongoose calls it only
/// from code mgnet does not use.
///
/// # Safety
/// `c` is a live connection.
#[no_mangle]
pub unsafe extern "C" fn mg_tls_init(c: *mut sys::mg_connection, _opts: *const sys::mg_tls_opts) {
    fail(c, "TLS: mg_tls_init is not supported by mgnet's TLS backend");
}

/// Frees the connection's TLS state.
///
/// # Safety
/// `c` is a live connection.
#[no_mangle]
pub unsafe extern "C" fn mg_tls_free(c: *mut sys::mg_connection) {
    let p = (*c).tls as *mut TlsConn;
    if !p.is_null() {
        (*c).tls = std::ptr::null_mut();
        let _ = catch_unwind(AssertUnwindSafe(|| drop(Box::from_raw(p))));
    }
}

/// One step of the handshake: reads what arrived, sends what rustls has to
/// say. Ends with MG_EV_TLS_HS, or an error that closes the connection.
///
/// # Safety
/// `c` is a live connection.
#[no_mangle]
pub unsafe extern "C" fn mg_tls_handshake(c: *mut sys::mg_connection) {
    guarded(c, 0, |t| {
        if (*c).is_closing() != 0 {
            return 0;
        }
        if let Err(why) = feed(c, t) {
            fail(c, &format!("TLS handshake failed: {why}"));
            return 0;
        }
        if let Err(e) = write_out(c, t) {
            fail(c, &format!("TLS handshake failed: {e}"));
            return 0;
        }
        if !t.conn.is_handshaking() {
            (*c).set_is_tls_hs(0);
            handshake_done(c);
            sys::mg_call(c, sys::MG_EV_TLS_HS as c_int, std::ptr::null_mut());
            // Application data that came with the last handshake flight, or
            // output queued during the handshake: the next poll takes it.
            if t.plain > 0 || (*c).rtls.len > 0 || (*c).send.len > 0 {
                note_pending();
            }
        }
        0
    });
}

/// Decrypts into `buf`: returns the bytes written, `MG_IO_WAIT` if none are
/// ready, `MG_IO_ERR` when the stream ended or failed.
///
/// # Safety
/// `c` is a live connection; `buf` is valid for `len` bytes (or null).
#[no_mangle]
pub unsafe extern "C" fn mg_tls_recv(c: *mut sys::mg_connection, buf: *mut c_void, len: usize) -> c_long {
    guarded(c, IO_ERR, |t| {
        if buf.is_null() || len == 0 {
            return 0;
        }
        if t.eof && t.plain == 0 {
            return end_of_stream(c);
        }
        let out = std::slice::from_raw_parts_mut(buf as *mut u8, len);
        let mut got = 0;
        let mut ended = false;
        loop {
            if t.plain > 0 {
                match t.conn.reader().read(&mut out[got..]) {
                    Ok(0) => {
                        ended = true;
                        t.plain = 0;
                    }
                    Ok(n) => {
                        got += n;
                        t.plain = t.plain.saturating_sub(n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => t.plain = 0,
                    Err(_) => {
                        ended = true;
                        t.plain = 0;
                    }
                }
            }
            if got == len || ended || (*c).rtls.len == 0 {
                break;
            }
            if let Err(why) = feed(c, t) {
                fail(c, &format!("TLS error: {why}"));
                return IO_ERR;
            }
            if t.plain == 0 && (*c).rtls.len == 0 {
                break; // records without application data (tickets, key updates)
            }
        }
        if t.conn.wants_write() {
            let _ = write_out(c, t);
        }
        if t.plain > 0 || (*c).rtls.len > 0 {
            note_pending();
        }
        if got > 0 && (ended || peer_closed(t)) {
            // close_notify came with the last data: the next poll reads
            // the end (mg_tls_pending counts it).
            t.eof = true;
            note_pending();
        }
        if got > 0 {
            got as c_long
        } else if ended || peer_closed(t) {
            end_of_stream(c)
        } else {
            IO_WAIT
        }
    })
}

/// The peer's close_notify, every byte before it read: for a connection
/// that takes half-closes (raw `tls://`) it is the peer's end of writing,
/// recorded like a TCP FIN (the connection stays writable, an `end` event
/// follows); for the others the end of the connection.
unsafe fn end_of_stream(c: *mut sys::mg_connection) -> c_long {
    if half_close_fin(fd(c)) {
        IO_WAIT
    } else {
        IO_ERR
    }
}

/// The peer sent close_notify and every byte before it was read (rustls'
/// reader says Ok(0) then, and WouldBlock while the stream is open).
fn peer_closed(t: &mut TlsConn) -> bool {
    t.plain == 0 && matches!(t.conn.reader().read(&mut [0u8; 1]), Ok(0))
}

/// Encrypts and sends plaintext: returns the bytes taken, `MG_IO_WAIT`
/// while earlier ciphertext is still unsent, `MG_IO_ERR` if the socket
/// failed.
///
/// While ciphertext waits for the socket, the last byte taken is not
/// reported (it stays first in `c->send`, marked `held`, and is skipped by
/// the next call): `c->send` then keeps a byte, so Mongoose registers for
/// EPOLLOUT, a draining close waits, and the core's lingering close (which
/// starts once `send` is empty) cannot cut the response short.
///
/// # Safety
/// `c` is a live connection; `buf` is valid for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn mg_tls_send(c: *mut sys::mg_connection, buf: *const c_void, len: usize) -> c_long {
    guarded(c, IO_ERR, |t| {
        if t.conn.wants_write() {
            match write_out(c, t) {
                Ok(true) => {}
                Ok(false) => return IO_WAIT,
                Err(_) => return IO_ERR,
            }
        }
        if buf.is_null() || len == 0 {
            return 0;
        }
        let all = std::slice::from_raw_parts(buf as *const u8, len.min(SEND_MAX));
        let held = t.held.min(all.len());
        let n = if held < all.len() {
            match t.conn.writer().write(&all[held..]) {
                Ok(n) => n,
                Err(_) => return IO_ERR,
            }
        } else {
            0
        };
        let taken = held + n;
        match write_out(c, t) {
            Err(_) => IO_ERR,
            Ok(true) => {
                t.held = 0;
                if taken == 0 {
                    IO_WAIT
                } else {
                    taken as c_long
                }
            }
            Ok(false) if taken <= 1 => {
                t.held = taken;
                IO_WAIT
            }
            Ok(false) => {
                t.held = 1;
                (taken - 1) as c_long
            }
        }
    })
}

/// Plaintext waiting to be read (0 while reads are paused: the connection
/// must not count as readable then).
///
/// # Safety
/// `c` is a live connection.
#[no_mangle]
pub unsafe extern "C" fn mg_tls_pending(c: *mut sys::mg_connection) -> usize {
    if (*c).data[DATA_TRANSPORT_IDLE] == 1 {
        return 0; // nothing decrypted waits (see mg_tls_flush)
    }
    match state(c) {
        Some(t) if (*c).is_full() == 0 => t.plain + usize::from(t.eof),
        _ => 0,
    }
}

/// What a finished handshake agreed, encoded for `mgnet_tls_info`: the
/// protocol version, the cipher suite, the ALPN protocol and the SNI host
/// name (server side), each as a u8 length and bytes; then the number of
/// peer certificates (u16 LE) and each as a u32 LE length and its DER.
/// None while the handshake runs, or without TLS.
///
/// # Safety
/// `c` is a live connection.
pub unsafe fn info(c: *mut sys::mg_connection) -> Option<Vec<u8>> {
    let t = state(c)?;
    if t.conn.is_handshaking() {
        return None;
    }
    let mut out = Vec::new();
    let mut short = |b: &[u8]| {
        let b = &b[..b.len().min(255)];
        out.push(b.len() as u8);
        out.extend_from_slice(b);
    };
    let version = match t.conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
        Some(v) => format!("{v:?}"),
        None => String::new(),
    };
    short(version.as_bytes());
    let suite = t
        .conn
        .negotiated_cipher_suite()
        .map(|s| format!("{:?}", s.suite()))
        .unwrap_or_default();
    short(suite.as_bytes());
    short(t.conn.alpn_protocol().unwrap_or_default());
    let sni = match &t.conn {
        Connection::Server(s) => s.server_name().unwrap_or_default(),
        Connection::Client(_) => "",
    };
    short(sni.as_bytes());
    let certs = t.conn.peer_certificates().unwrap_or_default();
    out.extend_from_slice(&(certs.len().min(u16::MAX as usize) as u16).to_le_bytes());
    for cert in certs.iter().take(u16::MAX as usize) {
        out.extend_from_slice(&(cert.len() as u32).to_le_bytes());
        out.extend_from_slice(cert);
    }
    Some(out)
}

/// Sends ciphertext the socket did not take before; ends the stream
/// (close_notify) when the connection is draining or the core asked for it.
///
/// # Safety
/// `c` is a live connection.
#[no_mangle]
pub unsafe extern "C" fn mg_tls_flush(c: *mut sys::mg_connection) {
    let mark = (*c).data[DATA_END_STREAM];
    let ending = ((*c).is_draining() != 0 || mark == 1) && mark != 2;
    if (*c).data[DATA_TRANSPORT_IDLE] == 1 && !ending {
        return; // called on every poll of every connection: most have nothing
    }
    guarded(c, 0, |t| {
        if ending && (*c).is_tls_hs() == 0 {
            (*c).data[DATA_END_STREAM] = 2;
            t.conn.send_close_notify();
        }
        if t.conn.wants_write() || t.want_out {
            let _ = write_out(c, t);
        }
        if !t.conn.wants_write() && !t.want_out && t.plain == 0 && !t.eof && (*c).is_tls_hs() == 0 {
            (*c).data[DATA_TRANSPORT_IDLE] = 1;
        }
        0
    });
}

/// Nothing per manager: settings live with listeners and client configs.
///
/// # Safety
/// Safe to call.
#[no_mangle]
pub unsafe extern "C" fn mg_tls_ctx_init(_mgr: *mut sys::mg_mgr) {}

/// See [`mg_tls_ctx_init`].
///
/// # Safety
/// Safe to call.
#[no_mangle]
pub unsafe extern "C" fn mg_tls_ctx_free(_mgr: *mut sys::mg_mgr) {}
