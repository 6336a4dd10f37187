//! UDP: bound datagram sockets (`Core::bind_datagram`) read and written by
//! mgnet itself.
//!
//! Mongoose reads one datagram per socket per poll into the connection's
//! receive buffer (2 KiB here), so a burst waited one poll per datagram and
//! a datagram larger than the buffer was cut short without a sign. The core
//! hands a readable datagram socket to [`Udp::on_read`] instead, which
//! drains it with `recvmmsg(2)` (up to [`BATCH`] datagrams per call, at most
//! [`READ_BUDGET`] per poll) and writes one DATAGRAM record per datagram.
//! `MSG_TRUNC` makes the kernel report a datagram's real length, so one over
//! the socket's `max` is reported (record flag [`FLAG_OVERSIZED`], no
//! bytes), never delivered cut short. Sending is an immediate `sendto(2)`.
//!
//! A socket is in one of three modes: plain datagrams for JS, or the DNS
//! or SNTP client (`dns.rs`, `sntp.rs`), which parse replies here and write
//! one result record each instead of DATAGRAM records.
//!
//! DATAGRAM record (kind [`KIND_DATAGRAM`], flags [`FLAG_IPV6`],
//! [`FLAG_OVERSIZED`]): slot u32 @16, the datagram's real size u32 @20,
//! sender port u16 @24, sender address 16 bytes @28 (IPv4 in the first 4),
//! the bytes from @44 (none when oversized).

use std::any::Any;
use std::ffi::c_int;
use std::mem;
use std::ptr;

use super::dns::{self, DnsQuery};
use super::sntp::{self, SntpQuery};
use crate::core::error::{fail, Status};
use crate::core::event::{EventBuf, HEADER_LEN};
use crate::core::manager::Core;
use crate::core::metrics::{Family, Kind};
use crate::core::protocol::Protocol;

/// Record kind of a received datagram (mirrored in `src/net/udp_abi.ts`).
pub const KIND_DATAGRAM: u8 = 10;
/// DATAGRAM flag: the sender's address is IPv6.
pub const FLAG_IPV6: u8 = 1;
/// DATAGRAM flag: the datagram was larger than the socket's `max`; the
/// record carries its size and no bytes.
pub const FLAG_OVERSIZED: u8 = 2;
/// Where a DATAGRAM record's bytes start.
pub const DATAGRAM_BYTES: usize = 44;

/// Largest UDP payload over IPv4 (65,535 − 8 − 20); IPv6 allows 65,527.
pub const MAX_DATAGRAM_V4: usize = 65_507;
/// Largest UDP payload over IPv6 (65,535 − 8).
pub const MAX_DATAGRAM_V6: usize = 65_527;

/// `mgnet_udp_bind` flag: allow sending to broadcast addresses.
pub const BIND_BROADCAST: u32 = 1;

/// Datagrams one `recvmmsg(2)` call may return.
const BATCH: usize = 64;
/// Datagrams read from one socket per poll; the rest wait for the next
/// poll (epoll reports the socket again), so one busy socket cannot starve
/// the others or grow a batch without bound.
const READ_BUDGET: usize = 1024;
/// Receive buffer shared by the sockets of a manager (one drains at a
/// time): `BATCH` slots of `max` bytes, fewer when `max` is large.
const RECV_ARENA: usize = 256 * 1024;

/// An IP address and port as records carry them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Peer {
    /// IPv4 in the first 4 bytes, or IPv6.
    pub ip: [u8; 16],
    pub port: u16,
    pub v6: bool,
}

impl Peer {
    /// An IPv4 peer.
    pub fn v4(a: [u8; 4], port: u16) -> Peer {
        let mut ip = [0u8; 16];
        ip[..4].copy_from_slice(&a);
        Peer { ip, port, v6: false }
    }

    /// From 16 address bytes (IPv4 in the first 4 when `v6` is false).
    pub fn from_bytes(b: &[u8], port: u16, v6: bool) -> Option<Peer> {
        let mut ip = [0u8; 16];
        let n = if v6 { 16 } else { 4 };
        ip[..n].copy_from_slice(b.get(..n)?);
        Some(Peer { ip, port, v6 })
    }

