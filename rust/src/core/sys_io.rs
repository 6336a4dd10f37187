//! Raw system calls and Mongoose buffer helpers under the core.
//!
//! glibc's `send`/`recv` are thread cancellation points and bracket each
//! call with bookkeeping (~2% of a hello request's CPU in a multi-threaded
//! process like Deno), so mgnet issues the system calls itself; Mongoose's
//! `recv(` and `epoll_wait(` calls are routed to the two exports below by
//! function-like defines in build.rs (its sources stay unmodified). The
//! epoll wrapper also implements read pausing and the FIN mark that make
//! edge-triggered sockets safe (docs/architecture.md sections 5 and 11).

use std::cell::RefCell;
use std::ffi::{c_int, c_void};
use std::ptr;

use crate::sys;

/// Resizes a Mongoose I/O buffer as `mg_iobuf_resize` does (rounded up to
/// its alignment; size 0 frees it), keeping the first `len` bytes that fit,
/// but without clearing the old buffer with `mg_bzero` first: a volatile
/// byte loop that, freeing drained 64–128 KiB WebSocket send buffers after
/// each batch of 16 KiB echoes, took 30% of the server's CPU. These
/// buffers hold no secrets (TLS keeps its own; see [`iobuf_consume`]).
/// Used by the WebSocket protocol only: moving HTTP's and TCP's resizes
/// and `iobuf_append` to it too raised the peak RSS of the 100 MB
/// slow-reader test under AddressSanitizer from 27.5–29.2 MB to 29.1–32.9
/// (its bound is 32), for no gain measured on their paths.
///
/// # Safety
/// `io` is a live Mongoose I/O buffer.
pub unsafe fn iobuf_resize(io: *mut sys::mg_iobuf, new_size: usize) -> bool {
    let align = (*io).align.max(1);
    let new_size = new_size.div_ceil(align).saturating_mul(align);
    if new_size == 0 {
        sys::mg_free((*io).buf as *mut c_void);
        (*io).buf = ptr::null_mut();
        (*io).len = 0;
        (*io).size = 0;
    } else if new_size != (*io).size {
        let p = sys::mg_calloc(1, new_size) as *mut u8;
        if p.is_null() {
            return false;
        }
        let len = new_size.min((*io).len);
        if len > 0 && !(*io).buf.is_null() {
            ptr::copy_nonoverlapping((*io).buf, p, len);
        }
        sys::mg_free((*io).buf as *mut c_void);
        (*io).buf = p;
        (*io).size = new_size;
        (*io).len = len;
    }
    true
}

/// Frees a Mongoose I/O buffer ([`iobuf_resize`] to 0).
///
/// # Safety
/// `io` is a live Mongoose I/O buffer.
pub unsafe fn iobuf_free(io: *mut sys::mg_iobuf) {
    iobuf_resize(io, 0);
}

/// Appends `parts` to a Mongoose I/O buffer, growing it at most once and
/// at least to double its size: `mg_iobuf_resize` copies (and zeroes) the
/// whole buffer, so growing to the exact size made a run of appends
/// quadratic (64 MB written in 64 KiB pieces without waiting: 36 s).
///
/// # Safety
/// `io` is a live Mongoose I/O buffer.
pub unsafe fn iobuf_append(io: *mut sys::mg_iobuf, parts: &[&[u8]]) -> bool {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let need = (*io).len + total;
    if need > (*io).size && !sys::mg_iobuf_resize(io, need.max((*io).size.saturating_mul(2))) {
        return false;
    }
    let mut at = (*io).buf.add((*io).len);
    for p in parts {
        ptr::copy_nonoverlapping(p.as_ptr(), at, p.len());
        at = at.add(p.len());
    }
    (*io).len = need;
    true
}

/// Drops the first `n` bytes of a Mongoose I/O buffer. Unlike
/// `mg_iobuf_del` it does not zero them byte by byte (1.5% of a hello
/// request's CPU): these buffers hold no secrets (TLS keeps its own).
///
/// # Safety
/// `io` is a live Mongoose I/O buffer.
pub unsafe fn iobuf_consume(io: *mut sys::mg_iobuf, n: usize) {
    if n >= (*io).len {
        (*io).len = 0;
    } else if n > 0 {
        ptr::copy((*io).buf.add(n), (*io).buf, (*io).len - n);
        (*io).len -= n;
    }
}

