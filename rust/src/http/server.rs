//! The HTTP server protocol: per-connection state, request parsing from
//! Mongoose's receive buffer into HTTP/BODY records, backpressure, the
//! native cache's answers, `100 Continue`, draining closes and graceful
//! shutdown. Answers to requests (the response queue) are in `response.rs`.

use std::any::Any;
use std::collections::VecDeque;
use std::rc::Rc;

use super::cache::{etag_matches, Cache, Entry};
use super::parser::{Limits, Parsed, Parser, ReqInfo};
use super::record::{
    self, HttpRecord, BODY_FLAG_END, BODY_FLAG_ERROR, HTTP_FLAG_HTTP10, HTTP_FLAG_KEEP_ALIVE,
    HTTP_FLAG_STREAMED,
};
use super::writer::{reject_body, DateCache, ResponseMeta, StreamFraming};
use crate::core::error::{fail, Status};
use crate::core::manager::{now_ms, Core};
use crate::core::metrics::{Family, Histogram, Kind, Stamp};
use crate::core::overflow::Overflow;
use crate::core::protocol::Protocol;
use crate::core::sys_io::{iobuf_consume, set_read_paused};
use crate::sys;

/// At most this many requests of one connection wait for their responses;
/// later pipelined requests stay unparsed in the receive buffer meanwhile.
pub(super) const MAX_INFLIGHT: usize = 256;
/// Streamed body bytes JS may hold unconsumed before reading pauses...
const BODY_HIGH_WATER: usize = 1 << 20;
/// ...and resumes.
const BODY_LOW_WATER: usize = 256 * 1024;
/// Mongoose's `MG_MAX_RECV_SIZE` (rust/build.rs): a connection whose
/// unparsed input reaches it is closed.
const MAX_RECV: usize = 4 << 20;
/// Stop parsing a connection's requests while this much output is unsent
/// (a peer that pipelines without reading cannot grow our memory).
pub(super) const SEND_HIGH_WATER: usize = 1 << 20;
/// `seq` value meaning "the oldest request not yet answered".
pub const SEQ_OLDEST: u32 = u32::MAX;
/// Reply flag: close the connection after this response.
pub const REPLY_CLOSE: u32 = 1;
/// Reply flag: the user's headers carry a `date`; do not add one.
pub const REPLY_OWN_DATE: u32 = 2;

/// Where the response to one request stands.
pub(super) enum RespState {
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
pub(super) struct Pending {
    pub(super) meta: ResponseMeta,
    pub(super) state: RespState,
    /// When it was read ([`Core::metrics_stamp`]; 0: metrics off).
    pub(super) t0: u64,
}

impl Pending {
    fn new(meta: ResponseMeta, t0: u64) -> Pending {
        Pending {
            meta,
            state: RespState::Waiting,
            t0,
        }
    }

