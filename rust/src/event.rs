//! Binary encoding of events for one FFI crossing per batch.
//!
//! A batch is a run of records. Every record starts with a 16-byte header:
//!
//! | offset | type | field                                          |
//! |--------|------|------------------------------------------------|
//! | 0      | u8   | kind (`KIND_*`)                                 |
//! | 1      | u8   | flags (kind-specific)                          |
//! | 2      | u16  | aux (kind-specific; HTTP: method code)         |
//! | 4      | u32  | record length in bytes, header included        |
//! | 8      | u32  | connection id, low 32 bits                     |
//! | 12     | u32  | connection id, high 32 bits                    |
//!
//! All integers are little-endian. Offsets inside a record are relative to
//! the record's first byte. `src/manager.ts` decodes the same layout (the
//! kinds are mirrored in `src/events.ts`).

/// A connection was accepted by a listener.
pub const KIND_OPEN: u8 = 1;
/// A complete HTTP request (head and body).
pub const KIND_HTTP: u8 = 2;
/// A connection (or listener) closed.
pub const KIND_CLOSE: u8 = 3;
/// An error on a connection; the connection closes after it.
pub const KIND_ERROR: u8 = 4;
/// A streamed response's queued output fell to the level JS waited for.
pub const KIND_DRAIN: u8 = 5;
/// Bytes received on an outbound connection.
pub const KIND_DATA: u8 = 6;
/// A piece (or the end) of a streamed request body.
pub const KIND_BODY: u8 = 7;

/// Size of the common record header.
pub const HEADER_LEN: usize = 16;
/// Size of the fixed part of an HTTP request record.
pub const HTTP_FIXED_LEN: usize = 56;
/// Size of one entry of an HTTP record's header table.
pub const HTTP_HEADER_ENTRY_LEN: usize = 16;
/// Size of an OPEN record.
pub const OPEN_LEN: usize = 64;

/// OPEN flag: the addresses are IPv6.
pub const OPEN_FLAG_IPV6: u8 = 1;
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

/// A growable batch of event records.
#[derive(Default)]
pub struct EventBuf {
    pub bytes: Vec<u8>,
}

impl EventBuf {
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub fn clear(&mut self) {
        self.bytes.clear();
    }

    fn header(&mut self, kind: u8, flags: u8, aux: u16, len: usize, id: u64) {
        let b = &mut self.bytes;
        b.push(kind);
        b.push(flags);
        b.extend_from_slice(&aux.to_le_bytes());
        b.extend_from_slice(&(len as u32).to_le_bytes());
        b.extend_from_slice(&(id as u32).to_le_bytes());
        b.extend_from_slice(&((id >> 32) as u32).to_le_bytes());
    }

    fn u32(&mut self, v: u32) {
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }

