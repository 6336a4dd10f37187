//! Raw TCP: the `tcp://` protocol, for listeners and outbound connections.
//!
//! Received bytes go to JS as DATA records (`KIND_TCP_DATA`), cut into
//! frames first when the connection has a framing ([`FrameSpec`]); the
//! peer's end of stream is an END record (`KIND_TCP_END`) and the
//! connection stays open for writing (the core's half-close facility).
//! Output goes through the send buffer with an [`Overflow`] behind it, so
//! any amount of unawaited output is queued and sent in linear time; JS
//! waits for a DRAIN record when it wants to. `end()` shuts our side down
//! once everything queued is sent; when both sides have ended the
//! connection closes. `pause` stops reading the socket, so the peer meets
//! TCP flow control.
//!
//! Records: DATA `KIND_TCP_DATA`: slot u32 @16, length u32 @20, the bytes
//! @24. END `KIND_TCP_END`: slot u32 @16. (`src/net/abi.ts` mirrors them.)

use std::any::Any;
use std::collections::HashMap;
use std::ffi::c_int;

use super::framing::{FrameSpec, Framing};
use crate::core::error::{fail, Status};
use crate::core::event::{EventBuf, HEADER_LEN};
use crate::core::manager::{Core, Role};
use crate::core::metrics::{Family, Kind};
use crate::core::overflow::Overflow;
use crate::core::protocol::Protocol;
use crate::core::sys_io::{iobuf_consume, set_read_paused};
use crate::core::transport;
use crate::sys;

/// DATA record kind of the TCP protocol.
pub const KIND_TCP_DATA: u8 = 8;
/// END record kind: the peer ended its side (half-close).
pub const KIND_TCP_END: u8 = 9;

/// A receive buffer that a read filled grows (doubling) up to this, so a
/// fast stream is read in large steps (Mongoose grows by `MG_IO_SIZE`, 2 KiB).
const READ_BUF_MAX: usize = 64 * 1024;
/// A receive buffer over this is freed when reads become small again (an
/// idle connection holds little).
const READ_BUF_KEEP: usize = 16 * 1024;

fn data_record(ev: &mut EventBuf, id: u64, slot: u32, bytes: &[u8]) {
    ev.header(KIND_TCP_DATA, 0, 0, HEADER_LEN + 8 + bytes.len(), id);
    ev.u32(slot);
    ev.u32(bytes.len() as u32);
    ev.put(bytes);
}

fn end_record(ev: &mut EventBuf, id: u64, slot: u32) {
    ev.header(KIND_TCP_END, 0, 0, HEADER_LEN + 4, id);
    ev.u32(slot);
}

/// State of one TCP connection.
#[derive(Default)]
struct TcpConn {
    spec: FrameSpec,
    /// Output queued behind the send buffer.
    out: Overflow,
    /// JS waits until at most this many bytes remain unsent (DRAIN).
    drain_at: Option<usize>,
    /// JS asked to stop reading.
    paused: bool,
    /// The peer ended its side (END was sent to JS).
    peer_ended: bool,
    /// JS called `end()`: shut our side down once the output is sent.
    end_requested: bool,
    /// Our side is shut down (FIN sent after the last byte).
    ended: bool,
    /// JS closed the connection (with its output sent first): what
    /// arrives is dropped.
    closing: bool,
    /// Framing failed: what arrives is dropped, the connection closes at
    /// the next poll (JS may still answer the frames before the bad one).
    failed: bool,
}

impl TcpConn {
    fn unsent(&self, c: *mut sys::mg_connection) -> usize {
        unsafe { (*c).send.len + self.out.len() }
    }
}

/// The TCP protocol of one manager.
#[derive(Default)]
pub struct Tcp {
    /// Per-connection state, indexed by the core's slot.
    #[allow(clippy::vec_box)]
    conns: Vec<Option<Box<TcpConn>>>,
    /// Framing of each listener's connections, by listener id.
    listeners: HashMap<u64, FrameSpec>,
    /// Bytes handed to JS (cut into frames) and bytes queued to send.
    bytes_in: u64,
    bytes_out: u64,
}

impl Protocol for Tcp {
    fn metric_families(&self) -> Vec<Family> {
        vec![
            Family::one(
                "mgnet_tcp_received_bytes_total",
                Kind::Counter,
                "Bytes of tcp:// connections handed to JS.",
            ),
            Family::one(
                "mgnet_tcp_sent_bytes_total",
                Kind::Counter,
                "Bytes queued to send on tcp:// connections.",
            ),
        ]
    }

    fn read_metrics(&self, out: &mut Vec<f64>) {
        out.push(self.bytes_in as f64);
        out.push(self.bytes_out as f64);
    }

