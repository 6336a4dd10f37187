//! permessage-deflate (RFC 7692): negotiation, and compression state with
//! bounded memory.
//!
//! Memory per socket is what the extension has a history of wasting, so:
//! - our side never keeps a compression context across messages: the
//!   server always answers with `server_no_context_takeover` (RFC 7692
//!   7.1.1.1 lets it add that unasked), the client never relies on one.
//!   One compressor per manager then serves every socket ([`Shared`]);
//! - a window limit the peer asks of us (`server_max_window_bits=N`, or
//!   `client_max_window_bits=N` from a server) is met without a smaller
//!   window: without context takeover a back-reference never reaches
//!   further than the message's own start, so messages up to 2^N bytes are
//!   compressed and longer ones sent uncompressed (per-message compression
//!   is optional);
//! - the peer's context: a socket keeps an inflater (≈ 43 KB, allocated at
//!   its first compressed message) only when the peer uses context takeover;
//!   with `*_no_context_takeover` the manager's shared inflater is reset
//!   per message;
//! - inflated output is limited to the socket's message limit: a
//!   decompression bomb fails with 1009 after at most that many bytes.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};

use super::frame::{CLOSE_INVALID_DATA, CLOSE_TOO_BIG};

/// What a client offers.
pub const CLIENT_OFFER: &str = "permessage-deflate";

/// The agreed parameters, from our side's point of view.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Negotiated {
    /// The peer resets its context per message (we may share our inflater).
    pub peer_no_context: bool,
    /// Largest window our compressor may use (2^bits bytes).
    pub our_max_bits: u8,
    /// For the server's response: the client offered `client_no_context_takeover`.
    client_no_context: bool,
}

impl Negotiated {
    /// The server's `sec-websocket-extensions` answer.
    pub fn response(&self) -> String {
        let mut r = String::from("permessage-deflate; server_no_context_takeover");
        if self.client_no_context {
            r.push_str("; client_no_context_takeover");
        }
        if self.our_max_bits < 15 {
            r.push_str(&format!("; server_max_window_bits={}", self.our_max_bits));
        }
        r
    }
}

fn bits(v: Option<&str>) -> Option<u8> {
    let v = v?.trim().trim_matches('"');
    let n: u8 = v.parse().ok()?;
    (8..=15).contains(&n).then_some(n)
}

/// Parses `name; a; b=1` into (name, params); None on a duplicate param.
/// An extension's parameters: (name, value).
type Params<'a> = Vec<(&'a str, Option<&'a str>)>;

fn split_offer(offer: &str) -> Option<(&str, Params<'_>)> {
    let mut parts = offer.split(';').map(str::trim);
    let name = parts.next()?;
    let mut params: Params = Vec::new();
    for p in parts {
        let (k, v) = match p.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim())),
            None => (p, None),
        };
        if params.iter().any(|(n, _)| *n == k) {
            return None;
        }
        params.push((k, v));
    }
    Some((name, params))
}

/// The server's choice among a client's offers (the first acceptable one).
/// `force_client_reset`: answer with `client_no_context_takeover` even if
/// the client did not offer it (RFC 7692 7.1.1.2 allows it), so the
/// client's messages can be inflated by the manager's shared inflater.
pub fn negotiate_server(header: &[u8], force_client_reset: bool) -> Option<Negotiated> {
    let header = std::str::from_utf8(header).ok()?;
    'offers: for offer in header.split(',') {
        let Some((name, params)) = split_offer(offer) else {
            continue;
        };
        if !name.eq_ignore_ascii_case("permessage-deflate") {
            continue;
        }
        let mut n = Negotiated {
            peer_no_context: false,
            our_max_bits: 15,
            client_no_context: false,
        };
        for (k, v) in params {
            match k {
                "server_no_context_takeover" if v.is_none() => {}
                "client_no_context_takeover" if v.is_none() => {
                    n.client_no_context = true;
                    n.peer_no_context = true;
                }
                "server_max_window_bits" => match bits(v) {
                    Some(b) => n.our_max_bits = b,
                    None => continue 'offers,
                },
                "client_max_window_bits" => {
                    if v.is_some() && bits(v).is_none() {
                        continue 'offers;
                    }
                }
                _ => continue 'offers,
            }
        }
        if force_client_reset {
            n.client_no_context = true;
            n.peer_no_context = true;
        }
        return Some(n);
    }
    None
}