    /// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) as plain IPv4.
    fn unmapped(self) -> Peer {
        if self.v6 && self.ip[..10] == [0; 10] && self.ip[10..12] == [0xff, 0xff] {
            return Peer::v4([self.ip[12], self.ip[13], self.ip[14], self.ip[15]], self.port);
        }
        self
    }

    /// Decodes a `sockaddr_storage` filled by the kernel.
    ///
    /// # Safety
    /// `sa` holds a `sockaddr_in` or `sockaddr_in6`.
    unsafe fn from_sockaddr(sa: &libc::sockaddr_storage) -> Peer {
        if sa.ss_family as c_int == libc::AF_INET6 {
            let s = &*(sa as *const _ as *const libc::sockaddr_in6);
            Peer {
                ip: s.sin6_addr.s6_addr,
                port: u16::from_be(s.sin6_port),
                v6: true,
            }
            .unmapped()
        } else {
            let s = &*(sa as *const _ as *const libc::sockaddr_in);
            Peer::v4(s.sin_addr.s_addr.to_ne_bytes(), u16::from_be(s.sin_port))
        }
    }

    /// The `sockaddr` to send to from a socket of family `v6_socket`.
    fn to_sockaddr(self, v6_socket: bool) -> Result<(libc::sockaddr_storage, u32), i32> {
        let mut ss: libc::sockaddr_storage = unsafe { mem::zeroed() };
        let p = self.unmapped();
        if v6_socket {
            let s = unsafe { &mut *(&mut ss as *mut _ as *mut libc::sockaddr_in6) };
            s.sin6_family = libc::AF_INET6 as _;
            s.sin6_port = p.port.to_be();
            if p.v6 {
                s.sin6_addr.s6_addr = p.ip;
            } else {
                let mut m = [0u8; 16];
                m[10] = 0xff;
                m[11] = 0xff;
                m[12..].copy_from_slice(&p.ip[..4]);
                s.sin6_addr.s6_addr = m;
            }
            Ok((ss, mem::size_of::<libc::sockaddr_in6>() as u32))
        } else if p.v6 {
            Err(fail(
                Status::Invalid,
                "an IPv4 socket cannot send to an IPv6 address (bind to [::] for both)",
            ))
        } else {
            let s = unsafe { &mut *(&mut ss as *mut _ as *mut libc::sockaddr_in) };
            s.sin_family = libc::AF_INET as _;
            s.sin_port = p.port.to_be();
            s.sin_addr.s_addr = u32::from_ne_bytes([p.ip[0], p.ip[1], p.ip[2], p.ip[3]]);
            Ok((ss, mem::size_of::<libc::sockaddr_in>() as u32))
        }
    }
}

/// What a socket's datagrams are for.
pub enum Mode {
    /// Handed to JS as DATAGRAM records.
    Datagrams,
    /// Replies to DNS queries: parsed here, one DNS record per answer.
    Dns(DnsQuery),
    /// The reply to an SNTP request: one SNTP record.
    Sntp(SntpQuery),
}

/// A bound datagram socket.
pub struct Sock {
    /// Largest datagram delivered (and sent); larger ones are reported.
    pub max: usize,
    /// The socket is IPv6 (it can also reach IPv4 peers through mapped
    /// addresses unless bound to a specific IPv6 address).
    pub v6: bool,
    pub mode: Mode,
}

/// The UDP protocol of one manager: its datagram sockets.
#[derive(Default)]
pub struct Udp {
    /// Per-socket state, indexed by the core's slot.
    socks: Vec<Option<Sock>>,
    /// Receive buffer shared by all sockets (see [`RECV_ARENA`]).
    buf: Vec<u8>,
    /// Datagrams received (all sockets), for tests, stats and metrics.
    pub received: u64,
    /// Bytes of the datagrams received (oversized ones: as the kernel
    /// reported them).
    received_bytes: u64,
    /// Datagrams and their bytes the kernel took from `send`.
    sent: u64,
    sent_bytes: u64,
}

/// The current `errno`.
fn errno() -> i32 {
    unsafe { *libc::__errno_location() }
}

