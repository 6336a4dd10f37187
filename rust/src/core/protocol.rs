//! The seam between the core and the protocols.
//!
//! A protocol (HTTP server, HTTP client, later WebSocket, MQTT, raw TCP) is
//! a type implementing [`Protocol`], registered once per manager with
//! [`Core::register`], which returns its index. Listeners and outbound
//! connections name that index; the core remembers it per slot and calls
//! the protocol for every Mongoose event of those connections.
//!
//! The core keeps only generic facts per slot (id, `mg_connection`, role,
//! protocol index, dirty, lingering). A protocol owns its per-connection
//! state (typically a `Vec<Option<..>>` indexed by slot, filled in
//! `on_accept`/`on_connect`, emptied in `on_closed`) and its per-manager
//! state (limits, caches, counters).
//!
//! To call a protocol the core takes it out of its registry, calls it with
//! `&mut Core` and puts it back, so a protocol may use every core service
//! (events, `mark_dirty`, `linger`, `conn`...). This works because protocol
//! code never runs Mongoose's poll; it must not call [`Core::flush`],
//! [`Core::poll`] or [`Core::close`] either (they call protocols).
//!
//! Adding a protocol: a new folder beside `http/` with an `impl Protocol`,
//! one `register` line in the top-level `manager.rs` (and a URL scheme
//! there if it listens), its exports in `lib.rs`. Nothing in `core/` changes.

use std::any::Any;

use super::manager::Core;
use super::metrics::{Family, Stamp};

/// What a protocol does with its connections. `slot` is the core's slot
/// number; `core.slot_conn(slot)` gives the connection's id and pointer.
pub trait Protocol {
    /// A listener of this protocol accepted connection `slot` (the core
    /// already queued its OPEN record): create per-connection state.
    fn on_accept(&mut self, core: &mut Core, slot: u32);

    /// An outbound connection of this protocol was created in `slot`
    /// (OPEN follows once it connects): create per-connection state.
    fn on_connect(&mut self, core: &mut Core, slot: u32) {
        let _ = (core, slot);
    }

    /// Bytes wait in the connection's receive buffer. For a datagram
    /// socket ([`Core::bind_datagram`]): the socket is readable and Mongoose
    /// did not read it; the protocol reads it (until EAGAIN, or a budget:
    /// epoll reports it again while datagrams wait).
    fn on_read(&mut self, core: &mut Core, slot: u32);

    /// Some queued output left (after a flush or Mongoose's write); also
    /// called for a dirty connection whose flush had nothing to send (a
    /// dirty datagram socket: the protocol sends what it queued).
    fn on_sent(&mut self, core: &mut Core, slot: u32);

    /// JS asked to close the connection (`drain`: send what is queued
    /// first). Returns true if the protocol handled it; otherwise the core
    /// sets Mongoose's `is_draining` (drain) or `is_closing`.
    fn on_close_request(&mut self, core: &mut Core, slot: u32, drain: bool) -> bool {
        let _ = (core, slot, drain);
        false
    }

    /// The peer ended its side of a connection that takes half-closes
    /// ([`Core::take_half_close`]); reading has stopped. By default the
    /// connection closes, as Mongoose does at an end of stream.
    fn on_peer_end(&mut self, core: &mut Core, slot: u32) {
        let (_, c) = core.slot_conn(slot);
        unsafe { (*c).set_is_closing(1) };
        core.request_poll();
    }

    /// One step of a graceful shutdown (listeners are closed by the core).
    /// Returns whether the connection counts as still open.
    fn on_shutdown(&mut self, core: &mut Core, slot: u32) -> bool {
        let _ = (core, slot);
        false
    }

    /// The connection is about to go: its CLOSE record comes next, so this
    /// is the protocol's last chance to queue records of its own.
    fn before_close(&mut self, core: &mut Core, slot: u32) {
        let _ = (core, slot);
    }

    /// The connection is gone (its CLOSE record is queued): drop its state.
    fn on_closed(&mut self, core: &mut Core, slot: u32);

    /// A deadline set with [`Core::set_deadline`] passed.
    fn on_deadline(&mut self, core: &mut Core, slot: u32) {
        let _ = (core, slot);
    }

    /// A Mongoose poll is about to run (refresh per-poll caches).
    fn on_poll(&mut self) {}

    /// While metrics are on, just before the core flushes what is queued
    /// (at the start and end of each poll, and when JS asks for a flush):
    /// `now` gives the time (read once, and only if a protocol asks).
    fn on_clock(&mut self, now: &mut Stamp) {
        let _ = now;
    }

    /// Requests handed to JS not yet answered (the loop bridges short gaps
    /// in traffic synchronously only while this is 0 everywhere).
    fn awaiting(&self) -> usize {
        0
    }

    /// The protocol's metric families (its own counters), in the order
    /// [`Protocol::read_metrics`] writes them.
    fn metric_families(&self) -> Vec<Family> {
        Vec::new()
    }

    /// Appends one value per slot of each of its metric families.
    fn read_metrics(&self, out: &mut Vec<f64>) {
        let _ = out;
    }

    /// For typed access from above ([`Core::with_protocol`]).
    fn as_any_mut(&mut self) -> &mut dyn Any;
}
