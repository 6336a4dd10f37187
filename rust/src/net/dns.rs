//! A small DNS client (RFC 1035) over a UDP socket of the loop: A and AAAA
//! queries, answers followed through CNAME chains, errors by RCODE.
//!
//! Why not Mongoose's resolver: it resolves only the host of an
//! `mg_connect` URL, keeps the first address of a reply, reports every
//! failure as one string (no NXDOMAIN vs SERVFAIL), asks 8.8.8.8 unless told
//! otherwise (it does not read /etc/resolv.conf), numbers its queries
//! sequentially and does not check where a reply came from.
//!
//! A reply counts only if it comes from the server's address and port,
//! carries one of our query ids (random), has QR set and repeats our
//! question; anything else is ignored (the wait goes on, bounded by the
//! caller's timeout). A reply that passes those checks but cannot be
//! parsed is a FORMAT error ([`RCODE_MALFORMED`]).
//!
//! DNS record (kind [`KIND_DNS`]), one per answered query: slot u32 @16,
//! query type u16 @20, RCODE u8 @22 (or [`RCODE_MALFORMED`]), address count
//! u8 @23, smallest TTL u32 @24, the addresses from @28, 16 bytes each
//! (IPv4 in the first 4).

use super::udp::Peer;
use crate::core::event::{EventBuf, HEADER_LEN};

/// Record kind of a DNS answer (mirrored in `src/net/udp_abi.ts`).
pub const KIND_DNS: u8 = 11;
/// Query type A (IPv4 address).
pub const TYPE_A: u16 = 1;
/// Query type AAAA (IPv6 address).
pub const TYPE_AAAA: u16 = 28;
const TYPE_CNAME: u16 = 5;
const CLASS_IN: u16 = 1;
/// The "RCODE" of a reply that matched our query but could not be parsed.
pub const RCODE_MALFORMED: u8 = 255;
/// Where a DNS record's addresses start.
pub const DNS_ADDRS: usize = HEADER_LEN + 12;
/// Largest reply read (larger ones are ignored: over UDP without EDNS a
/// server sends at most 512 bytes).
pub const MAX_REPLY: usize = 4096;
/// Most addresses carried in one record.
const MAX_ADDRS: usize = 64;
/// Most CNAME hops followed.
const MAX_CNAME_HOPS: usize = 16;

/// A DNS client socket's state: the server and the queries not answered.
pub struct DnsQuery {
    pub server: Peer,
    /// The name in wire format (length-prefixed labels, a final 0).
    pub qname: Vec<u8>,
    /// (query id, query type) of each query still unanswered.
    pub pending: Vec<(u16, u16)>,
}

impl DnsQuery {
    /// A datagram arrived on the socket: writes a DNS record if it answers
    /// one of the pending queries.
    pub fn on_datagram(&mut self, ev: &mut EventBuf, id: u64, slot: u32, from: &Peer, b: &[u8]) {
        if *from != self.server || b.len() < 12 {
            return;
        }
        let qid = u16::from_be_bytes([b[0], b[1]]);
        let Some(i) = self.pending.iter().position(|&(q, _)| q == qid) else {
            return;
        };
        let qtype = self.pending[i].1;
        let answer = match parse_reply(b, qid, &self.qname, qtype) {
            Parsed::Ignore => return,
            Parsed::Malformed => Answer {
                rcode: RCODE_MALFORMED,
                ttl: 0,
                addrs: Vec::new(),
            },
            Parsed::Answer(a) => a,
        };
        self.pending.swap_remove(i);
        dns_record(ev, id, slot, qtype, &answer);
    }
}

/// A parsed reply.
#[derive(Debug, PartialEq, Eq)]
pub struct Answer {
    pub rcode: u8,
    pub ttl: u32,
    /// Addresses of the query's type (16 bytes each, IPv4 in the first 4).
    pub addrs: Vec<[u8; 16]>,
}

/// What a datagram turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// Not a reply to this query (wrong id, not a response, another question).
    Ignore,
    /// A reply to this query that cannot be parsed.
    Malformed,
    Answer(Answer),
}

/// Writes a DNS record (see the module docs).
pub fn dns_record(ev: &mut EventBuf, id: u64, slot: u32, qtype: u16, a: &Answer) {
    let n = a.addrs.len().min(MAX_ADDRS);
    ev.header(KIND_DNS, 0, 0, DNS_ADDRS + 16 * n, id);
    ev.u32(slot);
    ev.put(&qtype.to_le_bytes());
    ev.put(&[a.rcode, n as u8]);
    ev.u32(a.ttl);
    for ip in &a.addrs[..n] {
        ev.put(ip);
    }
}