/// Sets an `int` socket option; returns whether it took.
///
/// # Safety
/// `fd` is a socket.
unsafe fn set_int(fd: c_int, level: c_int, name: c_int, v: c_int) -> bool {
    libc::setsockopt(
        fd,
        level,
        name,
        &v as *const c_int as *const libc::c_void,
        mem::size_of::<c_int>() as u32,
    ) == 0
}

/// Reads an `int` socket option.
///
/// # Safety
/// `fd` is a socket.
unsafe fn get_int(fd: c_int, level: c_int, name: c_int) -> u32 {
    let mut v: c_int = 0;
    let mut len = mem::size_of::<c_int>() as u32;
    libc::getsockopt(
        fd,
        level,
        name,
        &mut v as *mut c_int as *mut libc::c_void,
        &mut len,
    );
    v.max(0) as u32
}

/// What `mgnet_udp_bind` reports about a bound socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    pub slot: u32,
    pub id: u64,
    pub port: u16,
    pub v6: bool,
    /// Receive and send buffer sizes granted by the kernel (bytes, as
    /// `getsockopt` reports them: twice the requested size on Linux).
    pub rcvbuf: u32,
    pub sndbuf: u32,
}

impl Udp {
    fn sock(&self, slot: u32) -> Option<&Sock> {
        self.socks.get(slot as usize)?.as_ref()
    }

    fn sock_mut(&mut self, slot: u32) -> Option<&mut Sock> {
        self.socks.get_mut(slot as usize)?.as_mut()
    }

