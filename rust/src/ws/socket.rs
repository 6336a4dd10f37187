//! The WebSocket protocol: sockets upgraded from HTTP server connections
//! ([`WsProtocol::adopt`]) and client sockets ([`WsProtocol::prepare_client`]
//! before the core connects). Frames are checked and reassembled by
//! `frame.rs` straight from Mongoose's receive buffer; mgnet never uses
//! Mongoose's own `mg_ws_*` code.
//!
//! Close handshake: a peer's close frame is answered with the same code and
//! the TCP connection is then closed (our FIN first, the core's lingering
//! close). A close we start waits for the peer's close frame until the
//! socket's close timeout, then drops the connection (reported as 1006, not
//! clean). A connection that ends without a close frame reports 1006 too.
//! Exactly one WS_CLOSE record is written per socket, before the core's
//! CLOSE.
//!
//! Backpressure: while more than [`SEND_HIGH`] bytes wait to be sent (a
//! peer that does not read its echoes), the socket is not read; reading
//! resumes under [`SEND_LOW`]. JS sees the queued bytes after each send and
//! can wait for a DRAIN. A frame queued while more than the socket's
//! `max_buffered` bytes are unsent (default [`DEFAULT_MAX_BUFFERED`]) fails
//! the socket instead: its output is dropped, the connection closed and
//! WS_CLOSE reports 1006 (no close frame can pass the queue).
//!
//! Keep-alive ([`WsProtocol::tune`]): after `ping_ms` without a received
//! byte the socket sends a ping; if nothing arrives in the `pong_ms` that
//! follow, it sends a close frame 1001 "No response from ping frame."
//! (Deno's), reports 1001 (not clean) and closes the TCP connection once
//! that frame is out, or after the close timeout. A ping queued behind
//! output still unsent or unacknowledged waits behind it: while the peer's
//! kernel keeps acknowledging more of it (TCP_INFO), the wait for an answer
//! starts again (a slow reader, or a socket not read for backpressure that
//! would not see the pong). Driven by the core's
//! deadline (one per socket, re-armed at most twice per interval, never per
//! message): received bytes only update a timestamp.

use std::any::Any;

use super::deflate::{self, Deflate};
use super::frame::{self, close_code_valid, Frame, Parser};
use super::handshake;
use super::record::{self, CLOSE_CLEAN, CTRL_PING, CTRL_PONG, MSG_BINARY};
use crate::core::error::{fail, Status};
use crate::core::manager::{now_ms, Core};
use crate::core::metrics::{Family, Kind};
use crate::core::overflow::Overflow;
use crate::core::protocol::Protocol;
use crate::core::sys_io::{iobuf_consume, iobuf_free, iobuf_resize, set_read_paused};
use crate::sys;

/// Unsent bytes over which a socket is not read...
pub const SEND_HIGH: usize = 1 << 20;
/// ...and under which reading resumes.
pub const SEND_LOW: usize = 512 * 1024;
/// The default largest message (see docs/architecture.md, WebSocket).
pub const DEFAULT_MAX_MESSAGE: usize = 16 << 20;
/// The default wait for the peer's close frame after ours (ms).
pub const DEFAULT_CLOSE_TIMEOUT_MS: u32 = 5000;
/// The default most unsent bytes a new frame may find queued (more fails
/// the socket with 1006); see docs/architecture.md, WebSocket.
pub const DEFAULT_MAX_BUFFERED: usize = 16 << 20;
/// The close code and reason of a keep-alive ping left unanswered (Deno's).
pub const PING_TIMEOUT_CODE: u16 = 1001;
pub const PING_TIMEOUT_REASON: &[u8] = b"No response from ping frame.";
/// The reason reported when the send buffer limit fails a socket.
pub const BUFFER_LIMIT_REASON: &[u8] = b"more than maxBufferedAmount bytes unsent";
/// A receive buffer over this size is freed once empty.
const RECV_KEEP: usize = 64 * 1024;
/// A receive buffer is grown up to this for a large frame...
const RECV_BIG: usize = 256 * 1024;
/// ...and, for a message of 16 KiB or more, to at least this: reads of
/// several frames at once (smaller ones keep a 16 KiB floor). Sized to the
/// frame alone (16 KiB), every read ended inside a frame: 1.15 `recv` per
/// 16 KiB message and its bytes copied twice (reassembly, then record)
/// against Deno's 0.4. 64 KiB read more per call (0.29 `recv` per message)
/// but cost as much CPU in all (bigger batches and send buffers) and twice
/// the memory (docs/architecture.md, section 25).
const RECV_CHUNK: usize = 32 * 1024;

/// `mgnet_ws_accept`/`mgnet_ws_connect` flag: do not answer pings.
pub const OPT_NO_AUTO_PONG: u32 = 1;
/// Offer (client) or accept (server) permessage-deflate.
pub const OPT_DEFLATE: u32 = 2;
/// Server: make clients reset their compression context per message
/// (`client_no_context_takeover`): no inflater per socket.
pub const OPT_DEFLATE_CLIENT_RESET: u32 = 4;

