//! Output beyond what a connection's send buffer should hold.
//!
//! Every partial `send()` (ours or Mongoose's) moves the unsent rest of
//! `c->send` to its start, so a send buffer holding a whole 256 MB reply
//! cost a copy of up to 256 MB per `send()`: quadratic in the reply's size
//! (256 MB to a local reader: 1.8 s against 0.2 s for 64 MB). The send
//! buffer is kept at most [`SEND_CAP`] long instead; the rest waits here and
//! moves in as the socket takes bytes, so each byte is copied a bounded
//! number of times.

use super::sys_io::iobuf_append;
use crate::sys;

/// Most bytes kept in a connection's send buffer; the rest waits here.
pub const SEND_CAP: usize = 1 << 20;
/// Refill the send buffer once it holds less than this.
const REFILL_BELOW: usize = SEND_CAP / 2;

/// Bytes queued behind a connection's send buffer, oldest first.
#[derive(Default)]
pub struct Overflow {
    buf: Vec<u8>,
    /// `buf[..at]` has already moved to the send buffer.
    at: usize,
}

impl Overflow {
    /// Bytes waiting here.
    pub fn len(&self) -> usize {
        self.buf.len() - self.at
    }

    /// True when nothing waits here.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends `parts` after everything queued: to the send buffer while it
    /// is under [`SEND_CAP`] and nothing waits here, to this queue otherwise.
    /// Returns false when memory ran out (nothing is then half-appended to
    /// the send buffer out of order: the caller closes the connection).
    ///
    /// # Safety
    /// `io` is the connection's live send buffer.
    pub unsafe fn append(&mut self, io: *mut sys::mg_iobuf, parts: &[&[u8]]) -> bool {
        if self.is_empty() {
            let total: usize = parts.iter().map(|p| p.len()).sum();
            let room = SEND_CAP.saturating_sub((*io).len);
            if total <= room {
                return iobuf_append(io, parts);
            }
            // Fill the send buffer up to the cap; the rest queues here.
            let mut room = room;
            let mut i = 0;
            while room > 0 && i < parts.len() {
                let take = room.min(parts[i].len());
                if !iobuf_append(io, &[&parts[i][..take]]) {
                    return false;
                }
                room -= take;
                if take < parts[i].len() {
                    return self.queue(&[&parts[i][take..]]) && self.queue(&parts[i + 1..]);
                }
                i += 1;
            }
            return self.queue(&parts[i..]);
        }
        self.queue(parts)
    }

    fn queue(&mut self, parts: &[&[u8]]) -> bool {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        if self.buf.try_reserve(total).is_err() {
            return false;
        }
        for p in parts {
            self.buf.extend_from_slice(p);
        }
        true
    }

    /// Moves queued bytes into the send buffer once it runs low. Returns
    /// true if it moved any (the caller then has output to send).
    ///
    /// # Safety
    /// `io` is the connection's live send buffer.
    pub unsafe fn refill(&mut self, io: *mut sys::mg_iobuf) -> bool {
        let waiting = self.len();
        if waiting == 0 || (*io).len >= REFILL_BELOW {
            return false;
        }
        let n = waiting.min(SEND_CAP - (*io).len);
        if !iobuf_append(io, &[&self.buf[self.at..self.at + n]]) {
            return false;
        }
        self.at += n;
        if self.at == self.buf.len() {
            // Drained: give the memory back.
            *self = Overflow::default();
        } else if self.at >= self.buf.len() / 2 {
            // Moving what is left costs no more than what was consumed since
            // the last move, so the copies stay linear overall.
            self.buf.drain(..self.at);
            self.at = 0;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A heap-backed `mg_iobuf` for tests, freed on drop.
    struct Io(sys::mg_iobuf);

    impl Io {
        fn new() -> Io {
            Io(sys::mg_iobuf {
                buf: std::ptr::null_mut(),
                size: 0,
                len: 0,
                align: 64,
            })
        }
        fn bytes(&self) -> &[u8] {
            if self.0.len == 0 {
                return &[];
            }
            unsafe { std::slice::from_raw_parts(self.0.buf, self.0.len) }
        }
        /// What a `send()` taking `n` bytes leaves behind.
        fn take(&mut self, n: usize) -> Vec<u8> {
            let out = self.bytes()[..n].to_vec();
            unsafe { super::super::sys_io::iobuf_consume(&mut self.0, n) };
            out
        }
    }

    impl Drop for Io {
        fn drop(&mut self) {
            unsafe { sys::mg_iobuf_free(&mut self.0) };
        }
    }

    #[test]
    fn small_output_goes_straight_to_the_send_buffer() {
        let mut io = Io::new();
        let mut o = Overflow::default();
        assert!(unsafe { o.append(&mut io.0, &[b"HTTP/1.1 200 OK\r\n", b"\r\n"]) });
        assert_eq!(io.bytes(), b"HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(o.len(), 0);
        assert!(!unsafe { o.refill(&mut io.0) });
    }

    #[test]
    fn large_output_waits_and_arrives_whole_and_in_order() {
        let mut io = Io::new();
        let mut o = Overflow::default();
        let big: Vec<u8> = (0..5 * SEND_CAP + 123).map(|i| (i % 251) as u8).collect();
        let tail = b"next response";
        unsafe {
            assert!(o.append(&mut io.0, &[b"head:", &big]));
            assert!(o.append(&mut io.0, &[tail]));
        }
        assert_eq!(io.0.len, SEND_CAP);
        assert_eq!(o.len(), 5 + big.len() + tail.len() - SEND_CAP);
        let mut got = Vec::new();
        // A socket that takes odd amounts; refill after each send.
        let mut step = 7919;
        while io.0.len > 0 {
            let n = step.min(io.0.len);
            got.extend(io.take(n));
            unsafe { o.refill(&mut io.0) };
            assert!(io.0.len <= SEND_CAP);
            step = step * 3 % 300_007 + 1;
        }
        assert_eq!(o.len(), 0);
        let mut want = b"head:".to_vec();
        want.extend_from_slice(&big);
        want.extend_from_slice(tail);
        assert_eq!(got, want);
    }

    #[test]
    fn output_queued_behind_waiting_bytes_keeps_its_place() {
        let mut io = Io::new();
        let mut o = Overflow::default();
        let big = vec![1u8; SEND_CAP + 10];
        unsafe {
            assert!(o.append(&mut io.0, &[&big]));
            // Room appears in the send buffer, but a small write must still
            // queue behind the 10 waiting bytes.
            io.take(SEND_CAP - 4);
            assert!(o.append(&mut io.0, &[b"xy"]));
        }
        assert_eq!(io.0.len, 4);
        assert_eq!(o.len(), 12);
        assert!(unsafe { o.refill(&mut io.0) });
        assert_eq!(io.take(16), [&[1u8; 14][..], b"xy"].concat());
    }
}
