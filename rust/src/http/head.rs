//! The request head: finding its end, checking the request line early,
//! and parsing and validating it with `httparse` (tokens, Host, framing
//! headers, Connection, Expect). `parser.rs` drives these per connection.

use std::mem::MaybeUninit;

use super::parser::{Limits, ReqInfo, MAX_HEADERS_CAP};

/// The status for a head over `max_head`: 414 when the request line alone
/// is too long (RFC 9112 3), else 431 (RFC 6585 5), whether or not the
/// whole head arrived in one read.
pub(super) fn oversize_status(head: &[u8], limits: &Limits) -> u16 {
    let line_end = head.iter().position(|&b| b == b'\n');
    if line_end.is_none_or(|n| n > limits.max_uri) {
        414
    } else {
        431
    }
}

pub(super) enum LineCheck {
    Incomplete,
    Valid,
    Invalid(u16),
}

/// Rejects a head early, before its end arrives, when its first bytes cannot
/// start a request (binary junk, TLS sent to a plain port): the method must
/// be a token, and a complete request line must parse.
/// `*scanned` keeps the search for the line's end linear over slow input.
pub(super) fn check_request_line(buf: &[u8], scanned: &mut usize) -> LineCheck {
    const MAX_METHOD: usize = 32;
    let method = &buf[..buf.len().min(MAX_METHOD + 1)];
    match method.iter().position(|&b| b == b' ') {
        Some(end) if method[..end].iter().all(|&b| is_tchar(b)) => {}
        None if buf.len() <= MAX_METHOD && method.iter().all(|&b| is_tchar(b)) => {}
        _ => return LineCheck::Invalid(400),
    }
    let from = (*scanned).min(buf.len());
    let Some(nl) = buf[from..].iter().position(|&b| b == b'\n').map(|i| from + i) else {
        *scanned = buf.len();
        return LineCheck::Incomplete;
    };
    let mut req = httparse::Request::new(&mut []);
    match req.parse(&buf[..=nl]) {
        Ok(_) | Err(httparse::Error::TooManyHeaders) => LineCheck::Valid,
        Err(httparse::Error::Version) if later_minor_version(buf).is_some() => LineCheck::Valid,
        Err(httparse::Error::Version) if is_http2_preface(buf) => LineCheck::Invalid(505),
        Err(_) => LineCheck::Invalid(400),
    }
}

/// Position of the minor digit of an `HTTP/1.x` request line with x > 1.
fn later_minor_version(head: &[u8]) -> Option<usize> {
    let end = head.iter().position(|&b| b == b'\n')?;
    let line = head[..end].strip_suffix(b"\r").unwrap_or(&head[..end]);
    let minor = line.len().checked_sub(1)?;
    (line.len() >= 9 && line[..minor].ends_with(b" HTTP/1.") && (b'2'..=b'9').contains(&line[minor]))
        .then_some(minor)
}

/// `tchar` of RFC 9110 5.6.2.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_http2_preface(head: &[u8]) -> bool {
    head.windows(7).any(|w| w == b" HTTP/2" || w == b" HTTP/3")
}

/// How the body of a request is delimited.
#[derive(Debug, PartialEq)]
pub(super) enum Framing {
    None,
    Length(u64),
    Chunked,
}

/// Finds the end of a request head (the blank line), resuming the search at
/// `*scanned`. Returns the head length including the blank line.
pub(super) fn find_head_end(buf: &[u8], scanned: &mut usize) -> Option<usize> {
    let start = scanned.saturating_sub(3);
    let mut i = start;
    while let Some(off) = buf[i..].iter().position(|&b| b == b'\n') {
        let nl = i + off;
        if nl >= 1 && buf[nl - 1] == b'\n' {
            return Some(nl + 1);
        }
        if nl >= 2 && buf[nl - 1] == b'\r' && buf[nl - 2] == b'\n' {
            return Some(nl + 1);
        }
        i = nl + 1;
    }
    *scanned = buf.len();
    None
}

fn offset_of(base: &[u8], part: &[u8]) -> u32 {
    (part.as_ptr() as usize - base.as_ptr() as usize) as u32
}

