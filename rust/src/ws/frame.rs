//! WebSocket framing (RFC 6455 section 5), without sockets: a parser that
//! checks and reassembles what a peer sends, and the frame header writer.
//!
//! The parser works on the connection's receive buffer in place: it unmasks
//! payloads where they lie and hands out slices of them, so a whole
//! unfragmented frame costs one copy (into the event record). A frame whose
//! payload is still arriving, or a fragmented message, is moved into the
//! message buffer piece by piece as bytes arrive, so the receive buffer
//! never has to hold a large frame whole. Nothing is allocated for a length
//! a frame only claims: the limit is checked against the header first.
//!
//! Checks (each fails the connection with the close code given):
//! - reserved bits set (RSV1 only with permessage-deflate, on a message's
//!   first frame), unknown opcodes, a control frame fragmented or over 125
//!   bytes, a continuation without a message or a new message inside one,
//!   a client frame without a mask or a server frame with one: 1002;
//! - a message over the size limit (known from the first header that
//!   takes it over, before its payload arrives): 1009;
//! - invalid UTF-8 in a text message (checked as each piece arrives, so a
//!   bad byte fails at once even in the middle of a fragment) or in a close
//!   reason: 1007; a close payload of 1 byte or with a code that may not be
//!   sent: 1002.

/// Opcodes (RFC 6455 5.2).
pub const OP_CONT: u8 = 0;
pub const OP_TEXT: u8 = 1;
pub const OP_BINARY: u8 = 2;
pub const OP_CLOSE: u8 = 8;
pub const OP_PING: u8 = 9;
pub const OP_PONG: u8 = 10;

/// Close codes mgnet sends when it fails a connection.
pub const CLOSE_NORMAL: u16 = 1000;
pub const CLOSE_PROTOCOL: u16 = 1002;
pub const CLOSE_NO_STATUS: u16 = 1005;
pub const CLOSE_ABNORMAL: u16 = 1006;
pub const CLOSE_INVALID_DATA: u16 = 1007;
pub const CLOSE_TOO_BIG: u16 = 1009;

