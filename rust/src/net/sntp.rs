//! An SNTP client (RFC 4330) over a UDP socket of the loop.
//!
//! Mongoose's `mg_sntp_request` yields only the server's transmit time. Here
//! the four timestamps give the clock offset and the round-trip delay:
//! T1 (request sent, our clock, also put in the request's transmit field),
//! T2 and T3 (server receive and transmit, from the reply), T4 (reply read,
//! our clock, taken as the datagram is read in the loop):
//! offset = ((T2 − T1) + (T3 − T4)) / 2, delay = (T4 − T1) − (T3 − T2).
//! Differences are taken in NTP's 2⁻³² s units before converting to ms.
//!
//! A reply counts only if it comes from the server's address and port, is
//! a server-mode reply (mode 4) to our request (its originate timestamp is
//! our T1) and has a transmit timestamp; anything else is ignored (the
//! caller's timeout bounds the wait). A kiss-of-death (stratum 0) and an
//! unsynchronised server (leap indicator 3) are results with a status.
//!
//! SNTP record (kind [`KIND_SNTP`]): slot u32 @16, status u8 @20
//! ([`SNTP_OK`], [`SNTP_KOD`], [`SNTP_UNSYNC`]), stratum u8 @21, offset f64
//! @24 (ms), delay f64 @32 (ms), server time at T4 f64 @40 (ms since the Unix
//! epoch), kiss code / reference id 4 bytes @48.

use super::udp::Peer;
use crate::core::event::{EventBuf, HEADER_LEN};

/// Record kind of an SNTP result (mirrored in `src/net/udp_abi.ts`).
pub const KIND_SNTP: u8 = 12;
/// SNTP record status: a valid reply.
pub const SNTP_OK: u8 = 0;
/// SNTP record status: a kiss-of-death (stratum 0); the code is at @48.
pub const SNTP_KOD: u8 = 1;
/// SNTP record status: the server says its clock is not synchronised.
pub const SNTP_UNSYNC: u8 = 2;
/// Length of an SNTP record.
pub const SNTP_LEN: usize = HEADER_LEN + 36;
/// Largest reply read (an NTP packet is 48 bytes, plus optional fields).
pub const MAX_REPLY: usize = 1024;
/// Seconds from 1900 (NTP's epoch) to 1970 (Unix's).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// An SNTP client socket's state.
pub struct SntpQuery {
    pub server: Peer,
    /// T1 as sent (0 until sent; then the reply's originate must match).
    pub t1: u64,
}