/// A random 16-bit query id.
pub fn random_id() -> u16 {
    let mut b = [0u8; 2];
    let n = unsafe { libc::getrandom(b.as_mut_ptr() as *mut libc::c_void, 2, 0) };
    if n != 2 {
        // No entropy source: the clock's low bits still vary per query.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        return (t ^ (t >> 16)) as u16;
    }
    u16::from_ne_bytes(b)
}

/// Encodes a host name as DNS labels. A final dot is allowed.
pub fn encode_name(name: &str) -> Result<Vec<u8>, String> {
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    if trimmed.is_empty() {
        return Err("the name to resolve is empty".into());
    }
    let mut out = Vec::with_capacity(trimmed.len() + 2);
    for label in trimmed.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!(
                "{name:?} is not a host name: a label is empty or over 63 bytes"
            ));
        }
        if !label
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        {
            return Err(format!(
                "{name:?} is not a host name (letters, digits, '-' and '_' only; IDNs in punycode)"
            ));
        }
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    if out.len() > 255 {
        return Err(format!("{name:?} is longer than 255 bytes"));
    }
    Ok(out)
}

/// A query: header (random id, RD set, one question), the question.
pub fn query_packet(id: u16, qname: &[u8], qtype: u16) -> Vec<u8> {
    let mut p = Vec::with_capacity(12 + qname.len() + 4);
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&0x0100u16.to_be_bytes()); // RD
    p.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    p.extend_from_slice(qname);
    p.extend_from_slice(&qtype.to_be_bytes());
    p.extend_from_slice(&CLASS_IN.to_be_bytes());
    p
}

fn be16(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(off)?, *b.get(off + 1)?]))
}