/// `send(2)` as a raw system call: glibc's `send` is a thread cancellation
/// point and brackets the call with two bookkeeping calls (~2% of a hello
/// request's CPU in a multi-threaded process like Deno).
///
/// # Safety
/// The arguments of `send(2)`: `buf` is valid for `len` bytes.
pub unsafe fn sys_send(fd: c_int, buf: *const u8, len: usize) -> isize {
    libc::syscall(
        libc::SYS_sendto,
        fd,
        buf,
        len,
        libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
        ptr::null::<c_void>(),
        0,
    ) as isize
}

/// `recv(2)` as a raw system call, for the same reason; Mongoose's reads
/// are routed here by a compile-time define in build.rs.
///
/// It also implements half-close (see [`take_half_close`]): the end of
/// stream (`recv` returning 0) of a socket registered for it is recorded
/// and reported to Mongoose as "nothing to read yet" instead of the 0 that
/// makes Mongoose close the connection.
///
/// # Safety
/// The arguments of `recv(2)`: `buf` is valid for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn mgnet_sys_recv(fd: c_int, buf: *mut c_void, len: usize, flags: c_int) -> isize {
    let n = libc::syscall(
        libc::SYS_recvfrom,
        fd,
        buf,
        len,
        flags,
        ptr::null::<c_void>(),
        ptr::null::<c_void>(),
    ) as isize;
    if n == 0 && len > 0 && half_close_fin(fd) {
        *libc::__errno_location() = libc::EAGAIN;
        return -1;
    }
    n
}

thread_local! {
    /// Half-close registrations of this thread's sockets, by file
    /// descriptor: 0, or `(slot + 1) << 1 | fin`, where `fin` says the
    /// peer's end of stream was already seen. File descriptors are unique
    /// among a process's open sockets, so the managers of one thread share
    /// the table; each clears its entries when its connections close.
    static HALF_CLOSE: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
    /// Ends of stream seen by `mgnet_sys_recv` and not yet taken by the
    /// core: (fd, slot).
    static FINS: RefCell<Vec<(c_int, u32)>> = const { RefCell::new(Vec::new()) };
}

/// Registers (or, with `slot` None, unregisters) socket `fd` for half-close:
/// its peer's end of stream no longer closes the connection; the core takes
/// it with [`take_fins`] after each Mongoose poll instead.
pub fn take_half_close(fd: c_int, slot: Option<u32>) {
    if fd < 0 {
        return;
    }
    let i = fd as usize;
    HALF_CLOSE.with(|t| {
        let Ok(mut t) = t.try_borrow_mut() else { return };
        if t.len() <= i {
            if slot.is_none() {
                return;
            }
            t.resize(i + 1, 0);
        }
        t[i] = slot.map_or(0, |s| (s + 1) << 1);
    });
}

/// Called for a `recv` that returned 0 on `fd` (or a transport's end of
/// stream, e.g. TLS's close_notify): true if the socket takes half-closes
/// (the end of stream is then recorded once).
pub fn half_close_fin(fd: c_int) -> bool {
    if fd < 0 {
        return false;
    }
    HALF_CLOSE.with(|t| {
        let Ok(mut t) = t.try_borrow_mut() else {
            return false;
        };
        let Some(e) = t.get_mut(fd as usize) else {
            return false;
        };
        if *e == 0 {
            return false;
        }
        if *e & 1 == 0 {
            *e |= 1;
            let slot = (*e >> 1) - 1;
            FINS.with(|f| {
                if let Ok(mut f) = f.try_borrow_mut() {
                    f.push((fd, slot));
                }
            });
        }
        true
    })
}

/// The ends of stream seen since the last call: (fd, slot) pairs.
pub fn take_fins() -> Vec<(c_int, u32)> {
    FINS.with(|f| {
        f.try_borrow_mut()
            .map(|mut f| std::mem::take(&mut *f))
            .unwrap_or_default()
    })
}

/// True if [`take_fins`] has something (cheap; checked after every poll).
pub fn has_fins() -> bool {
    FINS.with(|f| f.try_borrow().is_ok_and(|f| !f.is_empty()))
}

