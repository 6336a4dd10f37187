//! The HTTP server's response queue: complete replies, streamed responses
//! (start, write, end), DRAIN requests for backpressure, and the in-order
//! release of pipelined responses. A response for a request behind the
//! front of the queue waits in memory (`held`) until the ones before it are
//! done; the front one goes straight to the send buffer.

use super::server::{
    status_slot, HttpServer, RespState, REPLY_CLOSE, REPLY_OWN_DATE, SEND_HIGH_WATER, SEQ_OLDEST,
};
use super::writer::{
    write_chunk, write_response, write_stream_end, write_stream_head, ResponseMeta, StreamFraming,
};
use crate::core::error::{fail, Status};
use crate::core::manager::Core;
use crate::sys;

impl HttpServer {
    /// The live HTTP connection and the queue index of request `seq`
    /// (`SEQ_OLDEST`: the oldest one nothing was answered for yet).
    fn request(
        &mut self,
        core: &Core,
        slot: u32,
        id: u64,
        seq: u32,
    ) -> Result<(*mut sys::mg_connection, usize), i32> {
        let (c, h) = self.live(core, slot, id)?;
        if h.close_when_sent {
            // An earlier response closed the connection; later requests are dropped.
            return Err(fail(
                Status::Closed,
                format!("connection {id} is closing: an earlier response ended it"),
            ));
        }
        let idx = if seq == SEQ_OLDEST {
            h.inflight
                .iter()
                .position(|p| matches!(p.state, RespState::Waiting))
                .ok_or_else(|| fail(Status::State, "no request is waiting for a response"))?
        } else {
            seq.wrapping_sub(h.send_seq) as usize
        };
        if idx >= h.inflight.len() {
            return Err(fail(Status::State, "request already answered or unknown"));
        }
        Ok((c, idx))
    }

    /// The cached `date:` line, or none when the handler sends its own.
    fn date_line(&self, flags: u32) -> ([u8; 37], usize) {
        if flags & REPLY_OWN_DATE != 0 {
            ([0; 37], 0)
        } else {
            (self.date.line().try_into().unwrap_or([0; 37]), 37)
        }
    }

    /// Appends response bytes for queue entry `idx`: straight to the send
    /// buffer for the front, into the entry's `held` bytes otherwise.
    fn emit(
        &mut self,
        core: &mut Core,
        slot: u32,
        c: *mut sys::mg_connection,
        idx: usize,
        parts: &[&[u8]],
    ) -> Result<(), i32> {
        let Some(h) = self.conn_mut(slot) else {
            return Ok(());
        };
        if idx == 0 {
            if !unsafe { h.out.append(&mut (*c).send, parts) } {
                unsafe { (*c).set_is_closing(1) };
                core.request_poll();
                return Err(fail(Status::NoMem, "out of memory for the response"));
            }
            core.mark_dirty(slot);
            return Ok(());
        }
        if let RespState::Streaming { held, .. } | RespState::Done { held } = &mut h.inflight[idx].state {
            for p in parts {
                held.extend_from_slice(p);
            }
        }
        Ok(())
    }

    /// Takes request `idx` from Waiting to `next`, returning its (possibly
    /// closing) framing metadata.
    fn answer(&mut self, slot: u32, idx: usize, flags: u32, next: RespState) -> Result<ResponseMeta, i32> {
        let Some(h) = self.conn_mut(slot) else {
            return Err(fail(Status::State, "not an HTTP connection"));
        };
        let p = &mut h.inflight[idx];
        if !matches!(p.state, RespState::Waiting) {
            return Err(fail(Status::State, "request already answered"));
        }
        if flags & REPLY_CLOSE != 0 {
            p.meta.close = true;
        }
        if h.streaming_seq == Some(h.send_seq.wrapping_add(idx as u32)) {
            // Answered before its body arrived: no 100 Continue any more, and
            // the connection closes after the response (the rest of the
            // body is not worth reading; RFC 9110 15.5.14 allows it).
            p.meta.close = true;
            h.continue_pending = false;
            h.continue_on_read = false;
        }
        p.state = next;
        Ok(p.meta)
    }