fn be32(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

/// Reads a (possibly compressed) name at `off` as lower-case wire format.
/// Returns it and the offset after the name where it started.
fn read_name(b: &[u8], mut off: usize) -> Option<(Vec<u8>, usize)> {
    let mut name = Vec::new();
    let mut end = None;
    let mut jumps = 0;
    loop {
        let len = *b.get(off)? as usize;
        match len & 0xC0 {
            0x00 => {
                if len == 0 {
                    name.push(0);
                    return Some((name, end.unwrap_or(off + 1)));
                }
                let label = b.get(off + 1..off + 1 + len)?;
                name.push(len as u8);
                name.extend(label.iter().map(u8::to_ascii_lowercase));
                if name.len() > 255 {
                    return None;
                }
                off += 1 + len;
            }
            0xC0 => {
                let ptr = (be16(b, off)? & 0x3FFF) as usize;
                end.get_or_insert(off + 2);
                jumps += 1;
                if jumps > 64 || ptr >= b.len() {
                    return None;
                }
                off = ptr;
            }
            _ => return None,
        }
    }
}

/// Parses a reply to query `id` for `qname` (wire format) and `qtype`.
pub fn parse_reply(b: &[u8], id: u16, qname: &[u8], qtype: u16) -> Parsed {
    if b.len() < 12 || be16(b, 0) != Some(id) || b[2] & 0x80 == 0 {
        return Parsed::Ignore;
    }
    let rcode = b[3] & 0x0F;
    let (qd, an) = (be16(b, 4).unwrap_or(0), be16(b, 6).unwrap_or(0));
    let mut off = 12;
    if qd != 1 {
        // Some servers answer FORMERR or REFUSED without the question.
        return if qd == 0 && rcode != 0 {
            Parsed::Answer(Answer {
                rcode,
                ttl: 0,
                addrs: Vec::new(),
            })
        } else {
            Parsed::Malformed
        };
    }
    let Some((name, next)) = read_name(b, off) else {
        return Parsed::Malformed;
    };
    let (Some(t), Some(class)) = (be16(b, next), be16(b, next + 2)) else {
        return Parsed::Malformed;
    };
    let want: Vec<u8> = qname.iter().map(u8::to_ascii_lowercase).collect();
    if name != want || t != qtype || class != CLASS_IN {
        return Parsed::Ignore;
    }
    off = next + 4;
    if rcode != 0 {
        return Parsed::Answer(Answer {
            rcode,
            ttl: 0,
            addrs: Vec::new(),
        });
    }
    // (owner, type, ttl, rdata offset, rdata length)
    let mut rrs = Vec::new();
    for _ in 0..an {
        let Some((owner, next)) = read_name(b, off) else {
            return Parsed::Malformed;
        };
        let (Some(t), Some(class), Some(ttl), Some(len)) = (
            be16(b, next),
            be16(b, next + 2),
            be32(b, next + 4),
            be16(b, next + 8),
        ) else {
            return Parsed::Malformed;
        };
        let rd = next + 10;
        if rd + len as usize > b.len() {
            return Parsed::Malformed;
        }
        if class == CLASS_IN {
            rrs.push((owner, t, ttl, rd, len as usize));
        }
        off = rd + len as usize;
    }
    // Follow the CNAME chain from the question's name.
    let mut current = want;
    let mut ttl = u32::MAX;
    for _ in 0..MAX_CNAME_HOPS {
        let Some(&(_, _, t, rd, _)) = rrs.iter().find(|r| r.1 == TYPE_CNAME && r.0 == current) else {
            break;
        };
        let Some((target, _)) = read_name(b, rd) else {
            return Parsed::Malformed;
        };
        ttl = ttl.min(t);
        current = target;
    }
    let mut addrs = Vec::new();
    let size = if qtype == TYPE_A { 4 } else { 16 };
    for (owner, t, rttl, rd, len) in &rrs {
        if *t != qtype || *owner != current {
            continue;
        }
        if *len != size {
            return Parsed::Malformed;
        }
        let mut ip = [0u8; 16];
        ip[..size].copy_from_slice(&b[*rd..*rd + size]);
        addrs.push(ip);
        ttl = ttl.min(*rttl);
    }
    if addrs.is_empty() {
        ttl = 0;
    }
    Parsed::Answer(Answer { rcode: 0, ttl, addrs })
}

/// The first `nameserver` of a resolv.conf text, on port 53.
pub fn nameserver_of(text: &str) -> Option<Peer> {
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("nameserver") {
            continue;
        }
        let addr = words.next()?;
        let addr = addr.split('%').next()?; // a zone index is not kept
        return match addr.parse::<std::net::IpAddr>().ok()? {
            std::net::IpAddr::V4(a) => Some(Peer::v4(a.octets(), 53)),
            std::net::IpAddr::V6(a) => Peer::from_bytes(&a.octets(), 53, true),
        };
    }
    None
}