/// Settings of one socket.
#[derive(Clone, Copy)]
pub struct Options {
    pub max_message: usize,
    pub close_timeout_ms: u32,
    pub flags: u32,
}

/// A client waiting for the server's 101.
struct Handshake {
    key: String,
    offered: Vec<String>,
}

/// One WebSocket.
struct Socket {
    parser: Parser,
    /// We are the client: our frames are masked.
    client: bool,
    handshake: Option<Handshake>,
    auto_pong: bool,
    close_timeout_ms: u32,
    /// Output queued behind the send buffer.
    out: Overflow,
    drain_at: Option<usize>,
    /// Our close frame is queued: nothing else may be sent.
    close_sent: bool,
    /// The peer's close frame arrived (or the peer broke the protocol).
    close_received: bool,
    /// The WS_CLOSE record is written.
    reported: bool,
    /// Reading stopped for backpressure.
    paused: bool,
    /// Reading stopped because JS holds too many of this socket's events
    /// unconsumed ([`WebSockets::hold`]).
    held: bool,
    /// The peer closed (or broke the protocol): our close frame, sent at
    /// the next poll.
    pending_close: Option<(u16, Vec<u8>)>,
    deflate: Option<Box<Deflate>>,
    /// Keep-alive: a ping after this long without a received byte (ms, 0:
    /// off)...
    ping_ms: u32,
    /// ...and the close when nothing arrives this long after it.
    pong_ms: u32,
    /// When bytes last arrived (Mongoose ms; kept only with keep-alive).
    last_rx: u64,
    /// When our keep-alive ping was queued, while it waits for an answer.
    ping_at: Option<u64>,
    /// Most unsent bytes a new frame may find (more fails the socket).
    max_buffered: usize,
    /// When the keep-alive ping was queued (or its wait restarted): the
    /// bytes the peer had acknowledged, and whether output was still ahead
    /// of the ping (in our queue or unacknowledged in the kernel's).
    acked_at_ping: u64,
    behind_at_ping: bool,
}

impl Socket {
    fn new(client: bool, opts: &Options) -> Socket {
        Socket {
            parser: Parser::new(!client, opts.max_message),
            client,
            handshake: None,
            auto_pong: opts.flags & OPT_NO_AUTO_PONG == 0,
            close_timeout_ms: opts.close_timeout_ms,
            out: Overflow::default(),
            drain_at: None,
            close_sent: false,
            close_received: false,
            reported: false,
            paused: false,
            held: false,
            pending_close: None,
            deflate: None,
            ping_ms: 0,
            pong_ms: 0,
            last_rx: 0,
            ping_at: None,
            max_buffered: DEFAULT_MAX_BUFFERED,
            acked_at_ping: 0,
            behind_at_ping: false,
        }
    }

    fn unsent(&self, c: *mut sys::mg_connection) -> usize {
        unsafe { (*c).send.len + self.out.len() }
    }
}

/// The WebSocket protocol of one manager.
#[derive(Default)]
pub struct WsProtocol {
    #[allow(clippy::vec_box)]
    socks: Vec<Option<Box<Socket>>>,
    /// Settings for the client socket `Core::connect` is creating.
    pending_client: Option<(Options, Vec<u8>, Vec<String>)>,
    /// State of the generator of client masking keys.
    rng: u64,
    /// Compressor shared by every socket (no server context takeover).
    shared: deflate::Shared,
    /// Messages received (for stats, tests and metrics).
    pub messages_in: u64,
    /// Text and binary messages queued to send (a broadcast counts one per
    /// socket that got it).
    pub messages_out: u64,
}

/// Bytes the kernel still holds unsent (or unacknowledged) on the socket.
unsafe fn kernel_unsent(c: *mut sys::mg_connection) -> usize {
    #[cfg(target_os = "linux")]
    {
        let mut n: libc::c_int = 0;
        if libc::ioctl((*c).fd as usize as libc::c_int, libc::TIOCOUTQ, &mut n) == 0 && n > 0 {
            return n as usize;
        }
    }
    let _ = c;
    0
}

/// Bytes of ours the peer's kernel acknowledged so far (TCP_INFO), 0 if
/// unknown.
unsafe fn peer_acked(c: *mut sys::mg_connection) -> u64 {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let mut info: libc::tcp_info = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        let fd = (*c).fd as usize as libc::c_int;
        let p = &mut info as *mut libc::tcp_info as *mut libc::c_void;
        if libc::getsockopt(fd, libc::IPPROTO_TCP, libc::TCP_INFO, p, &mut len) == 0 {
            return info.tcpi_bytes_acked;
        }
    }
    let _ = c;
    0
}

/// Appends `parts` to a socket's output; false when memory ran out.
unsafe fn append(s: &mut Socket, c: *mut sys::mg_connection, parts: &[&[u8]]) -> bool {
    s.out.append(&mut (*c).send, parts)
}

