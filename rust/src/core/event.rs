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

/// A connection was accepted by a listener, or an outbound one connected.
pub const KIND_OPEN: u8 = 1;
/// A connection closed.
pub const KIND_CLOSE: u8 = 3;
/// An error on a connection; the connection closes after it.
pub const KIND_ERROR: u8 = 4;
/// Queued output fell to the level JS waited for.
pub const KIND_DRAIN: u8 = 5;
/// Bytes received on a connection whose protocol hands them to JS raw.
pub const KIND_DATA: u8 = 6;
/// A TLS upgrade of an open connection ([`super::manager::Core::start_tls`])
/// finished: flag bit 0 set if it failed (the message says why).
pub const KIND_SECURE: u8 = 19;
/// [`KIND_SECURE`]'s flag: the handshake failed.
pub const SECURE_FAILED: u8 = 1;
// Kinds 2 and 7 belong to the HTTP protocol (`http/record.rs`), 8 to 18 to
// TCP, UDP, DNS, SNTP, timers, posts and WebSocket. A new protocol takes
// numbers not used here or there (and mirrors them in `src/events.ts`).

/// Size of the common record header.
pub const HEADER_LEN: usize = 16;
/// Size of an OPEN record.
pub const OPEN_LEN: usize = 64;

/// OPEN flag: the addresses are IPv6.
pub const OPEN_FLAG_IPV6: u8 = 1;

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

    /// Starts a record: the common header. `len` counts the whole record,
    /// header included; the caller appends exactly `len - HEADER_LEN` bytes
    /// after it (with [`EventBuf::u32`] and [`EventBuf::put`]).
    pub fn header(&mut self, kind: u8, flags: u8, aux: u16, len: usize, id: u64) {
        let b = &mut self.bytes;
        b.push(kind);
        b.push(flags);
        b.extend_from_slice(&aux.to_le_bytes());
        b.extend_from_slice(&(len as u32).to_le_bytes());
        b.extend_from_slice(&(id as u32).to_le_bytes());
        b.extend_from_slice(&((id >> 32) as u32).to_le_bytes());
    }

    /// Appends a little-endian u32 to the record being written.
    pub fn u32(&mut self, v: u32) {
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }

    /// Appends raw bytes to the record being written.
    pub fn put(&mut self, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
    }

    /// Makes room for `n` more bytes (one growth for a large record).
    pub fn reserve(&mut self, n: usize) {
        self.bytes.reserve(n);
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

    /// SECURE: slot u32 @16, message length u32 @20, UTF-8 message @24
    /// (empty, flags 0, when the upgrade succeeded).
    pub fn secure(&mut self, id: u64, slot: u32, failure: Option<&[u8]>) {
        let flags = if failure.is_some() { SECURE_FAILED } else { 0 };
        self.text_record(KIND_SECURE, flags, id, slot, failure.unwrap_or_default());
    }

    /// ERROR: slot u32 @16, message length u32 @20, UTF-8 message @24.
    pub fn error(&mut self, id: u64, slot: u32, msg: &[u8]) {
        self.text_record(KIND_ERROR, 0, id, slot, msg);
    }

    /// A record of `kind` holding a text: slot u32 @16, its length u32 @20,
    /// the bytes @24.
    fn text_record(&mut self, kind: u8, flags: u8, id: u64, slot: u32, msg: &[u8]) {
        self.header(kind, flags, 0, HEADER_LEN + 8 + msg.len(), id);
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
}

/// Splits a batch into its records: (kind, connection id, the whole
/// record). For tests that read what a poll produced.
#[cfg(test)]
pub fn split_records(mut b: &[u8]) -> Vec<(u8, u64, &[u8])> {
    let mut out = Vec::new();
    while b.len() >= HEADER_LEN {
        let len = u32::from_le_bytes(b[4..8].try_into().unwrap()) as usize;
        let id = u32::from_le_bytes(b[8..12].try_into().unwrap()) as u64
            | (u32::from_le_bytes(b[12..16].try_into().unwrap()) as u64) << 32;
        out.push((b[0], id, &b[..len]));
        b = &b[len..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u32_at(b: &[u8], off: usize) -> u32 {
        u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
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
    fn batches_split_into_records() {
        let mut e = EventBuf::default();
        e.close(1, 0);
        e.data(2, 1, b"xyz");
        e.drain(3, 2);
        let r = split_records(&e.bytes);
        let kinds: Vec<(u8, u64)> = r.iter().map(|&(k, id, _)| (k, id)).collect();
        assert_eq!(kinds, [(KIND_CLOSE, 1), (KIND_DATA, 2), (KIND_DRAIN, 3)]);
        assert_eq!(&r[1].2[24..], b"xyz");
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
}