    fn on_accept(&mut self, core: &mut Core, slot: u32) {
        let spec = self
            .listeners
            .get(&core.slot_listener(slot))
            .copied()
            .unwrap_or_default();
        self.create(core, slot, spec);
    }

    fn on_connect(&mut self, core: &mut Core, slot: u32) {
        self.create(core, slot, FrameSpec::default());
    }

    fn on_read(&mut self, core: &mut Core, slot: u32) {
        let (id, c) = core.slot_conn(slot);
        let lingering = core.is_lingering(slot);
        let Some(t) = self.conn_mut(slot) else {
            unsafe { (*c).recv.len = 0 };
            return;
        };
        if t.closing || t.failed || lingering {
            unsafe { (*c).recv.len = 0 };
            return;
        }
        let mut got = 0;
        unsafe {
            let io = &mut (*c).recv;
            if io.len == 0 {
                return;
            }
            let filled = io.len == io.size;
            let input = std::slice::from_raw_parts(io.buf, io.len);
            let events = &mut core.events;
            let split = t.spec.split(input, &mut |f| data_record(events, id, slot, f));
            match split {
                Ok(split) => {
                    got = split.consumed as u64;
                    iobuf_consume(io, split.consumed);
                    size_recv_buf(io, &t.spec, split.need, filled);
                }
                Err(why) => {
                    io.len = 0;
                    t.failed = true;
                    set_read_paused(c, true);
                    core.events.error(id, slot, why.as_bytes());
                    core.close_soon(slot);
                }
            }
        }
        self.bytes_in += got;
    }

    fn on_sent(&mut self, core: &mut Core, slot: u32) {
        let (id, c) = core.slot_conn(slot);
        let peer_ended_now;
        {
            let Some(t) = self.conn_mut(slot) else { return };
            if unsafe { t.out.refill(&mut (*c).send) } {
                core.mark_dirty(slot);
            }
            let unsent = t.unsent(c);
            unsafe {
                if (*c).send.len == 0 && (*c).send.size > 64 * 1024 {
                    sys::mg_iobuf_free(&mut (*c).send);
                }
            }
            if let Some(mark) = t.drain_at {
                if unsent <= mark {
                    t.drain_at = None;
                    core.events.drain(id, slot);
                }
            }
            if unsent > 0 || unsafe { (*c).is_connecting() } != 0 {
                return;
            }
            if t.closing {
                if t.peer_ended {
                    // Nothing more will arrive: close now.
                    unsafe { (*c).set_is_closing(1) };
                    core.request_poll();
                } else if !core.is_lingering(slot) {
                    // Our FIN, then read (and drop) until the peer's or 2 s,
                    // so unread input does not turn our close into a reset.
                    core.linger(slot);
                }
                return;
            }
            if !t.end_requested || t.ended {
                return;
            }
            t.ended = true;
            unsafe {
                // Over TLS, close_notify first: a FIN alone reads as a
                // truncation to the peer.
                transport::end_stream(c);
                libc::shutdown((*c).fd as usize as c_int, libc::SHUT_WR);
            }
            peer_ended_now = t.peer_ended;
        }
        if peer_ended_now {
            // Both sides have ended.
            unsafe { (*c).set_is_closing(1) };
            core.request_poll();
        }
    }

    fn on_peer_end(&mut self, core: &mut Core, slot: u32) {
        let (id, c) = core.slot_conn(slot);
        let lingering = core.is_lingering(slot);
        let Some(t) = self.conn_mut(slot) else {
            unsafe { (*c).set_is_closing(1) };
            core.request_poll();
            return;
        };
        t.peer_ended = true;
        if t.closing || t.failed || lingering {
            unsafe { (*c).set_is_closing(1) };
            core.request_poll();
            return;
        }
        unsafe {
            let io = &mut (*c).recv;
            if io.len > 0 {
                match t.spec.framing {
                    // The last line may lack its end: it is a line all the same.
                    Framing::Line => {
                        let input = std::slice::from_raw_parts(io.buf, io.len);
                        let line = input.strip_suffix(b"\r").unwrap_or(input);
                        data_record(&mut core.events, id, slot, line);
                    }
                    _ => {
                        let why = format!("the peer ended inside a frame ({} bytes of it arrived)", io.len);
                        io.len = 0;
                        t.failed = true;
                        core.events.error(id, slot, why.as_bytes());
                        core.close_soon(slot);
                        return;
                    }
                }
                io.len = 0;
            }
        }
        end_record(&mut core.events, id, slot);
        if t.ended {
            // We had ended first: both sides are done.
            unsafe { (*c).set_is_closing(1) };
            core.request_poll();
        }
    }