/// Index in `mg_connection.data` of the "peer sent FIN" mark (the slot
/// number takes bytes 0..4).
pub const DATA_FIN: usize = 4;
/// Index in `mg_connection.data` of the "parked" mark: a paused socket
/// that reported EPOLLHUP was taken out of the epoll set (see below).
pub const DATA_PARKED: usize = 5;
/// Index in `mg_connection.data` of the "level-triggered" mark: set by
/// [`epoll_mode`]`(c, false)`, cleared by `epoll_mode(c, true)`. Lets the
/// read handler skip re-registering a socket that is level-triggered
/// already (with 16 KiB WebSocket messages every read fills the buffer:
/// one redundant `epoll_ctl` per message, ~3% of the server's CPU).
/// The indices of `mg_connection.data` the core uses: the slot 0..4,
/// [`DATA_FIN`] 4, [`DATA_PARKED`] 5, transport.rs's `DATA_END_STREAM` 6
/// and `DATA_PAUSE_AFTER_HANDSHAKE` 7, this one 8, transport.rs's
/// `DATA_TRANSPORT_IDLE` 9 (a test checks they are
/// distinct: two branches once both took 6, and wss:// stalled).
pub const DATA_LEVEL: usize = 8;

/// `epoll_wait(2)` for Mongoose's loop (routed here by a define in build.rs):
/// a raw system call, plus one job. Accepted HTTP sockets are registered
/// edge-triggered with EPOLLRDHUP (see [`epoll_mode`]); when the peer's FIN
/// is reported, the socket is marked so the read handler can switch it back
/// to level-triggered and Mongoose then sees the end of stream.
///
/// # Safety
/// The arguments of `epoll_wait(2)`; every registered `data.ptr` is a live
/// `mg_connection` (Mongoose removes sockets from the set before freeing).
#[no_mangle]
pub unsafe extern "C" fn mgnet_sys_epoll_wait(
    epfd: c_int,
    events: *mut libc::epoll_event,
    max: c_int,
    timeout: c_int,
) -> c_int {
    let n = libc::syscall(
        libc::SYS_epoll_pwait,
        epfd,
        events,
        max,
        timeout,
        ptr::null::<c_void>(),
        8,
    ) as c_int;
    if n <= 0 {
        return n;
    }
    let mut kept = 0;
    for i in 0..n as usize {
        let mut ev = *events.add(i);
        let c = ev.u64 as *mut sys::mg_connection;
        if !c.is_null()
            && (*c).is_full() != 0
            && ev.events & (libc::EPOLLERR | libc::EPOLLHUP) as u32 == libc::EPOLLHUP as u32
            && (*c).send.len == 0
        {
            // Paused, nothing to send, and both directions are shut (our
            // half-close and the peer's): EPOLLHUP cannot be masked and
            // would be reported on every wait. Park the socket outside the
            // set until reading resumes ([`epoll_mode`] adds it back).
            libc::epoll_ctl(
                epfd,
                libc::EPOLL_CTL_DEL,
                (*c).fd as usize as c_int,
                ptr::null_mut(),
            );
            (*c).data[DATA_PARKED] = 1;
            continue;
        }
        if !c.is_null() && (*c).is_full() != 0 && ev.events & (libc::EPOLLERR | libc::EPOLLHUP) as u32 == 0 {
            // Reads are paused (backpressure): a level-triggered EPOLLIN
            // would be reported on every wait, and Mongoose would not read.
            // Stop asking for it; Mongoose's next re-registration for
            // EPOLLOUT restores it, and resuming does too.
            let out = (*c).send.len > 0;
            let mut mod_ev = libc::epoll_event {
                events: (libc::EPOLLERR | libc::EPOLLHUP) as u32
                    | if out { libc::EPOLLOUT as u32 } else { 0 },
                u64: c as u64,
            };
            libc::epoll_ctl(epfd, libc::EPOLL_CTL_MOD, (*c).fd as usize as c_int, &mut mod_ev);
            ev.events &= !((libc::EPOLLIN | libc::EPOLLRDHUP) as u32);
            if ev.events == 0 {
                continue;
            }
        }
        if ev.events & libc::EPOLLRDHUP as u32 != 0 && !c.is_null() {
            (*c).data[DATA_FIN] = 1;
        }
        *events.add(kept) = ev;
        kept += 1;
    }
    kept as c_int
}