impl WsProtocol {
    fn sock(&mut self, slot: u32) -> Option<&mut Socket> {
        self.socks.get_mut(slot as usize)?.as_deref_mut()
    }

    fn put(&mut self, slot: u32, s: Socket) {
        let i = slot as usize;
        if self.socks.len() <= i {
            self.socks.resize_with(i + 1, || None);
        }
        self.socks[i] = Some(Box::new(s));
    }

    /// The live socket (`slot`, `id`).
    fn live(
        &mut self,
        core: &Core,
        slot: u32,
        id: u64,
    ) -> Result<(*mut sys::mg_connection, &mut Socket), i32> {
        let c = core.conn(slot, id)?;
        match self.sock(slot) {
            Some(s) => Ok((c, s)),
            None => Err(fail(Status::State, "not a WebSocket")),
        }
    }

    fn mask_key(&mut self) -> [u8; 4] {
        if self.rng == 0 {
            let mut seed = [0u8; 8];
            unsafe { sys::mg_random(seed.as_mut_ptr() as *mut libc::c_void, 8) };
            self.rng = u64::from_ne_bytes(seed) | 1;
        }
        // xorshift64*: masking keys need to be unpredictable to a script in
        // a browser, not cryptographically strong (RFC 6455 10.3).
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        ((self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as u32).to_ne_bytes()
    }

    /// Queues one frame on socket `slot`.
    fn frame_out(
        &mut self,
        core: &mut Core,
        slot: u32,
        c: *mut sys::mg_connection,
        opcode: u8,
        rsv1: bool,
        payload: &[u8],
    ) -> Result<(), i32> {
        let client = self.sock(slot).is_some_and(|s| s.client);
        let mask = client.then(|| self.mask_key());
        let Some(s) = self.sock(slot) else {
            return Err(fail(Status::State, "not a WebSocket"));
        };
        if opcode != frame::OP_CLOSE && s.unsent(c) > s.max_buffered {
            self.fail_buffered(core, slot, c);
            return Err(fail(
                Status::State,
                "the WebSocket's send buffer is over its limit",
            ));
        }
        let mut hdr = [0u8; 14];
        let n = frame::header(&mut hdr, true, rsv1, opcode, payload.len(), mask);
        let ok = unsafe {
            match mask {
                None => append(s, c, &[&hdr[..n], payload]),
                Some(key) => {
                    let mut ok = append(s, c, &[&hdr[..n]]);
                    let mut buf = [0u8; 8192];
                    let mut phase = 0;
                    for piece in payload.chunks(buf.len()) {
                        let b = &mut buf[..piece.len()];
                        b.copy_from_slice(piece);
                        phase = frame::unmask(b, key, phase);
                        ok = ok && append(s, c, &[b]);
                    }
                    ok
                }
            }
        };
        if !ok {
            unsafe { (*c).set_is_closing(1) };
            core.request_poll();
            return Err(fail(Status::NoMem, "out of memory for WebSocket output"));
        }
        core.mark_dirty(slot);
        Ok(())
    }

    /// Writes the WS_CLOSE record once.
    fn report_close(&mut self, core: &mut Core, slot: u32, code: u16, reason: &[u8], clean: bool) {
        let (id, _) = core.slot_conn(slot);
        if let Some(s) = self.sock(slot) {
            if !s.reported {
                s.reported = true;
                let flags = if clean { CLOSE_CLEAN } else { 0 };
                record::payload(
                    &mut core.events,
                    record::KIND_WS_CLOSE,
                    flags,
                    code,
                    id,
                    slot,
                    reason,
                );
            }
        }
    }

    /// Queues our close frame (code 0: none).
    fn send_close(
        &mut self,
        core: &mut Core,
        slot: u32,
        c: *mut sys::mg_connection,
        code: u16,
        reason: &[u8],
    ) {
        let Some(s) = self.sock(slot) else { return };
        if s.close_sent {
            return;
        }
        s.close_sent = true;
        let mut p = Vec::with_capacity(2 + reason.len());
        if code != 0 {
            p.extend_from_slice(&code.to_be_bytes());
            p.extend_from_slice(reason);
        }
        let _ = self.frame_out(core, slot, c, frame::OP_CLOSE, false, &p);
    }

    /// Closes the TCP connection once our output is out (the handshake is
    /// over, or the peer broke the protocol).
    fn finish(&mut self, core: &mut Core, slot: u32, c: *mut sys::mg_connection) {
        core.clear_deadline(slot);
        let Some(s) = self.sock(slot) else { return };
        if s.unsent(c) == 0 {
            if !core.is_lingering(slot) {
                core.linger(slot);
            }
        } else {
            core.mark_dirty(slot); // on_sent lingers once it is out
        }
    }

    /// Fails a socket whose unsent output is over its limit: drops that
    /// output (a close frame could not get past it), reports 1006 and
    /// closes the connection.
    fn fail_buffered(&mut self, core: &mut Core, slot: u32, c: *mut sys::mg_connection) {
        self.report_close(core, slot, frame::CLOSE_ABNORMAL, BUFFER_LIMIT_REASON, false);
        let Some(s) = self.sock(slot) else { return };
        s.close_sent = true;
        s.close_received = true;
        s.pending_close = None;
        s.out = Overflow::default();
        unsafe {
            sys::mg_iobuf_free(&mut (*c).send);
            (*c).recv.len = 0;
            (*c).set_is_closing(1);
        }
        core.clear_deadline(slot);
        core.request_poll();
    }

    /// Sets the keep-alive and the send buffer limit of socket (`slot`,
    /// `id`): a ping after `ping_ms` without a received byte (0: none), the
    /// close (1001) when nothing arrives in the `pong_ms` after it, and
    /// `max_buffered`, the most unsent bytes a new frame may find. For a
    /// client the keep-alive starts once it is open.
    pub fn tune(
        &mut self,
        core: &mut Core,
        slot: u32,
        id: u64,
        ping_ms: u32,
        pong_ms: u32,
        max_buffered: usize,
    ) -> Result<(), i32> {
        let (_, s) = self.live(core, slot, id)?;
        s.ping_ms = ping_ms;
        s.pong_ms = if pong_ms > 0 { pong_ms } else { ping_ms };
        s.max_buffered = max_buffered;
        s.last_rx = now_ms();
        s.ping_at = None;
        self.arm_keepalive(core, slot);
        Ok(())
    }

    /// Sets the socket's deadline to its next keep-alive step, if it has
    /// keep-alive, is open and no close is under way (those own the
    /// deadline then).
    fn arm_keepalive(&mut self, core: &mut Core, slot: u32) {
        let Some(s) = self.sock(slot) else { return };
        if s.ping_ms == 0
            || s.handshake.is_some()
            || s.close_sent
            || s.close_received
            || s.pending_close.is_some()
        {
            return;
        }
        let (due, period) = match s.ping_at {
            Some(at) => (at + s.pong_ms as u64, s.pong_ms),
            None => (s.last_rx + s.ping_ms as u64, s.ping_ms),
        };
        // Round up to 1/16 of the period (at most 1 s): the sockets due in
        // one such window are pinged in one poll, so their pongs come back
        // in few batches (docs/architecture.md, WebSocket keep-alive).
        let grain = (period as u64 / 16).clamp(1, 1000);
        let due = due.div_ceil(grain) * grain;
        if core.deadline(slot) != Some(due) {
            core.set_deadline(slot, due);
        }
    }

    /// The keep-alive deadline passed: ping, close, or re-arm for later.
    fn keepalive(&mut self, core: &mut Core, slot: u32, c: *mut sys::mg_connection) {
        let now = now_ms();
        let Some(s) = self.sock(slot) else { return };
        if let Some(at) = s.ping_at {
            if s.last_rx >= at {
                s.ping_at = None; // something arrived since the ping
            } else if now >= at + s.pong_ms as u64 {
                let acked = unsafe { peer_acked(c) };
                if s.behind_at_ping && acked > s.acked_at_ping {
                    // The ping was queued behind output that the peer is
                    // still taking: it has not seen the ping yet (or is not
                    // read for backpressure); wait again from now.
                    s.acked_at_ping = acked;
                    s.behind_at_ping = unsafe { s.unsent(c) + kernel_unsent(c) } > 0;
                    s.ping_at = Some(now);
                } else {
                    self.keepalive_close(core, slot, c);
                    return;
                }
            }
        }
        if s.ping_at.is_none() && now >= s.last_rx + s.ping_ms as u64 {
            s.ping_at = Some(now);
            s.acked_at_ping = unsafe { peer_acked(c) };
            s.behind_at_ping = unsafe { s.unsent(c) + kernel_unsent(c) } > 0;
            if self.frame_out(core, slot, c, frame::OP_PING, false, &[]).is_err() {
                return; // failed by the send buffer limit
            }
        }
        self.arm_keepalive(core, slot);
    }

    /// The keep-alive ping got no answer: close frame 1001 to the peer,
    /// 1001 (not clean) to JS, and the connection closed once that frame is
    /// out (at most the close timeout later) without waiting for the
    /// peer's close frame, as Deno does.
    fn keepalive_close(&mut self, core: &mut Core, slot: u32, c: *mut sys::mg_connection) {
        self.report_close(core, slot, PING_TIMEOUT_CODE, PING_TIMEOUT_REASON, false);
        self.send_close(core, slot, c, PING_TIMEOUT_CODE, PING_TIMEOUT_REASON);
        let Some(s) = self.sock(slot) else { return };
        s.close_received = true; // the handshake is over: discard what comes
        let timeout = s.close_timeout_ms as u64;
        self.finish(core, slot, c);
        if !core.is_lingering(slot) {
            core.set_deadline(slot, now_ms() + timeout);
        }
    }

    /// Creates a server socket for an upgraded HTTP connection: queues the
    /// 101 `response` after `out` (what HTTP still had queued), writes
    /// WS_OPEN and parses frames already received.
    #[allow(clippy::too_many_arguments)]
    pub fn adopt(
        &mut self,
        core: &mut Core,
        slot: u32,
        out: Overflow,
        key: &[u8],
        protocol: &[u8],
        offer: &[u8],
        extra: &[u8],
        opts: Options,
    ) -> Result<(), i32> {
        let (id, c) = core.slot_conn(slot);
        let mut s = Socket::new(false, &opts);
        s.out = out;
        let mut ext = String::new();
        if opts.flags & OPT_DEFLATE != 0 {
            if let Some(n) = deflate::negotiate_server(offer, opts.flags & OPT_DEFLATE_CLIENT_RESET != 0) {
                ext = n.response();
                s.deflate = Some(Box::new(Deflate::new(&n, false, opts.max_message)));
                s.parser.deflate = true;
            }
        }
        let response = handshake::server_response(key, protocol, ext.as_bytes(), extra);
        let ok = unsafe { append(&mut s, c, &[&response]) };
        self.put(slot, s);
        if !ok {
            unsafe { (*c).set_is_closing(1) };
            core.request_poll();
            return Err(fail(Status::NoMem, "out of memory for the handshake"));
        }
        core.mark_dirty(slot);
        record::open(&mut core.events, id, slot, protocol, ext.as_bytes());
        unsafe { set_read_paused(c, false) };
        self.read(core, slot);
        Ok(())
    }

    /// Sets up the client socket the next `Core::connect` creates: its
    /// handshake request `head` (request line and header lines, without
    /// the key and the blank line) and the subprotocols offered.
    pub fn prepare_client(&mut self, opts: Options, head: &[u8], offered: Vec<String>) {
        self.pending_client = Some((opts, head.to_vec(), offered));
    }

    /// Forgets the settings of a client socket whose connect failed.
    pub fn pending_client_clear(&mut self) {
        self.pending_client = None;
    }

    /// Sends a message or a ping/pong. Returns the bytes queued and unsent.
    pub fn send(
        &mut self,
        core: &mut Core,
        slot: u32,
        id: u64,
        opcode: u8,
        data: &[u8],
        compress: bool,
    ) -> Result<usize, i32> {
        let (c, s) = self.live(core, slot, id)?;
        if s.handshake.is_some() {
            return Err(fail(Status::State, "the WebSocket is not open yet"));
        }
        if s.close_sent {
            return Err(fail(Status::State, "the WebSocket is closing"));
        }
        match opcode {
            frame::OP_TEXT | frame::OP_BINARY => {}
            frame::OP_PING | frame::OP_PONG if data.len() <= 125 => {}
            frame::OP_PING | frame::OP_PONG => {
                return Err(fail(Status::Invalid, "a ping or pong carries at most 125 bytes"))
            }
            _ => return Err(fail(Status::Invalid, "invalid opcode")),
        }
        let wants = compress && opcode < frame::OP_CLOSE && s.deflate.is_some();
        let deflated = if wants {
            let shared = &mut self.shared;
            let d = self.socks[slot as usize]
                .as_deref_mut()
                .and_then(|s| s.deflate.as_deref_mut());
            d.expect("checked")
                .compress(shared, data)
                .map_err(|e| fail(Status::Io, e))?
        } else {
            None
        };
        match &deflated {
            Some(z) => self.frame_out(core, slot, c, opcode, true, z)?,
            None => self.frame_out(core, slot, c, opcode, false, data)?,
        }
        self.messages_out += u64::from(opcode < frame::OP_CLOSE);
        Ok(self.sock(slot).map_or(0, |s| s.unsent(c)))
    }

    /// Sends one message to many sockets, framed (and compressed) once.
    /// `targets` are (slot, id) pairs; closed or closing sockets are
    /// skipped. Returns how many got it.
    pub fn broadcast(&mut self, core: &mut Core, targets: &[(u32, u64)], opcode: u8, data: &[u8]) -> usize {
        let mut hdr = [0u8; 14];
        let n = frame::header(&mut hdr, true, false, opcode, data.len(), None);
        let mut z: Option<(Vec<u8>, [u8; 14], usize)> = None;
        let mut sent = 0;
        for &(slot, id) in targets {
            let Ok(c) = core.conn(slot, id) else { continue };
            let compressed = self
                .sock(slot)
                .is_some_and(|s| s.deflate.as_ref().is_some_and(|d| d.shared_ok()));
            if compressed && z.is_none() {
                if let Ok(bytes) = deflate::compress_shared(&mut self.shared, data) {
                    let mut zh = [0u8; 14];
                    let zn = frame::header(&mut zh, true, true, opcode, bytes.len(), None);
                    z = Some((bytes, zh, zn));
                }
            }
            let Some(s) = self.sock(slot) else { continue };
            if s.client || s.close_sent || s.handshake.is_some() {
                continue;
            }
            if s.unsent(c) > s.max_buffered {
                self.fail_buffered(core, slot, c);
                continue;
            }
            let Some(s) = self.sock(slot) else { continue };
            let ok = unsafe {
                match (&z, compressed) {
                    (Some((bytes, zh, zn)), true) => append(s, c, &[&zh[..*zn], bytes]),
                    _ => append(s, c, &[&hdr[..n], data]),
                }
            };
            if ok {
                core.mark_dirty(slot);
                sent += 1;
            }
        }
        self.messages_out += sent as u64;
        sent
    }

    /// Starts the close handshake (`code` 0: a close frame without a code).
    pub fn close(
        &mut self,
        core: &mut Core,
        slot: u32,
        id: u64,
        code: u16,
        reason: &[u8],
    ) -> Result<(), i32> {
        if code != 0 && !close_code_valid(code) {
            return Err(fail(Status::Invalid, format!("invalid close code {code}")));
        }
        if reason.len() > 123 {
            return Err(fail(Status::Invalid, "a close reason is at most 123 bytes"));
        }
        let (c, s) = self.live(core, slot, id)?;
        if s.close_sent {
            return Ok(());
        }
        if s.handshake.is_some() {
            // Not open yet: drop the connection.
            unsafe { (*c).set_is_closing(1) };
            core.request_poll();
            return Ok(());
        }
        let timeout = s.close_timeout_ms;
        let received = s.close_received;
        self.send_close(core, slot, c, code, reason);
        if received {
            self.finish(core, slot, c);
        } else {
            core.set_deadline(slot, now_ms() + timeout as u64);
        }
        Ok(())
    }

    /// Asks for a DRAIN once at most `mark` bytes are unsent; returns the
    /// bytes unsent now, or 0 if already at most `mark` (no event).
    pub fn want_drain(&mut self, core: &mut Core, slot: u32, id: u64, mark: usize) -> Result<usize, i32> {
        let (c, s) = self.live(core, slot, id)?;
        let q = s.unsent(c);
        if q <= mark {
            return Ok(0);
        }
        s.drain_at = Some(mark);
        Ok(q)
    }

    /// Parses what the socket received.
    fn read(&mut self, core: &mut Core, slot: u32) {
        let (id, c) = core.slot_conn(slot);
        let lingering = core.is_lingering(slot);
        let Some(s) = self.sock(slot) else { return };
        unsafe {
            if lingering || s.close_received {
                (*c).recv.len = 0; // the handshake is over: discard
                return;
            }
        }
        if s.paused || s.held {
            return;
        }
        let mut opened = false;
        if let Some(hs) = &s.handshake {
            let input = unsafe { std::slice::from_raw_parts((*c).recv.buf, (*c).recv.len) };
            match handshake::check_response(input, &hs.key, &hs.offered) {
                Ok(None) => return,
                Err(why) => {
                    core.events.error(id, slot, why.as_bytes());
                    unsafe { (*c).set_is_closing(1) };
                    core.request_poll();
                    s.reported = true; // never opened: no WS_CLOSE
                    return;
                }
                Ok(Some(a)) => {
                    let mut ok_ext = a.extensions.is_empty();
                    if !ok_ext {
                        if let Some(n) = deflate::accept_client(&a.extensions) {
                            s.deflate = Some(Box::new(Deflate::new(&n, true, s.parser.max_message)));
                            s.parser.deflate = true;
                            ok_ext = true;
                        }
                    }
                    if !ok_ext {
                        let why = format!(
                            "the server answered with extensions not offered: {}",
                            a.extensions
                        );
                        core.events.error(id, slot, why.as_bytes());
                        unsafe { (*c).set_is_closing(1) };
                        core.request_poll();
                        s.reported = true;
                        return;
                    }
                    s.handshake = None;
                    s.last_rx = now_ms();
                    opened = true;
                    unsafe { iobuf_consume(&mut (*c).recv, a.head_len) };
                    record::open(
                        &mut core.events,
                        id,
                        slot,
                        a.protocol.as_bytes(),
                        a.extensions.as_bytes(),
                    );
                }
            }
        }
        let mut parser = std::mem::replace(&mut s.parser, Parser::new(true, 0));
        let mut deflate = s.deflate.take();
        let auto_pong = s.auto_pong;
        let discard = s.close_sent;
        let mut shared = std::mem::take(&mut self.shared);
        // What the frames ask for, done after parsing (they need &mut self).
        let mut pongs: Vec<Vec<u8>> = Vec::new();
        let mut closing: Option<(u16, Vec<u8>, bool)> = None;
        let mut messages = 0u64;
        let events = &mut core.events;
        let consumed = unsafe {
            let io = &mut (*c).recv;
            let input: &mut [u8] = if io.len == 0 {
                &mut []
            } else {
                std::slice::from_raw_parts_mut(io.buf, io.len)
            };
            parser.feed(input, &mut |f| {
                match f {
                    Frame::Message {
                        binary,
                        compressed,
                        data,
                    } => {
                        if discard {
                            return true;
                        }
                        messages += 1;
                        let flags = if binary { MSG_BINARY } else { 0 };
                        if compressed {
                            let d = deflate.as_deref_mut().expect("RSV1 only with deflate");
                            match d.inflate(&mut shared, data) {
                                Ok(plain) => {
                                    if !binary && std::str::from_utf8(plain).is_err() {
                                        closing = Some((
                                            frame::CLOSE_INVALID_DATA,
                                            b"invalid UTF-8".to_vec(),
                                            false,
                                        ));
                                        return false;
                                    }
                                    record::payload(
                                        events,
                                        record::KIND_WS_MESSAGE,
                                        flags,
                                        0,
                                        id,
                                        slot,
                                        plain,
                                    );
                                }
                                Err((code, why)) => {
                                    closing = Some((code, why.as_bytes().to_vec(), false));
                                    return false;
                                }
                            }
                        } else {
                            record::payload(events, record::KIND_WS_MESSAGE, flags, 0, id, slot, data);
                        }
                    }
                    Frame::Ping(p) => {
                        if auto_pong && !discard {
                            pongs.push(p.to_vec());
                        }
                        record::payload(events, record::KIND_WS_CONTROL, CTRL_PING, 0, id, slot, p);
                    }
                    Frame::Pong(p) => {
                        record::payload(events, record::KIND_WS_CONTROL, CTRL_PONG, 0, id, slot, p);
                    }
                    Frame::Close(code, reason) => {
                        closing = Some((code, reason.to_vec(), true));
                        return false;
                    }
                    Frame::Fail(code, why) => {
                        closing = Some((code, why.as_bytes().to_vec(), false));
                        return false;
                    }
                }
                true
            })
        };
        self.messages_in += messages;
        self.shared = shared;
        let big_frame = parser.partial_left();
        let big_message = parser.partial_message();
        let Some(s) = self.sock(slot) else { return };
        s.parser = parser;
        s.deflate = deflate;
        unsafe {
            let io = &mut (*c).recv;
            iobuf_consume(io, consumed);
            // Reads of RECV_CHUNK for large messages only: a 64 B socket
            // whose frame straddled two reads keeps 16 KiB, as before.
            let floor = if big_message >= 16 * 1024 {
                RECV_CHUNK
            } else {
                16 * 1024
            };
            let want = (big_frame.min(RECV_BIG as u64) as usize).max(floor);
            if big_frame > 0 && io.size < want {
                // A large frame is arriving: let Mongoose read big pieces.
                iobuf_resize(io, want);
            } else if io.len == 0 && io.size > RECV_KEEP {
                iobuf_free(io);
            }
        }
        for p in pongs {
            if self.frame_out(core, slot, c, frame::OP_PONG, false, &p).is_err() {
                return; // failed by the send buffer limit
            }
        }
        if let Some((code, reason, peer_closed)) = closing {
            let Some(s) = self.sock(slot) else { return };
            s.close_received = true;
            unsafe { (*c).recv.len = 0 };
            // Our close frame (the same code; none for 1005) goes out at the
            // start of the next poll, after the replies JS makes to the
            // messages of this batch: an echo of the last message before a
            // close must not be cut off by our close frame.
            let echo = if code == frame::CLOSE_NO_STATUS { 0 } else { code };
            s.pending_close = Some((echo, reason.clone()));
            self.report_close(core, slot, code, &reason, peer_closed);
            core.set_deadline(slot, now_ms());
            return;
        }
        if opened {
            self.arm_keepalive(core, slot);
        }
        self.backpressure(slot, c);
    }

    /// Pauses or resumes reading to match the unsent output. Server
    /// sockets only: a client that stopped reading because its own
    /// messages wait would deadlock with a server doing the same (seen
    /// with mgnet's client sending 200 messages of 64 KiB to mgnet's echo).
    fn backpressure(&mut self, slot: u32, c: *mut sys::mg_connection) -> bool {
        let Some(s) = self.sock(slot) else { return false };
        if s.client {
            return false;
        }
        let q = s.unsent(c);
        if !s.paused && q > SEND_HIGH {
            s.paused = true;
            unsafe { set_read_paused(c, true) };
        } else if s.paused && q < SEND_LOW {
            s.paused = false;
            if !s.held {
                unsafe { set_read_paused(c, false) };
                return true;
            }
        }
        false
    }

    /// Stops (`on`) or restarts reading a socket whose events JS holds
    /// unconsumed (a `for await` slower than the peer, or a client socket
    /// not iterated yet): the peer is then held back by TCP instead of the
    /// events growing without bound. Restarting parses what was received
    /// meanwhile.
    pub fn hold(&mut self, core: &mut Core, slot: u32, id: u64, on: bool) -> Result<(), i32> {
        let (c, s) = self.live(core, slot, id)?;
        if s.held == on {
            return Ok(());
        }
        s.held = on;
        let stop = on || s.paused;
        unsafe { set_read_paused(c, stop) };
        if !stop {
            self.read(core, slot);
            core.request_poll();
        }
        Ok(())
    }

    /// Messages received on every socket so far.
    pub fn stats(&self) -> u64 {
        self.messages_in
    }
}

impl Protocol for WsProtocol {
    fn metric_families(&self) -> Vec<Family> {
        vec![
            Family::one(
                "mgnet_ws_messages_received_total",
                Kind::Counter,
                "WebSocket messages received (all sockets).",
            ),
            Family::one(
                "mgnet_ws_messages_sent_total",
                Kind::Counter,
                "WebSocket text and binary messages queued to send (a broadcast counts each socket).",
            ),
        ]
    }

