//! HTTP/1.1 request parsing: framing (RFC 9112), validation and limits.
//!
//! mgnet parses requests itself instead of using Mongoose's `http_cb`, which
//! answers HEAD with a body, never closes HTTP/1.0 connections, rejects
//! chunked extensions/trailers and holds pipelined requests back. The head
//! is parsed by `httparse`; framing, limits and connection management are
//! here. The parser is pure (bytes in, requests out) so it is tested without
//! sockets; `server.rs` feeds it from Mongoose's receive buffer. Responses
//! are written by `writer.rs`.

use super::head::{check_request_line, find_head_end, oversize_status, parse_head, Framing, LineCheck};

/// Hard upper bound for `Limits::max_headers` (the parse array lives on the stack).
pub const MAX_HEADERS_CAP: usize = 1024;

/// Configurable request limits. Exceeding one answers with the status named
/// on the field and closes the connection.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Bytes of request line plus header section (431).
    pub max_head: usize,
    /// Number of header fields (431).
    pub max_headers: usize,
    /// Bytes of the request target (414).
    pub max_uri: usize,
    /// Bytes of a request body, after chunked decoding (413).
    pub max_body: u64,
    /// Bodies over this many bytes are not buffered but streamed to the
    /// caller as they arrive (`u64::MAX`: never).
    pub stream_over: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head: 64 * 1024,
            max_headers: 128,
            max_uri: 16 * 1024,
            max_body: 64 * 1024 * 1024,
            stream_over: u64::MAX,
        }
    }
}

/// What the request head says about the request, as offsets into the head.
#[derive(Default, Clone, Debug)]
pub struct ReqInfo {
    pub method: (u32, u32),
    pub target: (u32, u32),
    /// (name offset, name length, value offset, value length).
    pub headers: Vec<[u32; 4]>,
    pub http10: bool,
    /// The connection stays open after this request's response.
    pub keep_alive: bool,
    /// HEAD: the response carries no body.
    pub head_only: bool,
    /// `Expect: 100-continue` on an HTTP/1.1 request with a body.
    pub expect_continue: bool,
}

/// A parsed request handed to the caller.
pub struct Request<'a> {
    pub head: &'a [u8],
    pub info: &'a ReqInfo,
    pub body: &'a [u8],
}