/// Re-registers an accepted HTTP socket in Mongoose's epoll set.
///
/// Edge-triggered (with EPOLLRDHUP) saves the kernel a second readiness
/// check of every socket that was ready (Mongoose registers level-triggered,
/// so each ready socket is polled again on the next epoll_wait): about 2.5%
/// of a hello request's CPU. It is safe while every read drains the socket:
/// a read that fills the buffer, or a peer FIN, switches the socket back to
/// level-triggered (`edge = false`), which is exactly Mongoose's own mode.
/// Mongoose's own re-registrations (for EPOLLOUT) also restore it. Not for
/// TLS sockets (they buffer records Mongoose reads on later polls).
///
/// # Safety
/// `c` is a live connection with a socket in its manager's epoll set.
pub unsafe fn epoll_mode(c: *mut sys::mg_connection, edge: bool) {
    let mut ev = libc::epoll_event {
        events: (libc::EPOLLIN | libc::EPOLLERR | libc::EPOLLHUP) as u32,
        u64: c as u64,
    };
    if edge {
        ev.events |= (libc::EPOLLET | libc::EPOLLRDHUP) as u32;
    }
    (*c).data[DATA_LEVEL] = (!edge) as _;
    let op = if (*c).data[DATA_PARKED] != 0 {
        (*c).data[DATA_PARKED] = 0;
        libc::EPOLL_CTL_ADD
    } else {
        libc::EPOLL_CTL_MOD
    };
    libc::epoll_ctl((*(*c).mgr).epoll_fd, op, (*c).fd as usize as c_int, &mut ev);
}

/// Stops (or resumes) reading a connection's socket: backpressure reaches
/// the client through TCP instead of piling up in the receive buffer.
///
/// # Safety
/// `c` is null or a live connection.
pub unsafe fn set_read_paused(c: *mut sys::mg_connection, paused: bool) {
    if c.is_null() || (*c).is_closing() != 0 {
        return;
    }
    if (*c).is_tls_hs() != 0 {
        // A transport (TLS) handshake needs its reads: the pause waits for
        // its end (`transport::handshake_done`).
        (*c).data[super::transport::DATA_PAUSE_AFTER_HANDSHAKE] = paused as _;
        return;
    }
    if ((*c).is_full() != 0) == paused {
        return;
    }
    (*c).set_is_full(paused as _);
    if !paused {
        // Level-triggered with EPOLLIN again: input that waited in the
        // socket is reported on the next wait.
        epoll_mode(c, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_data_marks_are_distinct_and_past_the_slot() {
        use crate::core::transport::{DATA_END_STREAM, DATA_PAUSE_AFTER_HANDSHAKE, DATA_TRANSPORT_IDLE};
        let marks = [
            DATA_FIN,
            DATA_PARKED,
            DATA_END_STREAM,
            DATA_PAUSE_AFTER_HANDSHAKE,
            DATA_LEVEL,
            DATA_TRANSPORT_IDLE,
        ];
        for (i, a) in marks.iter().enumerate() {
            assert!(
                *a >= 4 && *a < sys::MG_DATA_SIZE as usize,
                "mark {a} inside the slot or past data"
            );
            assert!(!marks[i + 1..].contains(a), "mark {a} used twice");
        }
    }

    fn io(align: usize) -> sys::mg_iobuf {
        sys::mg_iobuf {
            buf: ptr::null_mut(),
            size: 0,
            len: 0,
            align,
        }
    }

    fn bytes(io: &sys::mg_iobuf) -> &[u8] {
        if io.len == 0 {
            return &[];
        }
        unsafe { std::slice::from_raw_parts(io.buf, io.len) }
    }

    #[test]
    fn iobuf_resize_keeps_what_fits_and_rounds_to_the_alignment() {
        let mut b = io(64);
        unsafe {
            assert!(iobuf_resize(&mut b, 100));
            assert_eq!((b.size, b.len), (128, 0));
            assert!(iobuf_append(&mut b, &[b"hello ", b"world"]));
            assert_eq!(bytes(&b), b"hello world");
            // Growing keeps the bytes.
            assert!(iobuf_resize(&mut b, 4096));
            assert_eq!((b.size, bytes(&b)), (4096, &b"hello world"[..]));
            // The same size again is no change (no new buffer).
            let before = b.buf;
            assert!(iobuf_resize(&mut b, 4090));
            assert_eq!((b.buf, b.size), (before, 4096));
            // Shrinking below the length keeps the first bytes.
            let mut small = io(1);
            assert!(iobuf_append(&mut small, &[b"abcdefgh"]));
            assert!(iobuf_resize(&mut small, 3));
            assert_eq!((small.size, bytes(&small)), (3, &b"abc"[..]));
            iobuf_free(&mut small);
            assert!(small.buf.is_null());
            assert_eq!((small.size, small.len), (0, 0));
            // Freed, then grown again by Mongoose's own resize: the memory is
            // compatible both ways.
            iobuf_free(&mut b);
            assert!(sys::mg_iobuf_resize(&mut b, 256));
            assert!(iobuf_append(&mut b, &[b"x"]));
            assert!(iobuf_resize(&mut b, 1024));
            assert_eq!(bytes(&b), b"x");
            sys::mg_iobuf_free(&mut b);
            assert!(b.buf.is_null());
        }
    }
}
