//! Raw system calls and Mongoose buffer helpers under the core.
//!
//! glibc's `send`/`recv` are thread cancellation points and bracket each
//! call with bookkeeping (~2% of a hello request's CPU in a multi-threaded
//! process like Deno), so mgnet issues the system calls itself; Mongoose's
//! `recv(` and `epoll_wait(` calls are routed to the two exports below by
//! function-like defines in build.rs (its sources stay unmodified). The
//! epoll wrapper also implements read pausing and the FIN mark that make
//! edge-triggered sockets safe (docs/architecture.md sections 5 and 11).

use std::ffi::{c_int, c_void};
use std::ptr;

use crate::sys;

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
/// # Safety
/// The arguments of `recv(2)`: `buf` is valid for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn mgnet_sys_recv(fd: c_int, buf: *mut c_void, len: usize, flags: c_int) -> isize {
    libc::syscall(
        libc::SYS_recvfrom,
        fd,
        buf,
        len,
        flags,
        ptr::null::<c_void>(),
        ptr::null::<c_void>(),
    ) as isize
}

/// Index in `mg_connection.data` of the "peer sent FIN" mark (the slot
/// number takes bytes 0..4).
pub const DATA_FIN: usize = 4;

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
    libc::epoll_ctl(
        (*(*c).mgr).epoll_fd,
        libc::EPOLL_CTL_MOD,
        (*c).fd as usize as c_int,
        &mut ev,
    );
}

/// Stops (or resumes) reading a connection's socket: backpressure reaches
/// the client through TCP instead of piling up in the receive buffer.
///
/// # Safety
/// `c` is null or a live connection.
pub unsafe fn set_read_paused(c: *mut sys::mg_connection, paused: bool) {
    if c.is_null() || (*c).is_closing() != 0 || ((*c).is_full() != 0) == paused {
        return;
    }
    (*c).set_is_full(paused as _);
    if !paused {
        // Level-triggered with EPOLLIN again: input that waited in the
        // socket is reported on the next wait.
        epoll_mode(c, false);
    }
}