    /// Binds a datagram socket on `url` (`udp://host:port`) for protocol
    /// `proto` (this one) with options: `max` datagram size, broadcast,
    /// receive buffer size (0: the system's default).
    ///
    /// # Safety
    /// `core` is a live core, no `&mut` to it is held.
    pub unsafe fn bind(
        core: *mut Core,
        proto: usize,
        url: &str,
        max: usize,
        flags: u32,
        rcvbuf: u32,
        mode: Mode,
    ) -> Result<Bound, i32> {
        if max == 0 || max > MAX_DATAGRAM_V6 {
            return Err(fail(
                Status::Invalid,
                format!("maxDatagram must be from 1 to {MAX_DATAGRAM_V6}"),
            ));
        }
        let (slot, id, port) = Core::bind_datagram(core, url, proto)?;
        let core = &mut *core;
        let (_, c) = core.slot_conn(slot);
        let fd = (*c).fd as usize as c_int;
        let v6 = (*c).loc.is_ip6;
        let mut err = None;
        if flags & BIND_BROADCAST != 0 && !set_int(fd, libc::SOL_SOCKET, libc::SO_BROADCAST, 1) {
            err = Some(format!("SO_BROADCAST: {}", std::io::Error::last_os_error()));
        }
        if rcvbuf > 0 {
            // The kernel caps SO_RCVBUF at net.core.rmem_max; a process with
            // CAP_NET_ADMIN may go beyond it with SO_RCVBUFFORCE.
            let v = rcvbuf.min(i32::MAX as u32 / 2) as c_int;
            if !set_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, v)
                && !set_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, v)
            {
                err = Some(format!("SO_RCVBUF: {}", std::io::Error::last_os_error()));
            }
        }
        if let Some(why) = err {
            core.close_quietly(slot);
            return Err(fail(Status::Io, format!("cannot set up {url}: {why}")));
        }
        core.with_protocol(proto, |u: &mut Udp, _| {
            let i = slot as usize;
            if u.socks.len() <= i {
                u.socks.resize_with(i + 1, || None);
            }
            u.socks[i] = Some(Sock { max, v6, mode });
        });
        Ok(Bound {
            slot,
            id,
            port,
            v6,
            rcvbuf: get_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF),
            sndbuf: get_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUF),
        })
    }

    /// Sends one datagram from socket (`slot`, `id`) to `to` at once.
    /// Returns true if the kernel took it, false if the socket's send
    /// buffer was full (the datagram is dropped, as a network may drop it).
    pub fn send(&mut self, core: &mut Core, slot: u32, id: u64, to: &Peer, data: &[u8]) -> Result<bool, i32> {
        let c = core.conn(slot, id)?;
        let Some(sock) = self.sock(slot) else {
            return Err(fail(Status::State, "not a UDP socket"));
        };
        if data.len() > sock.max {
            return Err(fail(
                Status::Invalid,
                format!(
                    "datagram of {} bytes is over the socket's limit of {} (maxDatagram)",
                    data.len(),
                    sock.max
                ),
            ));
        }
        let (sa, len) = to.to_sockaddr(sock.v6)?;
        let fd = unsafe { (*c).fd } as usize as c_int;
        let took = send_to(fd, &sa, len, data)?;
        if took {
            self.sent += 1;
            self.sent_bytes += data.len() as u64;
        }
        Ok(took)
    }

    /// Starts a DNS query on a fresh socket (see `dns.rs`).
    ///
    /// # Safety
    /// `core` is a live core, no `&mut` to it is held.
    pub unsafe fn dns_query(
        core: *mut Core,
        proto: usize,
        server: Peer,
        name: &str,
        types: &[u16],
    ) -> Result<(u32, u64), i32> {
        let qname = dns::encode_name(name).map_err(|why| fail(Status::Invalid, why))?;
        let url = if server.v6 {
            "udp://[::]:0"
        } else {
            "udp://0.0.0.0:0"
        };
        let mut q = DnsQuery {
            server,
            qname,
            pending: Vec::new(),
        };
        let mut packets = Vec::new();
        for &t in types {
            let qid = dns::random_id();
            packets.push(dns::query_packet(qid, &q.qname, t));
            q.pending.push((qid, t));
        }
        let b = Udp::bind(core, proto, url, dns::MAX_REPLY, 0, 0, Mode::Dns(q))?;
        Udp::send_query(core, b, &server, &packets)
    }

    /// Sends an SNTP request on a fresh socket (see `sntp.rs`).
    ///
    /// # Safety
    /// `core` is a live core, no `&mut` to it is held.
    pub unsafe fn sntp_query(core: *mut Core, proto: usize, server: Peer) -> Result<(u32, u64), i32> {
        let url = if server.v6 {
            "udp://[::]:0"
        } else {
            "udp://0.0.0.0:0"
        };
        let q = SntpQuery { server, t1: 0 };
        let b = Udp::bind(core, proto, url, sntp::MAX_REPLY, 0, 0, Mode::Sntp(q))?;
        // T1 is taken right before the datagram leaves.
        let t1 = sntp::ntp_now();
        (*core).with_protocol(proto, |u: &mut Udp, _| {
            if let Some(Sock {
                mode: Mode::Sntp(q), ..
            }) = u.sock_mut(b.slot)
            {
                q.t1 = t1;
            }
        });
        Udp::send_query(core, b, &server, &[sntp::request(t1).to_vec()])
    }

    /// Sends a client's query datagrams; closes the socket (quietly: JS
    /// gets the error instead) if one fails.
    unsafe fn send_query(
        core: *mut Core,
        b: Bound,
        to: &Peer,
        packets: &[Vec<u8>],
    ) -> Result<(u32, u64), i32> {
        let core = &mut *core;
        let (_, c) = core.slot_conn(b.slot);
        let fd = (*c).fd as usize as c_int;
        let sent = to.to_sockaddr(b.v6).and_then(|(sa, len)| {
            for p in packets {
                if !send_to(fd, &sa, len, p)? {
                    return Err(fail(Status::Io, "the query could not be sent: send buffer full"));
                }
            }
            Ok(())
        });
        match sent {
            Ok(()) => Ok((b.slot, b.id)),
            Err(e) => {
                core.close_quietly(b.slot);
                Err(e)
            }
        }
    }

    /// Reads every datagram waiting on the socket (up to the budget).
    fn drain(&mut self, core: &mut Core, slot: u32) {
        let (id, c) = core.slot_conn(slot);
        let fd = unsafe { (*c).fd } as usize as c_int;
        let Some(max) = self.sock(slot).map(|s| s.max) else {
            return;
        };
        let n_msgs = (RECV_ARENA / max).clamp(1, BATCH);
        if self.buf.len() < n_msgs * max {
            self.buf.resize(n_msgs * max, 0);
        }
        let mut addrs: [libc::sockaddr_storage; BATCH] = unsafe { mem::zeroed() };
        let mut iov: [libc::iovec; BATCH] = unsafe { mem::zeroed() };
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { mem::zeroed() };
        let mut total = 0;
        while total < READ_BUDGET {
            for i in 0..n_msgs {
                iov[i].iov_base = unsafe { self.buf.as_mut_ptr().add(i * max) } as *mut libc::c_void;
                iov[i].iov_len = max;
                let h = &mut msgs[i].msg_hdr;
                h.msg_name = &mut addrs[i] as *mut _ as *mut libc::c_void;
                h.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as u32;
                h.msg_iov = &mut iov[i];
                h.msg_iovlen = 1;
                h.msg_control = ptr::null_mut();
                h.msg_controllen = 0;
                h.msg_flags = 0;
                msgs[i].msg_len = 0;
            }
            let want = n_msgs.min(READ_BUDGET - total);
            // MSG_TRUNC: each msg_len is the datagram's real length.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_recvmmsg,
                    fd,
                    msgs.as_mut_ptr(),
                    want as libc::c_uint,
                    libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                    ptr::null_mut::<libc::timespec>(),
                )
            };
            if r < 0 {
                if errno() == libc::EINTR {
                    continue;
                }
                break; // EAGAIN: drained (errors are not reported on unconnected sockets)
            }
            let r = r as usize;
            if r == 0 {
                break;
            }
            let now = match self.sock(slot).map(|s| &s.mode) {
                Some(Mode::Sntp(_)) => sntp::ntp_now(),
                _ => 0,
            };
            self.received += r as u64;
            for i in 0..r {
                let size = msgs[i].msg_len as usize;
                self.received_bytes += size as u64;
                let peer = unsafe { Peer::from_sockaddr(&addrs[i]) };
                let oversized = size > max || msgs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
                let bytes = if oversized {
                    None
                } else {
                    Some(&self.buf[i * max..i * max + size])
                };
                let Some(sock) = self.socks.get_mut(slot as usize).and_then(Option::as_mut) else {
                    return;
                };
                match &mut sock.mode {
                    Mode::Datagrams => datagram_record(&mut core.events, id, slot, &peer, size, bytes),
                    Mode::Dns(q) => {
                        if let Some(b) = bytes {
                            q.on_datagram(&mut core.events, id, slot, &peer, b);
                        }
                    }
                    Mode::Sntp(q) => {
                        if let Some(b) = bytes {
                            q.on_datagram(&mut core.events, id, slot, &peer, b, now);
                        }
                    }
                }
            }
            total += r;
            if r < want {
                break;
            }
        }
    }
}