    /// Counts toward `HttpServer::awaiting`: JS owes this request something.
    fn owed(&self) -> bool {
        !matches!(self.state, RespState::Done { .. })
    }
}

/// Per-connection HTTP state: the parser and the in-order response queue.
#[derive(Default)]
pub(super) struct HttpConn {
    pub(super) parser: Parser,
    /// Requests handed to JS, oldest first; `inflight[0]` has `send_seq`.
    pub(super) inflight: VecDeque<Pending>,
    pub(super) send_seq: u32,
    next_seq: u32,
    /// The final response is in the send buffer: close once it is out.
    pub(super) close_when_sent: bool,
    /// Parsing stopped for backpressure; resume when responses go out.
    pub(super) paused: bool,
    /// A request with `Expect: 100-continue` waits for its body.
    pub(super) continue_pending: bool,
    /// The request whose body is streaming to JS.
    pub(super) streaming_seq: Option<u32>,
    /// Streamed body bytes JS has not consumed yet.
    unacked: usize,
    /// Parsing stopped until JS consumes streamed body bytes.
    body_paused: bool,
    /// A streaming request asked for `100 Continue`: sent once JS starts
    /// reading its body (a handler that answers first never invites it).
    pub(super) continue_on_read: bool,
    /// Shutting down while a request body arrives: that request is still
    /// served, with `connection: close`, and no request after it.
    last_request: bool,
    /// Output queued behind the send buffer (see `core/overflow.rs`).
    pub(super) out: Overflow,
    /// JS waits until request `.0`'s response is at the front of the queue
    /// and at most `.1` bytes remain unsent (a DRAIN event then).
    pub(super) drain_at: Option<(u32, usize)>,
    /// A request asked to upgrade to WebSocket: nothing after it is parsed
    /// (the bytes that follow belong to the new protocol) until JS accepts
    /// it ([`HttpServer::take_upgrade`]) or answers it (the connection then
    /// closes after that response).
    pub(super) upgrade_seq: Option<u32>,
}

impl HttpConn {
    /// Output not yet taken by the socket: the send buffer and what waits
    /// behind it.
    pub(super) fn unsent(&self, c: *mut sys::mg_connection) -> usize {
        unsafe { (*c).send.len + self.out.len() }
    }
}

/// The HTTP server protocol of one manager.
pub struct HttpServer {
    /// Per-connection state, indexed by the core's slot.
    #[allow(clippy::vec_box)]
    conns: Vec<Option<Box<HttpConn>>>,
    limits: Limits,
    pub(super) date: DateCache,
    /// Requests handed to JS that have no response yet (all connections).
    pub(super) awaiting: usize,
    /// Responses answered without JS (see cache.rs).
    pub cache: Cache,
    /// HTTP requests parsed (handed to JS or answered from the cache).
    pub requests: u64,
    /// Requests answered from the native cache.
    pub cache_hits: u64,
    /// Responses by status: index `status - 100` for 100..=599, the last
    /// slot for 600..=999.
    pub(super) statuses: Box<[u64; STATUS_SLOTS]>,
    /// Time from the poll that read a request to the poll that flushed its
    /// response (metrics on).
    pub latency: Histogram,
    /// Read stamps of requests answered since the last poll.
    pub(super) latency_pending: Vec<u64>,
}

/// Slots of [`HttpServer::statuses`].
const STATUS_SLOTS: usize = 501;

/// The slot of `status` (100..=999) in [`HttpServer::statuses`].
pub(super) fn status_slot(status: u16) -> usize {
    (status as usize).saturating_sub(100).min(STATUS_SLOTS - 1)
}

/// The HTTP record flags of a request.
fn request_flags(info: &ReqInfo, streamed: bool) -> u8 {
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

fn method_is_get(head: &[u8], info: &ReqInfo) -> bool {
    &head[info.method.0 as usize..][..info.method.1 as usize] == b"GET"
}

/// A request asking for a WebSocket (RFC 6455 4.2.1): an `upgrade` header
/// naming `websocket` (the rest of the handshake is checked on accepting).
fn is_websocket_upgrade(head: &[u8], info: &ReqInfo) -> bool {
    info.headers.iter().any(|h| {
        let n = &head[h[0] as usize..][..h[1] as usize];
        n.eq_ignore_ascii_case(b"upgrade")
            && head[h[2] as usize..][..h[3] as usize]
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"websocket"))
    })
}

/// The first value of header `name` (lower-case) of a parsed request.
fn header_value<'a>(head: &'a [u8], info: &ReqInfo, name: &[u8]) -> Option<&'a [u8]> {
    info.headers.iter().find_map(|h| {
        let n = &head[h[0] as usize..][..h[1] as usize];
        n.eq_ignore_ascii_case(name)
            .then(|| &head[h[2] as usize..][..h[3] as usize])
    })
}

impl Protocol for HttpServer {
    fn on_accept(&mut self, _core: &mut Core, slot: u32) {
        let i = slot as usize;
        if self.conns.len() <= i {
            self.conns.resize_with(i + 1, || None);
        }
        self.conns[i] = Some(Box::default());
    }

    fn on_read(&mut self, core: &mut Core, slot: u32) {
        self.drive(core, slot);
    }

    fn on_sent(&mut self, core: &mut Core, slot: u32) {
        self.after_send(core, slot);
    }

    fn on_close_request(&mut self, core: &mut Core, slot: u32, drain: bool) -> bool {
        if !drain {
            return false;
        }
        if let Some(h) = self.conn_mut(slot) {
            h.parser.stop();
            h.close_when_sent = true;
        }
        self.drop_inflight(slot);
        core.mark_dirty(slot);
        true
    }

    fn on_shutdown(&mut self, core: &mut Core, slot: u32) -> bool {
        let (_, c) = core.slot_conn(slot);
        let Some(h) = self.conn_mut(slot) else {
            return false;
        };
        if h.close_when_sent || unsafe { (*c).is_closing() } != 0 {
            return true;
        }
        if h.parser.in_body() {
            // A body is arriving (an upload): let it finish.
            h.last_request = true;
            if let (Some(last), true) = (h.inflight.back_mut(), h.streaming_seq.is_some()) {
                last.meta.close = true;
            }
            return true;
        }
        h.parser.stop();
        match h.inflight.back_mut() {
            Some(last) => last.meta.close = true,
            None => {
                h.close_when_sent = true;
                core.mark_dirty(slot);
            }
        }
        true
    }