    fn read_metrics(&self, out: &mut Vec<f64>) {
        out.push(self.messages_in as f64);
        out.push(self.messages_out as f64);
    }

    fn on_accept(&mut self, core: &mut Core, slot: u32) {
        // No listener hands connections to this protocol directly; be safe.
        let _ = core;
        let opts = Options {
            max_message: DEFAULT_MAX_MESSAGE,
            close_timeout_ms: DEFAULT_CLOSE_TIMEOUT_MS,
            flags: 0,
        };
        self.put(slot, Socket::new(false, &opts));
    }

    fn on_connect(&mut self, core: &mut Core, slot: u32) {
        let (_, c) = core.slot_conn(slot);
        let Some((opts, head, offered)) = self.pending_client.take() else {
            return;
        };
        let key = handshake::new_key();
        let mut s = Socket::new(true, &opts);
        let mut req = head;
        req.extend_from_slice(b"sec-websocket-key: ");
        req.extend_from_slice(key.as_bytes());
        req.extend_from_slice(b"\r\nsec-websocket-version: 13\r\n");
        if opts.flags & OPT_DEFLATE != 0 {
            req.extend_from_slice(b"sec-websocket-extensions: ");
            req.extend_from_slice(deflate::CLIENT_OFFER.as_bytes());
            req.extend_from_slice(b"\r\n");
        }
        req.extend_from_slice(b"\r\n");
        s.handshake = Some(Handshake { key, offered });
        unsafe { append(&mut s, c, &[&req]) };
        self.put(slot, s);
    }