/// Whether a close code may appear in a close frame (RFC 6455 7.4, the IANA
/// registry: 1000–1003, 1007–1014; 3000–4999 for libraries and apps).
pub fn close_code_valid(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// What the parser found.
#[derive(Debug, PartialEq)]
pub enum Frame<'a> {
    /// A complete message (`compressed`: RSV1 was set, the payload is
    /// permessage-deflate data; its UTF-8 is then not checked here).
    Message {
        binary: bool,
        compressed: bool,
        data: &'a [u8],
    },
    Ping(&'a [u8]),
    Pong(&'a [u8]),
    /// A close frame: the code (1005 when the frame had none) and reason.
    Close(u16, &'a [u8]),
    /// The peer broke the protocol: close with this code and reason.
    Fail(u16, &'static str),
}

/// A data frame whose payload is still arriving.
#[derive(Clone, Copy, Debug)]
struct Partial {
    fin: bool,
    left: u64,
    mask: [u8; 4],
    masked: bool,
    /// Position in the mask of the next payload byte.
    phase: usize,
}

/// Incremental frame parser for one connection.
pub struct Parser {
    /// Frames from a client must be masked (server side); from a server
    /// they must not be (client side).
    pub expect_masked: bool,
    /// Largest message (bytes of payload, after reassembly) accepted.
    pub max_message: usize,
    /// permessage-deflate was negotiated: RSV1 marks compressed messages.
    pub deflate: bool,
    frame: Option<Partial>,
    /// Opcode of the message being reassembled (0: none).
    msg_op: u8,
    msg_compressed: bool,
    msg: Vec<u8>,
    /// `msg[..checked]` is known to be valid UTF-8 (text messages).
    checked: usize,
    /// A failure was reported: everything after it is ignored.
    failed: bool,
}

impl Parser {
    pub fn new(expect_masked: bool, max_message: usize) -> Parser {
        Parser {
            expect_masked,
            max_message,
            deflate: false,
            frame: None,
            msg_op: 0,
            msg_compressed: false,
            msg: Vec::new(),
            checked: 0,
            failed: false,
        }
    }

    /// Payload bytes of the frame being received that have not arrived.
    pub fn partial_left(&self) -> u64 {
        self.frame.map_or(0, |f| f.left)
    }

    /// With a data frame arriving, the size of its message so far plus what
    /// the frame still lacks (0 with no frame arriving).
    pub fn partial_message(&self) -> u64 {
        self.frame.map_or(0, |f| f.left + self.msg.len() as u64)
    }

    /// Bytes held for a message being reassembled (its capacity).
    pub fn buffered(&self) -> usize {
        self.msg.capacity()
    }

    /// Parses frames from `input` (unmasking in place), calling `on` for
    /// each; `on` returns false to stop after that one. Returns the bytes
    /// consumed; the rest is an incomplete header or control frame. After
    /// a `Fail`, nothing more is parsed.
    pub fn feed(&mut self, input: &mut [u8], on: &mut dyn FnMut(Frame) -> bool) -> usize {
        let mut pos = 0;
        while !self.failed {
            if let Some(mut f) = self.frame {
                // The payload of a data frame arrives piece by piece.
                let n = (f.left.min((input.len() - pos) as u64)) as usize;
                if n == 0 && f.left > 0 {
                    break;
                }
                let piece = &mut input[pos..pos + n];
                if f.masked {
                    f.phase = unmask(piece, f.mask, f.phase);
                }
                self.msg.extend_from_slice(piece);
                pos += n;
                f.left -= n as u64;
                if let Some(fail) = self.check_text(f.fin && f.left == 0) {
                    return self.fail(pos, fail, on);
                }
                if f.left > 0 {
                    self.frame = Some(f);
                    break;
                }
                self.frame = None;
                if f.fin {
                    let msg = std::mem::take(&mut self.msg);
                    let go = on(Frame::Message {
                        binary: self.msg_op == OP_BINARY,
                        compressed: self.msg_compressed,
                        data: &msg,
                    });
                    self.end_message(msg);
                    if !go {
                        break;
                    }
                }
                continue;
            }
            let buf = &input[pos..];
            let Some(h) = parse_header(buf) else { break };
            let h = match h {
                Ok(h) => h,
                Err(fail) => return self.fail(pos, fail, on),
            };
            if let Some(fail) = self.check_header(&h) {
                return self.fail(pos, fail, on);
            }
            if h.opcode >= OP_CLOSE {
                // Control frames are at most 125 bytes: wait for the whole one.
                let end = h.hlen + h.len as usize;
                if buf.len() < end {
                    break;
                }
                let payload = &mut input[pos + h.hlen..pos + end];
                if h.masked {
                    unmask(payload, h.mask, 0);
                }
                pos += end;
                let frame = match h.opcode {
                    OP_PING => Frame::Ping(payload),
                    OP_PONG => Frame::Pong(payload),
                    _ => match parse_close(payload) {
                        Ok((code, reason)) => Frame::Close(code, reason),
                        Err(fail) => return self.fail(pos, fail, on),
                    },
                };
                let close = matches!(frame, Frame::Close(..));
                if !on(frame) || close {
                    if close {
                        self.failed = true; // nothing after a close frame counts
                    }
                    break;
                }
                continue;
            }
            // A data frame.
            if h.opcode != OP_CONT {
                self.msg_op = h.opcode;
                self.msg_compressed = h.rsv1;
                self.checked = 0;
            }
            let whole = buf.len() - h.hlen >= h.len as usize;
            if h.fin && h.opcode != OP_CONT && whole {
                // The common case: one frame, all here. Unmask in place.
                let payload = &mut input[pos + h.hlen..pos + h.hlen + h.len as usize];
                if h.masked {
                    unmask(payload, h.mask, 0);
                }
                pos += h.hlen + h.len as usize;
                if h.opcode == OP_TEXT && !h.rsv1 && std::str::from_utf8(payload).is_err() {
                    return self.fail(pos, (CLOSE_INVALID_DATA, "invalid UTF-8 in a text message"), on);
                }
                let go = on(Frame::Message {
                    binary: h.opcode == OP_BINARY,
                    compressed: h.rsv1,
                    data: payload,
                });
                self.msg_op = 0;
                if !go {
                    break;
                }
                continue;
            }
            pos += h.hlen;
            // Room for what is here now, never for what the header only claims.
            self.msg.reserve((h.len as usize).min(input.len() - pos));
            self.frame = Some(Partial {
                fin: h.fin,
                left: h.len,
                mask: h.mask,
                masked: h.masked,
                phase: 0,
            });
            if h.len == 0 {
                continue; // an empty frame: completes at once above
            }
        }
        pos
    }

    fn fail(
        &mut self,
        pos: usize,
        (code, why): (u16, &'static str),
        on: &mut dyn FnMut(Frame) -> bool,
    ) -> usize {
        self.failed = true;
        self.frame = None;
        self.msg = Vec::new();
        on(Frame::Fail(code, why));
        pos
    }

    /// The message buffer is free again (keeps a small allocation).
    fn end_message(&mut self, mut msg: Vec<u8>) {
        self.msg_op = 0;
        self.checked = 0;
        msg.clear();
        if msg.capacity() <= 64 * 1024 {
            self.msg = msg;
        }
    }

    /// Checks the UTF-8 of a text message so far; `complete` at its end.
    fn check_text(&mut self, complete: bool) -> Option<(u16, &'static str)> {
        if self.msg_op != OP_TEXT || self.msg_compressed {
            return None;
        }
        const BAD: (u16, &str) = (CLOSE_INVALID_DATA, "invalid UTF-8 in a text message");
        match std::str::from_utf8(&self.msg[self.checked..]) {
            Ok(_) => self.checked = self.msg.len(),
            Err(e) if e.error_len().is_some() => return Some(BAD),
            Err(e) => {
                self.checked += e.valid_up_to();
                if complete {
                    return Some(BAD);
                }
            }
        }
        None
    }

    fn check_header(&self, h: &Header) -> Option<(u16, &'static str)> {
        if h.rsv23 {
            return Some((CLOSE_PROTOCOL, "reserved bits set"));
        }
        if h.masked != self.expect_masked {
            return Some((
                CLOSE_PROTOCOL,
                if self.expect_masked {
                    "client frame not masked"
                } else {
                    "server frame masked"
                },
            ));
        }
        match h.opcode {
            OP_CLOSE | OP_PING | OP_PONG => {
                if !h.fin {
                    return Some((CLOSE_PROTOCOL, "fragmented control frame"));
                }
                if h.len > 125 {
                    return Some((CLOSE_PROTOCOL, "control frame over 125 bytes"));
                }
                if h.rsv1 {
                    return Some((CLOSE_PROTOCOL, "reserved bits set"));
                }
                return None;
            }
            OP_CONT => {
                if self.msg_op == 0 {
                    return Some((CLOSE_PROTOCOL, "continuation frame without a message"));
                }
                if h.rsv1 {
                    return Some((CLOSE_PROTOCOL, "RSV1 on a continuation frame"));
                }
            }
            OP_TEXT | OP_BINARY => {
                if self.msg_op != 0 {
                    return Some((CLOSE_PROTOCOL, "new message inside a fragmented one"));
                }
                if h.rsv1 && !self.deflate {
                    return Some((CLOSE_PROTOCOL, "reserved bits set"));
                }
            }
            _ => return Some((CLOSE_PROTOCOL, "unknown opcode")),
        }
        let so_far = if h.opcode == OP_CONT {
            self.msg.len() as u64
        } else {
            0
        };
        if so_far.saturating_add(h.len) > self.max_message as u64 {
            return Some((CLOSE_TOO_BIG, "message too big"));
        }
        None
    }
}

/// A frame header.
#[derive(Debug)]
struct Header {
    fin: bool,
    rsv1: bool,
    rsv23: bool,
    opcode: u8,
    masked: bool,
    mask: [u8; 4],
    len: u64,
    hlen: usize,
}

/// Parses a frame header: `None` when incomplete.
fn parse_header(b: &[u8]) -> Option<Result<Header, (u16, &'static str)>> {
    if b.len() < 2 {
        return None;
    }
    let masked = b[1] & 0x80 != 0;
    let (len, mut hlen) = match b[1] & 0x7f {
        126 => {
            if b.len() < 4 {
                return None;
            }
            (u16::from_be_bytes([b[2], b[3]]) as u64, 4)
        }
        127 => {
            if b.len() < 10 {
                return None;
            }
            let l = u64::from_be_bytes(b[2..10].try_into().unwrap());
            if l >> 63 != 0 {
                return Some(Err((CLOSE_PROTOCOL, "payload length with the top bit set")));
            }
            (l, 10)
        }
        n => (n as u64, 2),
    };
    let mut mask = [0u8; 4];
    if masked {
        if b.len() < hlen + 4 {
            return None;
        }
        mask.copy_from_slice(&b[hlen..hlen + 4]);
        hlen += 4;
    }
    Some(Ok(Header {
        fin: b[0] & 0x80 != 0,
        rsv1: b[0] & 0x40 != 0,
        rsv23: b[0] & 0x30 != 0,
        opcode: b[0] & 0x0f,
        masked,
        mask,
        len,
        hlen,
    }))
}

/// The code and reason of a close payload.
fn parse_close(p: &[u8]) -> Result<(u16, &[u8]), (u16, &'static str)> {
    match p.len() {
        0 => Ok((CLOSE_NO_STATUS, &[])),
        1 => Err((CLOSE_PROTOCOL, "close payload of 1 byte")),
        _ => {
            let code = u16::from_be_bytes([p[0], p[1]]);
            if !close_code_valid(code) {
                return Err((CLOSE_PROTOCOL, "invalid close code"));
            }
            let reason = &p[2..];
            if std::str::from_utf8(reason).is_err() {
                return Err((CLOSE_INVALID_DATA, "invalid UTF-8 in the close reason"));
            }
            Ok((code, reason))
        }
    }
}

/// XORs `data` with the mask starting at mask position `phase`; returns
/// the phase after it. Eight bytes at a time.
pub fn unmask(data: &mut [u8], mask: [u8; 4], phase: usize) -> usize {
    let mut m = [0u8; 8];
    for (i, b) in m.iter_mut().enumerate() {
        *b = mask[(phase + i) & 3];
    }
    let m64 = u64::from_ne_bytes(m);
    let mut chunks = data.chunks_exact_mut(8);
    for c in &mut chunks {
        let v = u64::from_ne_bytes((&*c).try_into().unwrap()) ^ m64;
        c.copy_from_slice(&v.to_ne_bytes());
    }
    let rest = chunks.into_remainder();
    for (i, b) in rest.iter_mut().enumerate() {
        *b ^= m[i];
    }
    (phase + data.len()) & 3
}

/// Writes a frame header into `out`; returns its length (2 to 14 bytes).
pub fn header(
    out: &mut [u8; 14],
    fin: bool,
    rsv1: bool,
    opcode: u8,
    len: usize,
    mask: Option<[u8; 4]>,
) -> usize {
    out[0] = (fin as u8) << 7 | (rsv1 as u8) << 6 | opcode;
    let m = if mask.is_some() { 0x80 } else { 0 };
    let mut n = if len < 126 {
        out[1] = m | len as u8;
        2
    } else if len <= 0xffff {
        out[1] = m | 126;
        out[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        4
    } else {
        out[1] = m | 127;
        out[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    };
    if let Some(k) = mask {
        out[n..n + 4].copy_from_slice(&k);
        n += 4;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame as a client sends it (masked with a fixed key).
    fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let key = [1, 2, 3, 4];
        let mut h = [0u8; 14];
        let n = header(&mut h, fin, false, opcode, payload.len(), Some(key));
        let mut v = h[..n].to_vec();
        let mut p = payload.to_vec();
        unmask(&mut p, key, 0);
        v.extend_from_slice(&p);
        v
    }

    #[derive(Debug, PartialEq)]
    enum Got {
        Msg(bool, Vec<u8>),
        Ping(Vec<u8>),
        Pong(Vec<u8>),
        Close(u16, Vec<u8>),
        Fail(u16),
    }

    /// Feeds `input` in pieces of `step` bytes, as a receive buffer would
    /// hold them; returns what was parsed.
    fn parse_in_steps(p: &mut Parser, input: &[u8], step: usize) -> Vec<Got> {
        let mut got = Vec::new();
        let mut buf: Vec<u8> = Vec::new();
        for piece in input.chunks(step.max(1)) {
            buf.extend_from_slice(piece);
            let n = p.feed(&mut buf, &mut |f| {
                got.push(match f {
                    Frame::Message { binary, data, .. } => Got::Msg(binary, data.to_vec()),
                    Frame::Ping(d) => Got::Ping(d.to_vec()),
                    Frame::Pong(d) => Got::Pong(d.to_vec()),
                    Frame::Close(c, r) => Got::Close(c, r.to_vec()),
                    Frame::Fail(c, _) => Got::Fail(c),
                });
                true
            });
            buf.drain(..n);
        }
        got
    }

    fn parse(input: &[u8]) -> Vec<Got> {
        let whole = parse_in_steps(&mut Parser::new(true, 1 << 20), input, input.len());
        // Byte by byte gives the same result.
        let bytewise = parse_in_steps(&mut Parser::new(true, 1 << 20), input, 1);
        assert_eq!(whole, bytewise);
        whole
    }

    #[test]
    fn a_masked_text_frame_is_unmasked() {
        assert_eq!(
            parse(&frame(true, OP_TEXT, b"hello")),
            [Got::Msg(false, b"hello".to_vec())]
        );
    }

    #[test]
    fn fragments_are_reassembled_with_control_frames_between() {
        let mut v = frame(false, OP_BINARY, b"ab");
        v.extend(frame(true, OP_PING, b"p"));
        v.extend(frame(false, OP_CONT, b"cd"));
        v.extend(frame(true, OP_CONT, b""));
        assert_eq!(
            parse(&v),
            [Got::Ping(b"p".to_vec()), Got::Msg(true, b"abcd".to_vec())]
        );
    }

    #[test]
    fn lengths_of_16_and_64_bits() {
        for n in [125, 126, 65535, 65536, 70000] {
            let data = vec![7u8; n];
            assert_eq!(parse(&frame(true, OP_BINARY, &data)), [Got::Msg(true, data)]);
        }
    }

    #[test]
    fn protocol_errors_fail_with_1002() {
        let mut rsv = frame(true, OP_TEXT, b"x");
        rsv[0] |= 0x20;
        let unmasked = [0x81, 0x01, b'x'];
        let mut long_ping = frame(true, OP_PING, &[0; 126]);
        long_ping.truncate(20);
        let cases: Vec<Vec<u8>> = vec![
            rsv,
            unmasked.to_vec(),
            frame(false, OP_PING, b""),
            long_ping,
            frame(true, OP_CONT, b"x"),
            frame(true, 3, b""),
            frame(true, 11, b""),
            [frame(false, OP_TEXT, b"a"), frame(true, OP_TEXT, b"b")].concat(),
            frame(true, OP_CLOSE, &[3]),
            frame(true, OP_CLOSE, &999u16.to_be_bytes()),
            frame(true, OP_CLOSE, &1005u16.to_be_bytes()),
            frame(true, OP_CLOSE, &5000u16.to_be_bytes()),
        ];
        for c in cases {
            assert_eq!(parse(&c), [Got::Fail(CLOSE_PROTOCOL)], "{c:?}");
        }
    }

    #[test]
    fn a_server_frame_must_not_be_masked() {
        let mut p = Parser::new(false, 1024);
        assert_eq!(
            parse_in_steps(&mut p, &frame(true, OP_TEXT, b"x"), 64),
            [Got::Fail(CLOSE_PROTOCOL)]
        );
        let mut p = Parser::new(false, 1024);
        assert_eq!(
            parse_in_steps(&mut p, &[0x81, 1, b'y'], 64),
            [Got::Msg(false, b"y".to_vec())]
        );
    }

    #[test]
    fn invalid_utf8_fails_with_1007_as_soon_as_it_arrives() {
        assert_eq!(
            parse(&frame(true, OP_TEXT, &[0xce, 0xba, 0xff])),
            [Got::Fail(CLOSE_INVALID_DATA)]
        );
        // A code point split across fragments is fine...
        let ok = [frame(false, OP_TEXT, &[0xce]), frame(true, OP_CONT, &[0xba])].concat();
        assert_eq!(parse(&ok), [Got::Msg(false, "κ".as_bytes().to_vec())]);
        // ...but a bad byte in the first fragment fails before the rest comes.
        let mut p = Parser::new(true, 1 << 20);
        assert_eq!(
            parse_in_steps(&mut p, &frame(false, OP_TEXT, &[b'a', 0xc0]), 64),
            [Got::Fail(1007)]
        );
        // A message ending inside a code point fails at its end.
        assert_eq!(
            parse(&frame(true, OP_TEXT, &[0xce])),
            [Got::Fail(CLOSE_INVALID_DATA)]
        );
        assert_eq!(
            parse(&frame(true, OP_CLOSE, &[0x03, 0xe8, 0xff])),
            [Got::Fail(CLOSE_INVALID_DATA)]
        );
    }

    #[test]
    fn close_frames_carry_code_and_reason() {
        let mut v = 1000u16.to_be_bytes().to_vec();
        v.extend_from_slice(b"bye");
        assert_eq!(
            parse(&frame(true, OP_CLOSE, &v)),
            [Got::Close(1000, b"bye".to_vec())]
        );
        assert_eq!(parse(&frame(true, OP_CLOSE, b"")), [Got::Close(1005, vec![])]);
        // Nothing after a close frame is parsed.
        let two = [frame(true, OP_CLOSE, b""), frame(true, OP_TEXT, b"late")].concat();
        assert_eq!(parse(&two), [Got::Close(1005, vec![])]);
    }

    #[test]
    fn a_claimed_huge_frame_fails_with_1009_and_allocates_nothing() {
        let mut p = Parser::new(true, 1 << 20);
        let mut h = [0u8; 14];
        let n = header(&mut h, true, false, OP_BINARY, 1 << 30, Some([0; 4]));
        assert_eq!(parse_in_steps(&mut p, &h[..n], 64), [Got::Fail(CLOSE_TOO_BIG)]);
        assert_eq!(p.buffered(), 0);
        // Fragments adding up over the limit fail at the header that crosses it.
        let mut p = Parser::new(true, 10);
        let v = [frame(false, OP_BINARY, &[0; 6]), frame(true, OP_CONT, &[0; 5])].concat();
        assert_eq!(parse_in_steps(&mut p, &v, 64), [Got::Fail(CLOSE_TOO_BIG)]);
    }

    #[test]
    fn unmask_handles_any_phase_and_length() {
        let key = [0x11, 0x22, 0x33, 0x44];
        let data: Vec<u8> = (0..37).collect();
        let mut once = data.clone();
        unmask(&mut once, key, 0);
        let mut pieces = data.clone();
        let mut phase = 0;
        for c in pieces.chunks_mut(5) {
            phase = unmask(c, key, phase);
        }
        assert_eq!(once, pieces);
        assert_eq!(once[5], 5 ^ 0x22);
    }
}