/// The current wall-clock time as an NTP timestamp.
pub fn ntp_now() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    let secs = ts.tv_sec as u64 + NTP_UNIX_OFFSET;
    let frac = ((ts.tv_nsec as u64) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

/// An NTP timestamp as ms since the Unix epoch.
pub fn ntp_to_unix_ms(t: u64) -> f64 {
    let secs = (t >> 32) as f64 - NTP_UNIX_OFFSET as f64;
    secs * 1000.0 + (t & 0xFFFF_FFFF) as f64 * (1000.0 / 4_294_967_296.0)
}

/// A client request: LI 0, version 4, mode 3, transmit timestamp `t1`.
pub fn request(t1: u64) -> [u8; 48] {
    let mut p = [0u8; 48];
    p[0] = 0x23;
    p[40..48].copy_from_slice(&t1.to_be_bytes());
    p
}

/// What a reply said.
#[derive(Debug, PartialEq)]
pub enum Reply {
    /// Not a reply to our request.
    Ignore,
    Result {
        status: u8,
        stratum: u8,
        /// ms
        offset: f64,
        /// ms
        delay: f64,
        /// Reference id (the kiss code of a kiss-of-death).
        code: [u8; 4],
    },
}

fn ts(b: &[u8], off: usize) -> u64 {
    u64::from_be_bytes(b[off..off + 8].try_into().unwrap())
}

/// 2⁻³² s units to ms.
fn units_ms(d: i128) -> f64 {
    d as f64 * (1000.0 / 4_294_967_296.0)
}

/// Parses a reply to the request sent at `t1`, read at `t4`.
pub fn parse(b: &[u8], t1: u64, t4: u64) -> Reply {
    if b.len() < 48 || b[0] & 7 != 4 || t1 == 0 || ts(b, 24) != t1 || ts(b, 40) == 0 {
        return Reply::Ignore;
    }
    let stratum = b[1];
    let code: [u8; 4] = b[12..16].try_into().unwrap();
    let (t1, t2, t3, t4) = (t1 as i128, ts(b, 32) as i128, ts(b, 40) as i128, t4 as i128);
    let status = if stratum == 0 {
        SNTP_KOD
    } else if b[0] >> 6 == 3 {
        SNTP_UNSYNC
    } else {
        SNTP_OK
    };
    Reply::Result {
        status,
        stratum,
        offset: units_ms(((t2 - t1) + (t3 - t4)) / 2),
        delay: units_ms((t4 - t1) - (t3 - t2)),
        code,
    }
}

impl SntpQuery {
    /// A datagram arrived at `t4`: writes the SNTP record if it is the reply.
    pub fn on_datagram(&mut self, ev: &mut EventBuf, id: u64, slot: u32, from: &Peer, b: &[u8], t4: u64) {
        if *from != self.server {
            return;
        }
        let Reply::Result {
            status,
            stratum,
            offset,
            delay,
            code,
        } = parse(b, self.t1, t4)
        else {
            return;
        };
        self.t1 = 0; // one result per request
        ev.header(KIND_SNTP, 0, 0, SNTP_LEN, id);
        ev.u32(slot);
        ev.put(&[status, stratum, 0, 0]);
        ev.put(&offset.to_le_bytes());
        ev.put(&delay.to_le_bytes());
        ev.put(&(ntp_to_unix_ms(t4) + offset).to_le_bytes());
        ev.put(&code);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1 << 32; // one second

    fn reply(t1: u64, t2: u64, t3: u64, li_vn_mode: u8, stratum: u8) -> [u8; 48] {
        let mut p = [0u8; 48];
        p[0] = li_vn_mode;
        p[1] = stratum;
        p[12..16].copy_from_slice(b"RATE");
        p[24..32].copy_from_slice(&t1.to_be_bytes());
        p[32..40].copy_from_slice(&t2.to_be_bytes());
        p[40..48].copy_from_slice(&t3.to_be_bytes());
        p
    }

    #[test]
    fn offset_and_delay_follow_rfc_4330() {
        let t1 = 4_000_000_000 * S;
        // Server 10 s ahead; 20 ms each way; 5 ms inside the server.
        let t2 = t1 + 10 * S + S / 50;
        let t3 = t2 + S / 200;
        let t4 = t1 + S / 50 + S / 200 + S / 50;
        let Reply::Result {
            status,
            offset,
            delay,
            ..
        } = parse(&reply(t1, t2, t3, 0x24, 2), t1, t4)
        else {
            panic!()
        };
        assert_eq!(status, SNTP_OK);
        assert!((offset - 10_000.0).abs() < 1e-6, "{offset}");
        assert!((delay - 40.0).abs() < 1e-6, "{delay}");
    }

    #[test]
    fn strays_are_ignored_and_kod_and_unsync_reported() {
        let t1 = 3_900_000_000 * S;
        let ok = reply(t1, t1, t1, 0x24, 1);
        assert!(matches!(
            parse(&ok, t1, t1),
            Reply::Result { status: SNTP_OK, .. }
        ));
        assert_eq!(parse(&ok, t1 + 1, t1), Reply::Ignore); // another request's reply
        assert_eq!(parse(&reply(t1, t1, t1, 0x23, 1), t1, t1), Reply::Ignore); // client mode
        assert_eq!(parse(&reply(t1, t1, 0, 0x24, 1), t1, t1), Reply::Ignore); // no transmit time
        assert_eq!(parse(&ok[..47], t1, t1), Reply::Ignore);
        let Reply::Result { status, code, .. } = parse(&reply(t1, t1, t1, 0x24, 0), t1, t1) else {
            panic!()
        };
        assert_eq!((status, &code), (SNTP_KOD, b"RATE"));
        assert!(matches!(
            parse(&reply(t1, t1, t1, 0xE4, 3), t1, t1),
            Reply::Result {
                status: SNTP_UNSYNC,
                ..
            }
        ));
    }

    #[test]
    fn ntp_time_converts_to_unix_ms() {
        assert_eq!(ntp_to_unix_ms(NTP_UNIX_OFFSET << 32), 0.0);
        assert_eq!(ntp_to_unix_ms(((NTP_UNIX_OFFSET + 1) << 32) | (1 << 31)), 1500.0);
        let now = ntp_to_unix_ms(ntp_now());
        let sys = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as f64;
        assert!((now - sys).abs() < 1000.0);
    }
}