/// `sendto(2)` as a raw system call (see core/sys_io.rs for why raw).
fn send_to(fd: c_int, sa: &libc::sockaddr_storage, len: u32, data: &[u8]) -> Result<bool, i32> {
    loop {
        let n = unsafe {
            libc::syscall(
                libc::SYS_sendto,
                fd,
                data.as_ptr(),
                data.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                sa as *const _ as *const libc::sockaddr,
                len,
            )
        };
        if n >= 0 {
            return Ok(true);
        }
        let e = errno();
        return match e {
            libc::EINTR => continue,
            libc::EAGAIN | libc::ENOBUFS => Ok(false),
            libc::EACCES => Err(fail(
                Status::Io,
                "sendto: permission denied (a broadcast address needs the broadcast option)",
            )),
            _ => Err(fail(
                Status::Io,
                format!("sendto: {}", std::io::Error::from_raw_os_error(e)),
            )),
        };
    }
}

/// Writes a DATAGRAM record (see the module docs).
pub fn datagram_record(
    ev: &mut EventBuf,
    id: u64,
    slot: u32,
    peer: &Peer,
    size: usize,
    bytes: Option<&[u8]>,
) {
    let body = bytes.unwrap_or(&[]);
    let mut flags = if peer.v6 { FLAG_IPV6 } else { 0 };
    if bytes.is_none() {
        flags |= FLAG_OVERSIZED;
    }
    ev.header(KIND_DATAGRAM, flags, 0, DATAGRAM_BYTES + body.len(), id);
    ev.u32(slot);
    ev.u32(size.min(u32::MAX as usize) as u32);
    ev.put(&peer.port.to_le_bytes());
    ev.put(&[0, 0]);
    ev.put(&peer.ip);
    ev.put(body);
    const { assert!(DATAGRAM_BYTES == HEADER_LEN + 28) };
}

