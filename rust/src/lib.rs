//! mgnet's C ABI: the only symbols `src/ffi.ts` loads.
//!
//! Rules every export follows:
//! - names start with `mgnet_`; integers in, an integer status out
//!   (negative values are [`error::Status`], details via `mgnet_last_error`);
//! - managers are small integer handles, connections are (slot, id) pairs
//!   checked on every call: no pointer ever leaves Rust;
//! - no panic crosses the boundary (`catch_unwind` around each body);
//! - a manager is used only by the thread that created it (the registry is
//!   thread-local); only `mgnet_wait` and the watcher thread of
//!   `mgnet_watcher_new` run elsewhere, and they touch nothing but file
//!   descriptors.
//!
//! This file holds the exports only. Below it: `manager.rs` (the protocols
//! registered on a core), `core/` (loop, connections, flush, event
//! records; no protocol), `http/` (the HTTP server and client protocols),
//! `net/` (raw TCP; UDP, DNS, SNTP; timers, posting), `util/` (JSON lookup, glob), `ws/` (WebSocket),
//! `sys.rs` (Mongoose bindings).

pub mod core;
pub mod http;
pub mod manager;
pub mod net;
pub mod sys;
pub mod tls;
pub mod util;
pub mod ws;

use std::cell::RefCell;
use std::ffi::c_int;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::core::error::{self, fail, Status};
use crate::core::transport::Transport;
use manager::Manager;

/// Version of this ABI. `src/ffi.ts` refuses a library with another one.
pub const ABI_VERSION: u32 = 6;

thread_local! {
    /// Live managers of this thread; a handle is an index + 1. Indices are
    /// never reused, so a stale handle cannot reach a newer manager.
    static MANAGERS: RefCell<Vec<Option<*mut Manager>>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` unless it panics (which becomes `Status::Panic`).
fn boundary(f: impl FnOnce() -> i32) -> i32 {
    catch_unwind(AssertUnwindSafe(f))
        .unwrap_or_else(|_| fail(Status::Panic, "internal error (panic) in mgnet"))
}

/// Looks a handle up and runs `f` with the manager pointer.
fn with_manager(h: u32, f: impl FnOnce(*mut Manager) -> i32) -> i32 {
    let ptr = MANAGERS.with(|m| m.borrow().get((h as usize).wrapping_sub(1)).copied().flatten());
    match ptr {
        Some(p) => boundary(|| f(p)),
        None => fail(Status::BadHandle, format!("manager {h} is closed")),
    }
}

/// Makes a byte slice from an FFI buffer argument (null or empty allowed).
///
/// # Safety
/// `ptr` is valid for `len` bytes when `len > 0`.
unsafe fn bytes<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
    if ptr.is_null() || len == 0 {
        &[]
    } else {
        std::slice::from_raw_parts(ptr, len)
    }
}

/// 0 for success, or the failure status.
fn status_of(r: Result<(), i32>) -> i32 {
    r.err().unwrap_or(0)
}

/// A byte count (capped at `i32::MAX`), or the failure status.
fn count_of(r: Result<usize, i32>) -> i32 {
    match r {
        Ok(n) => n.min(i32::MAX as usize) as i32,
        Err(e) => e,
    }
}

/// Writes a new connection's id (f64) at `out[0..8]` and returns its slot,
/// or passes a failure status through.
///
/// # Safety
/// `out` is valid for 8 bytes of writes.
unsafe fn slot_and_id(out: *mut u8, r: Result<(u32, u64), i32>) -> i32 {
    match r {
        Ok((slot, id)) => {
            std::slice::from_raw_parts_mut(out, 8).copy_from_slice(&(id as f64).to_le_bytes());
            slot as i32
        }
        Err(e) => e,
    }
}

/// Returns [`ABI_VERSION`].
///
/// # Safety
/// Safe to call: no arguments.
#[no_mangle]
pub extern "C" fn mgnet_abi_version() -> u32 {
    ABI_VERSION
}

/// Copies the Mongoose version string (e.g. `7.23`) into `out`; returns its length.
///
/// # Safety
/// `out` is valid for `cap` bytes.
#[no_mangle]
pub unsafe extern "C" fn mgnet_mongoose_version(out: *mut u8, cap: u32) -> i32 {
    let v = env!("MGNET_MONGOOSE_VERSION").as_bytes();
    if !out.is_null() {
        std::ptr::copy_nonoverlapping(v.as_ptr(), out, v.len().min(cap as usize));
    }
    v.len() as i32
}

/// Copies the calling thread's last error message into `out` (truncated to
/// `cap`); returns the message's full length.
///
/// # Safety
/// `out` is valid for `cap` bytes.
#[no_mangle]
pub unsafe extern "C" fn mgnet_last_error(out: *mut u8, cap: u32) -> i32 {
    if out.is_null() {
        return error::last_error_into(&mut []) as i32;
    }
    error::last_error_into(std::slice::from_raw_parts_mut(out, cap as usize)) as i32
}

/// Creates a manager with request limits (0 keeps a default). Bodies over
/// `stream_over` bytes stream to JS in BODY events (negative: never).
/// Returns a handle (> 0) or a negative status.
///
/// # Safety
/// Safe to call with any arguments: integers only.
#[no_mangle]
pub extern "C" fn mgnet_manager_new(
    max_head: u32,
    max_headers: u32,
    max_uri: u32,
    max_body: f64,
    stream_over: f64,
) -> i32 {
    boundary(|| {
        let mut limits = http::Limits::default();
        if max_head > 0 {
            limits.max_head = max_head as usize;
        }
        if max_headers > 0 {
            if max_headers as usize > http::MAX_HEADERS_CAP {
                return fail(
                    Status::Invalid,
                    format!("maxHeaders is at most {}", http::MAX_HEADERS_CAP),
                );
            }
            limits.max_headers = max_headers as usize;
        }
        if max_uri > 0 {
            limits.max_uri = max_uri as usize;
        }
        if max_body > 0.0 {
            limits.max_body = max_body as u64;
        }
        if stream_over >= 0.0 {
            limits.stream_over = stream_over as u64;
        }
        match Manager::new(limits) {
            Ok(m) => MANAGERS.with(|r| {
                let mut r = r.borrow_mut();
                r.push(Some(Box::into_raw(m)));
                r.len() as i32
            }),
            Err(e) => fail(Status::Io, e),
        }
    })
}

/// Frees a manager and closes all its connections. Must not run while a
/// `mgnet_wait` on its epoll fd is in progress (wake it and await it first).
///
/// # Safety
/// Safe to call with any handle (a stale one is answered with BadHandle);
/// see above for when.
#[no_mangle]
pub extern "C" fn mgnet_manager_free(h: u32) -> i32 {
    let ptr = MANAGERS.with(|r| {
        r.borrow_mut()
            .get_mut((h as usize).wrapping_sub(1))
            .and_then(Option::take)
    });
    match ptr {
        Some(p) => boundary(|| {
            unsafe { Manager::destroy(p) };
            0
        }),
        None => fail(Status::BadHandle, format!("manager {h} is closed")),
    }
}

/// Listens on a URL (`http://host:port`, port 0 picks a free one). Writes
/// the listener's id (f64) at `out[0..8]` and its port (u16 LE) at
/// `out[8..10]`; returns its slot.
///
/// # Safety
/// `url` is valid for `url_len` bytes; `out` for 16 bytes.
#[no_mangle]
pub unsafe extern "C" fn mgnet_listen(h: u32, url: *const u8, url_len: u32, out: *mut u8) -> i32 {
    let url = bytes(url, url_len as usize);
    with_manager(h, |m| {
        let Ok(url) = std::str::from_utf8(url) else {
            return fail(Status::Invalid, "listen URL is not UTF-8");
        };
        match (*m).listen(url) {
            Ok((slot, id, port)) => {
                let out = std::slice::from_raw_parts_mut(out, 16);
                out[..8].copy_from_slice(&(id as f64).to_le_bytes());
                out[8..10].copy_from_slice(&port.to_le_bytes());
                slot as i32
            }
            Err(e) => e,
        }
    })
}

/// `mgnet_connect` flag: wrap the connection in TLS.
pub const CONNECT_TLS: u32 = 1;
/// `mgnet_connect` flag: skip certificate and host name verification.
pub const CONNECT_INSECURE: u32 = 2;
/// `mgnet_connect` flag: `ca` is a TLS settings buffer (`tls::config::tag`:
/// CA, client certificate and key, ALPN), not CA certificates.
pub const CONNECT_TLS_SPEC: u32 = 4;

/// The TLS transport of an outbound connection from `mgnet_connect`'s
/// arguments (None without `CONNECT_TLS`). The settings are parsed here
/// (client configurations are cached per settings).
fn client_tls(flags: u32, name: &[u8], ca: &[u8]) -> Result<Option<Box<dyn Transport>>, i32> {
    if flags & CONNECT_TLS == 0 {
        return Ok(None);
    }
    let mut spec = if flags & CONNECT_TLS_SPEC != 0 {
        tls::Spec::parse(ca).map_err(|e| fail(Status::Invalid, e))?
    } else {
        tls::Spec {
            ca: ca.to_vec(),
            ..Default::default()
        }
    };
    spec.name = String::from_utf8_lossy(name).into_owned();
    spec.insecure |= flags & CONNECT_INSECURE != 0;
    let t = tls::ClientTls::new(&spec).map_err(|e| fail(Status::Invalid, format!("TLS: {e}")))?;
    Ok(Some(Box::new(t)))
}

/// Opens an outbound connection to `addr` (`tcp://IP:port`; names must be
/// resolved first). With `CONNECT_TLS`, `name` is the server name (SNI and
/// verification) and `ca` the trusted certificates (PEM or DER, may be
/// empty). Writes the connection id (f64) at `out[0..8]`; returns its slot.
/// OPEN (listener id 0), DATA, ERROR and CLOSE events follow.
///
/// # Safety
/// Each pointer is valid for its length; `out` for 8 bytes.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn mgnet_connect(
    h: u32,
    addr: *const u8,
    addr_len: u32,
    flags: u32,
    name: *const u8,
    name_len: u32,
    ca: *const u8,
    ca_len: u32,
    out: *mut u8,
) -> i32 {
    let addr = bytes(addr, addr_len as usize);
    let (name, ca) = (bytes(name, name_len as usize), bytes(ca, ca_len as usize));
    with_manager(h, |m| {
        let Ok(addr) = std::str::from_utf8(addr) else {
            return fail(Status::Invalid, "address is not UTF-8");
        };
        let tls = match client_tls(flags, name, ca) {
            Ok(t) => t,
            Err(e) => return e,
        };
        slot_and_id(out, (*m).connect(addr, tls))
    })
}