/// The system's nameserver: the first `nameserver` line of /etc/resolv.conf.
pub fn system_nameserver() -> Result<Peer, String> {
    let text = std::fs::read_to_string("/etc/resolv.conf").map_err(|e| format!("/etc/resolv.conf: {e}"))?;
    nameserver_of(&text).ok_or_else(|| "/etc/resolv.conf names no nameserver".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reply to `q` (a query packet) with `answers` appended and the
    /// answer count set.
    fn reply(q: &[u8], rcode: u8, answers: &[Vec<u8>]) -> Vec<u8> {
        let mut r = q.to_vec();
        r[2] = 0x81;
        r[3] = 0x80 | rcode;
        r[7] = answers.len() as u8;
        for a in answers {
            r.extend_from_slice(a);
        }
        r
    }

    fn rr(owner: &[u8], t: u16, ttl: u32, rdata: &[u8]) -> Vec<u8> {
        let mut v = owner.to_vec();
        v.extend_from_slice(&t.to_be_bytes());
        v.extend_from_slice(&CLASS_IN.to_be_bytes());
        v.extend_from_slice(&ttl.to_be_bytes());
        v.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        v.extend_from_slice(rdata);
        v
    }

    const PTR_QNAME: [u8; 2] = [0xC0, 12];

    #[test]
    fn names_encode_and_bad_ones_are_refused() {
        assert_eq!(encode_name("a.Bc.").unwrap(), b"\x01a\x02Bc\x00");
        assert!(encode_name("").is_err());
        assert!(encode_name("a..b").is_err());
        assert!(encode_name("a b").is_err());
        assert!(encode_name(&"x".repeat(64)).is_err());
        assert!(encode_name(&["abc"; 70].join(".")).is_err());
    }

    #[test]
    fn an_a_answer_is_parsed_through_a_cname_chain() {
        let qname = encode_name("www.example.test").unwrap();
        let q = query_packet(0x1234, &qname, TYPE_A);
        let alias = encode_name("edge.cdn.test").unwrap();
        let r = reply(
            &q,
            0,
            &[
                rr(&PTR_QNAME, TYPE_CNAME, 300, &alias),
                // Owner of the A record as a pointer to the CNAME's rdata.
                rr(
                    &[0xC0, (12 + qname.len() + 4 + 12) as u8],
                    TYPE_A,
                    60,
                    &[10, 0, 0, 1],
                ),
                rr(&alias, TYPE_A, 90, &[10, 0, 0, 2]),
                // Not in the chain: ignored.
                rr(&encode_name("other.test").unwrap(), TYPE_A, 5, &[9, 9, 9, 9]),
            ],
        );
        let Parsed::Answer(a) = parse_reply(&r, 0x1234, &qname, TYPE_A) else {
            panic!("not an answer");
        };
        assert_eq!(a.rcode, 0);
        assert_eq!(a.ttl, 60);
        let ips: Vec<&[u8]> = a.addrs.iter().map(|ip| &ip[..4]).collect();
        assert_eq!(ips, [&[10, 0, 0, 1][..], &[10, 0, 0, 2][..]]);
    }

    #[test]
    fn wrong_id_question_or_direction_is_ignored_and_garbage_is_malformed() {
        let qname = encode_name("a.test").unwrap();
        let q = query_packet(7, &qname, TYPE_A);
        let ok = reply(&q, 0, &[rr(&PTR_QNAME, TYPE_A, 1, &[1, 2, 3, 4])]);
        assert!(matches!(parse_reply(&ok, 7, &qname, TYPE_A), Parsed::Answer(_)));
        assert_eq!(parse_reply(&ok, 8, &qname, TYPE_A), Parsed::Ignore);
        assert_eq!(parse_reply(&q, 7, &qname, TYPE_A), Parsed::Ignore); // QR clear
        assert_eq!(parse_reply(&ok, 7, &qname, TYPE_AAAA), Parsed::Ignore);
        let other = encode_name("b.test").unwrap();
        assert_eq!(parse_reply(&ok, 7, &other, TYPE_A), Parsed::Ignore);
        // Truncated answer, a pointer loop, a 5-byte A record.
        assert_eq!(
            parse_reply(&ok[..ok.len() - 2], 7, &qname, TYPE_A),
            Parsed::Malformed
        );
        let looped = reply(
            &q,
            0,
            &[rr(
                &[0xC0, (12 + qname.len() + 4) as u8],
                TYPE_A,
                1,
                &[1, 2, 3, 4],
            )],
        );
        assert_eq!(parse_reply(&looped, 7, &qname, TYPE_A), Parsed::Malformed);
        let long = reply(&q, 0, &[rr(&PTR_QNAME, TYPE_A, 1, &[1, 2, 3, 4, 5])]);
        assert_eq!(parse_reply(&long, 7, &qname, TYPE_A), Parsed::Malformed);
        assert_eq!(parse_reply(&ok[..11], 7, &qname, TYPE_A), Parsed::Ignore);
    }

    #[test]
    fn rcodes_come_through_and_an_empty_answer_is_nodata() {
        let qname = encode_name("nx.test").unwrap();
        let q = query_packet(9, &qname, TYPE_AAAA);
        assert_eq!(
            parse_reply(&reply(&q, 3, &[]), 9, &qname, TYPE_AAAA),
            Parsed::Answer(Answer {
                rcode: 3,
                ttl: 0,
                addrs: vec![]
            })
        );
        let Parsed::Answer(a) = parse_reply(&reply(&q, 0, &[]), 9, &qname, TYPE_AAAA) else {
            panic!()
        };
        assert_eq!((a.rcode, a.addrs.len()), (0, 0));
    }

    #[test]
    fn the_first_nameserver_line_is_taken() {
        let text = "# x\nsearch a.test\nnameserver 10.1.2.3\nnameserver 8.8.8.8\n";
        assert_eq!(nameserver_of(text), Some(Peer::v4([10, 1, 2, 3], 53)));
        let v6 = nameserver_of("nameserver fe80::1%eth0\n").unwrap();
        assert!(v6.v6);
        assert_eq!(v6.ip[0..2], [0xfe, 0x80]);
        assert_eq!(nameserver_of("options ndots:1\n"), None);
    }
}