impl Protocol for Udp {
    fn metric_families(&self) -> Vec<Family> {
        vec![
            Family::one(
                "mgnet_udp_received_datagrams_total",
                Kind::Counter,
                "UDP datagrams received (all sockets, DNS and SNTP included).",
            ),
            Family::one(
                "mgnet_udp_received_bytes_total",
                Kind::Counter,
                "Bytes of the UDP datagrams received.",
            ),
            Family::one(
                "mgnet_udp_sent_datagrams_total",
                Kind::Counter,
                "UDP datagrams the kernel took from UdpSocket.send.",
            ),
            Family::one(
                "mgnet_udp_sent_bytes_total",
                Kind::Counter,
                "Bytes of the UDP datagrams sent.",
            ),
        ]
    }

    fn read_metrics(&self, out: &mut Vec<f64>) {
        for v in [self.received, self.received_bytes, self.sent, self.sent_bytes] {
            out.push(v as f64);
        }
    }

    fn on_accept(&mut self, _core: &mut Core, _slot: u32) {}

    fn on_read(&mut self, core: &mut Core, slot: u32) {
        self.drain(core, slot);
    }

    fn on_sent(&mut self, _core: &mut Core, _slot: u32) {}

    fn on_closed(&mut self, _core: &mut Core, slot: u32) {
        if let Some(s) = self.socks.get_mut(slot as usize) {
            *s = None;
        }
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::event::split_records;
    use std::net::UdpSocket;
    use std::time::{Duration, Instant};

    /// A core with the UDP protocol; freed on drop.
    struct T {
        core: *mut Core,
        proto: usize,
        events: Vec<u8>,
    }

    impl T {
        fn new() -> T {
            let mut core = Core::new().unwrap();
            let proto = core.register(Box::new(Udp::default()));
            T {
                core: Box::into_raw(core),
                proto,
                events: Vec::new(),
            }
        }

        fn bind(&mut self, url: &str, max: usize) -> Bound {
            unsafe { Udp::bind(self.core, self.proto, url, max, 0, 0, Mode::Datagrams).unwrap() }
        }

        fn poll(&mut self) {
            unsafe { Core::poll(self.core) };
            let ev = unsafe { &mut (*self.core).events };
            self.events.extend_from_slice(&std::mem::take(&mut ev.bytes));
        }

        /// Polls until `n` records of `kind` arrived (5 s at most).
        fn wait(&mut self, kind: u8, n: usize) -> Vec<Vec<u8>> {
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                self.poll();
                let found: Vec<Vec<u8>> = split_records(&self.events)
                    .into_iter()
                    .filter(|&(k, _, _)| k == kind)
                    .map(|(_, _, r)| r.to_vec())
                    .collect();
                if found.len() >= n {
                    return found;
                }
                assert!(
                    Instant::now() < deadline,
                    "timed out waiting for {n} records of kind {kind}"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
        }

        fn send(&mut self, b: &Bound, to: &Peer, data: &[u8]) -> Result<bool, i32> {
            let core = unsafe { &mut *self.core };
            core.with_protocol(self.proto, |u: &mut Udp, core| {
                u.send(core, b.slot, b.id, to, data)
            })
        }
    }

    impl Drop for T {
        fn drop(&mut self) {
            unsafe { Core::destroy(self.core) };
        }
    }

    fn u32_at(b: &[u8], off: usize) -> u32 {
        u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
    }

    #[test]
    fn a_burst_arrives_as_one_record_per_datagram_with_the_sender() {
        let mut t = T::new();
        let b = t.bind("udp://127.0.0.1:0", 1472);
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        let from = peer.local_addr().unwrap().port();
        for i in 0..200u32 {
            peer.send_to(&i.to_le_bytes(), ("127.0.0.1", b.port)).unwrap();
        }
        let recs = t.wait(KIND_DATAGRAM, 200);
        assert_eq!(recs.len(), 200);
        for (i, r) in recs.iter().enumerate() {
            assert_eq!(r[1], 0, "flags");
            assert_eq!(u32_at(r, 16), b.slot);
            assert_eq!(u32_at(r, 20), 4);
            assert_eq!(u16::from_le_bytes([r[24], r[25]]), from);
            assert_eq!(&r[28..32], &[127, 0, 0, 1]);
            assert_eq!(&r[44..], &(i as u32).to_le_bytes());
        }
    }

    #[test]
    fn an_oversized_datagram_is_reported_with_its_size_and_no_bytes() {
        let mut t = T::new();
        let b = t.bind("udp://127.0.0.1:0", 100);
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        peer.send_to(&[7u8; 101], ("127.0.0.1", b.port)).unwrap();
        peer.send_to(&[8u8; 100], ("127.0.0.1", b.port)).unwrap();
        let recs = t.wait(KIND_DATAGRAM, 2);
        assert_eq!(recs[0][1], FLAG_OVERSIZED);
        assert_eq!(u32_at(&recs[0], 20), 101);
        assert_eq!(recs[0].len(), DATAGRAM_BYTES);
        assert_eq!(recs[1][1], 0);
        assert_eq!(&recs[1][44..], &[8u8; 100][..]);
    }

    #[test]
    fn send_reaches_the_peer_and_checks_size_family_and_liveness() {
        let mut t = T::new();
        let b = t.bind("udp://127.0.0.1:0", 8);
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let to = Peer::v4([127, 0, 0, 1], peer.local_addr().unwrap().port());
        assert_eq!(t.send(&b, &to, b"ping"), Ok(true));
        let mut buf = [0u8; 16];
        let (n, from) = peer.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from.port()), (&b"ping"[..], b.port));
        assert_eq!(t.send(&b, &to, &[0; 9]), Err(Status::Invalid as i32));
        let v6 = Peer::from_bytes(&[0; 16], 1, true).unwrap();
        assert_eq!(t.send(&b, &v6, b"x"), Err(Status::Invalid as i32));
        unsafe { (*t.core).close(b.slot, b.id, false).unwrap() };
        t.wait(crate::core::event::KIND_CLOSE, 1);
        assert_eq!(t.send(&b, &to, b"x"), Err(Status::Closed as i32));
    }