    fn on_close_request(&mut self, core: &mut Core, slot: u32, drain: bool) -> bool {
        let (_, c) = core.slot_conn(slot);
        let Some(t) = self.conn_mut(slot) else {
            return false;
        };
        if !drain {
            return false;
        }
        t.closing = true;
        unsafe { set_read_paused(c, true) };
        core.mark_dirty(slot);
        true
    }

    fn on_shutdown(&mut self, core: &mut Core, slot: u32) -> bool {
        let (_, c) = core.slot_conn(slot);
        if unsafe { (*c).is_closing() } != 0 {
            return true;
        }
        match self.conn_mut(slot).map(|t| t.closing) {
            Some(false) => self.on_close_request(core, slot, true),
            Some(true) => true,
            None => false,
        }
    }

    fn on_closed(&mut self, _core: &mut Core, slot: u32) {
        if let Some(t) = self.conns.get_mut(slot as usize) {
            *t = None;
        }
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// Sizes a connection's receive buffer after a read: room for the frame
/// under way (`need`), doubling while reads fill it, freed when an idle
/// connection's buffer is large.
///
/// # Safety
/// `io` is a live Mongoose I/O buffer.
unsafe fn size_recv_buf(io: *mut sys::mg_iobuf, spec: &FrameSpec, need: usize, filled: bool) {
    let size = (*io).size;
    let mut want = need.max(size);
    if filled {
        want = want.max((size * 2).min(READ_BUF_MAX.max(spec.frame_cap())));
    }
    if want > size {
        sys::mg_iobuf_resize(io, want);
    } else if (*io).len == 0 && size > READ_BUF_KEEP && !filled {
        sys::mg_iobuf_free(io);
    }
}

impl Tcp {
    fn conn_mut(&mut self, slot: u32) -> Option<&mut TcpConn> {
        self.conns.get_mut(slot as usize)?.as_deref_mut()
    }

    fn create(&mut self, core: &mut Core, slot: u32, spec: FrameSpec) {
        let i = slot as usize;
        if self.conns.len() <= i {
            self.conns.resize_with(i + 1, || None);
        }
        self.conns[i] = Some(Box::new(TcpConn {
            spec,
            ..TcpConn::default()
        }));
        core.take_half_close(slot);
    }

    /// The live TCP connection (`slot`, `id`): `Closed` when it is gone or
    /// closing, `State` when it is not a TCP connection.
    fn live(
        &mut self,
        core: &Core,
        slot: u32,
        id: u64,
    ) -> Result<(*mut sys::mg_connection, &mut TcpConn), i32> {
        let c = core.conn(slot, id)?;
        match self.conn_mut(slot) {
            Some(t) if t.closing => Err(fail(Status::Closed, format!("connection {id} is closing"))),
            Some(t) => Ok((c, t)),
            None => Err(fail(Status::State, "not a TCP connection")),
        }
    }

    /// Sets the framing of a listener's future connections, or of one
    /// connection (before its first bytes: set right after connecting).
    pub fn set_framing(&mut self, core: &mut Core, slot: u32, id: u64, spec: FrameSpec) -> Result<(), i32> {
        core.conn(slot, id)?;
        if core.role(slot) == Role::Listener {
            self.listeners.insert(id, spec);
            return Ok(());
        }
        let (_, t) = self.live(core, slot, id)?;
        t.spec = spec;
        Ok(())
    }

    /// Queues bytes. Returns the bytes queued and not yet sent.
    pub fn send(&mut self, core: &mut Core, slot: u32, id: u64, data: &[u8]) -> Result<usize, i32> {
        let (c, t) = self.live(core, slot, id)?;
        if t.end_requested {
            return Err(fail(
                Status::State,
                "end() was called: the connection no longer sends",
            ));
        }
        unsafe {
            if !t.out.append(&mut (*c).send, &[data]) {
                (*c).set_is_closing(1);
                core.request_poll();
                return Err(fail(Status::NoMem, "out of memory for the send queue"));
            }
        }
        let unsent = t.unsent(c);
        core.mark_dirty(slot);
        self.bytes_out += data.len() as u64;
        Ok(unsent)
    }

    /// Bytes queued and not yet taken by the socket.
    pub fn queued(&mut self, core: &mut Core, slot: u32, id: u64) -> Result<usize, i32> {
        let (c, t) = self.live(core, slot, id)?;
        Ok(t.unsent(c))
    }

    /// Asks for a DRAIN record once at most `mark` bytes remain unsent.
    /// Returns the bytes queued now, or 0 if that already holds (no record).
    pub fn want_drain(&mut self, core: &mut Core, slot: u32, id: u64, mark: usize) -> Result<usize, i32> {
        let (c, t) = self.live(core, slot, id)?;
        let unsent = t.unsent(c);
        if unsent <= mark {
            return Ok(0);
        }
        t.drain_at = Some(mark);
        Ok(unsent)
    }

    /// Half-closes our side once the queued output is sent (reading goes
    /// on). Idempotent.
    pub fn end(&mut self, core: &mut Core, slot: u32, id: u64) -> Result<(), i32> {
        let (_, t) = self.live(core, slot, id)?;
        t.end_requested = true;
        core.mark_dirty(slot);
        Ok(())
    }

    /// Stops or resumes reading. Returns whether reading resumed (the loop
    /// should poll).
    pub fn pause(&mut self, core: &mut Core, slot: u32, id: u64, paused: bool) -> Result<bool, i32> {
        let (c, t) = self.live(core, slot, id)?;
        t.paused = paused;
        let stop = paused || t.peer_ended;
        let was = unsafe { (*c).is_full() } != 0;
        unsafe { set_read_paused(c, stop) };
        if was && !stop {
            core.request_poll();
            return Ok(true);
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    //! The TCP protocol through the top-level manager, on loopback with real
    //! Mongoose and `std::net` peers.

    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpStream};
    use std::time::{Duration, Instant};

    use super::*;
    use crate::core::event::{split_records, KIND_CLOSE, KIND_ERROR, KIND_OPEN};
    use crate::http::Limits;
    use crate::manager::Manager;

    struct T {
        m: *mut Manager,
        events: Vec<u8>,
    }

    impl T {
        fn new() -> T {
            T {
                m: Box::into_raw(Manager::new(Limits::default()).unwrap()),
                events: Vec::new(),
            }
        }
        fn m(&mut self) -> &mut Manager {
            unsafe { &mut *self.m }
        }
        /// Polls until a record of `kind` for `id` (any when 0) was seen.
        fn wait(&mut self, kind: u8, id: u64) -> Vec<u8> {
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                self.m().poll();
                let bytes = std::mem::take(&mut self.m().core().events.bytes);
                self.events.extend_from_slice(&bytes);
                if let Some((_, _, r)) = split_records(&self.events)
                    .into_iter()
                    .find(|&(k, i, _)| k == kind && (id == 0 || i == id))
                {
                    return r.to_vec();
                }
                assert!(Instant::now() < deadline, "no record of kind {kind}");
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        fn data(&self, id: u64) -> Vec<u8> {
            split_records(&self.events)
                .into_iter()
                .filter(|&(k, i, _)| k == KIND_TCP_DATA && i == id)
                .flat_map(|(_, _, r)| r[24..].to_vec())
                .collect()
        }
    }

    impl Drop for T {
        fn drop(&mut self) {
            unsafe { Manager::destroy(self.m) };
        }
    }

    fn id_slot(r: &[u8]) -> (u64, u32) {
        let u = |o: usize| u32::from_le_bytes(r[o..o + 4].try_into().unwrap());
        (u(8) as u64 | (u(12) as u64) << 32, u(16))
    }

    #[test]
    fn the_peer_ends_first_and_we_still_send_then_end() {
        let mut t = T::new();
        let (_, _, port) = t.m().listen("tcp://127.0.0.1:0").unwrap();
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let (id, slot) = id_slot(&t.wait(KIND_OPEN, 0));
        s.write_all(b"abc").unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        t.wait(KIND_TCP_END, id);
        assert_eq!(t.data(id), b"abc");
        // Still writable after the peer's end.
        assert_eq!(t.m().tcp(|p, core| p.send(core, slot, id, b"reply")), Ok(5));
        assert_eq!(t.m().tcp(|p, core| p.end(core, slot, id)), Ok(()));
        t.wait(KIND_CLOSE, id); // both sides ended: closed
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"reply");
        assert_eq!(
            t.m().tcp(|p, core| p.send(core, slot, id, b"late")),
            Err(Status::Closed as i32)
        );
    }

    #[test]
    fn a_framing_error_is_reported_and_closes_at_the_next_poll() {
        let mut t = T::new();
        let (lslot, lid, port) = t.m().listen("tcp://127.0.0.1:0").unwrap();
        let spec = FrameSpec {
            framing: Framing::Prefix(4),
            max: 8,
        };
        assert_eq!(t.m().tcp(|p, core| p.set_framing(core, lslot, lid, spec)), Ok(()));
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"\x00\x00\x00\x02hi\xff\xff\xff\xff").unwrap();
        let (id, slot) = id_slot(&t.wait(KIND_ERROR, 0));
        assert_eq!(t.data(id), b"hi");
        // The frame before the bad one can still be answered.
        assert_eq!(t.m().tcp(|p, core| p.send(core, slot, id, b"ok")), Ok(2));
        t.m().poll(); // flushes "ok", then closes (draining): our FIN follows it
        let mut got = [0u8; 2];
        s.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"ok");
        drop(s); // our FIN ends the server's lingering close
        t.wait(KIND_CLOSE, id);
    }
}