/// The client's reading of a server's answer (None: unacceptable).
pub fn accept_client(header: &str) -> Option<Negotiated> {
    let mut offers = header.split(',');
    let (name, params) = split_offer(offers.next()?)?;
    if offers.next().is_some() || !name.eq_ignore_ascii_case("permessage-deflate") {
        return None;
    }
    let mut n = Negotiated {
        peer_no_context: false,
        our_max_bits: 15,
        client_no_context: false,
    };
    for (k, v) in params {
        match k {
            "server_no_context_takeover" if v.is_none() => n.peer_no_context = true,
            "client_no_context_takeover" if v.is_none() => {}
            "server_max_window_bits" => {
                bits(v)?;
            }
            // We did not offer client_max_window_bits: a server may not send it.
            _ => return None,
        }
    }
    Some(n)
}

/// Compression state shared by a manager's sockets.
#[derive(Default)]
pub struct Shared {
    comp: Option<Compress>,
    inflater: Option<Decompress>,
}

/// Compresses one message without context (raw deflate, sync flush, the
/// final `00 00 ff ff` removed).
pub fn compress_shared(shared: &mut Shared, data: &[u8]) -> Result<Vec<u8>, String> {
    let c = shared
        .comp
        .get_or_insert_with(|| Compress::new(Compression::fast(), false));
    c.reset();
    // Room for the worst case (stored blocks) up front. miniz may return
    // with some room left and output still pending, so "the buffer is not
    // full" does not mean done: a sync flush is complete once all input is
    // in and the output ends with the empty stored block (00 00 ff ff).
    // Autobahn 12.2.9 caught a 65,536-byte message cut to 61,548.
    let mut out = Vec::with_capacity(data.len() + data.len() / 16 + 128);
    let start_in = c.total_in();
    loop {
        let done = (c.total_in() - start_in) as usize;
        if out.capacity() - out.len() < 1024 {
            out.reserve(out.capacity().max(1024));
        }
        c.compress_vec(&data[done..], &mut out, FlushCompress::Sync)
            .map_err(|e| format!("deflate: {e}"))?;
        let done = (c.total_in() - start_in) as usize;
        if done == data.len() && out.ends_with(&[0, 0, 0xff, 0xff]) {
            break;
        }
    }
    if out.ends_with(&[0, 0, 0xff, 0xff]) {
        out.truncate(out.len() - 4);
    }
    Ok(out)
}

/// One socket's permessage-deflate state.
pub struct Deflate {
    n: Negotiated,
    /// Inflater of a peer that keeps its context (made on first use).
    own: Option<Decompress>,
    max: usize,
    out: Vec<u8>,
}

impl Deflate {
    pub fn new(n: &Negotiated, _client: bool, max: usize) -> Deflate {
        Deflate {
            n: *n,
            own: None,
            max,
            out: Vec::new(),
        }
    }

    /// Whether a message framed for everyone may be sent compressed here.
    pub fn shared_ok(&self) -> bool {
        self.n.our_max_bits == 15
    }

    /// Compresses a message for this socket; messages over the window the
    /// peer allows go uncompressed (the caller then sends `data` itself).
    pub fn compress(&mut self, shared: &mut Shared, data: &[u8]) -> Result<Option<Vec<u8>>, String> {
        if self.n.our_max_bits < 15 && data.len() > 1 << self.n.our_max_bits {
            return Ok(None);
        }
        compress_shared(shared, data).map(Some)
    }