    fn on_read(&mut self, core: &mut Core, slot: u32) {
        if let Some(s) = self.sock(slot) {
            if s.ping_ms != 0 {
                s.last_rx = now_ms();
            }
        }
        self.read(core, slot);
    }

    fn on_sent(&mut self, core: &mut Core, slot: u32) {
        let (id, c) = core.slot_conn(slot);
        let Some(s) = self.sock(slot) else { return };
        unsafe {
            if s.out.refill(&mut (*c).send) {
                core.mark_dirty(slot);
            }
        }
        let q = s.unsent(c);
        if let Some(mark) = s.drain_at {
            if q <= mark {
                s.drain_at = None;
                core.events.drain(id, slot);
            }
        }
        let done = s.close_sent && s.close_received;
        if q == 0 {
            unsafe {
                if (*c).send.size > RECV_KEEP {
                    iobuf_free(&mut (*c).send);
                }
            }
            if done && !core.is_lingering(slot) {
                core.linger(slot);
                return;
            }
        }
        if self.backpressure(slot, c) {
            self.read(core, slot);
        }
    }

    fn on_close_request(&mut self, core: &mut Core, slot: u32, drain: bool) -> bool {
        let _ = (core, slot, drain);
        false
    }

    fn on_shutdown(&mut self, core: &mut Core, slot: u32) -> bool {
        let (id, _) = core.slot_conn(slot);
        let open = self
            .sock(slot)
            .is_some_and(|s| !s.close_sent && s.handshake.is_none());
        if open {
            let _ = self.close(core, slot, id, 1001, b"");
        }
        self.sock(slot).is_some()
    }

    fn before_close(&mut self, core: &mut Core, slot: u32) {
        if self.sock(slot).is_some_and(|s| s.handshake.is_some()) {
            return; // a client that never opened: its ERROR says why
        }
        self.report_close(core, slot, frame::CLOSE_ABNORMAL, b"", false);
    }

    fn on_closed(&mut self, _core: &mut Core, slot: u32) {
        if let Some(s) = self.socks.get_mut(slot as usize) {
            *s = None;
        }
    }

    fn on_deadline(&mut self, core: &mut Core, slot: u32) {
        let (_, c) = core.slot_conn(slot);
        if let Some((code, reason)) = self.sock(slot).and_then(|s| s.pending_close.take()) {
            self.send_close(core, slot, c, code, &reason);
            self.finish(core, slot, c);
            return;
        }
        let Some(s) = self.sock(slot) else { return };
        if !s.close_sent {
            self.keepalive(core, slot, c);
            return;
        }
        // Our close frame got no answer in time.
        self.report_close(core, slot, frame::CLOSE_ABNORMAL, b"", false);
        let (_, c) = core.slot_conn(slot);
        unsafe { (*c).set_is_closing(1) };
        core.request_poll();
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}