/// Parses and validates a complete head. Fills `info`, returns the framing
/// or the status to reject with.
pub(super) fn parse_head(head: &[u8], limits: &Limits, info: &mut ReqInfo) -> Result<Framing, u16> {
    if let Some(at) = later_minor_version(head) {
        // RFC 9110 6.2: serve HTTP/1.x (x > 1) as the highest 1.x we speak.
        // Same length, so every offset into the copy is valid for `head`.
        let mut as_11 = head.to_vec();
        as_11[at] = b'1';
        return parse_head(&as_11, limits, info);
    }
    let mut storage: [MaybeUninit<httparse::Header>; MAX_HEADERS_CAP] =
        [const { MaybeUninit::uninit() }; MAX_HEADERS_CAP];
    let n = limits.max_headers.clamp(1, MAX_HEADERS_CAP);
    let mut req = httparse::Request::new(&mut []);
    let status = req.parse_with_uninit_headers(head, &mut storage[..n]);
    match status {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(400),
        Err(httparse::Error::TooManyHeaders) => return Err(431),
        Err(httparse::Error::Version) => {
            return Err(if head.windows(7).any(|w| w == b" HTTP/2" || w == b" HTTP/3") {
                505
            } else {
                400
            })
        }
        Err(_) => return Err(400),
    }
    let method = req.method.ok_or(400u16)?;
    let target = req.path.ok_or(400u16)?;
    if target.len() > limits.max_uri {
        return Err(414);
    }
    info.http10 = req.version == Some(0);
    info.method = (offset_of(head, method.as_bytes()), method.len() as u32);
    info.target = (offset_of(head, target.as_bytes()), target.len() as u32);
    info.head_only = method == "HEAD";
    info.headers.clear();

    let mut hosts = 0;
    let mut length: Option<u64> = None;
    let mut te = false;
    let mut te_chunked_last = false;
    let mut te_chunked_count = 0;
    let mut te_unknown = false;
    let mut conn_close = false;
    let mut conn_keep_alive = false;
    let mut expect_continue = false;
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        let value = h.value;
        info.headers.push([
            offset_of(head, name),
            name.len() as u32,
            offset_of(head, value),
            value.len() as u32,
        ]);
        if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case(b"content-length") {
            let v = parse_content_length(value).ok_or(400u16)?;
            if length.is_some_and(|l| l != v) {
                return Err(400);
            }
            length = Some(v);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            te = true;
            for coding in list_items(value) {
                te_chunked_last = coding.eq_ignore_ascii_case(b"chunked");
                if te_chunked_last {
                    te_chunked_count += 1;
                } else {
                    te_unknown = true;
                }
            }
        } else if name.eq_ignore_ascii_case(b"connection") {
            for opt in list_items(value) {
                if opt.eq_ignore_ascii_case(b"close") {
                    conn_close = true;
                } else if opt.eq_ignore_ascii_case(b"keep-alive") {
                    conn_keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case(b"expect") && value.eq_ignore_ascii_case(b"100-continue") {
            expect_continue = true;
        }
    }
    // RFC 9112 3.2: a 1.1 request without exactly one Host is answered 400.
    if (!info.http10 && hosts != 1) || hosts > 1 {
        return Err(400);
    }
    info.keep_alive = if info.http10 {
        conn_keep_alive && !conn_close
    } else {
        !conn_close
    };
    let framing = if te {
        // RFC 9112 6.1: TE in HTTP/1.0 means faulty framing; TE with
        // Content-Length is a smuggling vector: refuse both.
        if info.http10 || length.is_some() {
            return Err(400);
        }
        if !te_chunked_last || te_chunked_count != 1 {
            return Err(400);
        }
        if te_unknown {
            return Err(501);
        }
        Framing::Chunked
    } else {
        match length {
            Some(n) if n > limits.max_body => return Err(413),
            Some(0) | None => Framing::None,
            Some(n) => Framing::Length(n),
        }
    };
    info.expect_continue = expect_continue && !info.http10 && framing != Framing::None;
    Ok(framing)
}

/// `Content-Length = 1*DIGIT`, bounded to avoid overflow.
fn parse_content_length(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 18 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0u64, |n, d| n * 10 + (d - b'0') as u64))
}

/// Elements of a comma-separated field value, trimmed of optional whitespace.
fn list_items(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|&b| b == b',')
        .map(|s| s.trim_ascii())
        .filter(|s| !s.is_empty())
}