    /// Inflates a message; the output is valid until the next call.
    pub fn inflate(&mut self, shared: &mut Shared, data: &[u8]) -> Result<&[u8], (u16, &'static str)> {
        let d = if self.n.peer_no_context {
            let d = shared.inflater.get_or_insert_with(|| Decompress::new(false));
            d.reset(false);
            d
        } else {
            self.own.get_or_insert_with(|| Decompress::new(false))
        };
        self.out.clear();
        if self.out.capacity() > 256 * 1024 {
            self.out = Vec::new();
        }
        for input in [data, &[0, 0, 0xff, 0xff][..]] {
            let start = d.total_in();
            loop {
                if self.out.capacity() - self.out.len() < 1024 {
                    // Grow by doubling, never past the limit (+1 to see it crossed).
                    let want = (self.out.capacity().max(4096)).min(self.max + 1 - self.out.len());
                    self.out.reserve_exact(want.max(1));
                }
                let before = (d.total_in(), self.out.len());
                d.decompress_vec(
                    &input[(d.total_in() - start) as usize..],
                    &mut self.out,
                    FlushDecompress::Sync,
                )
                .map_err(|_| (CLOSE_INVALID_DATA, "invalid deflate data"))?;
                if self.out.len() > self.max {
                    return Err((CLOSE_TOO_BIG, "message too big"));
                }
                // Done once a call with room to spare makes no progress.
                if (d.total_in(), self.out.len()) == before {
                    if (d.total_in() - start) as usize == input.len() {
                        break;
                    }
                    return Err((CLOSE_INVALID_DATA, "invalid deflate data"));
                }
            }
        }
        if self.out.len() > self.max {
            return Err((CLOSE_TOO_BIG, "message too big"));
        }
        Ok(&self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offers_are_negotiated_or_declined() {
        let n = negotiate_server(b"permessage-deflate; client_max_window_bits", false).unwrap();
        assert_eq!(n.response(), "permessage-deflate; server_no_context_takeover");
        assert!(!n.peer_no_context);
        let n = negotiate_server(
            b"permessage-deflate; client_no_context_takeover; server_max_window_bits=10",
            false,
        )
        .unwrap();
        assert_eq!(
            n.response(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10"
        );
        assert!(n.peer_no_context);
        assert_eq!(
            negotiate_server(b"permessage-deflate; server_max_window_bits=7", false),
            None
        );
        assert_eq!(negotiate_server(b"permessage-deflate; x=1", false), None);
        assert_eq!(negotiate_server(b"x-webkit-deflate-frame", false), None);
        // The first acceptable offer wins.
        let n = negotiate_server(
            b"permessage-deflate; bogus, permessage-deflate; client_no_context_takeover",
            false,
        );
        assert!(n.unwrap().peer_no_context);
        let forced = negotiate_server(b"permessage-deflate", true).unwrap();
        assert!(forced.peer_no_context);
        assert!(forced.response().ends_with("; client_no_context_takeover"));
        assert!(
            accept_client("permessage-deflate; server_no_context_takeover")
                .unwrap()
                .peer_no_context
        );
        assert_eq!(
            accept_client("permessage-deflate; client_max_window_bits=10"),
            None
        );
    }

    #[test]
    fn messages_round_trip_with_and_without_context() {
        let mut shared = Shared::default();
        let n = negotiate_server(b"permessage-deflate", false).unwrap();
        let mut d = Deflate::new(&n, false, 1 << 20);
        for msg in [&b"hello hello hello hello"[..], b"", &[7u8; 100_000]] {
            let z = compress_shared(&mut shared, msg).unwrap();
            assert_eq!(d.inflate(&mut shared, &z).unwrap(), msg);
        }
        // RFC 7692 7.2.3.1: "Hello" compressed.
        let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        assert_eq!(d.inflate(&mut shared, &hello).unwrap(), b"Hello");
        // The same again, with context takeover (the second refers to the first).
        let again = [0xf2, 0x00, 0x11, 0x00, 0x00];
        assert_eq!(d.inflate(&mut shared, &again).unwrap(), b"Hello");
    }

    #[test]
    fn many_large_messages_with_the_peers_context_inflate_whole() {
        // As a browser or Autobahn sends them: one compressor kept across messages.
        let mut peer = Compress::new(Compression::default(), false);
        let mut shared = Shared::default();
        let n = negotiate_server(b"permessage-deflate", false).unwrap();
        let mut d = Deflate::new(&n, false, 1 << 20);
        let mut x: u32 = 1;
        for round in 0..50 {
            let msg: Vec<u8> = (0..65536)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    b"abcdefgh ijklmnop"[(x >> 16) as usize % 17]
                })
                .collect();
            let mut z = Vec::with_capacity(70_000);
            peer.compress_vec(&msg, &mut z, FlushCompress::Sync).unwrap();
            while z.len() == z.capacity() {
                z.reserve(z.capacity());
                peer.compress_vec(&[], &mut z, FlushCompress::Sync).unwrap();
            }
            assert!(z.ends_with(&[0, 0, 0xff, 0xff]));
            z.truncate(z.len() - 4);
            assert_eq!(d.inflate(&mut shared, &z).unwrap(), &msg[..], "round {round}");
        }
    }

    #[test]
    fn a_payload_that_cut_miniz_output_short_compresses_whole() {
        // Like Autobahn 12.2.9's payload (bitmap bytes: runs of equal bytes).
        let mut shared = Shared::default();
        let msg: Vec<u8> = (0..65536u32)
            .map(|i| ((i / 3) % 256) as u8 ^ ((i / 4099) as u8))
            .collect();
        for _ in 0..3 {
            let z = compress_shared(&mut shared, &msg).unwrap();
            let mut d = Decompress::new(false);
            let mut out = Vec::with_capacity(msg.len() + 1024);
            d.decompress_vec(
                &[&z[..], &[0, 0, 0xff, 0xff]].concat(),
                &mut out,
                FlushDecompress::Sync,
            )
            .unwrap();
            assert_eq!(out, msg);
        }
    }

    #[test]
    fn our_compression_of_large_messages_inflates_whole() {
        let mut shared = Shared::default();
        let mut x: u32 = 7;
        for size in [65536usize, 131072, 262144] {
            for alphabet in [&b"abcdefgh ijklmnop"[..], &(0..=255).collect::<Vec<u8>>()[..]] {
                let msg: Vec<u8> = (0..size)
                    .map(|_| {
                        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                        alphabet[(x >> 16) as usize % alphabet.len()]
                    })
                    .collect();
                let z = compress_shared(&mut shared, &msg).unwrap();
                let mut d = Decompress::new(false);
                let mut out = Vec::with_capacity(size + 1024);
                let mut input = z.clone();
                input.extend_from_slice(&[0, 0, 0xff, 0xff]);
                d.decompress_vec(&input, &mut out, FlushDecompress::Sync).unwrap();
                assert_eq!(out.len(), size, "size {size}, alphabet {}", alphabet.len());
                assert_eq!(out, msg);
            }
        }
    }

    #[test]
    fn a_decompression_bomb_stops_at_the_limit() {
        let mut shared = Shared::default();
        let bomb = compress_shared(&mut shared, &vec![0u8; 10 << 20]).unwrap();
        assert!(bomb.len() < 100_000, "{}", bomb.len());
        let n = negotiate_server(b"permessage-deflate", false).unwrap();
        let mut d = Deflate::new(&n, false, 1 << 20);
        assert_eq!(d.inflate(&mut shared, &bomb).unwrap_err().0, CLOSE_TOO_BIG);
        assert!(d.out.capacity() <= (1 << 20) + 8192, "{}", d.out.capacity());
        assert_eq!(
            d.inflate(&mut shared, &[0xff, 0xff, 0xff]).unwrap_err().0,
            CLOSE_INVALID_DATA
        );
    }
}