/// Asks for a DRAIN event once at most `mark` bytes remain unsent on an
/// outbound connection. Returns the bytes queued now (capped at i32::MAX),
/// or 0 if that is already the case (no event follows).
///
/// # Safety
/// Safe to call with any arguments: integers only; a stale handle or
/// connection is answered with a status.
#[no_mangle]
pub extern "C" fn mgnet_client_want_drain(h: u32, slot: u32, id: f64, mark: u32) -> i32 {
    with_manager(h, |m| {
        match unsafe { (*m).client(|cl, core| cl.want_drain(core, slot, id as u64, mark as usize)) } {
            Ok(n) => n.min(i32::MAX as usize) as i32,
            Err(e) => e,
        }
    })
}

/// Tells the core that JS consumed `n` bytes received on an outbound
/// connection (reading pauses while over 1 MiB is unconsumed). Returns 1
/// if reading resumed (wake the loop), 0 if not, or a negative status.
///
/// # Safety
/// Safe to call with any arguments: integers only; a stale handle or
/// connection is answered with a status.
#[no_mangle]
pub extern "C" fn mgnet_client_ack(h: u32, slot: u32, id: f64, n: u32) -> i32 {
    with_manager(h, |m| {
        match unsafe { (*m).client(|cl, core| cl.ack(core, slot, id as u64, n as usize)) } {
            Ok(resumed) => resumed as i32,
            Err(e) => e,
        }
    })
}

/// Tells the core that JS consumed `n` bytes of the body streaming on
/// (`slot`, `id`). Returns 1 if reading resumed (poll to get what follows),
/// 0 if not, or a negative status.
///
/// # Safety
/// Safe to call with any arguments: integers only; a stale handle or
/// connection is answered with a status.
#[no_mangle]
pub extern "C" fn mgnet_body_ack(h: u32, slot: u32, id: f64, n: u32) -> i32 {
    with_manager(h, |m| {
        match unsafe { (*m).http(|h, core| h.body_ack(core, slot, id as u64, n as usize)) } {
            Ok(resumed) => resumed as i32,
            Err(e) => e,
        }
    })
}

/// Queues `data[off..off+len]` on an outbound connection. Returns the bytes
/// queued and not yet sent (capped at i32::MAX).
///
/// # Safety
/// `data` is valid for `off + len` bytes.
#[no_mangle]
pub unsafe extern "C" fn mgnet_send(h: u32, slot: u32, id: f64, data: *const u8, off: u32, len: u32) -> i32 {
    let data = bytes(data.add(off as usize), len as usize);
    with_manager(h, |m| {
        count_of((*m).client(|cl, core| cl.send(core, slot, id as u64, data)))
    })
}

/// Sends pending replies, polls once without blocking and copies the event
/// batch to `buf[off..off+cap]` if it fits. Returns the batch length; when
/// it exceeds `cap` nothing is copied: call `mgnet_take` with a larger buffer.
///
/// # Safety
/// `buf` is valid for `off + cap` bytes.
#[no_mangle]
pub unsafe extern "C" fn mgnet_poll(h: u32, buf: *mut u8, off: u32, cap: u32) -> i32 {
    with_manager(h, |m| {
        let len = (*m).poll();
        take_into(&mut *m, buf.add(off as usize), cap as usize, len)
    })
}

/// Copies the waiting event batch into `buf` if it fits in `cap`; returns its length.
///
/// # Safety
/// `buf` is valid for `cap` bytes.
#[no_mangle]
pub unsafe extern "C" fn mgnet_take(h: u32, buf: *mut u8, cap: u32) -> i32 {
    with_manager(h, |m| {
        let len = (*m).core().events.len();
        take_into(&mut *m, buf, cap as usize, len)
    })
}

/// Copies the event batch (`len` bytes) into `buf` if it fits in `cap`.
///
/// # Safety
/// `buf` is valid for `cap` bytes.
unsafe fn take_into(m: &mut Manager, buf: *mut u8, cap: usize, len: usize) -> i32 {
    if len > i32::MAX as usize {
        return fail(Status::NoMem, "event batch over 2 GiB");
    }
    let events = &mut m.core().events;
    if len > 0 && len <= cap {
        std::ptr::copy_nonoverlapping(events.bytes.as_ptr(), buf, len);
        events.clear();
        if events.bytes.capacity() > 4 << 20 {
            events.bytes = Vec::new();
        }
    }
    len as i32
}

/// Answers HTTP request `seq` (`0xFFFFFFFF`: the oldest unanswered one) of
/// connection (`slot`, `id`). `head` holds header lines (`name: value\r\n`),
/// the body is `body[body_off..body_off+body_len]`. `flags` bit 0: close the
/// connection after this response. The bytes are sent on the next flush.
///
/// # Safety
/// `head` is valid for `head_len` bytes, `body` for `body_off + body_len`.
#[no_mangle]
pub unsafe extern "C" fn mgnet_http_reply(
    h: u32,
    slot: u32,
    id: f64,
    seq: u32,
    status: u32,
    flags: u32,
    head: *const u8,
    head_len: u32,
    body: *const u8,
    body_off: u32,
    body_len: u32,
) -> i32 {
    let head = bytes(head, head_len as usize);
    let body = if body.is_null() {
        &[][..]
    } else {
        bytes(body.add(body_off as usize), body_len as usize)
    };
    with_manager(h, |m| {
        let status = status.min(u16::MAX as u32) as u16;
        status_of((*m).http(|h, core| h.reply(core, slot, id as u64, seq, status, flags, head, body)))
    })
}

/// Starts (and, called again, follows) a graceful shutdown: listeners
/// close, idle connections close once their output is sent, busy ones after
/// the responses already owed. Returns the HTTP connections still open, or
/// a negative status.
///
/// # Safety
/// Safe to call with any arguments: integers only; a stale handle or
/// connection is answered with a status.
#[no_mangle]
pub extern "C" fn mgnet_shutdown(h: u32) -> i32 {
    with_manager(h, |m| unsafe {
        (*m).core().shutdown().min(i32::MAX as usize) as i32
    })
}

/// Starts a streamed response to request `seq` of (`slot`, `id`): sends the
/// status line and `head` (header lines); the body follows with
/// `mgnet_http_write` and ends with `mgnet_http_end`. HTTP/1.1 clients get
/// chunked framing, HTTP/1.0 clients a body delimited by closing, unless
/// `length` ≥ 0 declares the body's size: then it is sent as
/// `content-length` (also to HEAD), writes past it fail with `Invalid`, and
/// a body that ends short closes the connection.
///
/// # Safety
/// `head` is valid for `head_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn mgnet_http_start(
    h: u32,
    slot: u32,
    id: f64,
    seq: u32,
    status: u32,
    flags: u32,
    head: *const u8,
    head_len: u32,
    length: f64,
) -> i32 {
    let head = bytes(head, head_len as usize);
    // A negative length (or NaN) means "unknown": chunked framing.
    let length = (length >= 0.0).then_some(length as u64);
    with_manager(h, |m| {
        let status = status.min(u16::MAX as u32) as u16;
        status_of((*m).http(|h, core| h.start(core, slot, id as u64, seq, status, flags, head, length)))
    })
}

