//! HTTP/1.1 response writing: complete responses, streamed responses
//! (chunked, close-delimited or sized framing), reason phrases and the
//! cached `date` line. Pure functions over byte slices; `response.rs` puts their
//! output into the connection's send buffer.

/// How a response is framed on the wire, from the request it answers.
#[derive(Clone, Copy, Debug, Default)]
pub struct ResponseMeta {
    pub head_only: bool,
    pub close: bool,
    pub http10: bool,
}

/// Formats a response head (and body, unless forbidden) into `out` as a list
/// of byte slices, handed to `put`, which appends them in order.
pub fn write_response(
    status: u16,
    user_head: &[u8],
    body: &[u8],
    meta: ResponseMeta,
    date: &[u8],
    put: &mut dyn FnMut(&[&[u8]]),
) {
    let mut line = [0u8; 48];
    let status_line = status_line(status, &mut line);
    let no_body = status_has_no_body(status);
    let mut len_buf = [0u8; 40];
    let cl: &[u8] = if no_body {
        b""
    } else {
        content_length_line(body.len(), &mut len_buf)
    };
    let body: &[u8] = if no_body || meta.head_only { b"" } else { body };
    put(&[
        status_line,
        user_head,
        cl,
        date,
        connection_line(&meta),
        b"\r\n",
        body,
    ]);
}

/// True for statuses whose responses never carry content.
pub fn status_has_no_body(status: u16) -> bool {
    status == 204 || status == 304 || (100..200).contains(&status)
}

/// How a streamed response's body is delimited on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamFraming {
    /// `transfer-encoding: chunked` (HTTP/1.1 clients).
    Chunked,
    /// The body ends when the connection closes (HTTP/1.0 clients).
    Close,
    /// `content-length` given up front: the bytes go out as they are.
    Length,
    /// No body at all (HEAD, 204, 304): writes are dropped.
    NoBody,
}

impl StreamFraming {
    /// The framing a streamed response to this request must use; `sized`
    /// when the handler declared the body's length.
    pub fn for_response(status: u16, meta: &ResponseMeta, sized: bool) -> StreamFraming {
        if status_has_no_body(status) || meta.head_only {
            StreamFraming::NoBody
        } else if sized {
            StreamFraming::Length
        } else if meta.http10 {
            StreamFraming::Close
        } else {
            StreamFraming::Chunked
        }
    }
}

/// Formats the head of a streamed response (its body follows in chunks).
/// With `Close` framing `meta.close` must already be set. A declared
/// `length` is announced also to HEAD requests (RFC 9110 8.6), never with
/// a status that has no content.
#[allow(clippy::too_many_arguments)]
pub fn write_stream_head(
    status: u16,
    user_head: &[u8],
    framing: StreamFraming,
    length: Option<u64>,
    meta: ResponseMeta,
    date: &[u8],
    put: &mut dyn FnMut(&[&[u8]]),
) {
    let mut line = [0u8; 48];
    let status_line = status_line(status, &mut line);
    let mut len_buf = [0u8; 40];
    let framing_line: &[u8] = match (framing, length) {
        (StreamFraming::Chunked, _) => b"transfer-encoding: chunked\r\n",
        (_, Some(n)) if !status_has_no_body(status) => content_length_line(n as usize, &mut len_buf),
        _ => b"",
    };
    put(&[
        status_line,
        user_head,
        framing_line,
        date,
        connection_line(&meta),
        b"\r\n",
    ]);
}

/// Frames one chunk of a streamed body (empty data writes nothing).
pub fn write_chunk(framing: StreamFraming, data: &[u8], put: &mut dyn FnMut(&[&[u8]])) {
    match framing {
        StreamFraming::NoBody => {}
        _ if data.is_empty() => {}
        StreamFraming::Close | StreamFraming::Length => put(&[data]),
        StreamFraming::Chunked => {
            let mut hex = [0u8; 18];
            let n = hex_line(data.len(), &mut hex);
            put(&[&hex[..n], data, b"\r\n"]);
        }
    }
}

/// The end of a streamed body.
pub fn write_stream_end(framing: StreamFraming, put: &mut dyn FnMut(&[&[u8]])) {
    if framing == StreamFraming::Chunked {
        put(&[b"0\r\n\r\n"]);
    }
}

fn hex_line(mut n: usize, buf: &mut [u8; 18]) -> usize {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 16];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = HEX[n & 15];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    let len = digits.len() - i;
    buf[..len].copy_from_slice(&digits[i..]);
    buf[len..len + 2].copy_from_slice(b"\r\n");
    len + 2
}

