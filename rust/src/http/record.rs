//! The HTTP protocol's event records, written with the core's generic
//! record header ([`EventBuf::header`]): a request (`KIND_HTTP`) and a piece
//! of a streamed request body (`KIND_BODY`). `src/http.ts` and
//! `src/manager.ts` decode them.

use crate::core::event::{EventBuf, HEADER_LEN};

/// A complete HTTP request (head and body), or the head of a streamed one.
pub const KIND_HTTP: u8 = 2;
/// A piece (or the end) of a streamed request body.
pub const KIND_BODY: u8 = 7;

/// Size of the fixed part of an HTTP request record.
pub const HTTP_FIXED_LEN: usize = 56;
/// Size of one entry of an HTTP record's header table.
pub const HTTP_HEADER_ENTRY_LEN: usize = 16;

/// HTTP flag: the request is HTTP/1.0.
pub const HTTP_FLAG_HTTP10: u8 = 1;
/// HTTP flag: the connection stays open after this request's response.
pub const HTTP_FLAG_KEEP_ALIVE: u8 = 2;
/// HTTP flag: the body is not in the record; BODY events bring it.
pub const HTTP_FLAG_STREAMED: u8 = 4;
/// BODY flag: the body is complete.
pub const BODY_FLAG_END: u8 = 1;
/// BODY flag: the body failed (aux: the status mgnet answered with).
pub const BODY_FLAG_ERROR: u8 = 2;

/// A request's method as a small code, so JS needs no string decoding for
/// the common ones. `METHOD_OTHER` means: read the method bytes.
pub fn method_code(m: &[u8]) -> u16 {
    match m {
        b"GET" => 1,
        b"HEAD" => 2,
        b"POST" => 3,
        b"PUT" => 4,
        b"DELETE" => 5,
        b"OPTIONS" => 6,
        b"PATCH" => 7,
        b"CONNECT" => 8,
        b"TRACE" => 9,
        _ => METHOD_OTHER,
    }
}
/// See [`method_code`].
pub const METHOD_OTHER: u16 = 0;

/// Fields of an HTTP request to encode. Ranges index into `head`.
pub struct HttpRecord<'a> {
    pub id: u64,
    pub slot: u32,
    pub seq: u32,
    pub flags: u8,
    /// The raw request head, from the method to the blank line.
    pub head: &'a [u8],
    pub method: (u32, u32),
    pub target: (u32, u32),
    /// (name offset, name length, value offset, value length) into `head`.
    pub headers: &'a [[u32; 4]],
    pub body: &'a [u8],
}

/// BODY: slot u32 @16, seq u32 @20, length u32 @24, the bytes @28;
/// flags `BODY_FLAG_*`, aux the status of a failed body.
pub fn body(e: &mut EventBuf, id: u64, slot: u32, seq: u32, bytes: &[u8], flags: u8, status: u16) {
    e.header(KIND_BODY, flags, status, HEADER_LEN + 12 + bytes.len(), id);
    e.u32(slot);
    e.u32(seq);
    e.u32(bytes.len() as u32);
    e.put(bytes);
}

/// HTTP: slot @16, seq @20, target off/len @24/@28, method off/len
/// @32/@36, header table off/count @40/@44, body off/len @48/@52, then
/// the header table, the raw head and the body.
pub fn http(e: &mut EventBuf, r: &HttpRecord) {
    let table_off = HTTP_FIXED_LEN as u32;
    let head_off = table_off + (r.headers.len() * HTTP_HEADER_ENTRY_LEN) as u32;
    let body_off = head_off + r.head.len() as u32;
    let len = body_off as usize + r.body.len();
    let method = &r.head[r.method.0 as usize..(r.method.0 + r.method.1) as usize];
    e.reserve(len);
    e.header(KIND_HTTP, r.flags, method_code(method), len, r.id);
    e.u32(r.slot);
    e.u32(r.seq);
    e.u32(head_off + r.target.0);
    e.u32(r.target.1);
    e.u32(head_off + r.method.0);
    e.u32(r.method.1);
    e.u32(table_off);
    e.u32(r.headers.len() as u32);
    e.u32(body_off);
    e.u32(r.body.len() as u32);
    for h in r.headers {
        e.u32(head_off + h[0]);
        e.u32(h[1]);
        e.u32(head_off + h[2]);
        e.u32(h[3]);
    }
    e.put(r.head);
    e.put(r.body);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u32_at(b: &[u8], off: usize) -> u32 {
        u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
    }

    fn slice(b: &[u8], off_at: usize, len_at: usize) -> &[u8] {
        let off = u32_at(b, off_at) as usize;
        &b[off..off + u32_at(b, len_at) as usize]
    }

    #[test]
    fn http_record_round_trips_head_headers_and_body() {
        let head = b"POST /a?b=1 HTTP/1.1\r\nHost: x\r\nX-Y: z\r\n\r\n";
        let headers = [[22, 4, 28, 1], [31, 3, 36, 1]];
        let body = b"he\0llo";
        let mut e = EventBuf::default();
        e.error(1, 0, b"first record");
        let start = e.len();
        http(
            &mut e,
            &HttpRecord {
                id: 9,
                slot: 3,
                seq: 5,
                flags: HTTP_FLAG_KEEP_ALIVE,
                head,
                method: (0, 4),
                target: (5, 6),
                headers: &headers,
                body,
            },
        );
        let r = &e.bytes[start..];
        assert_eq!(r[0], KIND_HTTP);
        assert_eq!(r[1], HTTP_FLAG_KEEP_ALIVE);
        assert_eq!(u16::from_le_bytes([r[2], r[3]]), 3); // POST
        assert_eq!(u32_at(r, 4) as usize, r.len());
        assert_eq!(u32_at(r, 20), 5);
        assert_eq!(slice(r, 24, 28), b"/a?b=1");
        assert_eq!(slice(r, 32, 36), b"POST");
        assert_eq!(u32_at(r, 44), 2);
        let t = u32_at(r, 40) as usize;
        let name = |i: usize| slice(r, t + i * 16, t + i * 16 + 4);
        let value = |i: usize| slice(r, t + i * 16 + 8, t + i * 16 + 12);
        assert_eq!(name(0), b"Host");
        assert_eq!(value(0), b"x");
        assert_eq!(name(1), b"X-Y");
        assert_eq!(value(1), b"z");
        assert_eq!(slice(r, 48, 52), body);
    }

    #[test]
    fn method_codes_cover_common_methods_and_fall_back() {
        assert_eq!(method_code(b"GET"), 1);
        assert_eq!(method_code(b"HEAD"), 2);
        assert_eq!(method_code(b"PROPFIND"), METHOD_OTHER);
        assert_eq!(method_code(b"get"), METHOD_OTHER);
    }

    #[test]
    fn body_record_carries_seq_flags_and_bytes() {
        let mut e = EventBuf::default();
        body(&mut e, 5, 2, 9, b"abc", BODY_FLAG_END, 413);
        assert_eq!(e.bytes[0], KIND_BODY);
        assert_eq!(e.bytes[1], BODY_FLAG_END);
        assert_eq!(u16::from_le_bytes([e.bytes[2], e.bytes[3]]), 413);
        assert_eq!(u32_at(&e.bytes, 4) as usize, e.len());
        assert_eq!(u32_at(&e.bytes, 16), 2);
        assert_eq!(u32_at(&e.bytes, 20), 9);
        assert_eq!(u32_at(&e.bytes, 24), 3);
        assert_eq!(&e.bytes[28..], b"abc");
    }
}