/// Sends `data[off..off+len]` as part of the streamed response to `seq`.
/// Returns the bytes of this response not yet taken by the socket (use it
/// with `mgnet_want_drain` for backpressure; capped at i32::MAX).
///
/// # Safety
/// `data` is valid for `off + len` bytes.
#[no_mangle]
pub unsafe extern "C" fn mgnet_http_write(
    h: u32,
    slot: u32,
    id: f64,
    seq: u32,
    data: *const u8,
    off: u32,
    len: u32,
) -> i32 {
    let data = if data.is_null() {
        &[][..]
    } else {
        bytes(data.add(off as usize), len as usize)
    };
    with_manager(h, |m| {
        match (*m).http(|h, core| h.write(core, slot, id as u64, seq, data)) {
            Ok(queued) => queued.min(i32::MAX as usize) as i32,
            Err(e) => e,
        }
    })
}

/// Ends the streamed response to `seq`; `close` != 0 closes the connection
/// after it.
///
/// # Safety
/// Safe to call with any arguments: integers only; a stale handle or
/// connection is answered with a status.
#[no_mangle]
pub extern "C" fn mgnet_http_end(h: u32, slot: u32, id: f64, seq: u32, close: u32) -> i32 {
    with_manager(h, |m| unsafe {
        status_of((*m).http(|h, core| h.end(core, slot, id as u64, seq, close != 0)))
    })
}

/// Asks for a DRAIN event once the response to `seq` is being sent and at
/// most `threshold` bytes remain queued. Returns 0 if that already holds
/// (no event follows), else the bytes queued now.
///
/// # Safety
/// Safe to call with any arguments: integers only; a stale handle or
/// connection is answered with a status.
#[no_mangle]
pub extern "C" fn mgnet_want_drain(h: u32, slot: u32, id: f64, seq: u32, threshold: u32) -> i32 {
    with_manager(h, |m| unsafe {
        count_of((*m).http(|h, core| h.want_drain(core, slot, id as u64, seq, threshold as usize)))
    })
}

/// Sends what replies queued. Wakes a waiting `mgnet_wait` if the loop has
/// work (events to deliver, connections to close). Returns 0.
///
/// # Safety
/// Safe to call with any arguments: integers only; a stale handle or
/// connection is answered with a status.
#[no_mangle]
pub extern "C" fn mgnet_flush(h: u32) -> i32 {
    with_manager(h, |m| unsafe {
        let core = (*m).core();
        core.flush();
        if core.next_timeout() == 0 {
            core.wake();
        }
        0
    })
}

/// Caches a response for request target `target` (path and query, exactly
/// as clients send it): later GET and HEAD requests for it are answered
/// without JS until `ttl_ms` passes (0: no expiry). `head` holds header
/// lines; `etag` a quoted entity tag (empty: computed from the body);
/// `tags` newline-separated names for `mgnet_cache_invalidate`.
///
/// # Safety
/// Every pointer is valid for its length.
#[no_mangle]
pub unsafe extern "C" fn mgnet_cache_set(
    h: u32,
    target: *const u8,
    target_len: u32,
    status: u32,
    head: *const u8,
    head_len: u32,
    body: *const u8,
    body_len: u32,
    etag: *const u8,
    etag_len: u32,
    ttl_ms: f64,
    tags: *const u8,
    tags_len: u32,
) -> i32 {
    let target = bytes(target, target_len as usize);
    let head = bytes(head, head_len as usize);
    let body = bytes(body, body_len as usize);
    let etag = bytes(etag, etag_len as usize);
    let tags = bytes(tags, tags_len as usize);
    with_manager(h, |m| {
        if target.is_empty() || !(200..=599).contains(&status) || ttl_ms.is_nan() || ttl_ms < 0.0 {
            return fail(Status::Invalid, "cache: invalid target, status or ttl");
        }
        let tags = String::from_utf8_lossy(tags)
            .split('\n')
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect();
        let etag = (!etag.is_empty()).then_some(etag);
        (*m).http(|h, _| {
            h.cache.set(
                target,
                status as u16,
                head,
                body,
                etag,
                ttl_ms as u64,
                tags,
                crate::core::manager::now_ms(),
            )
        });
        0
    })
}

/// Removes the cached response of `target`; returns 1 if there was one.
///
/// # Safety
/// `target` is valid for `target_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn mgnet_cache_delete(h: u32, target: *const u8, target_len: u32) -> i32 {
    let target = bytes(target, target_len as usize);
    with_manager(h, |m| (*m).http(|h, _| h.cache.remove(target)) as i32)
}

/// Removes every cached response tagged `tag`, or all of them when `tag`
/// is empty; returns how many (or 0 after a clear).
///
/// # Safety
/// `tag` is valid for `tag_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn mgnet_cache_invalidate(h: u32, tag: *const u8, tag_len: u32) -> i32 {
    let tag = bytes(tag, tag_len as usize);
    with_manager(h, |m| {
        (*m).http(|h, _| {
            if tag.is_empty() {
                h.cache.clear();
                return 0;
            }
            h.cache
                .invalidate(&String::from_utf8_lossy(tag))
                .min(i32::MAX as usize) as i32
        })
    })
}

/// Closes a connection or listener. `drain` != 0 sends queued output first.
///
/// # Safety
/// Safe to call with any arguments: integers only; a stale handle or
/// connection is answered with a status.
#[no_mangle]
pub extern "C" fn mgnet_close(h: u32, slot: u32, id: f64, drain: u32) -> i32 {
    with_manager(h, |m| unsafe {
        let core = (*m).core();
        match core.close(slot, id as u64, drain != 0) {
            Ok(()) => {
                core.wake();
                0
            }
            Err(e) => e,
        }
    })
}

/// The epoll fd to pass to `mgnet_wait`.
///
/// # Safety
/// Safe to call with any arguments: integers only; a stale handle or
/// connection is answered with a status.
#[no_mangle]
pub extern "C" fn mgnet_wait_fd(h: u32) -> i32 {
    with_manager(h, |m| unsafe { (*m).core().epoll_fd() })
}

/// Milliseconds the next wait may last (0: poll now).
///
/// # Safety
/// Safe to call with any arguments: integers only; a stale handle or
/// connection is answered with a status.
#[no_mangle]
pub extern "C" fn mgnet_next_timeout(h: u32) -> i32 {
    with_manager(h, |m| unsafe { (*m).core().next_timeout() })
}

/// Writes the manager's counters to `out` as four doubles: polls,
/// connections accepted, requests parsed, cache hits. Returns 0.
///
/// # Safety
/// `out` is valid for 32 bytes of writes.
#[no_mangle]
pub unsafe extern "C" fn mgnet_stats(h: u32, out: *mut u8) -> i32 {
    if out.is_null() {
        return fail(Status::Invalid, "null stats buffer");
    }
    with_manager(h, |m| {
        let s = (*m).stats();
        let out = std::slice::from_raw_parts_mut(out, 32);
        for (i, v) in s.iter().enumerate() {
            out[i * 8..i * 8 + 8].copy_from_slice(&(*v as f64).to_le_bytes());
        }
        0
    })
}

/// Number of requests handed to JS that have no response yet.
///
/// # Safety
/// Safe to call with any arguments: integers only; a stale handle or
/// connection is answered with a status.
#[no_mangle]
pub extern "C" fn mgnet_awaiting(h: u32) -> i32 {
    with_manager(h, |m| unsafe {
        (*m).core().awaiting().min(i32::MAX as usize) as i32
    })
}

/// Makes a wait in progress (or the next one) return at once.
///
/// # Safety
/// Safe to call with any arguments: integers only; a stale handle or
/// connection is answered with a status.
#[no_mangle]
pub extern "C" fn mgnet_wake(h: u32) -> i32 {
    with_manager(h, |m| unsafe {
        (*m).core().wake();
        0
    })
}

/// Blocks until the epoll fd `fd` has events or `timeout_ms` passes. Called
/// with Deno's `nonblocking: true`, so it runs on a worker thread; it reads
/// no manager state. Returns 1 when ready, 0 on timeout, or a negative status.
///
/// # Safety
/// Safe to call with any arguments: `fd` is only polled, never read or
/// closed (pass a manager's `mgnet_wait_fd`).
#[no_mangle]
pub extern "C" fn mgnet_wait(fd: i32, timeout_ms: i32) -> i32 {
    let mut p = libc::pollfd {
        fd: fd as c_int,
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        let n = unsafe { libc::poll(&mut p, 1, timeout_ms) };
        if n >= 0 {
            return n.min(1);
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return Status::Io as i32;
        }
    }
}

thread_local! {
    /// Watcher threads of this thread's managers (`core/watcher.rs`); an id is
    /// an index + 1, never reused.
    static WATCHERS: RefCell<Vec<Option<crate::core::watcher::Watcher>>> = const { RefCell::new(Vec::new()) };
}