    /// OPEN: slot u32 @16, listener id u32 lo/hi @20/@24, remote port u16
    /// @28, local port u16 @30, remote address 16 bytes @32, local address
    /// 16 bytes @48 (IPv4 in the first 4 bytes).
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        &mut self,
        id: u64,
        slot: u32,
        listener: u64,
        ipv6: bool,
        rem: (&[u8; 16], u16),
        loc: (&[u8; 16], u16),
    ) {
        let flags = if ipv6 { OPEN_FLAG_IPV6 } else { 0 };
        self.header(KIND_OPEN, flags, 0, OPEN_LEN, id);
        self.u32(slot);
        self.u32(listener as u32);
        self.u32((listener >> 32) as u32);
        self.bytes.extend_from_slice(&rem.1.to_le_bytes());
        self.bytes.extend_from_slice(&loc.1.to_le_bytes());
        self.bytes.extend_from_slice(rem.0);
        self.bytes.extend_from_slice(loc.0);
    }

    /// CLOSE: slot u32 @16.
    pub fn close(&mut self, id: u64, slot: u32) {
        self.header(KIND_CLOSE, 0, 0, HEADER_LEN + 4, id);
        self.u32(slot);
    }

    /// DRAIN: slot u32 @16.
    pub fn drain(&mut self, id: u64, slot: u32) {
        self.header(KIND_DRAIN, 0, 0, HEADER_LEN + 4, id);
        self.u32(slot);
    }

    /// ERROR: slot u32 @16, message length u32 @20, UTF-8 message @24.
    pub fn error(&mut self, id: u64, slot: u32, msg: &[u8]) {
        self.header(KIND_ERROR, 0, 0, HEADER_LEN + 8 + msg.len(), id);
        self.u32(slot);
        self.u32(msg.len() as u32);
        self.bytes.extend_from_slice(msg);
    }

    /// DATA: slot u32 @16, length u32 @20, the bytes @24.
    pub fn data(&mut self, id: u64, slot: u32, bytes: &[u8]) {
        self.header(KIND_DATA, 0, 0, HEADER_LEN + 8 + bytes.len(), id);
        self.u32(slot);
        self.u32(bytes.len() as u32);
        self.bytes.extend_from_slice(bytes);
    }

    /// BODY: slot u32 @16, seq u32 @20, length u32 @24, the bytes @28;
    /// flags `BODY_FLAG_*`, aux the status of a failed body.
    pub fn body(&mut self, id: u64, slot: u32, seq: u32, bytes: &[u8], flags: u8, status: u16) {
        self.header(KIND_BODY, flags, status, HEADER_LEN + 12 + bytes.len(), id);
        self.u32(slot);
        self.u32(seq);
        self.u32(bytes.len() as u32);
        self.bytes.extend_from_slice(bytes);
    }

    /// HTTP: slot @16, seq @20, target off/len @24/@28, method off/len
    /// @32/@36, header table off/count @40/@44, body off/len @48/@52, then
    /// the header table, the raw head and the body.
    pub fn http(&mut self, r: &HttpRecord) {
        let table_off = HTTP_FIXED_LEN as u32;
        let head_off = table_off + (r.headers.len() * HTTP_HEADER_ENTRY_LEN) as u32;
        let body_off = head_off + r.head.len() as u32;
        let len = body_off as usize + r.body.len();
        let method = &r.head[r.method.0 as usize..(r.method.0 + r.method.1) as usize];
        self.bytes.reserve(len);
        self.header(KIND_HTTP, r.flags, method_code(method), len, r.id);
        self.u32(r.slot);
        self.u32(r.seq);
        self.u32(head_off + r.target.0);
        self.u32(r.target.1);
        self.u32(head_off + r.method.0);
        self.u32(r.method.1);
        self.u32(table_off);
        self.u32(r.headers.len() as u32);
        self.u32(body_off);
        self.u32(r.body.len() as u32);
        for h in r.headers {
            self.u32(head_off + h[0]);
            self.u32(h[1]);
            self.u32(head_off + h[2]);
            self.u32(h[3]);
        }
        self.bytes.extend_from_slice(r.head);
        self.bytes.extend_from_slice(r.body);
    }
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
    fn header_carries_kind_length_and_64_bit_id() {
        let mut e = EventBuf::default();
        e.close(0x1_0000_0002, 7);
        assert_eq!(e.bytes[0], KIND_CLOSE);
        assert_eq!(u32_at(&e.bytes, 4) as usize, e.len());
        assert_eq!(u32_at(&e.bytes, 8), 2);
        assert_eq!(u32_at(&e.bytes, 12), 1);
        assert_eq!(u32_at(&e.bytes, 16), 7);
    }

    #[test]
    fn http_record_round_trips_head_headers_and_body() {
        let head = b"POST /a?b=1 HTTP/1.1\r\nHost: x\r\nX-Y: z\r\n\r\n";
        let headers = [[22, 4, 28, 1], [31, 3, 36, 1]];
        let body = b"he\0llo";
        let mut e = EventBuf::default();
        e.error(1, 0, b"first record");
        let start = e.len();
        e.http(&HttpRecord {
            id: 9,
            slot: 3,
            seq: 5,
            flags: HTTP_FLAG_KEEP_ALIVE,
            head,
            method: (0, 4),
            target: (5, 6),
            headers: &headers,
            body,
        });
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
    fn open_record_has_fixed_size_and_addresses() {
        let mut e = EventBuf::default();
        let mut rem = [0u8; 16];
        rem[..4].copy_from_slice(&[127, 0, 0, 1]);
        e.open(4, 1, 2, false, (&rem, 5555), (&[0; 16], 80));
        assert_eq!(e.len(), OPEN_LEN);
        assert_eq!(u32_at(&e.bytes, 4) as usize, OPEN_LEN);
        assert_eq!(u32_at(&e.bytes, 20), 2);
        assert_eq!(u16::from_le_bytes([e.bytes[28], e.bytes[29]]), 5555);
        assert_eq!(u16::from_le_bytes([e.bytes[30], e.bytes[31]]), 80);
        assert_eq!(&e.bytes[32..36], &[127, 0, 0, 1]);
    }

    #[test]
    fn error_record_carries_message() {
        let mut e = EventBuf::default();
        e.error(3, 2, "connection reset".as_bytes());
        assert_eq!(u32_at(&e.bytes, 20), 16);
        assert_eq!(&e.bytes[24..], b"connection reset");
    }

    #[test]
    fn method_codes_cover_common_methods_and_fall_back() {
        assert_eq!(method_code(b"GET"), 1);
        assert_eq!(method_code(b"HEAD"), 2);
        assert_eq!(method_code(b"PROPFIND"), METHOD_OTHER);
        assert_eq!(method_code(b"get"), METHOD_OTHER);
    }
}