    /// Request `idx`'s response is now fully queued: if the request was
    /// stamped when read (metrics on), its latency ends at the next poll,
    /// which flushes it (no clock read per response; see `on_clock`).
    pub(super) fn observe(&mut self, slot: u32, idx: usize) {
        let t0 = self.conn_mut(slot).map_or(0, |h| h.inflight[idx].t0);
        if t0 != 0 {
            self.latency_pending.push(t0);
        }
    }

    /// Answers request `seq` (or the oldest unanswered one) with a complete
    /// response. Responses leave in request order: an early answer waits.
    #[allow(clippy::too_many_arguments)]
    pub fn reply(
        &mut self,
        core: &mut Core,
        slot: u32,
        id: u64,
        seq: u32,
        status: u16,
        flags: u32,
        head: &[u8],
        body: &[u8],
    ) -> Result<(), i32> {
        if !(100..=999).contains(&status) {
            return Err(fail(Status::Invalid, format!("invalid status {status}")));
        }
        let (c, idx) = self.request(core, slot, id, seq)?;
        let meta = self.answer(slot, idx, flags, RespState::Done { held: Vec::new() })?;
        self.awaiting -= 1;
        self.statuses[status_slot(status)] += 1;
        self.observe(slot, idx);
        let (date, date_len) = self.date_line(flags);
        let mut result = Ok(());
        write_response(status, head, body, meta, &date[..date_len], &mut |parts| {
            result = self.emit(core, slot, c, idx, parts);
        });
        result?;
        if idx == 0 {
            self.complete_front(core, slot, c);
        }
        Ok(())
    }

