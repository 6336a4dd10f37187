//! One Mongoose manager, its connections and the batched event core.
//!
//! Ownership: the JS thread that created a manager is the only one that
//! touches it. Waiting for I/O happens on another thread (Deno's
//! `nonblocking` FFI call) but only through `poll(2)` on the epoll fd, which
//! reads no Mongoose state, so JS can reply and flush while a wait is in
//! progress.
//!
//! Re-entrancy: `mg_mgr_poll`, `mg_listen` and `mg_mgr_free` call back into
//! [`on_conn`]/[`on_listener`], which reach the manager through the raw
//! pointer in `fn_data`. Functions that call into Mongoose therefore take
//! `*mut Manager` and hold no `&mut Manager` across the call.

mod client;
mod overflow;
pub use client::ClientTls;

use std::collections::VecDeque;
use std::ffi::{c_int, c_void, CStr};
use std::ptr;
use std::rc::Rc;

use crate::cache::{etag_matches, Cache, Entry};
use crate::error::{fail, Status};
use crate::event::{
    EventBuf, HttpRecord, BODY_FLAG_END, BODY_FLAG_ERROR, HTTP_FLAG_HTTP10, HTTP_FLAG_KEEP_ALIVE,
    HTTP_FLAG_STREAMED,
};
use crate::http::{
    reject_body, write_chunk, write_response, write_stream_end, write_stream_head, DateCache, Limits, Parsed,
    Parser, ResponseMeta, StreamFraming,
};
use crate::sys;

/// At most this many requests of one connection wait for their responses;
/// later pipelined requests stay unparsed in the receive buffer meanwhile.
const MAX_INFLIGHT: usize = 256;
/// Streamed body bytes JS may hold unconsumed before reading pauses...
const BODY_HIGH_WATER: usize = 1 << 20;
/// ...and resumes.
const BODY_LOW_WATER: usize = 256 * 1024;
/// Mongoose's `MG_MAX_RECV_SIZE` (rust/build.rs): a connection whose
/// unparsed input reaches it is closed.
const MAX_RECV: usize = 4 << 20;
/// Stop parsing a connection's requests while this much output is unsent
/// (a peer that pipelines without reading cannot grow our memory).
const SEND_HIGH_WATER: usize = 1 << 20;
/// Most extra Mongoose polls one `poll()` runs while each accepts a
/// connection (Mongoose accepts one per listener per poll).
const ACCEPT_POLLS: u32 = 128;
/// A closing connection waits this long for the peer's FIN after ours, so
/// the last response is not destroyed by a reset (RFC 9112 9.6).
const LINGER_MS: u64 = 2000;
/// The longest a wait sleeps without a timer due (Mongoose polls its DNS and
/// other internal timeouts from the loop).
const MAX_WAIT_MS: i32 = 1000;
/// `seq` value meaning "the oldest request not yet answered".
pub const SEQ_OLDEST: u32 = u32::MAX;
/// Reply flag: close the connection after this response.
pub const REPLY_CLOSE: u32 = 1;
/// Reply flag: the user's headers carry a `date`; do not add one.
pub const REPLY_OWN_DATE: u32 = 2;

/// Protocol a listener speaks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Proto {
    Http,
}

/// `fn_data` of a listener; accepted connections find their listener here.
pub struct ListenerInfo {
    mgr: *mut Manager,
    proto: Proto,
    id: u64,
}

/// Where the response to one request stands.
enum RespState {
    /// Handed to JS, nothing answered yet.
    Waiting,
    /// Being streamed. For a request behind the front, bytes wait in `held`.
    /// `left` counts the bytes a sized body still owes (u64::MAX: unsized).
    Streaming {
        framing: StreamFraming,
        held: Vec<u8>,
        left: u64,
    },
    /// Complete. For a request behind the front, its bytes wait in `held`.
    Done { held: Vec<u8> },
}

/// One request handed to JS, in the connection's response queue.
struct Pending {
    meta: ResponseMeta,
    state: RespState,
}

impl Pending {
    fn new(meta: ResponseMeta) -> Pending {
        Pending {
            meta,
            state: RespState::Waiting,
        }
    }

    /// Counts toward `Manager::awaiting`: JS owes this request something.
    fn owed(&self) -> bool {
        !matches!(self.state, RespState::Done { .. })
    }
}

/// Per-connection HTTP state: the parser and the in-order response queue.
#[derive(Default)]
struct HttpConn {
    parser: Parser,
    /// Requests handed to JS, oldest first; `inflight[0]` has `send_seq`.
    inflight: VecDeque<Pending>,
    send_seq: u32,
    next_seq: u32,
    /// The final response is in the send buffer: close once it is out.
    close_when_sent: bool,
    /// Parsing stopped for backpressure; resume when responses go out.
    paused: bool,
    /// A request with `Expect: 100-continue` waits for its body.
    continue_pending: bool,
    /// The request whose body is streaming to JS.
    streaming_seq: Option<u32>,
    /// Streamed body bytes JS has not consumed yet.
    unacked: usize,
    /// Parsing stopped until JS consumes streamed body bytes.
    body_paused: bool,
    /// A streaming request asked for `100 Continue`: sent once JS starts
    /// reading its body (a handler that answers first never invites it).
    continue_on_read: bool,
    /// Shutting down while a request body arrives: that request is still
    /// served, with `connection: close`, and no request after it.
    last_request: bool,
    /// Output queued behind the send buffer (see `overflow.rs`).
    out: overflow::Overflow,
}

impl HttpConn {
    /// Output not yet taken by the socket: the send buffer and what waits
    /// behind it.
    fn unsent(&self, c: *mut sys::mg_connection) -> usize {
        unsafe { (*c).send.len + self.out.len() }
    }
}

enum Kind {
    Free,
    Listener,
    Http(Box<HttpConn>),
    Client(Box<client::ClientConn>),
}

struct Slot {
    /// Mongoose connection id; 0 while the slot is free.
    id: u64,
    c: *mut sys::mg_connection,
    kind: Kind,
    dirty: bool,
    lingering: bool,
    /// JS waits until request `.0`'s response is at the front of the queue
    /// and at most `.1` bytes remain unsent (a DRAIN event then).
    drain_at: Option<(u32, usize)>,
}