/// Starts a watcher thread for manager `h`'s epoll fd (a wake path compared
/// with `mgnet_wait`, see docs/architecture.md section 29). It reports each
/// armed wait by calling `callback(ready)` when `callback` is not null (a
/// Deno `UnsafeCallback.threadSafe`), else by writing one byte to a socket
/// pair whose other end's fd it writes to `fd_out` (4 bytes, native endian)
/// for JS to read on Deno's reactor (a doorbell). Returns the watcher id
/// (> 0). Free it with `mgnet_watcher_free` before the manager.
///
/// # Safety
/// `callback`, when not null, is a function taking one `i32` callable from
/// any thread; `fd_out` is null or valid for 4 bytes of writes.
#[no_mangle]
pub unsafe extern "C" fn mgnet_watcher_new(
    h: u32,
    callback: *const std::ffi::c_void,
    fd_out: *mut u8,
) -> i32 {
    use crate::core::watcher::{Notify, Watcher};
    with_manager(h, |m| {
        let fd = (*m).core().epoll_fd();
        let mut peer = -1;
        let notify = if !callback.is_null() {
            Notify::Callback(std::mem::transmute::<*const std::ffi::c_void, extern "C" fn(i32)>(callback))
        } else {
            if fd_out.is_null() {
                return fail(Status::Invalid, "a doorbell needs fd_out");
            }
            let mut sv = [0 as c_int; 2];
            if libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
                0,
                sv.as_mut_ptr(),
            ) != 0
            {
                return fail(
                    Status::Io,
                    format!("socketpair: {}", std::io::Error::last_os_error()),
                );
            }
            peer = sv[1];
            Notify::Doorbell(sv[0])
        };
        match Watcher::start(fd, notify) {
            Ok(w) => {
                if peer >= 0 {
                    std::ptr::copy_nonoverlapping(peer.to_ne_bytes().as_ptr(), fd_out, 4);
                }
                WATCHERS.with(|ws| {
                    let mut ws = ws.borrow_mut();
                    ws.push(Some(w));
                    ws.len() as i32
                })
            }
            Err(e) => {
                if let Notify::Doorbell(own) = notify {
                    libc::close(own);
                    libc::close(peer);
                }
                fail(Status::Io, e)
            }
        }
    })
}

/// Arms watcher `id` for one report: when the epoll fd is ready, or after
/// `timeout_ms` (negative: none). Arm it again only after that report.
///
/// # Safety
/// Safe to call with any arguments: integers only.
#[no_mangle]
pub extern "C" fn mgnet_watcher_arm(id: u32, timeout_ms: i32) -> i32 {
    boundary(|| {
        WATCHERS.with(|ws| match ws.borrow().get((id as usize).wrapping_sub(1)) {
            Some(Some(w)) => match w.arm(timeout_ms) {
                Ok(()) => 0,
                Err(e) => fail(Status::Io, e),
            },
            _ => fail(Status::BadHandle, format!("watcher {id} is closed")),
        })
    })
}

/// Stops and joins watcher `id` (no report after this returns).
///
/// # Safety
/// Safe to call with any arguments: integers only.
#[no_mangle]
pub extern "C" fn mgnet_watcher_free(id: u32) -> i32 {
    boundary(|| {
        let w = WATCHERS.with(|ws| {
            ws.borrow_mut()
                .get_mut((id as usize).wrapping_sub(1))
                .and_then(Option::take)
        });
        match w {
            Some(w) => {
                drop(w);
                0
            }
            None => fail(Status::BadHandle, format!("watcher {id} is closed")),
        }
    })
}

// ---------------------------------------------------------------------------
// UDP, DNS and SNTP (`net/udp.rs`, `net/dns.rs`, `net/sntp.rs`)
// ---------------------------------------------------------------------------

/// `mgnet_udp_send`/`mgnet_dns_query`/`mgnet_sntp_query` address flag: the
/// 16 address bytes are IPv6 (else IPv4 in the first 4).
pub const ADDR_IPV6: u32 = 1;
/// `mgnet_dns_query` flag: ask the system's nameserver (/etc/resolv.conf),
/// ignoring the given address.
pub const DNS_SYSTEM_SERVER: u32 = 2;
/// `mgnet_dns_query` types: bit 0 asks for A, bit 1 for AAAA.
pub const DNS_WANT_A: u32 = 1;
pub const DNS_WANT_AAAA: u32 = 2;

/// Reads a peer address: 16 bytes at `addr[off..]` plus `port` and `flags`.
///
/// # Safety
/// `addr` is valid for `off + 16` bytes.
unsafe fn peer_arg(addr: *const u8, off: u32, port: u32, flags: u32) -> Result<net::udp::Peer, i32> {
    if addr.is_null() || port > u16::MAX as u32 {
        return Err(fail(Status::Invalid, "bad address or port"));
    }
    let b = bytes(addr.add(off as usize), 16);
    net::udp::Peer::from_bytes(b, port as u16, flags & ADDR_IPV6 != 0)
        .ok_or_else(|| fail(Status::Invalid, "bad address"))
}

/// Binds a UDP socket on `url` (`udp://host:port`, port 0 picks a free
/// one). `max` is the largest datagram delivered or sent (larger received
/// ones are reported with their size and no bytes), `flags` bit 0 allows
/// broadcast, `rcvbuf` > 0 asks for that receive buffer size. Writes the
/// socket's id (f64) at `out[0..8]`, its port (u16 LE) at `out[8..10]`, 1 at
/// `out[10]` if it is IPv6, the granted receive and send buffer sizes (u32
/// LE) at `out[12..16]` and `out[16..20]`; returns its slot. DATAGRAM
/// events follow, then CLOSE.
///
/// # Safety
/// `url` is valid for `url_len` bytes; `out` for 24 bytes.
#[no_mangle]
pub unsafe extern "C" fn mgnet_udp_bind(
    h: u32,
    url: *const u8,
    url_len: u32,
    max: u32,
    flags: u32,
    rcvbuf: u32,
    out: *mut u8,
) -> i32 {
    let url = bytes(url, url_len as usize);
    with_manager(h, |m| {
        let Ok(url) = std::str::from_utf8(url) else {
            return fail(Status::Invalid, "URL is not UTF-8");
        };
        match (*m).bind_udp(url, max as usize, flags, rcvbuf) {
            Ok(b) => {
                let out = std::slice::from_raw_parts_mut(out, 24);
                out[..8].copy_from_slice(&(b.id as f64).to_le_bytes());
                out[8..10].copy_from_slice(&b.port.to_le_bytes());
                out[10] = b.v6 as u8;
                out[12..16].copy_from_slice(&b.rcvbuf.to_le_bytes());
                out[16..20].copy_from_slice(&b.sndbuf.to_le_bytes());
                b.slot as i32
            }
            Err(e) => e,
        }
    })
}

/// Sends `data[off..off+len]` as one datagram from UDP socket (`slot`,
/// `id`) to the address at `addr[addr_off..addr_off+16]` (`flags`:
/// [`ADDR_IPV6`]) and `port`, at once. Returns 1 if the kernel took it, 0 if
/// the socket's send buffer was full (dropped), or a negative status
/// (`Invalid` over the socket's size limit or for an address the socket
/// cannot reach, `Io` with the reason the kernel gave).
///
/// # Safety
/// `addr` is valid for `addr_off + 16` bytes, `data` for `off + len`.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn mgnet_udp_send(
    h: u32,
    slot: u32,
    id: f64,
    addr: *const u8,
    addr_off: u32,
    port: u32,
    flags: u32,
    data: *const u8,
    off: u32,
    len: u32,
) -> i32 {
    let data = if data.is_null() {
        &[][..]
    } else {
        bytes(data.add(off as usize), len as usize)
    };
    with_manager(h, |m| {
        let to = match peer_arg(addr, addr_off, port, flags) {
            Ok(p) => p,
            Err(e) => return e,
        };
        match (*m).udp(|u, core| u.send(core, slot, id as u64, &to, data)) {
            Ok(sent) => sent as i32,
            Err(e) => e,
        }
    })
}

/// Resolves `name` with DNS: sends an A query (`types` bit 0) and/or an
/// AAAA query (bit 1) from a fresh UDP socket to the server at
/// `addr[0..16]`:`port` (`flags`: [`ADDR_IPV6`]; with [`DNS_SYSTEM_SERVER`]
/// the first nameserver of /etc/resolv.conf on port 53 instead). Writes the
/// socket's id (f64) at `out[0..8]`; returns its slot. One DNS event per
/// answered query follows; close the socket when done (or on timeout).
///
/// # Safety
/// `addr` is valid for 16 bytes, `name` for `name_len`, `out` for 8.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn mgnet_dns_query(
    h: u32,
    addr: *const u8,
    port: u32,
    flags: u32,
    name: *const u8,
    name_len: u32,
    types: u32,
    out: *mut u8,
) -> i32 {
    let name = bytes(name, name_len as usize);
    with_manager(h, |m| {
        let server = if flags & DNS_SYSTEM_SERVER != 0 {
            match net::dns::system_nameserver() {
                Ok(p) => p,
                Err(why) => return fail(Status::Io, why),
            }
        } else {
            match peer_arg(addr, 0, port, flags) {
                Ok(p) => p,
                Err(e) => return e,
            }
        };
        let Ok(name) = std::str::from_utf8(name) else {
            return fail(Status::Invalid, "name is not UTF-8");
        };
        let mut qtypes = Vec::new();
        if types & DNS_WANT_A != 0 {
            qtypes.push(net::dns::TYPE_A);
        }
        if types & DNS_WANT_AAAA != 0 {
            qtypes.push(net::dns::TYPE_AAAA);
        }
        if qtypes.is_empty() {
            return fail(Status::Invalid, "no query type");
        }
        slot_and_id(out, (*m).dns_query(server, name, &qtypes))
    })
}