/// What `Parser::feed` reports.
pub enum Parsed<'a> {
    /// A complete request.
    Request(Request<'a>),
    /// The head of a request whose body is still arriving (sent once, so
    /// the caller can answer `Expect: 100-continue`).
    BodyPending(&'a ReqInfo),
    /// A malformed or over-limit request: answer with this status, close.
    /// While a body streams, it ends that body (the request was delivered).
    Reject(u16),
    /// A request whose body will stream: its head, with an empty body.
    StreamStart(Request<'a>),
    /// The next piece of a streaming body.
    BodyChunk(&'a [u8]),
    /// The streaming body is complete.
    BodyEnd,
}

/// Position inside chunked framing (RFC 9112 7.1). Sizes ride along until
/// the end of the chunk-size line.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Chunk {
    Size { val: u64, digits: u8 },
    SizeWs { size: u64 },
    Ext { size: u64 },
    SizeLf { size: u64 },
    Data { rem: u64 },
    DataCr,
    DataLf,
    TrStart,
    TrLine,
    TrLineLf,
    TrEndLf,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum State {
    Head,
    Length(u64),
    Chunked(Chunk),
    Stopped,
}

/// Incremental request parser for one connection.
pub struct Parser {
    state: State,
    /// Bytes at the start of the unconsumed input already searched for the
    /// end of the head (keeps slow, byte-by-byte heads linear).
    scanned: usize,
    info: ReqInfo,
    head: Vec<u8>,
    body: Vec<u8>,
    /// Chunk extensions and trailers count against `max_head`.
    extra: usize,
    /// The current head's request line was checked before the head ended.
    line_checked: bool,
    /// Bytes of the current head searched for the request line's end.
    line_scanned: usize,
    /// The current body goes out in pieces (`Parsed::BodyChunk`).
    streaming: bool,
    /// Bytes of the current body already handed out in pieces.
    streamed: u64,
}

impl Default for Parser {
    fn default() -> Self {
        Parser {
            state: State::Head,
            scanned: 0,
            info: ReqInfo::default(),
            head: Vec::new(),
            body: Vec::new(),
            extra: 0,
            line_checked: false,
            line_scanned: 0,
            streaming: false,
            streamed: 0,
        }
    }
}

impl Parser {
    /// True once a request was rejected or the connection is to close after
    /// the current request: further input is discarded.
    pub fn stopped(&self) -> bool {
        self.state == State::Stopped
    }

    /// Stops parsing: later input is discarded.
    pub fn stop(&mut self) {
        self.state = State::Stopped;
        self.release();
    }

    /// True while a request body is being received.
    pub fn in_body(&self) -> bool {
        matches!(self.state, State::Length(_) | State::Chunked(_))
    }

    /// True while the current request's body streams out in pieces.
    pub fn streaming(&self) -> bool {
        self.streaming && self.in_body()
    }

    /// Bytes of body still expected for a Content-Length body, if known.
    pub fn body_remaining(&self) -> Option<u64> {
        match self.state {
            State::Length(n) => Some(n),
            _ => None,
        }
    }

    fn release(&mut self) {
        self.head = Vec::new();
        self.body = Vec::new();
    }

    /// Consumes input and reports requests through `emit`, which returns
    /// whether another request may be started now (pipelining backpressure).
    /// `can_start` says the same before the first one. Returns the number of
    /// bytes consumed; the rest must be offered again with more input.
    pub fn feed(
        &mut self,
        input: &[u8],
        limits: &Limits,
        mut can_start: bool,
        emit: &mut dyn FnMut(Parsed) -> bool,
    ) -> usize {
        let mut pos = 0;
        loop {
            let avail = &input[pos..];
            match self.state {
                State::Stopped => return input.len(),
                State::Head => {
                    // RFC 9112 2.2: ignore empty lines before a request-line.
                    let skip = avail.iter().take_while(|&&b| b == b'\r' || b == b'\n').count();
                    if skip > 0 {
                        pos += skip;
                        self.scanned = 0;
                        self.line_scanned = 0;
                        continue;
                    }
                    if avail.is_empty() || !can_start {
                        return pos;
                    }
                    let Some(head_len) = find_head_end(avail, &mut self.scanned) else {
                        if !self.line_checked {
                            match check_request_line(avail, &mut self.line_scanned) {
                                LineCheck::Incomplete => {}
                                LineCheck::Valid => self.line_checked = true,
                                LineCheck::Invalid(status) => return self.reject(status, input.len(), emit),
                            }
                        }
                        if avail.len() > limits.max_head {
                            return self.reject(oversize_status(avail, limits), input.len(), emit);
                        }
                        return pos;
                    };
                    self.scanned = 0;
                    self.line_checked = false;
                    self.line_scanned = 0;
                    if head_len > limits.max_head {
                        return self.reject(oversize_status(&avail[..head_len], limits), input.len(), emit);
                    }
                    let head = &avail[..head_len];
                    let framing = match parse_head(head, limits, &mut self.info) {
                        Ok(f) => f,
                        Err(status) => return self.reject(status, input.len(), emit),
                    };
                    match framing {
                        Framing::None => {
                            pos += head_len;
                            can_start = self.deliver(head, &[], emit);
                        }
                        Framing::Length(n) if n > limits.stream_over => {
                            pos += head_len;
                            self.state = State::Length(n);
                            self.streaming = true;
                            self.streamed = 0;
                            emit(Parsed::StreamStart(Request {
                                head,
                                info: &self.info,
                                body: &[],
                            }));
                        }
                        Framing::Length(n) if (avail.len() - head_len) as u64 >= n => {
                            let body = &avail[head_len..head_len + n as usize];
                            pos += head_len + n as usize;
                            can_start = self.deliver(head, body, emit);
                        }
                        Framing::Length(n) => {
                            self.head.clear();
                            self.head.extend_from_slice(head);
                            self.body.clear();
                            self.body.reserve(n.min(1 << 20) as usize);
                            pos += head_len;
                            self.state = State::Length(n);
                            emit(Parsed::BodyPending(&self.info));
                        }
                        Framing::Chunked => {
                            self.head.clear();
                            self.head.extend_from_slice(head);
                            self.body.clear();
                            self.extra = head_len;
                            self.streamed = 0;
                            pos += head_len;
                            self.state = State::Chunked(Chunk::Size { val: 0, digits: 0 });
                            emit(Parsed::BodyPending(&self.info));
                        }
                    }
                }
                State::Length(rem) => {
                    let take = (avail.len() as u64).min(rem) as usize;
                    if self.streaming {
                        if take > 0 {
                            emit(Parsed::BodyChunk(&avail[..take]));
                        }
                    } else {
                        self.body.extend_from_slice(&avail[..take]);
                    }
                    pos += take;
                    if take as u64 == rem {
                        can_start = if self.streaming {
                            self.end_stream(emit)
                        } else {
                            self.deliver_buffered(emit)
                        };
                    } else {
                        self.state = State::Length(rem - take as u64);
                        return pos;
                    }
                }
                State::Chunked(st) => {
                    let result = self.decode_chunked(st, avail, limits);
                    if result.is_ok() {
                        self.stream_chunked(limits, emit);
                    }
                    match result {
                        Ok((used, true)) => {
                            pos += used;
                            can_start = if self.streaming {
                                self.end_stream(emit)
                            } else {
                                self.deliver_buffered(emit)
                            };
                        }
                        Ok((used, false)) => return pos + used,
                        Err(status) => return self.reject(status, input.len(), emit),
                    }
                }
            }
        }
    }

    /// A chunked body that outgrew `stream_over` starts streaming; a
    /// streaming one hands out what was decoded.
    fn stream_chunked(&mut self, limits: &Limits, emit: &mut dyn FnMut(Parsed) -> bool) {
        if !self.streaming {
            if (self.body.len() as u64) <= limits.stream_over {
                return;
            }
            self.streaming = true;
            self.streamed = 0;
            emit(Parsed::StreamStart(Request {
                head: &self.head,
                info: &self.info,
                body: &[],
            }));
        }
        if !self.body.is_empty() {
            emit(Parsed::BodyChunk(&self.body));
            self.streamed += self.body.len() as u64;
            self.body.clear();
        }
    }

    /// The streaming body is complete: the next request may start.
    fn end_stream(&mut self, emit: &mut dyn FnMut(Parsed) -> bool) -> bool {
        self.state = State::Head;
        self.streaming = false;
        self.streamed = 0;
        self.head.clear();
        let more = emit(Parsed::BodyEnd);
        if !self.info.keep_alive {
            self.stop();
        }
        more
    }

    fn reject(&mut self, status: u16, consumed: usize, emit: &mut dyn FnMut(Parsed) -> bool) -> usize {
        self.stop();
        emit(Parsed::Reject(status));
        consumed
    }

    fn deliver(&mut self, head: &[u8], body: &[u8], emit: &mut dyn FnMut(Parsed) -> bool) -> bool {
        let keep = self.info.keep_alive;
        let more = emit(Parsed::Request(Request {
            head,
            info: &self.info,
            body,
        }));
        if !keep {
            self.stop();
        }
        more
    }

    fn deliver_buffered(&mut self, emit: &mut dyn FnMut(Parsed) -> bool) -> bool {
        self.state = State::Head;
        let keep = self.info.keep_alive;
        let more = emit(Parsed::Request(Request {
            head: &self.head,
            info: &self.info,
            body: &self.body,
        }));
        if keep {
            // Keep small buffers for the next request, drop big ones.
            if self.body.capacity() > 64 * 1024 {
                self.body = Vec::new();
            }
            self.head.clear();
            self.body.clear();
        } else {
            self.stop();
        }
        more
    }

    /// Decodes chunked framing from `input` into `self.body`. Returns bytes
    /// used and whether the message (including trailers) is complete.
    fn decode_chunked(&mut self, mut st: Chunk, input: &[u8], limits: &Limits) -> Result<(usize, bool), u16> {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            st = match st {
                Chunk::Size { val, digits } => match (b as char).to_digit(16) {
                    // 15 hex digits is 2^60: no accepted body is that large.
                    Some(_) if digits >= 15 => return Err(413),
                    Some(d) => Chunk::Size {
                        val: val * 16 + d as u64,
                        digits: digits + 1,
                    },
                    None if digits == 0 => return Err(400),
                    None => {
                        if val + self.body.len() as u64 + self.streamed > limits.max_body {
                            return Err(413);
                        }
                        match b {
                            b'\r' => Chunk::SizeLf { size: val },
                            b';' => Chunk::Ext { size: val },
                            b' ' | b'\t' => Chunk::SizeWs { size: val },
                            _ => return Err(400),
                        }
                    }
                },
                Chunk::SizeWs { size } => match b {
                    b' ' | b'\t' => Chunk::SizeWs { size },
                    b';' => Chunk::Ext { size },
                    b'\r' => Chunk::SizeLf { size },
                    _ => return Err(400),
                },
                Chunk::Ext { size } => {
                    self.extra += 1;
                    if self.extra > limits.max_head {
                        return Err(431);
                    }
                    match b {
                        b'\r' => Chunk::SizeLf { size },
                        b'\t' => Chunk::Ext { size },
                        0..=31 | 127 => return Err(400),
                        _ => Chunk::Ext { size },
                    }
                }
                Chunk::SizeLf { size } => match b {
                    b'\n' if size == 0 => Chunk::TrStart,
                    b'\n' => Chunk::Data { rem: size },
                    _ => return Err(400),
                },
                Chunk::Data { rem } => {
                    let take = ((input.len() - i) as u64).min(rem) as usize;
                    self.body.extend_from_slice(&input[i..i + take]);
                    i += take;
                    st = if take as u64 == rem {
                        Chunk::DataCr
                    } else {
                        Chunk::Data {
                            rem: rem - take as u64,
                        }
                    };
                    continue;
                }
                Chunk::DataCr if b == b'\r' => Chunk::DataLf,
                Chunk::DataLf if b == b'\n' => Chunk::Size { val: 0, digits: 0 },
                Chunk::DataCr | Chunk::DataLf => return Err(400),
                Chunk::TrStart => {
                    self.extra += 1;
                    match b {
                        b'\r' => Chunk::TrEndLf,
                        0..=8 | 10..=31 | 127 => return Err(400),
                        _ => Chunk::TrLine,
                    }
                }
                Chunk::TrLine => {
                    self.extra += 1;
                    if self.extra > limits.max_head {
                        return Err(431);
                    }
                    match b {
                        b'\r' => Chunk::TrLineLf,
                        b'\t' => Chunk::TrLine,
                        0..=31 | 127 => return Err(400),
                        _ => Chunk::TrLine,
                    }
                }
                Chunk::TrLineLf if b == b'\n' => Chunk::TrStart,
                Chunk::TrEndLf if b == b'\n' => return Ok((i + 1, true)),
                Chunk::TrLineLf | Chunk::TrEndLf => return Err(400),
            };
            i += 1;
        }
        self.state = State::Chunked(st);
        Ok((i, false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a test sees of a parse: requests as (method, target, body) or rejections.
    #[derive(Debug, PartialEq)]
    enum Seen {
        Req(String, String, Vec<u8>, bool),
        Pending(bool),
        Reject(u16),
        Stream(String),
        Chunk(Vec<u8>),
        End,
    }

    fn run(p: &mut Parser, input: &[u8], limits: &Limits) -> (usize, Vec<Seen>) {
        let mut seen = Vec::new();
        let used = p.feed(input, limits, true, &mut |ev| {
            seen.push(match ev {
                Parsed::Request(r) => {
                    let m = &r.head[r.info.method.0 as usize..][..r.info.method.1 as usize];
                    let t = &r.head[r.info.target.0 as usize..][..r.info.target.1 as usize];
                    Seen::Req(
                        String::from_utf8_lossy(m).into(),
                        String::from_utf8_lossy(t).into(),
                        r.body.to_vec(),
                        r.info.keep_alive,
                    )
                }
                Parsed::BodyPending(info) => Seen::Pending(info.expect_continue),
                Parsed::Reject(s) => Seen::Reject(s),
                Parsed::StreamStart(r) => {
                    assert!(r.body.is_empty());
                    let t = &r.head[r.info.target.0 as usize..][..r.info.target.1 as usize];
                    Seen::Stream(String::from_utf8_lossy(t).into())
                }
                Parsed::BodyChunk(b) => Seen::Chunk(b.to_vec()),
                Parsed::BodyEnd => Seen::End,
            });
            true
        });
        (used, seen)
    }

    fn parse_all(input: &[u8]) -> Vec<Seen> {
        run(&mut Parser::default(), input, &Limits::default()).1
    }

    fn req(m: &str, t: &str, body: &[u8]) -> Seen {
        Seen::Req(m.into(), t.into(), body.to_vec(), true)
    }

    #[test]
    fn parses_a_simple_get() {
        assert_eq!(
            parse_all(b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\n\r\n"),
            vec![req("GET", "/a?b=1", b"")]
        );
    }

    #[test]
    fn parses_pipelined_requests_in_order() {
        let one = b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n";
        let two = b"POST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc";
        let mut input = one.to_vec();
        input.extend_from_slice(two);
        input.extend_from_slice(one);
        assert_eq!(
            parse_all(&input),
            vec![
                req("GET", "/1", b""),
                req("POST", "/2", b"abc"),
                req("GET", "/1", b"")
            ]
        );
    }

    #[test]
    fn byte_by_byte_input_gives_the_same_result() {
        let input = b"POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n0\r\nTrail: v\r\n\r\nGET /y HTTP/1.1\r\nHost: x\r\n\r\n";
        let mut p = Parser::default();
        let limits = Limits::default();
        let mut pending: Vec<u8> = Vec::new();
        let mut seen = Vec::new();
        for &b in input.iter() {
            pending.push(b);
            let (used, s) = run(&mut p, &pending, &limits);
            pending.drain(..used);
            seen.extend(s);
        }
        assert_eq!(
            seen,
            vec![
                Seen::Pending(false),
                req("POST", "/x", b"abc"),
                req("GET", "/y", b"")
            ]
        );
    }

    #[test]
    fn decodes_chunked_bodies_with_extensions_and_trailers() {
        let input = b"PUT /u HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
            5 ; name=\"v\"\r\nhello\r\n1\r\n\0\r\nA\r\n0123456789\r\n0\r\nX-Sum: 1\r\nX-Two: 2\r\n\r\n";
        let seen = parse_all(input);
        assert_eq!(seen.last(), Some(&req("PUT", "/u", b"hello\x000123456789")));
    }

    #[test]
    fn body_split_across_reads_is_reassembled() {
        let mut p = Parser::default();
        let l = Limits::default();
        let first = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nab";
        let (used, seen) = run(&mut p, first, &l);
        assert_eq!(seen, vec![Seen::Pending(false)]);
        assert_eq!(used, first.len(), "partial body bytes are taken into the parser");
        let (_, seen) = run(&mut p, b"cdef", &l);
        assert_eq!(seen, vec![req("POST", "/", b"abcdef")]);
    }

    #[test]
    fn http10_closes_unless_keep_alive_and_11_closes_on_request() {
        let seen = parse_all(b"GET / HTTP/1.0\r\n\r\nGET /ignored HTTP/1.0\r\n\r\n");
        assert_eq!(seen, vec![Seen::Req("GET".into(), "/".into(), vec![], false)]);
        let seen = parse_all(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        assert_eq!(seen, vec![req("GET", "/", b"")]);
        let seen =
            parse_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /x HTTP/1.1\r\n\r\n");
        assert_eq!(seen, vec![Seen::Req("GET".into(), "/".into(), vec![], false)]);
    }

    #[test]
    fn expect_continue_is_reported_while_the_body_is_pending() {
        let seen =
            parse_all(b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 9\r\n\r\n");
        assert_eq!(seen, vec![Seen::Pending(true)]);
    }

    fn rejected(input: &[u8], limits: Limits) -> Option<u16> {
        run(&mut Parser::default(), input, &limits)
            .1
            .into_iter()
            .find_map(|s| match s {
                Seen::Reject(st) => Some(st),
                _ => None,
            })
    }

    #[test]
    fn malformed_requests_are_rejected_with_the_right_status() {
        let d = Limits::default;
        let cases: &[(&[u8], u16)] = &[
            (b"GARBAGE\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\n\r\n", 400), // no Host
            (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
            (b"GET /\0 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
            (
                b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                400,
            ),
            (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400),
            (
                b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n",
                400,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
                400,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
                400,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                501,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
                400,
            ),
            (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            (
                b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                400,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX",
                400,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n",
                400,
            ),
            (b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400),
            (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
        ];
        for (input, status) in cases {
            assert_eq!(
                rejected(input, d()),
                Some(*status),
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn limits_answer_413_414_431() {
        let small = Limits {
            max_head: 256,
            max_headers: 4,
            max_uri: 32,
            max_body: 10,
            stream_over: u64::MAX,
        };
        let long_uri = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(40));
        assert_eq!(rejected(long_uri.as_bytes(), small), Some(414));
        let unterminated_uri = format!("GET /{}", "a".repeat(300));
        assert_eq!(rejected(unterminated_uri.as_bytes(), small), Some(414));
        let big_head = format!("GET / HTTP/1.1\r\nHost: x\r\nX: {}\r\n", "b".repeat(300));
        assert_eq!(rejected(big_head.as_bytes(), small), Some(431));
        // A complete head over the limit: the request line decides 414 vs 431.
        let whole_long_uri = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(300));
        assert_eq!(rejected(whole_long_uri.as_bytes(), small), Some(414));
        let whole_big_head = format!("GET / HTTP/1.1\r\nHost: x\r\nX: {}\r\n\r\n", "b".repeat(300));
        assert_eq!(rejected(whole_big_head.as_bytes(), small), Some(431));
        let many = "GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
        assert_eq!(rejected(many.as_bytes(), small), Some(431));
        let body = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n";
        assert_eq!(rejected(body.as_bytes(), small), Some(413));
        let chunked = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n6\r\n";
        assert_eq!(rejected(chunked.as_bytes(), small), Some(413));
    }

    #[test]
    fn junk_is_rejected_before_a_head_end_arrives() {
        let l = Limits::default();
        // A TLS ClientHello sent to a plain-HTTP port.
        assert_eq!(
            rejected(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", l),
            Some(400)
        );
        assert_eq!(rejected(b"GET /x HTTP/9.9\r\nHost: x", l), Some(400));
        assert_eq!(
            rejected(b"AVERYVERYVERYLONGMETHODNAMEWITHOUTANYSPACE", l),
            Some(400)
        );
        // A valid request line waits for the rest of the head.
        assert_eq!(
            run(&mut Parser::default(), b"GET /x HTTP/1.1\r\nHo", &l).1,
            vec![]
        );
    }

    #[test]
    fn a_rejection_stops_parsing_the_connection() {
        let mut p = Parser::default();
        let input = b"BAD\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n";
        let (used, seen) = run(&mut p, input, &Limits::default());
        assert_eq!(seen, vec![Seen::Reject(400)]);
        assert_eq!(used, input.len(), "the rest of the input is discarded");
        assert!(p.stopped());
    }

    #[test]
    fn later_http1_minor_versions_are_served_as_http11() {
        assert_eq!(
            parse_all(b"GET /v HTTP/1.2\r\nHost: x\r\n\r\n"),
            vec![req("GET", "/v", b"")]
        );
        assert_eq!(
            parse_all(b"GET /v HTTP/1.9\nHost: x\n\n"),
            vec![req("GET", "/v", b"")]
        );
        assert_eq!(
            rejected(b"GET / HTTP/1.10\r\nHost: x\r\n\r\n", Limits::default()),
            Some(400)
        );
        assert_eq!(
            rejected(b"GET / HTTP/2.2\r\nHost: x\r\n\r\n", Limits::default()),
            Some(505)
        );
    }

    #[test]
    fn leading_empty_lines_are_ignored() {
        assert_eq!(
            parse_all(b"\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"),
            vec![req("GET", "/", b"")]
        );
    }

    fn streaming(over: u64, max_body: u64) -> Limits {
        Limits {
            stream_over: over,
            max_body,
            ..Limits::default()
        }
    }

    #[test]
    fn large_bodies_stream_in_pieces_then_the_next_request_parses() {
        let l = streaming(4, 1000);
        let mut p = Parser::default();
        let (used, seen) = run(
            &mut p,
            b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc",
            &l,
        );
        assert_eq!(used, 53);
        assert_eq!(
            seen,
            vec![Seen::Stream("/up".into()), Seen::Chunk(b"abc".to_vec())]
        );
        assert!(p.streaming());
        let (_, seen) = run(&mut p, b"defghijGET /next HTTP/1.1\r\nHost: x\r\n\r\n", &l);
        assert_eq!(
            seen,
            vec![
                Seen::Chunk(b"defghij".to_vec()),
                Seen::End,
                req("GET", "/next", b"")
            ]
        );
        assert!(!p.streaming());
        // At or under the threshold a body is buffered as before.
        let small = parse_all_with(
            b"POST /s HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nwxyz",
            &l,
        );
        assert_eq!(small, vec![req("POST", "/s", b"wxyz")]);
    }

    fn parse_all_with(input: &[u8], l: &Limits) -> Vec<Seen> {
        run(&mut Parser::default(), input, l).1
    }

    #[test]
    fn chunked_bodies_stream_once_they_outgrow_the_threshold() {
        let l = streaming(5, 1000);
        let head = b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
        let small = [&head[..], b"3\r\nabc\r\n0\r\n\r\n"].concat();
        assert_eq!(
            parse_all_with(&small, &l),
            vec![Seen::Pending(false), req("POST", "/c", b"abc")]
        );
        let mut p = Parser::default();
        let big = [&head[..], b"4\r\nabcd\r\n4\r\nefgh\r\n"].concat();
        let (_, seen) = run(&mut p, &big, &l);
        assert_eq!(
            seen,
            vec![
                Seen::Pending(false),
                Seen::Stream("/c".into()),
                Seen::Chunk(b"abcdefgh".to_vec())
            ]
        );
        let (_, seen) = run(&mut p, b"2\r\nij\r\n0\r\nTrailer: t\r\n\r\n", &l);
        assert_eq!(seen, vec![Seen::Chunk(b"ij".to_vec()), Seen::End]);
    }

    #[test]
    fn a_streaming_chunked_body_still_counts_against_max_body() {
        let l = streaming(2, 8);
        let mut p = Parser::default();
        let input = b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n";
        let (_, seen) = run(&mut p, input, &l);
        assert_eq!(seen.last(), Some(&Seen::Chunk(b"abcd".to_vec())), "{seen:?}");
        // 4 streamed + 4 more + 1 more > 8: the streamed bytes count too
        // (what was decoded in the failing step is not handed out).
        let (_, seen) = run(&mut p, b"4\r\nefgh\r\n1\r\n", &l);
        assert_eq!(seen, vec![Seen::Reject(413)]);
    }
}