/// Counters since the manager was created (`mgnet_stats`).
#[derive(Default, Clone, Copy)]
pub struct Stats {
    /// Polls that gathered a batch of events for JS (each may run several
    /// Mongoose polls while connections are being accepted).
    pub polls: u64,
    /// Connections accepted by listeners.
    pub accepted: u64,
    /// HTTP requests parsed (handed to JS or answered from the cache).
    pub requests: u64,
    /// Requests answered from the native cache.
    pub cache_hits: u64,
}

/// A Mongoose manager plus mgnet's state around it.
pub struct Manager {
    mgr: sys::mg_mgr,
    slots: Vec<Slot>,
    free: Vec<u32>,
    pub events: EventBuf,
    dirty: Vec<u32>,
    lingering: Vec<(u32, u64, u64)>,
    /// Boxed: each is a listener's `fn_data`, so its address must not move.
    #[allow(clippy::vec_box)]
    listeners: Vec<Box<ListenerInfo>>,
    limits: Limits,
    date: DateCache,
    wake_tx: c_int,
    wake_pending: bool,
    needs_poll: bool,
    /// A listener accepted a connection during the current Mongoose poll.
    accepted: bool,
    /// Counters for `mgnet_stats`.
    pub stats: Stats,
    /// Requests handed to JS that have no response yet (all connections).
    awaiting: usize,
    /// Responses answered without JS (see cache.rs).
    pub cache: Cache,
}

fn now_ms() -> u64 {
    unsafe { sys::mg_millis() }
}

unsafe fn slot_of(c: *mut sys::mg_connection) -> u32 {
    u32::from_ne_bytes([
        (*c).data[0] as u8,
        (*c).data[1] as u8,
        (*c).data[2] as u8,
        (*c).data[3] as u8,
    ])
}

unsafe fn set_slot_of(c: *mut sys::mg_connection, slot: u32) {
    for (i, b) in slot.to_ne_bytes().iter().enumerate() {
        (*c).data[i] = *b as _;
    }
}