fn connection_line(meta: &ResponseMeta) -> &'static [u8] {
    if meta.close {
        b"connection: close\r\n"
    } else if meta.http10 {
        b"connection: keep-alive\r\n"
    } else {
        b""
    }
}

fn content_length_line(n: usize, buf: &mut [u8; 40]) -> &[u8] {
    const PREFIX: &[u8] = b"content-length: ";
    buf[..PREFIX.len()].copy_from_slice(PREFIX);
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut v = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let d = &digits[i..];
    let end = PREFIX.len() + d.len();
    buf[PREFIX.len()..end].copy_from_slice(d);
    buf[end..end + 2].copy_from_slice(b"\r\n");
    &buf[..end + 2]
}

/// The reason phrase for common status codes (empty otherwise, as RFC 9112
/// allows).
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        422 => "Unprocessable Content",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

fn status_line(status: u16, buf: &mut [u8; 48]) -> &[u8] {
    let r = reason(status).as_bytes();
    let s = status.clamp(100, 999);
    buf[..9].copy_from_slice(b"HTTP/1.1 ");
    buf[9] = b'0' + (s / 100) as u8;
    buf[10] = b'0' + (s / 10 % 10) as u8;
    buf[11] = b'0' + (s % 10) as u8;
    buf[12] = b' ';
    buf[13..13 + r.len()].copy_from_slice(r);
    buf[13 + r.len()..15 + r.len()].copy_from_slice(b"\r\n");
    &buf[..15 + r.len()]
}

/// The body of a response mgnet sends on its own (rejections).
pub fn reject_body(status: u16) -> String {
    format!("{} {}\n", status, reason(status))
}

/// `date: <IMF-fixdate>\r\n`, recomputed at most once a second.
pub struct DateCache {
    secs: u64,
    line: [u8; 37],
}

impl Default for DateCache {
    fn default() -> Self {
        let mut d = DateCache {
            secs: u64::MAX,
            line: [0; 37],
        };
        d.refresh();
        d
    }
}

impl DateCache {
    /// Updates the line if the wall-clock second changed.
    pub fn refresh(&mut self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if now != self.secs {
            self.secs = now;
            self.line = format_date_line(now);
        }
    }

    pub fn line(&self) -> &[u8] {
        &self.line
    }
}