    #[test]
    fn a_query_that_cannot_be_sent_fails_without_a_close_record() {
        let mut t = T::new();
        // Port 0 is no destination: sendto fails (EINVAL).
        let server = Peer::v4([127, 0, 0, 1], 0);
        let r = unsafe { Udp::dns_query(t.core, t.proto, server, "a.test", &[dns::TYPE_A]) };
        assert_eq!(r, Err(Status::Io as i32));
        for _ in 0..3 {
            t.poll();
        }
        assert!(
            split_records(&t.events).is_empty(),
            "no record for a socket JS never saw"
        );
        // The manager still binds and serves.
        let b = t.bind("udp://127.0.0.1:0", 16);
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        peer.send_to(b"x", ("127.0.0.1", b.port)).unwrap();
        t.wait(KIND_DATAGRAM, 1);
    }

    #[test]
    fn ipv6_mapped_senders_are_reported_as_ipv4() {
        let mut t = T::new();
        let b = t.bind("udp://[::]:0", 64);
        assert!(b.v6);
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        peer.send_to(b"v4", ("127.0.0.1", b.port)).unwrap();
        let r = t.wait(KIND_DATAGRAM, 1).remove(0);
        assert_eq!(r[1] & FLAG_IPV6, 0);
        assert_eq!(&r[28..32], &[127, 0, 0, 1]);
        // And the reply goes back through the mapped address.
        let to = Peer::v4([127, 0, 0, 1], peer.local_addr().unwrap().port());
        assert_eq!(t.send(&b, &to, b"back"), Ok(true));
        peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(peer.recv(&mut buf).unwrap(), 4);
    }
}