/// Appends `parts` to a Mongoose I/O buffer, growing it at most once and
/// at least to double its size: `mg_iobuf_resize` copies (and zeroes) the
/// whole buffer, so growing to the exact size made a run of appends
/// quadratic (64 MB written in 64 KiB pieces without waiting: 36 s).
unsafe fn iobuf_append(io: *mut sys::mg_iobuf, parts: &[&[u8]]) -> bool {
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
unsafe fn iobuf_consume(io: *mut sys::mg_iobuf, n: usize) {
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
unsafe fn sys_send(fd: c_int, buf: *const u8, len: usize) -> isize {
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
const DATA_FIN: usize = 4;

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
unsafe fn epoll_mode(c: *mut sys::mg_connection, edge: bool) {
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
fn set_read_paused(c: *mut sys::mg_connection, paused: bool) {
    unsafe {
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
}

/// The HTTP record flags of a request.
fn request_flags(info: &crate::http::ReqInfo, streamed: bool) -> u8 {
    let mut flags = 0;
    if info.http10 {
        flags |= HTTP_FLAG_HTTP10;
    }
    if info.keep_alive {
        flags |= HTTP_FLAG_KEEP_ALIVE;
    }
    if streamed {
        flags |= HTTP_FLAG_STREAMED;
    }
    flags
}

fn method_is_get(head: &[u8], info: &crate::http::ReqInfo) -> bool {
    &head[info.method.0 as usize..][..info.method.1 as usize] == b"GET"
}

/// The first value of header `name` (lower-case) of a parsed request.
fn header_value<'a>(head: &'a [u8], info: &crate::http::ReqInfo, name: &[u8]) -> Option<&'a [u8]> {
    info.headers.iter().find_map(|h| {
        let n = &head[h[0] as usize..][..h[1] as usize];
        n.eq_ignore_ascii_case(name)
            .then(|| &head[h[2] as usize..][..h[3] as usize])
    })
}

unsafe fn addr_bytes(a: &sys::mg_addr) -> [u8; 16] {
    let mut out = [0u8; 16];
    if a.is_ip6 {
        out.copy_from_slice(&a.addr.ip);
    } else {
        out[..4].copy_from_slice(&a.addr.ip[..4]);
    }
    out
}

impl Manager {
    /// Creates a manager with its wake-up socket in the poll set.
    pub fn new(limits: Limits) -> Result<Box<Manager>, String> {
        let mut fds = [0 as c_int; 2];
        let rc = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        };
        if rc != 0 {
            return Err(format!("socketpair: {}", std::io::Error::last_os_error()));
        }
        let mut m = Box::new(Manager {
            mgr: sys::mg_mgr::default(),
            slots: Vec::new(),
            free: Vec::new(),
            events: EventBuf::default(),
            dirty: Vec::new(),
            lingering: Vec::new(),
            listeners: Vec::new(),
            limits,
            date: DateCache::default(),
            wake_tx: fds[1],
            wake_pending: false,
            needs_poll: false,
            accepted: false,
            stats: Stats::default(),
            awaiting: 0,
            cache: Cache::default(),
        });
        let this: *mut Manager = &mut *m;
        client::set_wall_clock();
        unsafe {
            sys::mg_mgr_init(ptr::addr_of_mut!((*this).mgr));
            if (*this).mgr.epoll_fd < 0 {
                sys::mg_mgr_free(ptr::addr_of_mut!((*this).mgr));
                libc::close(fds[0]);
                libc::close(fds[1]);
                return Err("epoll_create failed".into());
            }
            let wc = sys::mg_wrapfd(
                ptr::addr_of_mut!((*this).mgr),
                fds[0],
                Some(on_wake),
                this as *mut c_void,
            );
            if wc.is_null() {
                sys::mg_mgr_free(ptr::addr_of_mut!((*this).mgr));
                libc::close(fds[0]);
                libc::close(fds[1]);
                return Err("out of memory".into());
            }
        }
        Ok(m)
    }

    /// Frees the manager: closes every connection (without events to JS).
    ///
    /// # Safety
    /// `this` comes from `Box::into_raw` of a live manager; nothing else
    /// refers to it afterwards.
    pub unsafe fn destroy(this: *mut Manager) {
        sys::mg_mgr_free(ptr::addr_of_mut!((*this).mgr));
        libc::close((*this).wake_tx);
        drop(Box::from_raw(this));
    }

    pub fn epoll_fd(&self) -> c_int {
        self.mgr.epoll_fd
    }

    fn alloc_slot(&mut self, id: u64, c: *mut sys::mg_connection, kind: Kind) -> u32 {
        let slot = Slot {
            id,
            c,
            kind,
            dirty: false,
            lingering: false,
            drain_at: None,
        };
        match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = slot;
                i
            }
            None => {
                self.slots.push(slot);
                (self.slots.len() - 1) as u32
            }
        }
    }

    /// Requests handed to JS and not yet answered, on all connections.
    pub fn awaiting(&self) -> usize {
        self.awaiting
    }

    /// Forgets a connection's queued requests (it is closing).
    fn drop_inflight(&mut self, slot: u32) {
        if let Kind::Http(h) = &mut self.slots[slot as usize].kind {
            let unanswered = h.inflight.iter().filter(|p| p.owed()).count();
            h.inflight.clear();
            self.awaiting -= unanswered;
        }
    }

    fn release_slot(&mut self, i: u32) {
        self.drop_inflight(i);
        let s = &mut self.slots[i as usize];
        s.id = 0;
        s.c = ptr::null_mut();
        s.kind = Kind::Free;
        s.lingering = false;
        s.drain_at = None;
        self.free.push(i);
    }

    /// The live connection in `slot` if it still has id `id`.
    fn conn(&self, slot: u32, id: u64) -> Result<*mut sys::mg_connection, i32> {
        match self.slots.get(slot as usize) {
            Some(s) if s.id == id && id != 0 => {
                if unsafe { (*s.c).is_closing() } != 0 {
                    Err(fail(Status::Closed, format!("connection {id} is closing")))
                } else {
                    Ok(s.c)
                }
            }
            _ => Err(fail(Status::Closed, format!("connection {id} is closed"))),
        }
    }

    /// Starts listening on `url` (`http://host:port`). Returns (slot, id, port).
    ///
    /// # Safety
    /// `this` is a live manager, no `&mut` to it is held.
    pub unsafe fn listen(this: *mut Manager, url: &str) -> Result<(u32, u64, u16), i32> {
        let (proto, rest) = if let Some(r) = url.strip_prefix("http://") {
            (Proto::Http, r)
        } else {
            return Err(fail(
                Status::Invalid,
                format!("unsupported listen URL {url:?}: expected http://host:port"),
            ));
        };
        if rest.is_empty() || rest.contains('/') && !rest.ends_with('/') {
            return Err(fail(Status::Invalid, format!("invalid listen URL {url:?}")));
        }
        let curl = std::ffi::CString::new(format!("tcp://{}", rest.trim_end_matches('/')))
            .map_err(|_| fail(Status::Invalid, "listen URL contains NUL"))?;
        let mut info = Box::new(ListenerInfo {
            mgr: this,
            proto,
            id: 0,
        });
        let info_ptr: *mut ListenerInfo = &mut *info;
        (*this).listeners.push(info);
        // errno is meaningful only if mg_listen fails in socket/bind/listen.
        *libc::__errno_location() = 0;
        let c = sys::mg_listen(
            ptr::addr_of_mut!((*this).mgr),
            curl.as_ptr(),
            Some(on_listener),
            info_ptr as *mut c_void,
        );
        if c.is_null() {
            let err = std::io::Error::last_os_error();
            (*this).listeners.pop();
            let why = if err.raw_os_error().unwrap_or(0) != 0 {
                err.to_string()
            } else {
                "invalid address".to_string()
            };
            return Err(fail(Status::Io, format!("cannot listen on {url}: {why}")));
        }
        let id = (*c).id;
        (*info_ptr).id = id;
        let m = &mut *this;
        let slot = m.alloc_slot(id, c, Kind::Listener);
        set_slot_of(c, slot);
        Ok((slot, id, u16::from_be((*c).loc.port)))
    }

    /// Sends what replies put into send buffers, runs one non-blocking
    /// Mongoose poll if no events are waiting, sends again. Returns the
    /// number of event bytes ready.
    ///
    /// # Safety
    /// `this` is a live manager, no `&mut` to it is held.
    pub unsafe fn poll(this: *mut Manager) -> usize {
        (*this).flush();
        if (*this).events.is_empty() {
            (*this).needs_poll = false;
            (*this).date.refresh();
            (*this).accepted = false;
            (*this).stats.polls += 1;
            sys::mg_mgr_poll(ptr::addr_of_mut!((*this).mgr), 0);
            // Mongoose accepts one connection per listener per poll. A burst
            // of connections (every client of a load test connecting at once)
            // then waited one JS batch per connection: the last of 100 was
            // accepted ~600 ms after it connected. Poll again while polls
            // accept, up to a bound.
            let mut extra = 0;
            while (*this).accepted && extra < ACCEPT_POLLS {
                (*this).accepted = false;
                sys::mg_mgr_poll(ptr::addr_of_mut!((*this).mgr), 0);
                extra += 1;
            }
            let m = &mut *this;
            m.expire_lingering();
            m.flush();
        }
        (*this).events.len()
    }

    /// Milliseconds a wait may sleep before the next poll is due.
    pub fn next_timeout(&self) -> i32 {
        if !self.events.is_empty() || self.needs_poll || !self.dirty.is_empty() {
            return 0;
        }
        let now = now_ms();
        let mut due = now + MAX_WAIT_MS as u64;
        let mut t = self.mgr.timers;
        while !t.is_null() {
            unsafe {
                due = due.min((*t).expire);
                t = (*t).next;
            }
        }
        for &(_, _, deadline) in &self.lingering {
            due = due.min(deadline);
        }
        due.saturating_sub(now) as i32
    }

    /// Makes a pending or future `poll(2)` on the epoll fd return.
    pub fn wake(&mut self) {
        if !self.wake_pending {
            self.wake_pending = true;
            unsafe {
                libc::send(
                    self.wake_tx,
                    b"w".as_ptr() as *const c_void,
                    1,
                    libc::MSG_DONTWAIT,
                );
            }
        }
    }

    fn mark_dirty(&mut self, slot: u32) {
        let s = &mut self.slots[slot as usize];
        if !s.dirty {
            s.dirty = true;
            self.dirty.push(slot);
        }
    }

    /// Writes every dirty connection's send buffer to its socket now instead
    /// of on the next poll (saves Mongoose's EPOLLOUT round trip). What the
    /// socket does not take stays for Mongoose to send when writable.
    pub fn flush(&mut self) {
        let mut i = 0;
        while i < self.dirty.len() {
            let slot = self.dirty[i];
            i += 1;
            let s = &mut self.slots[slot as usize];
            s.dirty = false;
            if s.id == 0 {
                continue;
            }
            let c = s.c;
            unsafe {
                if (*c).is_closing() != 0 {
                    continue;
                }
                let io = &mut (*c).send;
                if io.len > 0 && (*c).is_tls() == 0 && (*c).is_connecting() == 0 {
                    let fd = (*c).fd as usize as c_int;
                    let n = sys_send(fd, io.buf, io.len);
                    if n > 0 {
                        iobuf_consume(io, n as usize);
                    }
                    if io.len > 0 {
                        // The socket is full: Mongoose registers for EPOLLOUT
                        // on its next poll, which must come before any wait.
                        self.needs_poll = true;
                    }
                    if n < 0 {
                        let e = *libc::__errno_location();
                        if e != libc::EAGAIN && e != libc::EWOULDBLOCK && e != libc::EINTR {
                            (*c).set_is_closing(1);
                            self.needs_poll = true;
                            continue;
                        }
                    }
                }
            }
            self.after_send(slot);
        }
        self.dirty.clear();
    }

    /// Bookkeeping once (some of) a connection's output left: shrink a
    /// drained buffer, start the closing handshake after a final response,
    /// resume parsing paused by backpressure.
    fn after_send(&mut self, slot: u32) {
        let s = &mut self.slots[slot as usize];
        let c = s.c;
        if let Kind::Client(cl) = &mut s.kind {
            if cl.drained(unsafe { (*c).send.len }) {
                self.events.drain(s.id, slot);
            }
            return;
        }
        let Kind::Http(h) = &mut s.kind else { return };
        if unsafe { h.out.refill(&mut (*c).send) } {
            // More to send: the flush in progress (or the one after this
            // poll) writes it.
            self.mark_dirty(slot);
        }
        let s = &mut self.slots[slot as usize];
        let Kind::Http(h) = &mut s.kind else { return };
        unsafe {
            let sent_all = (*c).send.len == 0;
            if sent_all && (*c).send.size > 64 * 1024 {
                sys::mg_iobuf_free(&mut (*c).send);
            }
            if sent_all && h.close_when_sent && !s.lingering {
                s.lingering = true;
                // Read again (and discard) to see the peer's FIN.
                set_read_paused(c, false);
                libc::shutdown((*c).fd as usize as c_int, libc::SHUT_WR);
                let deadline = now_ms() + LINGER_MS;
                self.lingering.push((slot, s.id, deadline));
                return;
            }
            if let Some((seq, threshold)) = s.drain_at {
                // The response is the one being sent, or complete and
                // moved into the output already (writes nobody awaited
                // before `end()`).
                if seq.wrapping_sub(h.send_seq) as i32 <= 0 && h.unsent(c) <= threshold {
                    s.drain_at = None;
                    self.events.drain(s.id, slot);
                }
            }
            let Kind::Http(h) = &mut self.slots[slot as usize].kind else {
                return;
            };
            if h.paused && h.unsent(c) < SEND_HIGH_WATER / 2 {
                h.paused = false;
                self.drive_http(slot);
            }
        }
    }

    /// Asks for a DRAIN event once the response to `seq` is the one being
    /// sent and at most `threshold` bytes of output remain queued. Returns
    /// the bytes queued now, or 0 if that is already the case (no event).
    pub fn want_drain(&mut self, slot: u32, id: u64, seq: u32, threshold: usize) -> Result<usize, i32> {
        let c = self.conn(slot, id)?;
        let s = &mut self.slots[slot as usize];
        let Kind::Http(h) = &mut s.kind else {
            return Err(fail(Status::State, "not an HTTP connection"));
        };
        // A response already complete counts as the front one.
        let idx = (seq.wrapping_sub(h.send_seq) as i32).max(0) as usize;
        let sent = h.unsent(c);
        let queued = match h.inflight.get(idx).map(|p| &p.state) {
            Some(RespState::Streaming { held, .. }) if idx > 0 => held.len() + sent,
            _ => sent,
        };
        if idx == 0 && queued <= threshold {
            return Ok(0);
        }
        s.drain_at = Some((seq, threshold));
        Ok(queued.max(1))
    }

    fn expire_lingering(&mut self) {
        if self.lingering.is_empty() {
            return;
        }
        let now = now_ms();
        let slots = &self.slots;
        let mut expired = false;
        self.lingering.retain(|&(slot, id, deadline)| {
            let s = &slots[slot as usize];
            if s.id != id {
                return false;
            }
            if now >= deadline {
                unsafe { (*s.c).set_is_closing(1) };
                expired = true;
                return false;
            }
            true
        });
        self.needs_poll |= expired;
    }

    /// Parses what the connection received and queues request events.
    /// Parses what a connection received and hands requests to JS, then
    /// pauses or resumes reading from its socket to match the parser.
    fn drive_http(&mut self, slot: u32) {
        self.parse_http(slot);
        let s = &self.slots[slot as usize];
        if let Kind::Http(h) = &s.kind {
            set_read_paused(s.c, (h.paused || h.body_paused) && !h.parser.stopped());
        }
    }

    fn parse_http(&mut self, slot: u32) {
        let s = &mut self.slots[slot as usize];
        let (id, c) = (s.id, s.c);
        let Kind::Http(h) = &mut s.kind else { return };
        if s.lingering || h.parser.stopped() {
            unsafe { (*c).recv.len = 0 };
            return;
        }
        if h.body_paused {
            return; // JS has not consumed the streamed body yet
        }
        let mut parser = std::mem::take(&mut h.parser);
        let can_start = h.inflight.len() < MAX_INFLIGHT && h.unsent(c) < SEND_HIGH_WATER;
        let limits = self.limits;
        let mut reject = None;
        let mut body_pending = false;
        let mut cached: Vec<(u32, Rc<Entry>, bool)> = Vec::new();
        let mut now = 0;
        let consumed = unsafe {
            let input = if (*c).recv.len == 0 {
                &[][..]
            } else {
                std::slice::from_raw_parts((*c).recv.buf, (*c).recv.len)
            };
            parser.feed(input, &limits, can_start, &mut |p| match p {
                Parsed::Request(r) => {
                    if !self.cache.is_empty() && (r.info.head_only || method_is_get(r.head, r.info)) {
                        if now == 0 {
                            now = now_ms();
                        }
                        let target = &r.head[r.info.target.0 as usize..][..r.info.target.1 as usize];
                        if let Some(entry) = self.cache.get(target, now) {
                            let fresh = header_value(r.head, r.info, b"if-none-match")
                                .is_some_and(|v| etag_matches(v, &entry.etag));
                            let (seq, more) = self.queue_request(slot, c, r.info);
                            self.stats.cache_hits += 1;
                            cached.push((seq, entry, fresh));
                            return more;
                        }
                    }
                    let (seq, more) = self.queue_request(slot, c, r.info);
                    self.events.http(&HttpRecord {
                        id,
                        slot,
                        seq,
                        flags: request_flags(r.info, false),
                        head: r.head,
                        method: r.info.method,
                        target: r.info.target,
                        headers: &r.info.headers,
                        body: r.body,
                    });
                    more
                }
                Parsed::StreamStart(r) => {
                    let (seq, _) = self.queue_request(slot, c, r.info);
                    if let Kind::Http(h) = &mut self.slots[slot as usize].kind {
                        h.streaming_seq = Some(seq);
                        h.continue_on_read = r.info.expect_continue;
                    }
                    self.events.http(&HttpRecord {
                        id,
                        slot,
                        seq,
                        flags: request_flags(r.info, true),
                        head: r.head,
                        method: r.info.method,
                        target: r.info.target,
                        headers: &r.info.headers,
                        body: &[],
                    });
                    true
                }
                Parsed::BodyChunk(bytes) => {
                    let Kind::Http(h) = &mut self.slots[slot as usize].kind else {
                        return false;
                    };
                    h.unacked += bytes.len();
                    if h.unacked > BODY_HIGH_WATER {
                        h.body_paused = true;
                    }
                    let seq = h.streaming_seq.unwrap_or(0);
                    self.events.body(id, slot, seq, bytes, 0, 0);
                    true
                }
                Parsed::BodyEnd => {
                    let Kind::Http(h) = &mut self.slots[slot as usize].kind else {
                        return false;
                    };
                    let seq = h.streaming_seq.take().unwrap_or(0);
                    self.events.body(id, slot, seq, &[], BODY_FLAG_END, 0);
                    let Kind::Http(h) = &mut self.slots[slot as usize].kind else {
                        return false;
                    };
                    let more =
                        !h.last_request && h.inflight.len() < MAX_INFLIGHT && h.unsent(c) < SEND_HIGH_WATER;
                    if !more {
                        h.paused = true;
                    }
                    more
                }
                Parsed::BodyPending(info) => {
                    body_pending = info.expect_continue;
                    true
                }
                Parsed::Reject(status) => {
                    reject = Some(status);
                    false
                }
            })
        };
        let in_body = parser.in_body();
        let remaining = parser.body_remaining();
        let Kind::Http(h) = &mut self.slots[slot as usize].kind else {
            return;
        };
        h.parser = parser;
        if !can_start && !in_body {
            h.paused = true;
        }
        unsafe {
            let recv = &mut (*c).recv;
            iobuf_consume(recv, consumed);
            if in_body {
                // Let Mongoose read big bodies in big steps.
                let want = remaining.unwrap_or(64 * 1024).min(256 * 1024) as usize;
                if recv.size < want.min(256 * 1024) {
                    sys::mg_iobuf_resize(recv, want);
                }
            } else if recv.len == 0 && recv.size > 16 * 1024 {
                sys::mg_iobuf_free(recv);
            } else if recv.len * 2 > recv.size && recv.size < MAX_RECV {
                // Unparsed input piles up (a client pipelining without
                // reading): grow geometrically. Mongoose grows a full buffer
                // by MG_IO_SIZE at a time, copying and zeroing it each time,
                // which made 4 MiB of such input cost seconds of CPU.
                sys::mg_iobuf_resize(recv, (recv.size * 2).min(MAX_RECV));
            }
        }
        if body_pending {
            h.continue_pending = true;
            self.send_continue_if_due(slot);
        }
        for (seq, entry, not_modified) in cached {
            // Answered here, in request order like any other reply.
            let _ = if not_modified {
                self.reply(slot, id, seq, 304, 0, &entry.etag_line, b"")
            } else {
                self.reply(slot, id, seq, entry.status, 0, &entry.head, &entry.body)
            };
        }
        if let Some(status) = reject {
            let Kind::Http(h) = &mut self.slots[slot as usize].kind else {
                return;
            };
            if let Some(seq) = h.streaming_seq.take() {
                // The body of a request JS already has went wrong (e.g. over
                // maxBodySize): end it with an error and answer the request
                // here unless JS already did.
                h.continue_pending = false;
                self.events.body(id, slot, seq, &[], BODY_FLAG_ERROR, status);
                self.reply_rejection(slot, id, seq, status);
                if let Kind::Http(h) = &mut self.slots[slot as usize].kind {
                    // Answered by JS already: close once that response is out.
                    if let Some(last) = h.inflight.back_mut() {
                        last.meta.close = true;
                    }
                    if h.inflight.is_empty() {
                        h.close_when_sent = true;
                        self.mark_dirty(slot);
                    }
                }
                return;
            }
            let seq = h.next_seq;
            h.next_seq = h.next_seq.wrapping_add(1);
            h.continue_pending = false;
            h.inflight.push_back(Pending::new(ResponseMeta {
                head_only: false,
                close: true,
                http10: false,
            }));
            self.awaiting += 1;
            self.reply_rejection(slot, id, seq, status);
        }
    }

    /// Answers request `seq` with mgnet's own error response and closes
    /// the connection after it (a no-op if JS answered it already).
    fn reply_rejection(&mut self, slot: u32, id: u64, seq: u32, status: u16) {
        let body = reject_body(status);
        let _ = self.reply(
            slot,
            id,
            seq,
            status,
            REPLY_CLOSE,
            b"content-type: text/plain; charset=utf-8\r\n",
            body.as_bytes(),
        );
    }

    /// Adds a request handed to JS (or to the cache) to the connection's
    /// response queue. Returns its sequence number and whether another
    /// request may start now (pipelining backpressure).
    fn queue_request(
        &mut self,
        slot: u32,
        c: *mut sys::mg_connection,
        info: &crate::http::ReqInfo,
    ) -> (u32, bool) {
        let Kind::Http(h) = &mut self.slots[slot as usize].kind else {
            return (0, false);
        };
        let seq = h.next_seq;
        self.stats.requests += 1;
        h.next_seq = h.next_seq.wrapping_add(1);
        h.inflight.push_back(Pending::new(ResponseMeta {
            head_only: info.head_only,
            close: !info.keep_alive || h.last_request,
            http10: info.http10,
        }));
        self.awaiting += 1;
        let more = !h.last_request && h.inflight.len() < MAX_INFLIGHT && h.unsent(c) < SEND_HIGH_WATER;
        if !more {
            h.paused = true;
        }
        (seq, more)
    }

    /// JS consumed `n` bytes of a streamed body: resume reading once little
    /// is left unconsumed. The first call (JS started reading, `n` may be
    /// 0) sends a `100 Continue` the client asked for. Returns whether
    /// reading resumed.
    pub fn body_ack(&mut self, slot: u32, id: u64, n: usize) -> Result<bool, i32> {
        self.conn(slot, id)?;
        let Kind::Http(h) = &mut self.slots[slot as usize].kind else {
            return Err(fail(Status::State, "not an HTTP connection"));
        };
        h.unacked = h.unacked.saturating_sub(n);
        if std::mem::take(&mut h.continue_on_read) {
            h.continue_pending = true;
            self.send_continue_if_due(slot);
            return Ok(false);
        }
        let Kind::Http(h) = &mut self.slots[slot as usize].kind else {
            return Ok(false);
        };
        if h.body_paused && h.unacked <= BODY_LOW_WATER {
            h.body_paused = false;
            self.drive_http(slot);
            return Ok(true);
        }
        Ok(false)
    }

    /// Sends `100 Continue` once every earlier response is out.
    fn send_continue_if_due(&mut self, slot: u32) {
        let s = &mut self.slots[slot as usize];
        let Kind::Http(h) = &mut s.kind else { return };
        // A streaming request waits in the queue itself: only the responses
        // ahead of it must be out.
        let ahead = h.inflight.len() - usize::from(h.streaming_seq.is_some());
        if h.continue_pending && ahead == 0 && h.parser.in_body() {
            h.continue_pending = false;
            unsafe {
                h.out
                    .append(&mut (*s.c).send, &[b"HTTP/1.1 100 Continue\r\n\r\n"])
            };
            self.mark_dirty(slot);
        } else if !h.parser.in_body() {
            h.continue_pending = false;
        }
    }

    /// The live HTTP connection and the queue index of request `seq`
    /// (`SEQ_OLDEST`: the oldest one nothing was answered for yet).
    fn request(&mut self, slot: u32, id: u64, seq: u32) -> Result<(*mut sys::mg_connection, usize), i32> {
        let c = self.conn(slot, id)?;
        let Kind::Http(h) = &mut self.slots[slot as usize].kind else {
            return Err(fail(Status::State, "not an HTTP connection"));
        };
        if h.close_when_sent {
            // An earlier response closed the connection; later requests are dropped.
            return Err(fail(
                Status::Closed,
                format!("connection {id} is closing: an earlier response ended it"),
            ));
        }
        let idx = if seq == SEQ_OLDEST {
            h.inflight
                .iter()
                .position(|p| matches!(p.state, RespState::Waiting))
                .ok_or_else(|| fail(Status::State, "no request is waiting for a response"))?
        } else {
            seq.wrapping_sub(h.send_seq) as usize
        };
        if idx >= h.inflight.len() {
            return Err(fail(Status::State, "request already answered or unknown"));
        }
        Ok((c, idx))
    }

    /// The cached `date:` line, or none when the handler sends its own.
    fn date_line(&self, flags: u32) -> ([u8; 37], usize) {
        if flags & REPLY_OWN_DATE != 0 {
            ([0; 37], 0)
        } else {
            (self.date.line().try_into().unwrap_or([0; 37]), 37)
        }
    }

    /// Appends response bytes for queue entry `idx`: straight to the send
    /// buffer for the front, into the entry's `held` bytes otherwise.
    fn emit(
        &mut self,
        slot: u32,
        c: *mut sys::mg_connection,
        idx: usize,
        parts: &[&[u8]],
    ) -> Result<(), i32> {
        let Kind::Http(h) = &mut self.slots[slot as usize].kind else {
            return Ok(());
        };
        if idx == 0 {
            if !unsafe { h.out.append(&mut (*c).send, parts) } {
                unsafe { (*c).set_is_closing(1) };
                self.needs_poll = true;
                return Err(fail(Status::NoMem, "out of memory for the response"));
            }
            self.mark_dirty(slot);
            return Ok(());
        }
        if let RespState::Streaming { held, .. } | RespState::Done { held } = &mut h.inflight[idx].state {
            for p in parts {
                held.extend_from_slice(p);
            }
        }
        Ok(())
    }

    /// Takes request `idx` from Waiting to `next`, returning its (possibly
    /// closing) framing metadata.
    fn answer(&mut self, slot: u32, idx: usize, flags: u32, next: RespState) -> Result<ResponseMeta, i32> {
        let Kind::Http(h) = &mut self.slots[slot as usize].kind else {
            return Err(fail(Status::State, "not an HTTP connection"));
        };
        let p = &mut h.inflight[idx];
        if !matches!(p.state, RespState::Waiting) {
            return Err(fail(Status::State, "request already answered"));
        }
        if flags & REPLY_CLOSE != 0 {
            p.meta.close = true;
        }
        if h.streaming_seq == Some(h.send_seq.wrapping_add(idx as u32)) {
            // Answered before its body arrived: no 100 Continue any more, and
            // the connection closes after the response (the rest of the
            // body is not worth reading; RFC 9110 15.5.14 allows it).
            p.meta.close = true;
            h.continue_pending = false;
            h.continue_on_read = false;
        }
        p.state = next;
        Ok(p.meta)
    }

    /// Answers request `seq` (or the oldest unanswered one) with a complete
    /// response. Responses leave in request order: an early answer waits.
    #[allow(clippy::too_many_arguments)]
    pub fn reply(
        &mut self,
        slot: u32,
        id: u64,
        seq: u32,
        status: u16,
        flags: u32,
        head: &[u8],
        body: &[u8],
    ) -> Result<(), i32> {
        if !(100..=999).contains(&status) {
            return Err(fail(Status::Invalid, format!("invalid status {status}")));
        }
        let (c, idx) = self.request(slot, id, seq)?;
        let meta = self.answer(slot, idx, flags, RespState::Done { held: Vec::new() })?;
        self.awaiting -= 1;
        let (date, date_len) = self.date_line(flags);
        let mut result = Ok(());
        write_response(status, head, body, meta, &date[..date_len], &mut |parts| {
            result = self.emit(slot, c, idx, parts);
        });
        result?;
        if idx == 0 {
            self.complete_front(slot, c);
        }
        Ok(())
    }

    /// Starts a streamed response to request `seq`: sends the head; the
    /// body follows with [`Manager::write`] and [`Manager::end`]. With a
    /// `length` the body goes out unframed behind a `content-length`.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        &mut self,
        slot: u32,
        id: u64,
        seq: u32,
        status: u16,
        flags: u32,
        head: &[u8],
        length: Option<u64>,
    ) -> Result<(), i32> {
        if !(200..=999).contains(&status) {
            return Err(fail(Status::Invalid, format!("invalid status {status}")));
        }
        let (c, idx) = self.request(slot, id, seq)?;
        let Kind::Http(h) = &mut self.slots[slot as usize].kind else {
            return Err(fail(Status::State, "not an HTTP connection"));
        };
        let framing = StreamFraming::for_response(status, &h.inflight[idx].meta, length.is_some());
        // Without chunked framing the body ends where the connection does.
        let close = if framing == StreamFraming::Close {
            REPLY_CLOSE
        } else {
            0
        };
        let state = RespState::Streaming {
            framing,
            held: Vec::new(),
            left: length.unwrap_or(u64::MAX),
        };
        let meta = self.answer(slot, idx, flags | close, state)?;
        let (date, date_len) = self.date_line(flags);
        let mut result = Ok(());
        write_stream_head(
            status,
            head,
            framing,
            length,
            meta,
            &date[..date_len],
            &mut |parts| {
                result = self.emit(slot, c, idx, parts);
            },
        );
        result
    }

    /// Sends one piece of a streamed response's body. Returns the bytes
    /// queued for this response that the socket has not taken yet.
    pub fn write(&mut self, slot: u32, id: u64, seq: u32, data: &[u8]) -> Result<usize, i32> {
        let (c, idx) = self.request(slot, id, seq)?;
        let Kind::Http(h) = &mut self.slots[slot as usize].kind else {
            return Err(fail(Status::State, "not an HTTP connection"));
        };
        let RespState::Streaming { framing, left, .. } = &mut h.inflight[idx].state else {
            return Err(fail(
                Status::State,
                "no streamed response in progress for this request",
            ));
        };
        let framing = *framing;
        if *left != u64::MAX {
            if data.len() as u64 > *left {
                return Err(fail(
                    Status::Invalid,
                    format!(
                        "{} bytes exceed the declared content-length by {}",
                        data.len(),
                        data.len() as u64 - *left
                    ),
                ));
            }
            *left -= data.len() as u64;
        }
        let mut result = Ok(());
        write_chunk(framing, data, &mut |parts| {
            result = self.emit(slot, c, idx, parts);
        });
        result?;
        let Kind::Http(h) = &self.slots[slot as usize].kind else {
            return Ok(0);
        };
        let held = match &h.inflight[idx].state {
            RespState::Streaming { held, .. } => held.len(),
            _ => 0,
        };
        Ok(held + h.unsent(c))
    }

    /// Ends a streamed response (`close`: close the connection after it).
    pub fn end(&mut self, slot: u32, id: u64, seq: u32, close: bool) -> Result<(), i32> {
        let (c, idx) = self.request(slot, id, seq)?;
        let Kind::Http(h) = &mut self.slots[slot as usize].kind else {
            return Err(fail(Status::State, "not an HTTP connection"));
        };
        let p = &mut h.inflight[idx];
        let RespState::Streaming { framing, held, left } = &mut p.state else {
            return Err(fail(
                Status::State,
                "no streamed response in progress for this request",
            ));
        };
        let framing = *framing;
        // A sized body that ended short can only be told apart from a
        // complete one by closing the connection.
        let short = framing == StreamFraming::Length && *left != 0;
        let held = std::mem::take(held);
        p.state = RespState::Done { held };
        p.meta.close |= close || short;
        self.awaiting -= 1;
        let mut result = Ok(());
        write_stream_end(framing, &mut |parts| {
            result = self.emit(slot, c, idx, parts);
        });
        result?;
        if idx == 0 {
            self.complete_front(slot, c);
        }
        Ok(())
    }

    /// The front response is complete: retire it and every complete one
    /// behind it, move a streamed one's held bytes out, close if asked.
    fn complete_front(&mut self, slot: u32, c: *mut sys::mg_connection) {
        let Kind::Http(h) = &mut self.slots[slot as usize].kind else {
            return;
        };
        let mut closing = false;
        let mut first = true;
        while let Some(p) = h.inflight.front_mut() {
            match &mut p.state {
                RespState::Done { held } => {
                    if !first {
                        unsafe { h.out.append(&mut (*c).send, &[held]) };
                    }
                    closing = p.meta.close;
                    h.inflight.pop_front();
                    h.send_seq = h.send_seq.wrapping_add(1);
                    first = false;
                    if closing {
                        break;
                    }
                }
                RespState::Streaming { held, .. } => {
                    unsafe { h.out.append(&mut (*c).send, &[held]) };
                    *held = Vec::new();
                    break;
                }
                RespState::Waiting => break,
            }
        }
        if closing {
            h.close_when_sent = true;
            h.parser.stop();
            self.drop_inflight(slot);
        }
        self.mark_dirty(slot);
        self.send_continue_if_due(slot);
        if let Kind::Http(h) = &mut self.slots[slot as usize].kind {
            if h.paused && !closing && h.unsent(c) < SEND_HIGH_WATER {
                h.paused = false;
                self.drive_http(slot);
            }
        }
    }

    /// Graceful shutdown, step by step: closes every listener, closes idle
    /// HTTP connections once their output is sent, and lets busy ones
    /// finish the requests already handed to JS, closing after the last
    /// response (`connection: close` where the head is still to be
    /// written). Requests that arrive from now on are not read. Calling it
    /// again only counts. Returns the HTTP connections still open.
    pub fn shutdown(&mut self) -> usize {
        let mut open = 0;
        for i in 0..self.slots.len() {
            let slot = i as u32;
            let (id, c) = (self.slots[i].id, self.slots[i].c);
            if id == 0 || c.is_null() {
                continue;
            }
            let idle = match &mut self.slots[i].kind {
                Kind::Listener => {
                    unsafe { (*c).set_is_closing(1) };
                    false
                }
                Kind::Http(h) => {
                    open += 1;
                    if h.close_when_sent || unsafe { (*c).is_closing() } != 0 {
                        continue;
                    }
                    if h.parser.in_body() {
                        // A body is arriving (an upload): let it finish.
                        h.last_request = true;
                        if let (Some(last), true) = (h.inflight.back_mut(), h.streaming_seq.is_some()) {
                            last.meta.close = true;
                        }
                        continue;
                    }
                    h.parser.stop();
                    match h.inflight.back_mut() {
                        Some(last) => {
                            last.meta.close = true;
                            false
                        }
                        None => {
                            h.close_when_sent = true;
                            true
                        }
                    }
                }
                // Outbound connections belong to their own requests.
                Kind::Free | Kind::Client(_) => false,
            };
            if idle {
                self.mark_dirty(slot);
            }
        }
        self.needs_poll = true;
        open
    }

    /// Closes a connection or listener: `drain` sends what is queued first.
    pub fn close(&mut self, slot: u32, id: u64, drain: bool) -> Result<(), i32> {
        let c = self.conn(slot, id)?;
        unsafe {
            if drain && matches!(self.slots[slot as usize].kind, Kind::Client(_)) {
                (*c).set_is_draining(1);
            } else if drain && (*c).is_listening() == 0 {
                if let Kind::Http(h) = &mut self.slots[slot as usize].kind {
                    h.parser.stop();
                    h.close_when_sent = true;
                }
                self.drop_inflight(slot);
                self.mark_dirty(slot);
            } else {
                (*c).set_is_closing(1);
            }
        }
        self.needs_poll = true;
        Ok(())
    }

    fn on_accept(&mut self, c: *mut sys::mg_connection, info: &ListenerInfo) {
        unsafe {
            self.accepted = true;
            self.stats.accepted += 1;
            let id = (*c).id;
            let kind = match info.proto {
                Proto::Http => Kind::Http(Box::default()),
            };
            let slot = self.alloc_slot(id, c, kind);
            set_slot_of(c, slot);
            if (*c).is_tls() == 0 {
                epoll_mode(c, true);
            }
            (*c).fn_ = Some(on_conn);
            (*c).fn_data = info.mgr as *mut c_void;
            let rem = &(*c).rem;
            let loc = &(*c).loc;
            self.events.open(
                id,
                slot,
                info.id,
                rem.is_ip6,
                (&addr_bytes(rem), u16::from_be(rem.port)),
                (&addr_bytes(loc), u16::from_be(loc.port)),
            );
        }
    }

    unsafe fn on_event(&mut self, c: *mut sys::mg_connection, ev: c_int, ev_data: *mut c_void) {
        let slot = slot_of(c);
        let valid = self
            .slots
            .get(slot as usize)
            .is_some_and(|s| s.c == c && s.id != 0);
        if !valid {
            return;
        }
        match ev as u32 {
            sys::MG_EV_READ => {
                if (*c).data[DATA_FIN] != 0 || (*c).recv.len == (*c).recv.size {
                    // Data may remain in the socket (a full buffer) or the
                    // end of stream is pending: level-triggered from now on.
                    (*c).data[DATA_FIN] = 0;
                    epoll_mode(c, false);
                }
                if matches!(self.slots[slot as usize].kind, Kind::Http(_)) {
                    self.drive_http(slot);
                }
            }
            sys::MG_EV_WRITE => self.after_send(slot),
            sys::MG_EV_ERROR => {
                let msg = if ev_data.is_null() {
                    &b"error"[..]
                } else {
                    CStr::from_ptr(ev_data as *const libc::c_char).to_bytes()
                };
                let id = self.slots[slot as usize].id;
                self.events.error(id, slot, msg);
            }
            sys::MG_EV_CLOSE => {
                // Only connections announce their end: a listener is not one.
                if !matches!(self.slots[slot as usize].kind, Kind::Listener) {
                    let id = self.slots[slot as usize].id;
                    self.events.close(id, slot);
                }
                self.release_slot(slot);
            }
            _ => {}
        }
    }
}