    fn on_closed(&mut self, _core: &mut Core, slot: u32) {
        self.drop_inflight(slot);
        if let Some(h) = self.conns.get_mut(slot as usize) {
            *h = None;
        }
    }

    fn on_poll(&mut self) {
        self.date.refresh();
    }

    fn awaiting(&self) -> usize {
        self.awaiting
    }

    fn on_clock(&mut self, now: &mut Stamp) {
        if self.latency_pending.is_empty() {
            return;
        }
        let now = now.get();
        for t0 in self.latency_pending.drain(..) {
            self.latency.observe(now.saturating_sub(t0));
        }
    }

    fn metric_families(&self) -> Vec<Family> {
        let mut codes: Vec<String> = (100..600).map(|c: u16| c.to_string()).collect();
        codes.push("other".into());
        vec![
            Family::one("mgnet_http_requests_total", Kind::Counter, "HTTP requests parsed (handed to JS or answered from the cache)."),
            Family::one("mgnet_http_cache_hits_total", Kind::Counter, "HTTP requests answered from the native cache."),
            Family {
                name: "mgnet_http_responses_total",
                kind: Kind::Counter,
                help: "HTTP responses by status code (started or complete; \"other\": 600-999).",
                label: "code",
                values: codes,
                sparse: true,
            },
            Family::histogram(
                "mgnet_http_request_duration_seconds",
                "From the poll that read a request to the poll that flushed its complete response (while metrics are on).",
            ),
        ]
    }

