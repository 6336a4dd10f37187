//! The HTTP client's outbound connections: plain TCP or TLS (Mongoose's
//! built-in TLS, set up by the core) to an address JS has already resolved.
//! Their bytes cross to JS raw (DATA events), where the HTTP client parses
//! them; JS writes with `send`.
//!
//! Events: OPEN (listener id 0) once connected (for TLS: once the
//! handshake is done), DATA for received bytes, DRAIN when asked for,
//! ERROR, CLOSE.

use std::any::Any;
use std::ffi::c_void;

use crate::core::error::{fail, Status};
use crate::core::manager::Core;
use crate::core::protocol::Protocol;
use crate::core::sys_io::set_read_paused;
use crate::sys;

/// Unconsumed received bytes at which reading an outbound connection pauses...
const UNACKED_HIGH: usize = 1 << 20;
/// ...and resumes.
const UNACKED_LOW: usize = 256 * 1024;

/// State of an outbound connection.
#[derive(Default)]
struct ClientConn {
    /// Received bytes JS has not consumed yet; reading pauses above
    /// [`UNACKED_HIGH`] and resumes at [`UNACKED_LOW`].
    unacked: usize,
    /// JS waits until at most this many bytes remain unsent (a DRAIN event).
    drain_at: Option<usize>,
}

impl ClientConn {
    /// True (once) when JS waited for the send buffer to fall to its mark
    /// and `queued` bytes are now below it.
    fn drained(&mut self, queued: usize) -> bool {
        match self.drain_at {
            Some(mark) if queued <= mark => {
                self.drain_at = None;
                true
            }
            _ => false,
        }
    }
}

/// The HTTP client protocol of one manager: its outbound connections.
#[derive(Default)]
pub struct HttpClient {
    /// Per-connection state, indexed by the core's slot.
    conns: Vec<Option<ClientConn>>,
}

impl Protocol for HttpClient {
    fn on_accept(&mut self, core: &mut Core, slot: u32) {
        self.on_connect(core, slot);
    }

    fn on_connect(&mut self, _core: &mut Core, slot: u32) {
        let i = slot as usize;
        if self.conns.len() <= i {
            self.conns.resize_with(i + 1, || None);
        }
        self.conns[i] = Some(ClientConn::default());
    }

    fn on_read(&mut self, core: &mut Core, slot: u32) {
        let (id, c) = core.slot_conn(slot);
        unsafe {
            let io = &mut (*c).recv;
            if io.len > 0 {
                core.events
                    .data(id, slot, std::slice::from_raw_parts(io.buf, io.len));
                let n = io.len;
                io.len = 0;
                if let Some(cl) = self.conn_mut(slot) {
                    cl.unacked += n;
                    if cl.unacked > UNACKED_HIGH {
                        set_read_paused(c, true);
                    }
                }
            }
        }
    }

    fn on_sent(&mut self, core: &mut Core, slot: u32) {
        let (id, c) = core.slot_conn(slot);
        if let Some(cl) = self.conn_mut(slot) {
            if cl.drained(unsafe { (*c).send.len }) {
                core.events.drain(id, slot);
            }
        }
    }

    fn on_closed(&mut self, _core: &mut Core, slot: u32) {
        if let Some(cl) = self.conns.get_mut(slot as usize) {
            *cl = None;
        }
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

impl HttpClient {
    fn conn_mut(&mut self, slot: u32) -> Option<&mut ClientConn> {
        self.conns.get_mut(slot as usize)?.as_mut()
    }

    /// The live outbound connection (`slot`, `id`).
    fn live(
        &mut self,
        core: &Core,
        slot: u32,
        id: u64,
    ) -> Result<(*mut sys::mg_connection, &mut ClientConn), i32> {
        let c = core.conn(slot, id)?;
        match self.conn_mut(slot) {
            Some(cl) => Ok((c, cl)),
            None => Err(fail(Status::State, "not an outbound connection")),
        }
    }

    /// Queues bytes on an outbound connection. Returns the bytes queued
    /// and not yet sent.
    pub fn send(&mut self, core: &mut Core, slot: u32, id: u64, data: &[u8]) -> Result<usize, i32> {
        let (c, _) = self.live(core, slot, id)?;
        unsafe {
            if !sys::mg_send(c, data.as_ptr() as *const c_void, data.len()) {
                return Err(fail(Status::NoMem, "out of memory for the send buffer"));
            }
            core.mark_dirty(slot);
            Ok((*c).send.len)
        }
    }

    /// Asks for a DRAIN event once at most `mark` bytes remain unsent on an
    /// outbound connection. Returns the bytes queued now, or 0 if that is
    /// already the case (no event).
    pub fn want_drain(&mut self, core: &mut Core, slot: u32, id: u64, mark: usize) -> Result<usize, i32> {
        let (c, cl) = self.live(core, slot, id)?;
        let queued = unsafe { (*c).send.len };
        if queued <= mark {
            return Ok(0);
        }
        cl.drain_at = Some(mark);
        Ok(queued)
    }

    /// JS consumed `n` received bytes: resume reading once few are left.
    /// Returns whether reading resumed.
    pub fn ack(&mut self, core: &mut Core, slot: u32, id: u64, n: usize) -> Result<bool, i32> {
        let (c, cl) = self.live(core, slot, id)?;
        cl.unacked = cl.unacked.saturating_sub(n);
        if cl.unacked <= UNACKED_LOW && unsafe { (*c).is_full() } != 0 {
            unsafe { set_read_paused(c, false) };
            core.request_poll();
            return Ok(true);
        }
        Ok(false)
    }
}