/// Event handler of accepted connections (and of listeners, below).
unsafe extern "C" fn on_conn(c: *mut sys::mg_connection, ev: c_int, ev_data: *mut c_void) {
    if ev == sys::MG_EV_POLL as c_int {
        return; // called for every connection on every poll: stay cheap
    }
    let m = (*c).fn_data as *mut Manager;
    guard(|| (*m).on_event(c, ev, ev_data));
}

/// Handler of listening connections. Accepted connections inherit it and
/// switch to [`on_conn`] on their first event.
unsafe extern "C" fn on_listener(c: *mut sys::mg_connection, ev: c_int, ev_data: *mut c_void) {
    if ev == sys::MG_EV_POLL as c_int {
        return;
    }
    let info = &*((*c).fn_data as *const ListenerInfo);
    let m = info.mgr;
    if (*c).is_listening() == 0 {
        if ev == sys::MG_EV_ACCEPT as c_int {
            guard(|| (*m).on_accept(c, info));
        }
        return;
    }
    guard(|| (*m).on_event(c, ev, ev_data));
}

/// Handler of the wake-up socket: drops what it reads.
unsafe extern "C" fn on_wake(c: *mut sys::mg_connection, ev: c_int, _ev_data: *mut c_void) {
    if ev == sys::MG_EV_READ as c_int {
        (*c).recv.len = 0;
        (*((*c).fn_data as *mut Manager)).wake_pending = false;
    }
}

/// Runs `f`, turning a panic into a recorded error: unwinding must not cross
/// Mongoose's C frames.
fn guard(f: impl FnOnce()) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err() {
        fail(Status::Panic, "internal error in an event handler");
    }
}