    fn read_metrics(&self, out: &mut Vec<f64>) {
        out.push(self.requests as f64);
        out.push(self.cache_hits as f64);
        out.extend(self.statuses.iter().map(|&n| n as f64));
        self.latency.read(out);
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

impl HttpServer {
    /// An HTTP server protocol with these request limits.
    pub fn new(limits: Limits) -> HttpServer {
        HttpServer {
            conns: Vec::new(),
            limits,
            date: DateCache::default(),
            awaiting: 0,
            cache: Cache::default(),
            requests: 0,
            cache_hits: 0,
            statuses: Box::new([0; STATUS_SLOTS]),
            latency: Histogram::default(),
            latency_pending: Vec::new(),
        }
    }

    /// The HTTP state of `slot`, if it is an HTTP server connection.
    pub(super) fn conn_mut(&mut self, slot: u32) -> Option<&mut HttpConn> {
        self.conns.get_mut(slot as usize)?.as_deref_mut()
    }

    /// The live HTTP connection (`slot`, `id`): `Closed` when it is gone,
    /// `State` when it is not an HTTP server connection.
    pub(super) fn live(
        &mut self,
        core: &Core,
        slot: u32,
        id: u64,
    ) -> Result<(*mut sys::mg_connection, &mut HttpConn), i32> {
        let c = core.conn(slot, id)?;
        match self.conn_mut(slot) {
            Some(h) => Ok((c, h)),
            None => Err(fail(Status::State, "not an HTTP connection")),
        }
    }

    /// Forgets a connection's queued requests (it is closing).
    pub(super) fn drop_inflight(&mut self, slot: u32) {
        if let Some(h) = self.conns.get_mut(slot as usize).and_then(|h| h.as_deref_mut()) {
            let unanswered = h.inflight.iter().filter(|p| p.owed()).count();
            h.inflight.clear();
            self.awaiting -= unanswered;
        }
    }

    /// Bookkeeping once (some of) a connection's output left: shrink a
    /// drained buffer, start the closing handshake after a final response,
    /// report a DRAIN JS waits for, resume parsing paused by backpressure.
    fn after_send(&mut self, core: &mut Core, slot: u32) {
        let (id, c) = core.slot_conn(slot);
        let Some(h) = self.conn_mut(slot) else { return };
        if unsafe { h.out.refill(&mut (*c).send) } {
            // More to send: the flush in progress (or the one after this
            // poll) writes it.
            core.mark_dirty(slot);
        }
        unsafe {
            let sent_all = (*c).send.len == 0;
            if sent_all && (*c).send.size > 64 * 1024 {
                sys::mg_iobuf_free(&mut (*c).send);
            }
            if sent_all && h.close_when_sent && !core.is_lingering(slot) {
                core.linger(slot);
                return;
            }
        }
        if let Some((seq, threshold)) = h.drain_at {
            // The response is the one being sent, or complete and moved
            // into the output already (writes nobody awaited before `end()`).
            if seq.wrapping_sub(h.send_seq) as i32 <= 0 && h.unsent(c) <= threshold {
                h.drain_at = None;
                core.events.drain(id, slot);
            }
        }
        if h.paused && h.unsent(c) < SEND_HIGH_WATER / 2 {
            h.paused = false;
            self.drive(core, slot);
        }
    }

    /// Parses what a connection received and hands requests to JS, then
    /// pauses or resumes reading from its socket to match the parser.
    pub(super) fn drive(&mut self, core: &mut Core, slot: u32) {
        self.parse(core, slot);
        let (_, c) = core.slot_conn(slot);
        if let Some(h) = self.conn_mut(slot) {
            let paused = h.paused || h.body_paused || h.upgrade_seq.is_some();
            unsafe { set_read_paused(c, paused && !h.parser.stopped()) };
        }
    }

    fn parse(&mut self, core: &mut Core, slot: u32) {
        let (id, c) = core.slot_conn(slot);
        let lingering = core.is_lingering(slot);
        let Some(h) = self.conn_mut(slot) else { return };
        if lingering || h.parser.stopped() {
            unsafe { (*c).recv.len = 0 };
            return;
        }
        if h.body_paused || h.upgrade_seq.is_some() {
            return; // JS has not consumed the streamed body yet, or decides on an upgrade
        }
        let mut parser = std::mem::take(&mut h.parser);
        let can_start = h.inflight.len() < MAX_INFLIGHT && h.unsent(c) < SEND_HIGH_WATER;
        let limits = self.limits;
        let mut reject = None;
        let mut body_pending = false;
        let mut cached: Vec<(u32, Rc<Entry>, bool)> = Vec::new();
        let mut now = 0;
        let t0 = core.metrics_stamp();
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
                            let (seq, more) = self.queue_request(slot, c, r.info, t0);
                            self.cache_hits += 1;
                            cached.push((seq, entry, fresh));
                            return more;
                        }
                    }
                    let (seq, mut more) = self.queue_request(slot, c, r.info, t0);
                    if is_websocket_upgrade(r.head, r.info) {
                        if let Some(h) = self.conn_mut(slot) {
                            h.upgrade_seq = Some(seq);
                            if let Some(last) = h.inflight.back_mut() {
                                last.meta.close = true;
                            }
                        }
                        more = false;
                    }
                    record::http(
                        &mut core.events,
                        &HttpRecord {
                            id,
                            slot,
                            seq,
                            flags: request_flags(r.info, false),
                            head: r.head,
                            method: r.info.method,
                            target: r.info.target,
                            headers: &r.info.headers,
                            body: r.body,
                        },
                    );
                    more
                }
                Parsed::StreamStart(r) => {
                    let (seq, _) = self.queue_request(slot, c, r.info, t0);
                    if let Some(h) = self.conn_mut(slot) {
                        h.streaming_seq = Some(seq);
                        h.continue_on_read = r.info.expect_continue;
                    }
                    record::http(
                        &mut core.events,
                        &HttpRecord {
                            id,
                            slot,
                            seq,
                            flags: request_flags(r.info, true),
                            head: r.head,
                            method: r.info.method,
                            target: r.info.target,
                            headers: &r.info.headers,
                            body: &[],
                        },
                    );
                    true
                }
                Parsed::BodyChunk(bytes) => {
                    let Some(h) = self.conn_mut(slot) else {
                        return false;
                    };
                    h.unacked += bytes.len();
                    if h.unacked > BODY_HIGH_WATER {
                        h.body_paused = true;
                    }
                    let seq = h.streaming_seq.unwrap_or(0);
                    record::body(&mut core.events, id, slot, seq, bytes, 0, 0);
                    true
                }
                Parsed::BodyEnd => {
                    let Some(h) = self.conn_mut(slot) else {
                        return false;
                    };
                    let seq = h.streaming_seq.take().unwrap_or(0);
                    record::body(&mut core.events, id, slot, seq, &[], BODY_FLAG_END, 0);
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
        let Some(h) = self.conn_mut(slot) else {
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
            self.send_continue_if_due(core, slot);
        }
        for (seq, entry, not_modified) in cached {
            // Answered here, in request order like any other reply.
            let _ = if not_modified {
                self.reply(core, slot, id, seq, 304, 0, &entry.etag_line, b"")
            } else {
                self.reply(core, slot, id, seq, entry.status, 0, &entry.head, &entry.body)
            };
        }
        if let Some(status) = reject {
            let Some(h) = self.conn_mut(slot) else {
                return;
            };
            if let Some(seq) = h.streaming_seq.take() {
                // The body of a request JS already has went wrong (e.g. over
                // maxBodySize): end it with an error and answer the request
                // here unless JS already did.
                h.continue_pending = false;
                record::body(&mut core.events, id, slot, seq, &[], BODY_FLAG_ERROR, status);
                self.reply_rejection(core, slot, id, seq, status);
                if let Some(h) = self.conn_mut(slot) {
                    // Answered by JS already: close once that response is out.
                    if let Some(last) = h.inflight.back_mut() {
                        last.meta.close = true;
                    }
                    if h.inflight.is_empty() {
                        h.close_when_sent = true;
                        core.mark_dirty(slot);
                    }
                }
                return;
            }
            let seq = h.next_seq;
            h.next_seq = h.next_seq.wrapping_add(1);
            h.continue_pending = false;
            h.inflight.push_back(Pending::new(
                ResponseMeta {
                    head_only: false,
                    close: true,
                    http10: false,
                },
                t0,
            ));
            self.awaiting += 1;
            self.reply_rejection(core, slot, id, seq, status);
        }
    }