    /// Starts a streamed response to request `seq`: sends the head; the
    /// body follows with [`HttpServer::write`] and [`HttpServer::end`].
    /// With a `length` the body goes out unframed behind a `content-length`.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        &mut self,
        core: &mut Core,
        slot: u32,
        id: u64,
        seq: u32,
        status: u16,
        flags: u32,
        head: &[u8],
        length: Option<u64>,
    ) -> Result<(), i32> {
        if !(200..=999).contains(&status) {
            return Err(fail(Status::Invalid, format!("invalid status {status}")));
        }
        let (c, idx) = self.request(core, slot, id, seq)?;
        let Some(h) = self.conn_mut(slot) else {
            return Err(fail(Status::State, "not an HTTP connection"));
        };
        let framing = StreamFraming::for_response(status, &h.inflight[idx].meta, length.is_some());
        // Without chunked framing the body ends where the connection does.
        let close = if framing == StreamFraming::Close {
            REPLY_CLOSE
        } else {
            0
        };
        let state = RespState::Streaming {
            framing,
            held: Vec::new(),
            left: length.unwrap_or(u64::MAX),
        };
        let meta = self.answer(slot, idx, flags | close, state)?;
        self.statuses[status_slot(status)] += 1;
        let (date, date_len) = self.date_line(flags);
        let mut result = Ok(());
        write_stream_head(
            status,
            head,
            framing,
            length,
            meta,
            &date[..date_len],
            &mut |parts| {
                result = self.emit(core, slot, c, idx, parts);
            },
        );
        result
    }

    /// Sends one piece of a streamed response's body. Returns the bytes
    /// queued for this response that the socket has not taken yet.
    pub fn write(
        &mut self,
        core: &mut Core,
        slot: u32,
        id: u64,
        seq: u32,
        data: &[u8],
    ) -> Result<usize, i32> {
        let (c, idx) = self.request(core, slot, id, seq)?;
        let Some(h) = self.conn_mut(slot) else {
            return Err(fail(Status::State, "not an HTTP connection"));
        };
        let RespState::Streaming { framing, left, .. } = &mut h.inflight[idx].state else {
            return Err(fail(
                Status::State,
                "no streamed response in progress for this request",
            ));
        };
        let framing = *framing;
        if *left != u64::MAX {
            if data.len() as u64 > *left {
                return Err(fail(
                    Status::Invalid,
                    format!(
                        "{} bytes exceed the declared content-length by {}",
                        data.len(),
                        data.len() as u64 - *left
                    ),
                ));
            }
            *left -= data.len() as u64;
        }
        let mut result = Ok(());
        write_chunk(framing, data, &mut |parts| {
            result = self.emit(core, slot, c, idx, parts);
        });
        result?;
        let Some(h) = self.conn_mut(slot) else {
            return Ok(0);
        };
        let held = match &h.inflight[idx].state {
            RespState::Streaming { held, .. } => held.len(),
            _ => 0,
        };
        Ok(held + h.unsent(c))
    }

    /// Ends a streamed response (`close`: close the connection after it).
    pub fn end(&mut self, core: &mut Core, slot: u32, id: u64, seq: u32, close: bool) -> Result<(), i32> {
        let (c, idx) = self.request(core, slot, id, seq)?;
        let Some(h) = self.conn_mut(slot) else {
            return Err(fail(Status::State, "not an HTTP connection"));
        };
        let p = &mut h.inflight[idx];
        let RespState::Streaming { framing, held, left } = &mut p.state else {
            return Err(fail(
                Status::State,
                "no streamed response in progress for this request",
            ));
        };
        let framing = *framing;
        // A sized body that ended short can only be told apart from a
        // complete one by closing the connection.
        let short = framing == StreamFraming::Length && *left != 0;
        let held = std::mem::take(held);
        p.state = RespState::Done { held };
        p.meta.close |= close || short;
        self.awaiting -= 1;
        self.observe(slot, idx);
        let mut result = Ok(());
        write_stream_end(framing, &mut |parts| {
            result = self.emit(core, slot, c, idx, parts);
        });
        result?;
        if idx == 0 {
            self.complete_front(core, slot, c);
        }
        Ok(())
    }

    /// The front response is complete: retire it and every complete one
    /// behind it, move a streamed one's held bytes out, close if asked.
    fn complete_front(&mut self, core: &mut Core, slot: u32, c: *mut sys::mg_connection) {
        let Some(h) = self.conn_mut(slot) else {
            return;
        };
        let mut closing = false;
        let mut first = true;
        while let Some(p) = h.inflight.front_mut() {
            match &mut p.state {
                RespState::Done { held } => {
                    if !first {
                        unsafe { h.out.append(&mut (*c).send, &[held]) };
                    }
                    closing = p.meta.close;
                    h.inflight.pop_front();
                    h.send_seq = h.send_seq.wrapping_add(1);
                    first = false;
                    if closing {
                        break;
                    }
                }
                RespState::Streaming { held, .. } => {
                    unsafe { h.out.append(&mut (*c).send, &[held]) };
                    *held = Vec::new();
                    break;
                }
                RespState::Waiting => break,
            }
        }
        if closing {
            h.close_when_sent = true;
            h.parser.stop();
            self.drop_inflight(slot);
        }
        core.mark_dirty(slot);
        self.send_continue_if_due(core, slot);
        if let Some(h) = self.conn_mut(slot) {
            if h.paused && !closing && h.unsent(c) < SEND_HIGH_WATER {
                h.paused = false;
                self.drive(core, slot);
            }
        }
    }

    /// Asks for a DRAIN event once the response to `seq` is the one being
    /// sent and at most `threshold` bytes of output remain queued. Returns
    /// the bytes queued now, or 0 if that is already the case (no event).
    pub fn want_drain(
        &mut self,
        core: &mut Core,
        slot: u32,
        id: u64,
        seq: u32,
        threshold: usize,
    ) -> Result<usize, i32> {
        let (c, h) = self.live(core, slot, id)?;
        // A response already complete counts as the front one.
        let idx = (seq.wrapping_sub(h.send_seq) as i32).max(0) as usize;
        let sent = h.unsent(c);
        let queued = match h.inflight.get(idx).map(|p| &p.state) {
            Some(RespState::Streaming { held, .. }) if idx > 0 => held.len() + sent,
            _ => sent,
        };
        if idx == 0 && queued <= threshold {
            return Ok(0);
        }
        h.drain_at = Some((seq, threshold));
        Ok(queued.max(1))
    }
}