/// Asks the SNTP server at `addr[0..16]`:`port` (`flags`: [`ADDR_IPV6`])
/// for the time from a fresh UDP socket. Writes the socket's id (f64) at
/// `out[0..8]`; returns its slot. One SNTP event follows when a valid reply
/// arrives; close the socket when done (or on timeout).
///
/// # Safety
/// `addr` is valid for 16 bytes, `out` for 8.
#[no_mangle]
pub unsafe extern "C" fn mgnet_sntp_query(
    h: u32,
    addr: *const u8,
    port: u32,
    flags: u32,
    out: *mut u8,
) -> i32 {
    with_manager(h, |m| {
        let server = match peer_arg(addr, 0, port, flags) {
            Ok(p) => p,
            Err(e) => return e,
        };
        slot_and_id(out, (*m).sntp_query(server))
    })
}

// ---------------------------------------------------------------------------
// net: timers and posting into a manager (records TIMER 13, POST 14), the
// keep-alive count, and util: JSON lookup and glob match (docs/architecture.md,
// "Timers, posting and native utilities").
// ---------------------------------------------------------------------------

/// Adds a timer due in `ms` milliseconds (flags: 1 repeat every `ms`, 2
/// keep the loop running). Writes its id (f64) at `out[0..8]`; returns 0.
/// Each fire is a TIMER record in the poll that finds it due.
///
/// # Safety
/// `out` is valid for 8 bytes.
#[no_mangle]
pub unsafe extern "C" fn mgnet_timer_add(h: u32, ms: f64, flags: u32, out: *mut u8) -> i32 {
    if out.is_null() {
        return fail(Status::Invalid, "null output buffer");
    }
    with_manager(h, |m| {
        match (*m).timers(|t, core| t.add(core, ms, flags)) {
            Ok(id) => {
                std::slice::from_raw_parts_mut(out, 8).copy_from_slice(&(id as f64).to_le_bytes());
                (*m).core().wake(); // a waiting loop recomputes its timeout
                0
            }
            Err(e) => e,
        }
    })
}

/// Cancels timer `id`; it never fires again. Returns 1 if it was active, 0
/// if it had fired (one-shot) or was cancelled already.
///
/// # Safety
/// Safe to call with any arguments: integers only.
#[no_mangle]
pub extern "C" fn mgnet_timer_cancel(h: u32, id: f64) -> i32 {
    with_manager(h, |m| unsafe {
        (*m).timers(|t, core| t.cancel(core, id as u64)) as i32
    })
}

/// Makes timer `id` keep the loop running (`refd` != 0) or not. Returns 1
/// if the timer is active, else 0.
///
/// # Safety
/// Safe to call with any arguments: integers only.
#[no_mangle]
pub extern "C" fn mgnet_timer_ref(h: u32, id: f64, refd: u32) -> i32 {
    with_manager(h, |m| unsafe {
        (*m).timers(|t, core| t.set_ref(core, id as u64, refd != 0)) as i32
    })
}

/// Reasons for the loop to wait natively (and so keep the process alive):
/// listeners, connections, ref'd timers, an open mailbox. 0 lets the loop
/// above wait without keeping the process alive.
///
/// # Safety
/// Safe to call with any arguments: integers only.
#[no_mangle]
pub extern "C" fn mgnet_refs(h: u32) -> i32 {
    with_manager(h, |m| unsafe {
        let open = (*m).posts().0.is_open() as usize;
        ((*m).core().refs() + open).min(i32::MAX as usize) as i32
    })
}

/// Opens (once) the manager's mailbox for posts from other threads and
/// writes its token (f64) at `out[0..8]`. Returns 0.
///
/// # Safety
/// `out` is valid for 8 bytes.
#[no_mangle]
pub unsafe extern "C" fn mgnet_post_open(h: u32, out: *mut u8) -> i32 {
    if out.is_null() {
        return fail(Status::Invalid, "null output buffer");
    }
    with_manager(h, |m| {
        let (posts, core) = (*m).posts();
        match posts.open(core) {
            Ok(token) => {
                std::slice::from_raw_parts_mut(out, 8).copy_from_slice(&(token as f64).to_le_bytes());
                0
            }
            Err(e) => e,
        }
    })
}

/// Opens a poster on the mailbox `token` (from `mgnet_post_open`). Any
/// thread may call it. Returns a poster handle (> 0), or BadHandle if the
/// manager is closed.
///
/// # Safety
/// Safe to call with any arguments: numbers only.
#[no_mangle]
pub extern "C" fn mgnet_poster_open(token: f64) -> i32 {
    boundary(|| match net::post::open_poster(token as u64) {
        Ok(p) => p as i32,
        Err(e) => e,
    })
}

/// Posts `data[off..off+len]` (flags: 1 text) through poster `p`. Returns
/// 1 if queued, 0 if the mailbox is full (nothing queued), BadHandle if the
/// manager is closed, Closed if the poster is, Invalid for a message over
/// the mailbox's byte bound. Any thread may call it.
///
/// # Safety
/// `data` is valid for `off + len` bytes.
#[no_mangle]
pub unsafe extern "C" fn mgnet_post(p: u32, data: *const u8, off: u32, len: u32, flags: u32) -> i32 {
    let data = if data.is_null() {
        &[][..]
    } else {
        bytes(data.add(off as usize), len as usize)
    };
    boundary(|| match net::post::post(p, flags as u8, data) {
        Ok(net::post::PostResult::Queued) => 1,
        Ok(net::post::PostResult::Full) => 0,
        Err(e) => e,
    })
}

/// Blocks until poster `p`'s mailbox has room for a `len`-byte message or
/// `ms` pass (call it `nonblocking`). Returns 1 if there is room, 0 on
/// timeout, BadHandle if the manager closed, Closed if the poster is.
///
/// # Safety
/// Safe to call with any arguments: integers only.
#[no_mangle]
pub extern "C" fn mgnet_poster_wait(p: u32, len: u32, ms: u32) -> i32 {
    boundary(|| match net::post::wait_room(p, len as usize, ms) {
        Ok(room) => room as i32,
        Err(e) => e,
    })
}

/// Closes poster `p`. Returns 1 if it was open, else 0.
///
/// # Safety
/// Safe to call with any arguments: integers only.
#[no_mangle]
pub extern "C" fn mgnet_poster_close(p: u32) -> i32 {
    boundary(|| net::post::close_poster(p) as i32)
}

/// Finds the JSON value at `path` (`$.a.b[1]`) in `json` without parsing
/// the rest. Writes its length (u32) at `out[0..4]` and returns its offset;
/// a length of 0 means not found. Invalid for a bad path or document.
///
/// # Safety
/// Each pointer is valid for its length; `out` for 4 bytes.
#[no_mangle]
pub unsafe extern "C" fn mgnet_json_get(
    json: *const u8,
    json_len: u32,
    path: *const u8,
    path_len: u32,
    out: *mut u8,
) -> i32 {
    let json = bytes(json, json_len as usize);
    let path = bytes(path, path_len as usize);
    if out.is_null() {
        return fail(Status::Invalid, "null output buffer");
    }
    boundary(|| {
        let (off, len) = match util::json_get(json, path) {
            Ok(Some(t)) => t,
            Ok(None) => (0, 0),
            Err(e) => return e,
        };
        std::slice::from_raw_parts_mut(out, 4).copy_from_slice(&(len as u32).to_le_bytes());
        off as i32
    })
}

/// Matches `s` against the glob `pattern` (`?`, `*` without `/`, `#`).
/// Returns 1 on a match (writing up to `caps_n` captures as u32 offset and
/// length pairs to `caps`), else 0.
///
/// # Safety
/// Each pointer is valid for its length; `caps` for `caps_n * 8` bytes.
#[no_mangle]
pub unsafe extern "C" fn mgnet_glob_match(
    s: *const u8,
    s_len: u32,
    pattern: *const u8,
    pattern_len: u32,
    caps: *mut u8,
    caps_n: u32,
) -> i32 {
    let s = bytes(s, s_len as usize);
    let pattern = bytes(pattern, pattern_len as usize);
    boundary(|| {
        let mut found = vec![(0u32, 0u32); if caps.is_null() { 0 } else { caps_n as usize }];
        if !util::glob_match(s, pattern, &mut found) {
            return 0;
        }
        if !caps.is_null() {
            let out = std::slice::from_raw_parts_mut(caps, found.len() * 8);
            for (i, (o, l)) in found.iter().enumerate() {
                out[i * 8..i * 8 + 4].copy_from_slice(&o.to_le_bytes());
                out[i * 8 + 4..i * 8 + 8].copy_from_slice(&l.to_le_bytes());
            }
        }
        1
    })
}