/// Formats `date: Sun, 06 Nov 1994 08:49:37 GMT\r\n` for a Unix time.
pub fn format_date_line(unix: u64) -> [u8; 37] {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
    ];
    let mut days = unix / 86400;
    let rem = unix % 86400;
    let weekday = DAYS[(days % 7) as usize];
    let leap = |y: u64| (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
    let mut year = 1970;
    loop {
        let len = if leap(year) { 366 } else { 365 };
        if days < len {
            break;
        }
        days -= len;
        year += 1;
    }
    let month_lens = [
        31,
        if leap(year) { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let mut month = 0;
    while days >= month_lens[month] {
        days -= month_lens[month];
        month += 1;
    }
    let two = |v: u64| [b'0' + (v / 10) as u8, b'0' + (v % 10) as u8];
    let mut out = [0u8; 37];
    let mut w = 0;
    let mut put = |s: &[u8]| {
        out[w..w + s.len()].copy_from_slice(s);
        w += s.len();
    };
    put(b"date: ");
    put(weekday);
    put(b", ");
    put(&two(days + 1));
    put(b" ");
    put(MONTHS[month]);
    put(b" ");
    put(&two(year / 100));
    put(&two(year % 100));
    put(b" ");
    put(&two(rem / 3600));
    put(b":");
    put(&two(rem / 60 % 60));
    put(b":");
    put(&two(rem % 60));
    put(b" GMT\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, body: &[u8], meta: ResponseMeta) -> String {
        let mut out = Vec::new();
        write_response(status, b"x-a: 1\r\n", body, meta, b"date: D\r\n", &mut |parts| {
            for p in parts {
                out.extend_from_slice(p);
            }
        });
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn responses_carry_length_date_and_body() {
        let r = response(200, b"hi", ResponseMeta::default());
        assert_eq!(
            r,
            "HTTP/1.1 200 OK\r\nx-a: 1\r\ncontent-length: 2\r\ndate: D\r\n\r\nhi"
        );
    }

    #[test]
    fn head_responses_keep_the_length_but_drop_the_body() {
        let meta = ResponseMeta {
            head_only: true,
            ..Default::default()
        };
        assert!(response(200, b"hello", meta).ends_with("content-length: 5\r\ndate: D\r\n\r\n"));
    }

    #[test]
    fn no_body_statuses_have_no_length_and_no_body() {
        for s in [204, 304] {
            let r = response(s, b"dropped", ResponseMeta::default());
            assert!(!r.contains("content-length") && !r.contains("dropped"), "{r}");
        }
    }

    #[test]
    fn connection_header_follows_meta() {
        let close = ResponseMeta {
            close: true,
            ..Default::default()
        };
        assert!(response(200, b"", close).contains("connection: close\r\n"));
        let ka10 = ResponseMeta {
            http10: true,
            ..Default::default()
        };
        assert!(response(200, b"", ka10).contains("connection: keep-alive\r\n"));
        assert!(response(599, b"", Default::default()).starts_with("HTTP/1.1 599 \r\n"));
    }

    fn collect(f: impl FnOnce(&mut dyn FnMut(&[&[u8]]))) -> String {
        let mut out = Vec::new();
        f(&mut |parts| {
            for p in parts {
                out.extend_from_slice(p);
            }
        });
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn streamed_responses_use_chunked_framing_for_http11() {
        let meta = ResponseMeta::default();
        let framing = StreamFraming::for_response(200, &meta, false);
        assert_eq!(framing, StreamFraming::Chunked);
        let head = collect(|p| write_stream_head(200, b"x-a: 1\r\n", framing, None, meta, b"date: D\r\n", p));
        assert_eq!(
            head,
            "HTTP/1.1 200 OK\r\nx-a: 1\r\ntransfer-encoding: chunked\r\ndate: D\r\n\r\n"
        );
        let body = collect(|p| {
            write_chunk(framing, b"hello", p);
            write_chunk(framing, b"", p);
            write_chunk(framing, &[b'x'; 300], p);
            write_stream_end(framing, p);
        });
        assert_eq!(
            body,
            format!("5\r\nhello\r\n12c\r\n{}\r\n0\r\n\r\n", "x".repeat(300))
        );
    }

    #[test]
    fn streamed_responses_to_http10_or_head_frame_differently() {
        let http10 = ResponseMeta {
            http10: true,
            close: true,
            ..Default::default()
        };
        assert_eq!(
            StreamFraming::for_response(200, &http10, false),
            StreamFraming::Close
        );
        assert_eq!(collect(|p| write_chunk(StreamFraming::Close, b"raw", p)), "raw");
        let head = ResponseMeta {
            head_only: true,
            ..Default::default()
        };
        assert_eq!(
            StreamFraming::for_response(200, &head, false),
            StreamFraming::NoBody
        );
        assert_eq!(
            StreamFraming::for_response(204, &ResponseMeta::default(), false),
            StreamFraming::NoBody
        );
        assert_eq!(collect(|p| write_chunk(StreamFraming::NoBody, b"dropped", p)), "");
        assert_eq!(collect(|p| write_stream_end(StreamFraming::NoBody, p)), "");
    }

    #[test]
    fn sized_streams_announce_their_length_even_to_head() {
        let meta = ResponseMeta::default();
        let framing = StreamFraming::for_response(200, &meta, true);
        assert_eq!(framing, StreamFraming::Length);
        let head = collect(|p| write_stream_head(206, b"", framing, Some(65536), meta, b"", p));
        assert_eq!(
            head,
            "HTTP/1.1 206 Partial Content\r\ncontent-length: 65536\r\n\r\n"
        );
        assert_eq!(collect(|p| write_chunk(framing, b"raw", p)), "raw");
        assert_eq!(collect(|p| write_stream_end(framing, p)), "");
        let head_req = ResponseMeta {
            head_only: true,
            ..Default::default()
        };
        let framing = StreamFraming::for_response(200, &head_req, true);
        assert_eq!(framing, StreamFraming::NoBody);
        let head = collect(|p| write_stream_head(200, b"", framing, Some(7), head_req, b"", p));
        assert!(head.contains("content-length: 7\r\n"), "{head}");
        let head = collect(|p| write_stream_head(304, b"", StreamFraming::NoBody, Some(7), meta, b"", p));
        assert!(!head.contains("content-length"), "{head}");
    }

    #[test]
    fn dates_are_imf_fixdate() {
        assert_eq!(&format_date_line(0), b"date: Thu, 01 Jan 1970 00:00:00 GMT\r\n");
        assert_eq!(
            &format_date_line(784111777),
            b"date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
        );
        assert_eq!(
            &format_date_line(951782400),
            b"date: Tue, 29 Feb 2000 00:00:00 GMT\r\n"
        );
        assert_eq!(
            &format_date_line(4102444799),
            b"date: Thu, 31 Dec 2099 23:59:59 GMT\r\n"
        );
    }
}