    /// Answers request `seq` with mgnet's own error response and closes
    /// the connection after it (a no-op if JS answered it already).
    fn reply_rejection(&mut self, core: &mut Core, slot: u32, id: u64, seq: u32, status: u16) {
        let body = reject_body(status);
        let _ = self.reply(
            core,
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
        info: &ReqInfo,
        t0: u64,
    ) -> (u32, bool) {
        let Some(h) = self.conns.get_mut(slot as usize).and_then(|h| h.as_deref_mut()) else {
            return (0, false);
        };
        let seq = h.next_seq;
        self.requests += 1;
        h.next_seq = h.next_seq.wrapping_add(1);
        h.inflight.push_back(Pending::new(
            ResponseMeta {
                head_only: info.head_only,
                close: !info.keep_alive || h.last_request,
                http10: info.http10,
            },
            t0,
        ));
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
    pub fn body_ack(&mut self, core: &mut Core, slot: u32, id: u64, n: usize) -> Result<bool, i32> {
        let (_, h) = self.live(core, slot, id)?;
        h.unacked = h.unacked.saturating_sub(n);
        if std::mem::take(&mut h.continue_on_read) {
            h.continue_pending = true;
            self.send_continue_if_due(core, slot);
            return Ok(false);
        }
        if h.body_paused && h.unacked <= BODY_LOW_WATER {
            h.body_paused = false;
            self.drive(core, slot);
            return Ok(true);
        }
        Ok(false)
    }

    /// Takes connection (`slot`, `id`) away from HTTP for a WebSocket
    /// upgrade of request `seq`: the request must be the one that asked
    /// for it and every earlier response must be complete. Returns the
    /// output still queued behind the send buffer (the new protocol sends
    /// it first). The core's slot must then be handed to the new protocol.
    pub fn take_upgrade(&mut self, core: &mut Core, slot: u32, id: u64, seq: u32) -> Result<Overflow, i32> {
        let (_, h) = self.live(core, slot, id)?;
        if h.upgrade_seq != Some(seq) {
            return Err(fail(
                Status::State,
                "this request did not ask for a WebSocket upgrade",
            ));
        }
        match h.inflight.front() {
            Some(p) if h.inflight.len() == 1 && matches!(p.state, RespState::Waiting) => {}
            Some(_) if h.inflight.len() > 1 => {
                return Err(fail(
                    Status::State,
                    "answer the requests before the upgrade first",
                ))
            }
            _ => return Err(fail(Status::State, "this request was already answered")),
        }
        if h.close_when_sent {
            return Err(fail(Status::Closed, format!("connection {id} is closing")));
        }
        self.awaiting -= 1;
        // The WebSocket protocol answers 101 next: count it here.
        self.statuses[status_slot(101)] += 1;
        self.observe(slot, 0);
        let h = self.conns[slot as usize].take().expect("checked above");
        Ok(h.out)
    }

    /// Sends `100 Continue` once every earlier response is out.
    pub(super) fn send_continue_if_due(&mut self, core: &mut Core, slot: u32) {
        let (_, c) = core.slot_conn(slot);
        let Some(h) = self.conn_mut(slot) else { return };
        // A streaming request waits in the queue itself: only the responses
        // ahead of it must be out.
        let ahead = h.inflight.len() - usize::from(h.streaming_seq.is_some());
        if h.continue_pending && ahead == 0 && h.parser.in_body() {
            h.continue_pending = false;
            unsafe { h.out.append(&mut (*c).send, &[b"HTTP/1.1 100 Continue\r\n\r\n"]) };
            core.mark_dirty(slot);
        } else if !h.parser.in_body() {
            h.continue_pending = false;
        }
    }
}