// ---------------------------------------------------------------------------
// TCP (`tcp://`, rust/src/net/): framing, connect, send, drain, end, pause.
// ---------------------------------------------------------------------------

/// `mgnet_tcp_framing` / `mgnet_tcp_connect` framing codes.
pub const TCP_FRAMING_RAW: u32 = 0;
/// One record per line.
pub const TCP_FRAMING_LINE: u32 = 1;
/// One record per length-prefixed frame (the prefix width in `prefix`).
pub const TCP_FRAMING_PREFIX: u32 = 2;

/// Checks a framing given by JS.
fn tcp_spec(kind: u32, prefix: u32, max_frame: u32) -> Result<net::FrameSpec, i32> {
    let framing = match (kind, prefix) {
        (TCP_FRAMING_RAW, _) => net::Framing::Raw,
        (TCP_FRAMING_LINE, _) => net::Framing::Line,
        (TCP_FRAMING_PREFIX, 1 | 2 | 4) => net::Framing::Prefix(prefix as u8),
        (TCP_FRAMING_PREFIX, _) => return Err(fail(Status::Invalid, "lengthPrefix must be 1, 2 or 4")),
        _ => return Err(fail(Status::Invalid, format!("unknown framing {kind}"))),
    };
    let max = if max_frame == 0 {
        net::DEFAULT_MAX_FRAME
    } else {
        max_frame as usize
    };
    if max > net::MAX_MAX_FRAME {
        return Err(fail(
            Status::Invalid,
            format!("maxFrame is at most {} bytes", net::MAX_MAX_FRAME),
        ));
    }
    Ok(net::FrameSpec { framing, max })
}

/// Sets how input is cut into DATA records: for a TCP listener (its future
/// connections) or one TCP connection. `kind`: 0 raw, 1 lines, 2 length
/// prefix of `prefix` (1, 2, 4) bytes; `max_frame` 0 keeps 64 KiB.
///
/// # Safety
/// Safe to call with any arguments: integers only; a stale handle or
/// connection is answered with a status.
#[no_mangle]
pub extern "C" fn mgnet_tcp_framing(
    h: u32,
    slot: u32,
    id: f64,
    kind: u32,
    prefix: u32,
    max_frame: u32,
) -> i32 {
    with_manager(h, |m| unsafe {
        let spec = match tcp_spec(kind, prefix, max_frame) {
            Ok(s) => s,
            Err(e) => return e,
        };
        status_of((*m).tcp(|t, core| t.set_framing(core, slot, id as u64, spec)))
    })
}

/// Opens an outbound TCP connection to `addr` (`tcp://IP:port` or
/// `tcp://[IPv6]:port`, resolved already) with a framing as in
/// `mgnet_tcp_framing`. Writes the connection id (f64) at `out[0..8]`;
/// returns its slot. OPEN (listener id 0), TCP DATA/END, DRAIN, ERROR and
/// CLOSE records follow.
///
/// # Safety
/// `addr` is valid for `addr_len` bytes; `out` for 8 bytes.
#[no_mangle]
pub unsafe extern "C" fn mgnet_tcp_connect(
    h: u32,
    addr: *const u8,
    addr_len: u32,
    kind: u32,
    prefix: u32,
    max_frame: u32,
    out: *mut u8,
) -> i32 {
    let addr = bytes(addr, addr_len as usize);
    with_manager(h, |m| {
        let Ok(addr) = std::str::from_utf8(addr) else {
            return fail(Status::Invalid, "address is not UTF-8");
        };
        let spec = match tcp_spec(kind, prefix, max_frame) {
            Ok(s) => s,
            Err(e) => return e,
        };
        slot_and_id(out, (*m).connect_tcp(addr, spec, None))
    })
}

/// Queues `data[off..off+len]` on a TCP connection (sent on the next
/// flush). Returns the bytes queued and not yet sent (capped at i32::MAX).
///
/// # Safety
/// `data` is valid for `off + len` bytes.
#[no_mangle]
pub unsafe extern "C" fn mgnet_tcp_send(
    h: u32,
    slot: u32,
    id: f64,
    data: *const u8,
    off: u32,
    len: u32,
) -> i32 {
    let data = if data.is_null() {
        &[][..]
    } else {
        bytes(data.add(off as usize), len as usize)
    };
    with_manager(h, |m| {
        count_of((*m).tcp(|t, core| t.send(core, slot, id as u64, data)))
    })
}

/// The bytes queued on a TCP connection and not yet taken by the socket
/// (capped at i32::MAX).
///
/// # Safety
/// Safe to call with any arguments: integers only; a stale handle or
/// connection is answered with a status.
#[no_mangle]
pub extern "C" fn mgnet_tcp_queued(h: u32, slot: u32, id: f64) -> i32 {
    with_manager(h, |m| unsafe {
        count_of((*m).tcp(|t, core| t.queued(core, slot, id as u64)))
    })
}

/// Asks for a DRAIN record once at most `mark` bytes remain unsent on a TCP
/// connection. Returns 0 if that already holds (no record follows), else
/// the bytes queued now (capped at i32::MAX).
///
/// # Safety
/// Safe to call with any arguments: integers only; a stale handle or
/// connection is answered with a status.
#[no_mangle]
pub extern "C" fn mgnet_tcp_want_drain(h: u32, slot: u32, id: f64, mark: u32) -> i32 {
    with_manager(h, |m| unsafe {
        count_of((*m).tcp(|t, core| t.want_drain(core, slot, id as u64, mark as usize)))
    })
}

/// Half-closes a TCP connection: our FIN follows the queued output; reading
/// goes on. Returns 0.
///
/// # Safety
/// Safe to call with any arguments: integers only; a stale handle or
/// connection is answered with a status.
#[no_mangle]
pub extern "C" fn mgnet_tcp_end(h: u32, slot: u32, id: f64) -> i32 {
    with_manager(h, |m| unsafe {
        status_of((*m).tcp(|t, core| t.end(core, slot, id as u64)))
    })
}

/// Stops (`paused` != 0) or resumes reading a TCP connection's socket.
/// Returns 1 if reading resumed (wake the loop), else 0.
///
/// # Safety
/// Safe to call with any arguments: integers only; a stale handle or
/// connection is answered with a status.
#[no_mangle]
pub extern "C" fn mgnet_tcp_pause(h: u32, slot: u32, id: f64, paused: u32) -> i32 {
    with_manager(h, |m| unsafe {
        match (*m).tcp(|t, core| t.pause(core, slot, id as u64, paused != 0)) {
            Ok(resumed) => resumed as i32,
            Err(e) => e,
        }
    })
}

// ------------------------------- end of TCP --------------------------------

// ---------------------------------------------------------------------------
// WebSocket (rust/src/ws/): upgrade, send, close, broadcast, drain, connect.
// ---------------------------------------------------------------------------

/// The settings of a WebSocket from the export arguments.
fn ws_options(max_message: f64, close_timeout_ms: u32, flags: u32) -> ws::Options {
    ws::Options {
        max_message: if max_message > 0.0 {
            max_message.min(u32::MAX as f64) as usize
        } else {
            ws::DEFAULT_MAX_MESSAGE
        },
        close_timeout_ms: if close_timeout_ms > 0 {
            close_timeout_ms
        } else {
            ws::DEFAULT_CLOSE_TIMEOUT_MS
        },
        flags,
    }
}

/// Accepts the WebSocket upgrade asked by HTTP request `seq` of (`slot`,
/// `id`): answers 101 with the accept value of `key`, the chosen
/// subprotocol `proto` (empty: none), permessage-deflate when `flags` has
/// `OPT_DEFLATE` and `offer` (the client's `sec-websocket-extensions`)
/// allows it, and the header lines in `head`. The connection is a
/// WebSocket from now on (WS_OPEN follows). `max_message` ≤ 0 and
/// `close_timeout_ms` 0 keep the defaults. Returns 0.
///
/// # Safety
/// Each pointer is valid for its length.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn mgnet_ws_accept(
    h: u32,
    slot: u32,
    id: f64,
    seq: u32,
    key: *const u8,
    key_len: u32,
    proto: *const u8,
    proto_len: u32,
    offer: *const u8,
    offer_len: u32,
    head: *const u8,
    head_len: u32,
    max_message: f64,
    close_timeout_ms: u32,
    flags: u32,
) -> i32 {
    let key = bytes(key, key_len as usize);
    let proto = bytes(proto, proto_len as usize);
    let offer = bytes(offer, offer_len as usize);
    let head = bytes(head, head_len as usize);
    let opts = ws_options(max_message, close_timeout_ms, flags);
    with_manager(h, |m| {
        status_of((*m).ws_accept(slot, id as u64, seq, key, proto, offer, head, opts))
    })
}

/// Sends `data[off..off+len]` on a WebSocket as one frame of `opcode` (1
/// text, 2 binary, 9 ping, 10 pong); `compress` != 0 deflates it when the
/// socket negotiated permessage-deflate. Returns the bytes queued and not
/// yet sent (capped at i32::MAX).
///
/// # Safety
/// `data` is valid for `off + len` bytes.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn mgnet_ws_send(
    h: u32,
    slot: u32,
    id: f64,
    opcode: u32,
    compress: u32,
    data: *const u8,
    off: u32,
    len: u32,
) -> i32 {
    let data = if data.is_null() {
        &[][..]
    } else {
        bytes(data.add(off as usize), len as usize)
    };
    with_manager(h, |m| {
        count_of((*m).ws(|w, core| w.send(core, slot, id as u64, opcode as u8, data, compress != 0)))
    })
}

/// Starts a WebSocket's close handshake with `code` (0: no code) and a
/// UTF-8 `reason` of at most 123 bytes. Idempotent. Returns 0.
///
/// # Safety
/// `reason` is valid for `reason_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn mgnet_ws_close(
    h: u32,
    slot: u32,
    id: f64,
    code: u32,
    reason: *const u8,
    reason_len: u32,
) -> i32 {
    let reason = bytes(reason, reason_len as usize);
    with_manager(h, |m| {
        if code > u16::MAX as u32 {
            return fail(Status::Invalid, format!("invalid close code {code}"));
        }
        match (*m).ws(|w, core| w.close(core, slot, id as u64, code as u16, reason)) {
            Ok(()) => {
                (*m).core().wake();
                0
            }
            Err(e) => e,
        }
    })
}

/// Sends `data[off..off+len]` as one message of `opcode` to `count`
/// WebSockets given as (slot, id) pairs of f64 in `targets`, framing it
/// once. Closed or closing sockets are skipped. Returns how many got it.
///
/// # Safety
/// `targets` is valid for `count * 16` bytes, `data` for `off + len`.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn mgnet_ws_broadcast(
    h: u32,
    targets: *const u8,
    count: u32,
    opcode: u32,
    data: *const u8,
    off: u32,
    len: u32,
) -> i32 {
    let data = if data.is_null() {
        &[][..]
    } else {
        bytes(data.add(off as usize), len as usize)
    };
    let raw = bytes(targets, count as usize * 16);
    with_manager(h, |m| {
        if opcode != 1 && opcode != 2 {
            return fail(Status::Invalid, "broadcast sends text (1) or binary (2)");
        }
        let pairs: Vec<(u32, u64)> = raw
            .chunks_exact(16)
            .map(|p| {
                let slot = f64::from_le_bytes(p[..8].try_into().unwrap());
                let id = f64::from_le_bytes(p[8..].try_into().unwrap());
                (slot as u32, id as u64)
            })
            .collect();
        (*m).ws(|w, core| w.broadcast(core, &pairs, opcode as u8, data))
            .min(i32::MAX as usize) as i32
    })
}

/// Asks for a DRAIN event once at most `mark` bytes remain unsent on a
/// WebSocket. Returns the bytes unsent now, or 0 if that already holds (no
/// event follows).
///
/// # Safety
/// Safe to call with any arguments: integers only; a stale handle or
/// connection is answered with a status.
#[no_mangle]
pub extern "C" fn mgnet_ws_want_drain(h: u32, slot: u32, id: f64, mark: u32) -> i32 {
    with_manager(h, |m| unsafe {
        count_of((*m).ws(|w, core| w.want_drain(core, slot, id as u64, mark as usize)))
    })
}

/// Stops (`on` != 0) or restarts reading a WebSocket whose events JS holds
/// unconsumed; restarting parses what arrived meanwhile.
///
/// # Safety
/// Safe to call with any arguments: integers only; a stale handle or
/// connection is answered with a status.
#[no_mangle]
pub extern "C" fn mgnet_ws_hold(h: u32, slot: u32, id: f64, on: u32) -> i32 {
    with_manager(h, |m| unsafe {
        match (*m).ws(|w, core| w.hold(core, slot, id as u64, on != 0)) {
            Ok(()) => 0,
            Err(e) => e,
        }
    })
}

/// Opens a WebSocket client connection to `addr` (`tcp://IP:port`, TLS as
/// in `mgnet_connect`). `head` holds the request line and header lines of
/// the handshake (mgnet adds the key, the version and an extension offer
/// when `ws_flags` has `OPT_DEFLATE`); `protocols` the offered subprotocols,
/// newline-separated. Writes the connection id (f64) at `out[0..8]`;
/// returns its slot. OPEN (TCP up), then WS_OPEN once the server's 101 is
/// checked, or ERROR and CLOSE.
///
/// # Safety
/// Each pointer is valid for its length; `out` for 8 bytes.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn mgnet_ws_connect(
    h: u32,
    addr: *const u8,
    addr_len: u32,
    flags: u32,
    name: *const u8,
    name_len: u32,
    ca: *const u8,
    ca_len: u32,
    head: *const u8,
    head_len: u32,
    protocols: *const u8,
    protocols_len: u32,
    max_message: f64,
    close_timeout_ms: u32,
    ws_flags: u32,
    out: *mut u8,
) -> i32 {
    let addr = bytes(addr, addr_len as usize);
    let (name, ca) = (bytes(name, name_len as usize), bytes(ca, ca_len as usize));
    let head = bytes(head, head_len as usize);
    let offered: Vec<String> = String::from_utf8_lossy(bytes(protocols, protocols_len as usize))
        .split('\n')
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect();
    let opts = ws_options(max_message, close_timeout_ms, ws_flags);
    with_manager(h, |m| {
        let Ok(addr) = std::str::from_utf8(addr) else {
            return fail(Status::Invalid, "address is not UTF-8");
        };
        let tls = match client_tls(flags, name, ca) {
            Ok(t) => t,
            Err(e) => return e,
        };
        match (*m).ws_connect(addr, tls, opts, head, offered) {
            Ok((slot, id)) => {
                std::slice::from_raw_parts_mut(out, 8).copy_from_slice(&(id as f64).to_le_bytes());
                slot as i32
            }
            Err(e) => e,
        }
    })
}

// ---- WebSocket keep-alive and send buffer limit (issue 12) ----

/// Sets a WebSocket's keep-alive and send buffer limit (call it right
/// after `mgnet_ws_accept`/`mgnet_ws_connect`): a ping after `ping_ms`
/// without a received byte (0: no keep-alive), the close with 1001 when
/// nothing arrives in the `pong_ms` after it (0: `ping_ms`), and
/// `max_buffered`, the most unsent bytes a new frame may find queued (more
/// fails the socket with 1006; ≤ 0: the default 16 MiB, +∞: no limit).
/// Returns 0.
///
/// # Safety
/// Safe to call with any arguments: numbers only; a stale handle or
/// connection is answered with a status.
#[no_mangle]
pub extern "C" fn mgnet_ws_tune(
    h: u32,
    slot: u32,
    id: f64,
    ping_ms: u32,
    pong_ms: u32,
    max_buffered: f64,
) -> i32 {
    let max = if max_buffered.is_nan() || max_buffered <= 0.0 {
        ws::DEFAULT_MAX_BUFFERED
    } else if max_buffered >= usize::MAX as f64 {
        usize::MAX
    } else {
        max_buffered as usize
    };
    with_manager(h, |m| unsafe {
        match (*m).ws(|w, core| w.tune(core, slot, id as u64, ping_ms, pong_ms, max)) {
            Ok(()) => {
                (*m).core().wake();
                0
            }
            Err(e) => e,
        }
    })
}

// ---------------------------- end of WebSocket -----------------------------

// ---------------------------------------------------------------------------
// TLS (rust/src/tls/): listeners with certificates, reload, self-signed
// ---------------------------------------------------------------------------

/// What the TLS handshake of a connection agreed (`tls::conn::info`'s
/// encoding). Returns the encoding's length, and writes it to `out` when it
/// fits in `cap` bytes (call again with a bigger buffer otherwise); 0 when
/// the connection has no TLS or its handshake is not finished; a negative
/// status for a stale handle or connection.
///
/// # Safety
/// `out` is valid for `cap` bytes of writes (or null with `cap` 0).
#[no_mangle]
pub unsafe extern "C" fn mgnet_tls_info(h: u32, slot: u32, id: f64, out: *mut u8, cap: u32) -> i32 {
    with_manager(h, |m| match (*m).core().conn_even_closing(slot, id as u64) {
        Err(e) => e,
        Ok(c) => match tls::conn::info(c) {
            None => 0,
            Some(v) => {
                if v.len() <= cap as usize && !out.is_null() {
                    std::ptr::copy_nonoverlapping(v.as_ptr(), out, v.len());
                }
                v.len().min(i32::MAX as usize) as i32
            }
        },
    })
}

/// Listens with TLS on `url` (`https://host:port` for HTTP and WebSocket,
/// `tls://host:port` for raw TCP) with the settings buffer `spec`
/// (`tls::config::tag`: cert, key, ca, requestCert, SNI entries, ALPN).
/// The settings are parsed before anything is bound: a bad PEM or a key
/// that does not match is `Invalid` with the reason. Writes the id (f64) at
/// `out[0..8]` and the port (u16) at `out[8..10]`; returns the slot.
///
/// # Safety
/// Each pointer is valid for its length; `out` for 16 bytes.
#[no_mangle]
pub unsafe extern "C" fn mgnet_tls_listen(
    h: u32,
    url: *const u8,
    url_len: u32,
    spec: *const u8,
    spec_len: u32,
    out: *mut u8,
) -> i32 {
    let url = bytes(url, url_len as usize);
    let spec = bytes(spec, spec_len as usize);
    with_manager(h, |m| {
        let Ok(url) = std::str::from_utf8(url) else {
            return fail(Status::Invalid, "listen URL is not UTF-8");
        };
        match (*m).listen_tls(url, spec) {
            Ok((slot, id, port)) => {
                let out = std::slice::from_raw_parts_mut(out, 16);
                out[..8].copy_from_slice(&(id as f64).to_le_bytes());
                out[8..10].copy_from_slice(&port.to_le_bytes());
                slot as i32
            }
            Err(e) => e,
        }
    })
}

/// Replaces a TLS listener's settings (certificates, SNI entries...): new
/// handshakes use them, open connections keep theirs. A bad setting leaves
/// the old ones in place and returns `Invalid`.
///
/// # Safety
/// `spec` is valid for `spec_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn mgnet_tls_reload(h: u32, slot: u32, id: f64, spec: *const u8, spec_len: u32) -> i32 {
    let spec = bytes(spec, spec_len as usize);
    with_manager(h, |m| status_of((*m).reload_tls(slot, id as u64, spec)))
}

/// Generates a self-signed P-256 certificate for the `\n`-separated host
/// names in `names` and writes its PEM and then its key's PEM to `out`
/// (when `cap` is large enough). Returns the total length; call again with
/// a larger buffer if it exceeds `cap`. The pair is made once per process
/// and set of names.
///
/// # Safety
/// `names` is valid for `names_len` bytes, `out` for `cap` bytes.
#[no_mangle]
pub unsafe extern "C" fn mgnet_tls_self_signed(
    names: *const u8,
    names_len: u32,
    out: *mut u8,
    cap: u32,
) -> i32 {
    thread_local! {
        static MADE: RefCell<Vec<(Vec<u8>, Vec<u8>)>> = const { RefCell::new(Vec::new()) };
    }
    let names = bytes(names, names_len as usize).to_vec();
    boundary(|| {
        let pem = MADE.with(|m| m.borrow().iter().find(|e| e.0 == names).map(|e| e.1.clone()));
        let pem = match pem {
            Some(p) => p,
            None => {
                let list: Vec<String> = String::from_utf8_lossy(&names)
                    .split('\n')
                    .filter(|n| !n.is_empty())
                    .map(str::to_string)
                    .collect();
                match tls::config::self_signed(list) {
                    Ok((cert, key)) => {
                        let p = format!("{cert}{key}").into_bytes();
                        MADE.with(|m| m.borrow_mut().push((names.clone(), p.clone())));
                        p
                    }
                    Err(e) => return fail(Status::Invalid, format!("self-signed certificate: {e}")),
                }
            }
        };
        if !out.is_null() && pem.len() <= cap as usize {
            std::ptr::copy_nonoverlapping(pem.as_ptr(), out, pem.len());
        }
        pem.len() as i32
    })
}

/// Upgrades an open TCP connection to TLS in-band (STARTTLS). With
/// `server` = 0 we are the TLS client: `name` is the server name (SNI,
/// verification) and `spec` a client settings buffer (CA, client
/// certificate, insecure); else we are the server and `spec` holds a
/// listener's settings (cert, key, SNI entries, CA with requestCert).
/// Queued output must have left first (`State` otherwise); a SECURE record
/// ends the handshake. Returns 0.
///
/// # Safety
/// Each pointer is valid for its length.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn mgnet_tcp_start_tls(
    h: u32,
    slot: u32,
    id: f64,
    server: u32,
    name: *const u8,
    name_len: u32,
    spec: *const u8,
    spec_len: u32,
) -> i32 {
    let (name, spec) = (bytes(name, name_len as usize), bytes(spec, spec_len as usize));
    with_manager(h, |m| {
        let client = if server == 0 {
            match client_tls(CONNECT_TLS | CONNECT_TLS_SPEC, name, spec) {
                Ok(t) => t,
                Err(e) => return e,
            }
        } else {
            None
        };
        status_of((*m).start_tls(slot, id as u64, client, spec))
    })
}

/// Opens a raw TCP connection over TLS (`tls://`): as `mgnet_tcp_connect`
/// (framing `kind`, `prefix`, `max_frame`), with `name` as the server name
/// (SNI, verification) and `spec` a client settings buffer (CA, client
/// certificate, insecure). OPEN follows the handshake. Writes the id (f64)
/// at `out[0..8]`; returns the slot.
///
/// # Safety
/// Each pointer is valid for its length; `out` for 8 bytes.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn mgnet_tls_tcp_connect(
    h: u32,
    addr: *const u8,
    addr_len: u32,
    kind: u32,
    prefix: u32,
    max_frame: u32,
    name: *const u8,
    name_len: u32,
    spec: *const u8,
    spec_len: u32,
    out: *mut u8,
) -> i32 {
    let addr = bytes(addr, addr_len as usize);
    let (name, spec) = (bytes(name, name_len as usize), bytes(spec, spec_len as usize));
    with_manager(h, |m| {
        let Ok(addr) = std::str::from_utf8(addr) else {
            return fail(Status::Invalid, "address is not UTF-8");
        };
        let framing = match tcp_spec(kind, prefix, max_frame) {
            Ok(s) => s,
            Err(e) => return e,
        };
        let tls = match client_tls(CONNECT_TLS | CONNECT_TLS_SPEC, name, spec) {
            Ok(t) => t,
            Err(e) => return e,
        };
        slot_and_id(out, (*m).connect_tcp(addr, framing, tls))
    })
}

// ------------------------------- end of TLS --------------------------------

// ---------------------------------------------------------------------------
// Metrics (`core/metrics.rs`; families from the core, each protocol, timers
// and posts): switch the clock readings on, describe the families once, read
// every value in one call. The Prometheus text is made in src/core/metrics.ts.
// ---------------------------------------------------------------------------

/// Turns metrics' clock readings (the request latency histogram) on
/// (`on` != 0) or off. Counters count either way. Returns 0.
///
/// # Safety
/// Safe to call with any arguments: integers only; a stale handle is
/// answered with a status.
#[no_mangle]
pub extern "C" fn mgnet_metrics_enable(h: u32, on: u32) -> i32 {
    with_manager(h, |m| unsafe {
        (*m).set_metrics(on != 0);
        0
    })
}

/// Copies the description of the manager's metric families (UTF-8, one
/// line per family: name, type, help, label, sparse flag, label values;
/// tab-separated, values comma-separated) into `out` (up to `cap` bytes);
/// returns its full length (call again with a larger buffer if it is over
/// `cap`).
///
/// # Safety
/// `out` is valid for `cap` bytes of writes (or null with `cap` 0).
#[no_mangle]
pub unsafe extern "C" fn mgnet_metrics_describe(h: u32, out: *mut u8, cap: u32) -> i32 {
    with_manager(h, |m| {
        let text = core::metrics::describe(&(*m).metric_families());
        let n = text.len().min(cap as usize);
        if n > 0 && !out.is_null() {
            std::ptr::copy_nonoverlapping(text.as_ptr(), out, n);
        }
        text.len().min(i32::MAX as usize) as i32
    })
}

/// Writes the value of every slot of the described families, in order, as
/// little-endian doubles into `out` (up to `cap` values); returns how many
/// there are.
///
/// # Safety
/// `out` is valid for `cap * 8` bytes of writes (or null with `cap` 0).
#[no_mangle]
pub unsafe extern "C" fn mgnet_metrics_read(h: u32, out: *mut u8, cap: u32) -> i32 {
    with_manager(h, |m| {
        let mut values = Vec::with_capacity(640);
        (*m).read_metrics(&mut values);
        let n = values.len().min(cap as usize);
        if n > 0 && !out.is_null() {
            let dst = std::slice::from_raw_parts_mut(out, n * 8);
            for (i, v) in values[..n].iter().enumerate() {
                dst[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
            }
        }
        values.len().min(i32::MAX as usize) as i32
    })
}
// ----------------------------- end of metrics ------------------------------

#[cfg(test)]
#[path = "lib_tests.rs"]
mod tests;
