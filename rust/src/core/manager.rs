//! The core: one Mongoose manager, its connections (slots) and the batched
//! event loop, knowing no protocol.
//!
//! Ownership: the JS thread that created a manager is the only one that
//! touches it. Waiting for I/O happens on another thread (Deno's
//! `nonblocking` FFI call) but only through `poll(2)` on the epoll fd, which
//! reads no Mongoose state, so JS can reply and flush while a wait is in
//! progress.
//!
//! Re-entrancy: `mg_mgr_poll`, `mg_listen`, `mg_connect` and `mg_mgr_free`
//! call back into `on_conn`/`on_listener`, which reach the core through
//! the raw pointer in `fn_data`. Functions that call into Mongoose therefore
//! take `*mut Core` and hold no `&mut Core` across the call.
//!
//! Protocols (see `protocol.rs`) are called through `Core::dispatch`: the
//! protocol is taken out of the registry for the call, so it gets
//! `&mut Core` without aliasing itself.

use std::any::Any;
use std::cell::Cell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::ffi::{c_int, c_void, CStr};
use std::ptr;

use super::error::{fail, Status};
use super::event::EventBuf;
use super::metrics::{Family, Kind, Stamp};
use super::outbound::connect_errno;
use super::protocol::Protocol;
use super::sys_io::{
    epoll_mode, has_fins, iobuf_consume, set_read_paused, sys_send, take_fins, take_half_close, DATA_FIN,
    DATA_LEVEL,
};
use super::transport::{self, Transport};
use crate::sys;

/// Most extra Mongoose polls one `poll()` runs while each accepts a
/// connection (Mongoose accepts one per listener per poll).
const ACCEPT_POLLS: u32 = 128;
/// A closing connection waits this long for the peer's FIN after ours, so
/// the last response is not destroyed by a reset (RFC 9112 9.6).
const LINGER_MS: u64 = 2000;
/// The longest a wait sleeps without a timer due (Mongoose polls its DNS and
/// other internal timeouts from the loop).
const MAX_WAIT_MS: i32 = 1000;

/// `fn_data` of a listener; accepted connections find their listener here.
struct ListenerInfo {
    core: *mut Core,
    proto: usize,
    id: u64,
    /// Started on every accepted connection (TLS), if any.
    transport: Option<Box<dyn Transport>>,
}

/// What a slot holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Free,
    Listener,
    /// Accepted by a listener (edge-triggered unless TLS).
    Accepted,
    /// Opened by [`Core::connect`].
    Outbound,
    /// A bound datagram socket ([`Core::bind_datagram`]): its protocol reads
    /// the socket itself (`Protocol::on_read`), Mongoose never does.
    Datagram,
}

struct Slot {
    /// Mongoose connection id; 0 while the slot is free.
    id: u64,
    c: *mut sys::mg_connection,
    role: Role,
    /// Index of the connection's protocol in the registry.
    proto: usize,
    dirty: bool,
    lingering: bool,
    /// The connection takes half-closes (see [`Core::take_half_close`]).
    half_close: bool,
    /// Id of the listener that accepted the connection (0: none).
    listener: u64,
    /// Closed by [`Core::close_quietly`]: no CLOSE record.
    quiet: bool,
    /// The slot's protocol deadline (Mongoose ms), see [`Core::set_deadline`].
    deadline: Option<u64>,
    /// Transport of an outbound connection (started once it connects).
    tls: Option<Box<dyn Transport>>,
    /// A TLS upgrade ([`Core::start_tls`]) is under way: its end is a
    /// SECURE record.
    upgrading: bool,
}

/// Counters since the manager was created (`mgnet_stats`).
#[derive(Default, Clone, Copy)]
pub struct Stats {
    /// Polls that gathered a batch of events for JS (each may run several
    /// Mongoose polls while connections are being accepted).
    pub polls: u64,
    /// Connections accepted by listeners.
    pub accepted: u64,
    /// Stream connections (accepted and outbound) open now.
    pub open: u64,
    /// Stream connections closed.
    pub closed: u64,
    /// Bytes read from stream connections (after TLS).
    pub bytes_in: u64,
    /// Bytes written to stream connections (before TLS).
    pub bytes_out: u64,
}

/// A Mongoose manager plus the generic state around it.
pub struct Core {
    mgr: sys::mg_mgr,
    slots: Vec<Slot>,
    free: Vec<u32>,
    pub events: EventBuf,
    dirty: Vec<u32>,
    lingering: Vec<(u32, u64, u64)>,
    /// Connections to close (draining) at the start of the next poll.
    close_soon: Vec<(u32, u64)>,
    /// Protocol deadlines, earliest first: (due ms, slot, id). An entry is
    /// live only while it matches the slot's `deadline` and id; replaced or
    /// cleared ones stay until they come up (see [`Core::set_deadline`]).
    deadlines: BinaryHeap<Reverse<(u64, u32, u64)>>,
    /// Slots whose `deadline` is set.
    live_deadlines: usize,
    /// Boxed: each is a listener's `fn_data`, so its address must not move.
    #[allow(clippy::vec_box)]
    listeners: Vec<Box<ListenerInfo>>,
    /// Registered protocols; `None` only while one is being called.
    protocols: Vec<Option<Box<dyn Protocol>>>,
    wake_tx: c_int,
    wake_pending: bool,
    /// An error Mongoose reported for a connection inside `mg_connect`,
    /// before `connect` could register it (e.g. an unreachable address).
    early_error: Option<Vec<u8>>,
    needs_poll: bool,
    /// A listener accepted a connection during the current Mongoose poll.
    accepted: bool,
    /// Counters for `mgnet_stats` and the metrics.
    pub stats: Stats,
    /// Metrics are on: protocols read the clock for latencies.
    pub metrics_on: bool,
    /// While metrics are on and a poll runs: the poll's time (0 until it is
    /// first needed; [`Core::metrics_stamp`]).
    poll_ns: Cell<u64>,
    /// A poll is running (its requests share one timestamp).
    in_poll: bool,
    /// Occupied slots (listeners and connections), for [`Core::refs`].
    live_slots: usize,
    /// Other reasons to keep the loop waiting natively, held by what sits
    /// above the core ([`Core::hold`]).
    holds: usize,
}

/// Mongoose's monotonic clock in milliseconds.
pub fn now_ms() -> u64 {
    unsafe { sys::mg_millis() }
}

unsafe fn slot_of(c: *mut sys::mg_connection) -> u32 {
    u32::from_ne_bytes([
        (*c).data[0] as u8,
        (*c).data[1] as u8,
        (*c).data[2] as u8,
        (*c).data[3] as u8,
    ])
}

unsafe fn set_slot_of(c: *mut sys::mg_connection, slot: u32) {
    for (i, b) in slot.to_ne_bytes().iter().enumerate() {
        (*c).data[i] = *b as _;
    }
}

/// An address as the 16 bytes of an OPEN record (IPv4 in the first 4).
pub(super) unsafe fn addr_bytes(a: &sys::mg_addr) -> [u8; 16] {
    let mut out = [0u8; 16];
    if a.is_ip6 {
        out.copy_from_slice(&a.addr.ip);
    } else {
        out[..4].copy_from_slice(&a.addr.ip[..4]);
    }
    out
}

/// Puts a protocol taken out of the registry back, also when the call
/// panicked (the panic is caught further up; the manager stays usable).
struct Lease<'a> {
    core: &'a mut Core,
    idx: usize,
    proto: Option<Box<dyn Protocol>>,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(p) = self.proto.take() {
            self.core.protocols[self.idx] = Some(p);
        }
    }
}

impl Core {
    /// Creates a manager with its wake-up socket in the poll set.
    pub fn new() -> Result<Box<Core>, String> {
        let mut fds = [0 as c_int; 2];
        let rc = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        };
        if rc != 0 {
            return Err(format!("socketpair: {}", std::io::Error::last_os_error()));
        }
        let mut m = Box::new(Core {
            mgr: sys::mg_mgr::default(),
            slots: Vec::new(),
            free: Vec::new(),
            events: EventBuf::default(),
            dirty: Vec::new(),
            lingering: Vec::new(),
            close_soon: Vec::new(),
            deadlines: BinaryHeap::new(),
            live_deadlines: 0,
            listeners: Vec::new(),
            protocols: Vec::new(),
            wake_tx: fds[1],
            wake_pending: false,
            early_error: None,
            needs_poll: false,
            accepted: false,
            stats: Stats::default(),
            metrics_on: false,
            poll_ns: Cell::new(0),
            in_poll: false,
            live_slots: 0,
            holds: 0,
        });
        let this: *mut Core = &mut *m;
        super::outbound::set_wall_clock();
        unsafe {
            sys::mg_mgr_init(ptr::addr_of_mut!((*this).mgr));
            if (*this).mgr.epoll_fd < 0 {
                sys::mg_mgr_free(ptr::addr_of_mut!((*this).mgr));
                libc::close(fds[0]);
                libc::close(fds[1]);
                return Err("epoll_create failed".into());
            }
            let wc = sys::mg_wrapfd(
                ptr::addr_of_mut!((*this).mgr),
                fds[0],
                Some(on_wake),
                this as *mut c_void,
            );
            if wc.is_null() {
                sys::mg_mgr_free(ptr::addr_of_mut!((*this).mgr));
                libc::close(fds[0]);
                libc::close(fds[1]);
                return Err("out of memory".into());
            }
        }
        Ok(m)
    }

    /// Frees the manager: closes every connection (their CLOSE records are
    /// never delivered) and drops the protocols.
    ///
    /// # Safety
    /// `this` comes from `Box::into_raw` of a live core; nothing else
    /// refers to it afterwards.
    pub unsafe fn destroy(this: *mut Core) {
        sys::mg_mgr_free(ptr::addr_of_mut!((*this).mgr));
        libc::close((*this).wake_tx);
        drop(Box::from_raw(this));
    }

    /// Adds a protocol; returns the index listeners and connections use.
    pub fn register(&mut self, p: Box<dyn Protocol>) -> usize {
        self.protocols.push(Some(p));
        self.protocols.len() - 1
    }

    /// Calls protocol `idx` with this core (taken out of the registry for
    /// the call). Does nothing if it is already being called.
    fn dispatch(&mut self, idx: usize, f: impl FnOnce(&mut dyn Protocol, &mut Core)) {
        let proto = self.protocols.get_mut(idx).and_then(Option::take);
        let mut lease = Lease {
            core: self,
            idx,
            proto,
        };
        if let Some(p) = lease.proto.as_deref_mut() {
            f(p, lease.core);
        }
    }

    /// Typed access to protocol `idx` (for the exports): calls `f` with it
    /// and this core.
    ///
    /// # Panics
    /// If `idx` is not a registered `P` or that protocol is in a call.
    pub fn with_protocol<P: Any, R>(&mut self, idx: usize, f: impl FnOnce(&mut P, &mut Core) -> R) -> R {
        let proto = self.protocols.get_mut(idx).and_then(Option::take);
        let mut lease = Lease {
            core: self,
            idx,
            proto,
        };
        let p = lease
            .proto
            .as_deref_mut()
            .expect("protocol registered and not in a call")
            .as_any_mut()
            .downcast_mut::<P>()
            .expect("protocol of the requested type");
        f(p, lease.core)
    }

    pub fn epoll_fd(&self) -> c_int {
        self.mgr.epoll_fd
    }

    fn alloc_slot(&mut self, id: u64, c: *mut sys::mg_connection, role: Role, proto: usize) -> u32 {
        let slot = Slot {
            id,
            c,
            role,
            proto,
            dirty: false,
            lingering: false,
            half_close: false,
            listener: 0,
            quiet: false,
            deadline: None,
            tls: None,
            upgrading: false,
        };
        self.live_slots += 1;
        if matches!(role, Role::Accepted | Role::Outbound) {
            self.stats.open += 1;
        }
        match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = slot;
                i
            }
            None => {
                self.slots.push(slot);
                (self.slots.len() - 1) as u32
            }
        }
    }

    fn release_slot(&mut self, i: u32) {
        let s = &mut self.slots[i as usize];
        if matches!(s.role, Role::Accepted | Role::Outbound) {
            self.stats.open -= 1;
            self.stats.closed += 1;
        }
        s.id = 0;
        s.c = ptr::null_mut();
        s.role = Role::Free;
        s.lingering = false;
        s.half_close = false;
        s.listener = 0;
        s.tls = None;
        s.upgrading = false;
        if s.deadline.take().is_some() {
            self.live_deadlines -= 1;
        }
        self.free.push(i);
        self.live_slots -= 1;
    }

    /// The Mongoose manager, for facilities built on its own lists (its
    /// timers). Never hand it to `mg_mgr_poll` or `mg_mgr_free`.
    pub fn mgr_ptr(&mut self) -> *mut sys::mg_mgr {
        ptr::addr_of_mut!(self.mgr)
    }

    /// Reasons to keep waiting natively: listeners and connections, plus
    /// the holds taken with [`Core::hold`]. While this is 0 the loop above
    /// may wait in a way that does not keep the process alive.
    pub fn refs(&self) -> usize {
        self.live_slots + self.holds
    }

    /// Takes (`true`) or gives back (`false`) one hold on the loop.
    pub fn hold(&mut self, take: bool) {
        if take {
            self.holds += 1;
        } else {
            self.holds = self.holds.saturating_sub(1);
        }
    }

    /// A new descriptor of the wake-up socket, for another thread to write
    /// one byte to (with `MSG_DONTWAIT | MSG_NOSIGNAL`) when this loop must
    /// wake. The caller owns and closes it; it stays valid (writes fail with
    /// `EPIPE`) after the core is freed.
    pub fn dup_wake_fd(&self) -> c_int {
        unsafe { libc::fcntl(self.wake_tx, libc::F_DUPFD_CLOEXEC, 0) }
    }

    /// The metric families of the core (connections, bytes, polls) and of
    /// every registered protocol, in the order [`Core::read_metrics`]
    /// writes them.
    pub fn metric_families(&self) -> Vec<Family> {
        let mut f = vec![
            Family::one(
                "mgnet_connections_open",
                Kind::Gauge,
                "Stream connections open now (accepted and outbound).",
            ),
            Family::one(
                "mgnet_connections_accepted_total",
                Kind::Counter,
                "Connections accepted by listeners.",
            ),
            Family::one(
                "mgnet_connections_closed_total",
                Kind::Counter,
                "Stream connections closed.",
            ),
            Family::one(
                "mgnet_received_bytes_total",
                Kind::Counter,
                "Bytes read from stream connections (after TLS).",
            ),
            Family::one(
                "mgnet_sent_bytes_total",
                Kind::Counter,
                "Bytes written to stream connections (before TLS).",
            ),
            Family::one(
                "mgnet_polls_total",
                Kind::Counter,
                "Polls that gathered a batch of events.",
            ),
        ];
        for p in self.protocols.iter().flatten() {
            f.extend(p.metric_families());
        }
        f
    }

    /// Appends the values of [`Core::metric_families`].
    pub fn read_metrics(&self, out: &mut Vec<f64>) {
        let s = &self.stats;
        for v in [s.open, s.accepted, s.closed, s.bytes_in, s.bytes_out, s.polls] {
            out.push(v as f64);
        }
        for p in self.protocols.iter().flatten() {
            p.read_metrics(out);
        }
    }

    /// When metrics are on, a timestamp ([`now_ns`](super::metrics::now_ns))
    /// for an event read now: the start of the current poll inside one (no
    /// clock read per event), the clock otherwise. 0 while metrics are off.
    /// The clock is read at most once per poll, and only if asked.
    pub fn metrics_stamp(&self) -> u64 {
        if !self.metrics_on {
            return 0;
        }
        if !self.in_poll {
            return super::metrics::now_ns();
        }
        let mut t = self.poll_ns.get();
        if t == 0 {
            t = super::metrics::now_ns();
            self.poll_ns.set(t);
        }
        t
    }

    /// Requests handed to JS and not yet answered, over all protocols.
    pub fn awaiting(&self) -> usize {
        self.protocols.iter().flatten().map(|p| p.awaiting()).sum()
    }

    /// The live connection in `slot` if it still has id `id`.
    pub fn conn(&self, slot: u32, id: u64) -> Result<*mut sys::mg_connection, i32> {
        let c = self.conn_even_closing(slot, id)?;
        if unsafe { (*c).is_closing() } != 0 {
            return Err(fail(Status::Closed, format!("connection {id} is closing")));
        }
        Ok(c)
    }

    /// Starts TLS on an open connection (STARTTLS: after a plaintext
    /// exchange), as client or server per `transport`. What was queued is
    /// written first; if the socket does not take all of it, nothing
    /// changes and the caller must wait for it to drain (`State`). Input
    /// received and not yet handed to the protocol is dropped: a peer must
    /// not get plaintext injected after the point of the upgrade. A SECURE
    /// record ends the handshake (with the reason, if it failed).
    pub fn start_tls(&mut self, slot: u32, id: u64, transport: &dyn Transport) -> Result<(), i32> {
        let c = self.conn(slot, id)?;
        let role = self.slots[slot as usize].role;
        unsafe {
            if !matches!(role, Role::Accepted | Role::Outbound) || (*c).is_connecting() != 0 {
                return Err(fail(Status::State, "startTls() needs an open stream connection"));
            }
            if (*c).is_tls() != 0 || self.slots[slot as usize].upgrading {
                return Err(fail(Status::State, "the connection already has TLS"));
            }
            self.flush_queued();
            if (*c).send.len > 0 {
                self.needs_poll = true;
                return Err(fail(
                    Status::State,
                    format!(
                        "{} bytes are still queued: await drain() before startTls()",
                        (*c).send.len
                    ),
                ));
            }
            (*c).recv.len = 0;
            transport
                .start(c)
                .map_err(|e| fail(Status::Invalid, format!("TLS: {e}")))?;
            if role == Role::Accepted {
                // TLS reads one record buffer per readable event: as for
                // accepted TLS connections, level-triggered.
                epoll_mode(c, false);
            }
            self.slots[slot as usize].upgrading = true;
            // A client speaks first (ClientHello); a server waits for it.
            sys::mg_tls_handshake(c);
        }
        self.needs_poll = true;
        Ok(())
    }

    /// The connection in `slot` if it still has id `id`, closing or not (for
    /// reads of state that stays valid until the close, such as TLS details).
    pub fn conn_even_closing(&self, slot: u32, id: u64) -> Result<*mut sys::mg_connection, i32> {
        match self.slots.get(slot as usize) {
            Some(s) if s.id == id && id != 0 => Ok(s.c),
            _ => Err(fail(Status::Closed, format!("connection {id} is closed"))),
        }
    }

    /// The id and connection of an occupied slot (for protocol calls,
    /// whose slot the core vouches for).
    pub fn slot_conn(&self, slot: u32) -> (u64, *mut sys::mg_connection) {
        let s = &self.slots[slot as usize];
        (s.id, s.c)
    }

    /// True once the slot's connection is in its lingering close.
    pub fn is_lingering(&self, slot: u32) -> bool {
        self.slots[slot as usize].lingering
    }

    /// The protocol index of the live connection (`slot`, `id`).
    pub fn proto_of(&self, slot: u32, id: u64) -> Result<usize, i32> {
        self.conn_even_closing(slot, id)?;
        Ok(self.slots[slot as usize].proto)
    }

    /// What the slot holds.
    pub fn role(&self, slot: u32) -> Role {
        self.slots.get(slot as usize).map_or(Role::Free, |s| s.role)
    }

    /// Id of the listener that accepted the connection in `slot` (0 for an
    /// outbound one).
    pub fn slot_listener(&self, slot: u32) -> u64 {
        self.slots[slot as usize].listener
    }

    /// Half-close, for a protocol that wants it (a facility of the core,
    /// knowing no protocol): the peer's end of stream no longer closes the
    /// connection. Reading stops (so level-triggered epoll does not report
    /// the end again and again) and the protocol's
    /// [`Protocol::on_peer_end`] decides what follows; the connection may
    /// go on writing. Call it from `on_accept`/`on_connect`.
    pub fn take_half_close(&mut self, slot: u32) {
        let s = &mut self.slots[slot as usize];
        s.half_close = true;
        let fd = unsafe { (*s.c).fd as usize as c_int };
        take_half_close(fd, Some(slot));
    }

    /// Hands the ends of stream `mgnet_sys_recv` recorded during the last
    /// Mongoose poll to the connections' protocols.
    fn peer_ends(&mut self) {
        if !has_fins() {
            return;
        }
        for (fd, slot) in take_fins() {
            let Some(s) = self.slots.get(slot as usize) else {
                continue;
            };
            if s.id == 0 || !s.half_close || unsafe { (*s.c).fd as usize as c_int } != fd {
                continue;
            }
            let (c, proto) = (s.c, s.proto);
            unsafe { set_read_paused(c, true) };
            self.dispatch(proto, |p, core| p.on_peer_end(core, slot));
        }
    }

    /// Starts listening on `url` (`scheme://host:port`, the scheme already
    /// mapped to protocol `proto` by the caller). Returns (slot, id, port).
    ///
    /// # Safety
    /// `this` is a live core, no `&mut` to it is held.
    pub unsafe fn listen(this: *mut Core, url: &str, proto: usize) -> Result<(u32, u64, u16), i32> {
        let rest = url.split_once("://").map_or("", |(_, r)| r);
        if rest.is_empty() || rest.contains('/') && !rest.ends_with('/') {
            return Err(fail(Status::Invalid, format!("invalid listen URL {url:?}")));
        }
        let curl = std::ffi::CString::new(format!("tcp://{}", rest.trim_end_matches('/')))
            .map_err(|_| fail(Status::Invalid, "listen URL contains NUL"))?;
        let mut info = Box::new(ListenerInfo {
            core: this,
            proto,
            id: 0,
            transport: None,
        });
        let info_ptr: *mut ListenerInfo = &mut *info;
        (*this).listeners.push(info);
        // errno is meaningful only if mg_listen fails in socket/bind/listen.
        *libc::__errno_location() = 0;
        let c = sys::mg_listen(
            ptr::addr_of_mut!((*this).mgr),
            curl.as_ptr(),
            Some(on_listener),
            info_ptr as *mut c_void,
        );
        if c.is_null() {
            let err = std::io::Error::last_os_error();
            (*this).listeners.pop();
            let why = if err.raw_os_error().unwrap_or(0) != 0 {
                err.to_string()
            } else {
                "invalid address".to_string()
            };
            return Err(fail(Status::Io, format!("cannot listen on {url}: {why}")));
        }
        let id = (*c).id;
        (*info_ptr).id = id;
        let m = &mut *this;
        let slot = m.alloc_slot(id, c, Role::Listener, proto);
        set_slot_of(c, slot);
        Ok((slot, id, u16::from_be((*c).loc.port)))
    }

    /// Sets (or replaces: new connections get it, open ones keep theirs) the
    /// transport a listener starts on every connection it accepts.
    pub fn set_listener_transport(&mut self, slot: u32, id: u64, t: Box<dyn Transport>) -> Result<(), i32> {
        self.listener_info(slot, id)?.transport = Some(t);
        Ok(())
    }

    /// The transport of a listener, for typed access.
    pub fn listener_transport(
        &mut self,
        slot: u32,
        id: u64,
    ) -> Result<Option<&mut (dyn Transport + 'static)>, i32> {
        Ok(self.listener_info(slot, id)?.transport.as_deref_mut())
    }

    fn listener_info(&mut self, slot: u32, id: u64) -> Result<&mut ListenerInfo, i32> {
        self.conn(slot, id)?;
        if self.slots[slot as usize].role != Role::Listener {
            return Err(fail(
                Status::Invalid,
                format!("connection {id} is not a listener"),
            ));
        }
        self.listeners
            .iter_mut()
            .find(|l| l.id == id)
            .map(|l| &mut **l)
            .ok_or_else(|| fail(Status::Closed, format!("listener {id} is closed")))
    }

    /// Binds a datagram socket on `url` (`udp://host:port`) for protocol
    /// `proto`. Mongoose owns the socket (epoll registration, close) but
    /// never reads it: when it is readable the protocol's `on_read` runs
    /// and reads the socket itself (Mongoose would read one datagram per
    /// poll into a fixed buffer). No OPEN record; ERROR and CLOSE as for
    /// any connection. Returns (slot, id, port).
    ///
    /// # Safety
    /// `this` is a live core, no `&mut` to it is held.
    pub unsafe fn bind_datagram(this: *mut Core, url: &str, proto: usize) -> Result<(u32, u64, u16), i32> {
        let rest = url.strip_prefix("udp://").unwrap_or("");
        if rest.is_empty() || rest.contains('/') {
            return Err(fail(Status::Invalid, format!("invalid datagram URL {url:?}")));
        }
        let curl = std::ffi::CString::new(url).map_err(|_| fail(Status::Invalid, "URL contains NUL"))?;
        *libc::__errno_location() = 0;
        let c = sys::mg_listen(
            ptr::addr_of_mut!((*this).mgr),
            curl.as_ptr(),
            Some(on_datagram),
            this as *mut c_void,
        );
        if c.is_null() {
            let err = std::io::Error::last_os_error();
            let why = if err.raw_os_error().unwrap_or(0) != 0 {
                err.to_string()
            } else {
                "invalid address".to_string()
            };
            return Err(fail(Status::Io, format!("cannot bind {url}: {why}")));
        }
        let m = &mut *this;
        let id = (*c).id;
        let slot = m.alloc_slot(id, c, Role::Datagram, proto);
        set_slot_of(c, slot);
        Ok((slot, id, u16::from_be((*c).loc.port)))
    }

    /// Connects to `addr` (`tcp://IP:port`, `tcp://[IPv6]:port`) for
    /// protocol `proto`, with TLS if `tls` is given. Returns (slot, id);
    /// OPEN (listener id 0) or ERROR/CLOSE records follow.
    ///
    /// # Safety
    /// `this` is a live core, no `&mut` to it is held.
    pub unsafe fn connect(
        this: *mut Core,
        addr: &str,
        tls: Option<Box<dyn Transport>>,
        proto: usize,
    ) -> Result<(u32, u64), i32> {
        if !addr.starts_with("tcp://") {
            return Err(fail(Status::Invalid, format!("invalid address {addr:?}")));
        }
        let caddr =
            std::ffi::CString::new(addr).map_err(|_| fail(Status::Invalid, "address contains NUL"))?;
        (*this).early_error = None;
        *libc::__errno_location() = 0;
        let c = sys::mg_connect(
            ptr::addr_of_mut!((*this).mgr),
            caddr.as_ptr(),
            Some(on_conn),
            this as *mut c_void,
        );
        let early = (*this).early_error.take();
        if c.is_null() {
            let why = early.map(|e| String::from_utf8_lossy(&e).into_owned());
            return Err(fail(
                Status::Io,
                format!(
                    "cannot connect to {addr}: {}",
                    why.as_deref().unwrap_or("out of memory")
                ),
            ));
        }
        let m = &mut *this;
        let id = (*c).id;
        let slot = m.alloc_slot(id, c, Role::Outbound, proto);
        m.slots[slot as usize].tls = tls;
        set_slot_of(c, slot);
        if let Some(why) = early {
            // Ahead of the CLOSE that Mongoose's next poll brings.
            m.events.error(id, slot, &why);
        }
        m.dispatch(proto, |p, core| p.on_connect(core, slot));
        m.needs_poll = true;
        Ok((slot, id))
    }

    /// Sends what replies put into send buffers, runs one non-blocking
    /// Mongoose poll if no events are waiting, sends again. Returns the
    /// number of event bytes ready.
    ///
    /// # Safety
    /// `this` is a live core, no `&mut` to it is held.
    pub unsafe fn poll(this: *mut Core) -> usize {
        if (*this).metrics_on {
            // One clock read at most, and only if needed: it ends the
            // latencies of the responses completed since the last flush
            // (flushed now) and starts those of the requests this poll
            // reads (read lazily otherwise, see `metrics_stamp`).
            let mut now = Stamp::default();
            (*this).clock_tick(&mut now);
            (*this).poll_ns.set(now.peek());
            (*this).in_poll = true;
        }
        (*this).flush_queued();
        if !(*this).close_soon.is_empty() {
            for (slot, id) in std::mem::take(&mut (*this).close_soon) {
                let _ = (*this).close(slot, id, true); // already gone: nothing to do
            }
        }
        if (*this).events.is_empty() {
            (*this).needs_poll = false;
            for p in (*this).protocols.iter_mut().flatten() {
                p.on_poll();
            }
            (*this).accepted = false;
            (*this).stats.polls += 1;
            // Deadlines first: one set during the previous poll (due "now")
            // runs after JS handled that poll's events.
            (*this).expire_deadlines();
            transport::take_pending();
            sys::mg_mgr_poll(ptr::addr_of_mut!((*this).mgr), 0);
            (*this).peer_ends();
            // Mongoose accepts one connection per listener per poll. A burst
            // of connections (every client of a load test connecting at once)
            // then waited one JS batch per connection: the last of 100 was
            // accepted ~600 ms after it connected. Poll again while polls
            // accept, up to a bound.
            let mut extra = 0;
            while (*this).accepted && extra < ACCEPT_POLLS {
                (*this).accepted = false;
                sys::mg_mgr_poll(ptr::addr_of_mut!((*this).mgr), 0);
                (*this).peer_ends();
                extra += 1;
            }
            let m = &mut *this;
            m.expire_lingering();
            // Responses completed inside this poll (native answers) leave
            // now: with metrics on, a clock read only if there are some.
            m.flush();
        }
        (*this).poll_ns.set(0);
        (*this).in_poll = false;
        (*this).events.len()
    }

    /// Milliseconds a wait may sleep before the next poll is due.
    pub fn next_timeout(&self) -> i32 {
        if !self.events.is_empty() || self.needs_poll || !self.dirty.is_empty() || transport::pending() {
            return 0;
        }
        let now = now_ms();
        let mut due = now + MAX_WAIT_MS as u64;
        let mut t = self.mgr.timers;
        while !t.is_null() {
            unsafe {
                due = due.min((*t).expire);
                t = (*t).next;
            }
        }
        for &(_, _, deadline) in &self.lingering {
            due = due.min(deadline);
        }
        if let Some(&Reverse((deadline, _, _))) = self.deadlines.peek() {
            // Maybe a stale entry: then the wait ends early, once.
            due = due.min(deadline);
        }
        due.saturating_sub(now) as i32
    }

    /// Closes the connection in `slot` (draining, as `close(.., true)`) at
    /// the start of the next poll: after JS has read the batch being made
    /// now and the output it queued meanwhile was flushed. For a protocol
    /// that fails a connection while records of it are still on their way
    /// to JS (which may answer them).
    pub fn close_soon(&mut self, slot: u32) {
        let id = self.slots[slot as usize].id;
        self.close_soon.push((slot, id));
        self.needs_poll = true;
    }

    /// The next wait must not sleep: a poll is due (e.g. Mongoose must
    /// register a socket for EPOLLOUT, or close one).
    pub fn request_poll(&mut self) {
        self.needs_poll = true;
    }

    /// Makes a pending or future `poll(2)` on the epoll fd return.
    pub fn wake(&mut self) {
        if !self.wake_pending {
            self.wake_pending = true;
            unsafe {
                libc::send(
                    self.wake_tx,
                    b"w".as_ptr() as *const c_void,
                    1,
                    libc::MSG_DONTWAIT,
                );
            }
        }
    }

    /// The connection in `slot` has output to send on the next flush.
    pub fn mark_dirty(&mut self, slot: u32) {
        let s = &mut self.slots[slot as usize];
        if !s.dirty {
            s.dirty = true;
            self.dirty.push(slot);
        }
    }

    /// Writes every dirty connection's send buffer to its socket now instead
    /// of on the next poll (saves Mongoose's EPOLLOUT round trip). What the
    /// socket does not take stays for Mongoose to send when writable.
    ///
    /// With metrics on, protocols first see the time ([`Protocol::on_clock`],
    /// read only if one asks): what leaves now was complete by then.
    pub fn flush(&mut self) {
        if self.metrics_on {
            self.clock_tick(&mut Stamp::default());
        }
        self.flush_queued();
    }

    /// Hands `now` to every protocol ([`Protocol::on_clock`]).
    fn clock_tick(&mut self, now: &mut Stamp) {
        for p in self.protocols.iter_mut().flatten() {
            p.on_clock(now);
        }
    }

    /// [`Core::flush`] without the metrics' clock tick.
    fn flush_queued(&mut self) {
        let mut i = 0;
        while i < self.dirty.len() {
            let slot = self.dirty[i];
            i += 1;
            let s = &mut self.slots[slot as usize];
            s.dirty = false;
            if s.id == 0 {
                continue;
            }
            let c = s.c;
            unsafe {
                if (*c).is_closing() != 0 {
                    continue;
                }
                let io = &mut (*c).send;
                if io.len > 0 && (*c).is_tls() != 0 {
                    // A transport (TLS) encrypts and sends at once too;
                    // during its handshake Mongoose sends after it.
                    if (*c).is_tls_hs() == 0 && (*c).is_connecting() == 0 {
                        let n = sys::mg_tls_send(c, io.buf as *const c_void, io.len);
                        if n > 0 {
                            iobuf_consume(io, n as usize);
                        } else if n == sys::MG_IO_ERR as libc::c_long {
                            (*c).set_is_closing(1);
                            self.needs_poll = true;
                            continue;
                        }
                    }
                    if io.len > 0 {
                        self.needs_poll = true;
                    }
                } else if io.len > 0 && (*c).is_connecting() == 0 {
                    let fd = (*c).fd as usize as c_int;
                    let n = sys_send(fd, io.buf, io.len);
                    if n > 0 {
                        iobuf_consume(io, n as usize);
                        self.stats.bytes_out += n as u64;
                    }
                    if io.len > 0 {
                        // The socket is full: Mongoose registers for EPOLLOUT
                        // on its next poll, which must come before any wait.
                        self.needs_poll = true;
                    }
                    if n < 0 {
                        let e = *libc::__errno_location();
                        if e != libc::EAGAIN && e != libc::EWOULDBLOCK && e != libc::EINTR {
                            (*c).set_is_closing(1);
                            self.needs_poll = true;
                            continue;
                        }
                    }
                }
            }
            self.after_send(slot);
        }
        self.dirty.clear();
    }

    /// (Some of) a connection's output left: its protocol does the rest.
    fn after_send(&mut self, slot: u32) {
        let s = &self.slots[slot as usize];
        if matches!(s.role, Role::Accepted | Role::Outbound | Role::Datagram) {
            let proto = s.proto;
            self.dispatch(proto, |p, core| p.on_sent(core, slot));
        }
    }

    /// Starts the lingering close of a connection whose last output is
    /// sent: our FIN now (`shutdown(SHUT_WR)`), then reads (discarded by
    /// the protocol) until the peer's FIN or `LINGER_MS` (2 s).
    pub fn linger(&mut self, slot: u32) {
        let s = &mut self.slots[slot as usize];
        if s.lingering {
            return;
        }
        s.lingering = true;
        let c = s.c;
        unsafe {
            // Read again (and discard) to see the peer's FIN.
            set_read_paused(c, false);
            transport::end_stream(c);
            libc::shutdown((*c).fd as usize as c_int, libc::SHUT_WR);
        }
        let deadline = now_ms() + LINGER_MS;
        self.lingering.push((slot, s.id, deadline));
    }

    fn expire_lingering(&mut self) {
        if self.lingering.is_empty() {
            return;
        }
        let now = now_ms();
        let slots = &self.slots;
        let mut expired = false;
        self.lingering.retain(|&(slot, id, deadline)| {
            let s = &slots[slot as usize];
            if s.id != id {
                return false;
            }
            if now >= deadline {
                unsafe { (*s.c).set_is_closing(1) };
                expired = true;
                return false;
            }
            true
        });
        self.needs_poll |= expired;
    }

    /// Closes a connection JS never learnt of (its set-up failed after the
    /// socket existed): no CLOSE record follows.
    pub fn close_quietly(&mut self, slot: u32) {
        let s = &mut self.slots[slot as usize];
        if s.id == 0 {
            return;
        }
        s.quiet = true;
        unsafe { (*s.c).set_is_closing(1) };
        self.needs_poll = true;
    }

    /// Hands connection `slot` to protocol `proto` (e.g. an HTTP connection
    /// upgraded to another protocol): its later events go there. The caller
    /// moves the per-connection state from one protocol to the other.
    pub fn set_protocol(&mut self, slot: u32, proto: usize) {
        if let Some(s) = self.slots.get_mut(slot as usize) {
            s.proto = proto;
        }
    }

    /// Calls the slot's protocol's `on_deadline` once `due_ms` (Mongoose's
    /// clock, [`now_ms`]) has passed, unless the connection is gone by
    /// then. One deadline per slot: a new one replaces the old. Deadlines
    /// run at the start of a poll, so one due at once runs after JS handled
    /// the events of the current poll.
    ///
    /// Cost: O(log n) here and O(1) per poll while none is due (a binary
    /// heap; a replaced entry is dropped when it comes up, and the heap is
    /// rebuilt should such entries outnumber the live ones), so every
    /// socket of a large server may keep one.
    pub fn set_deadline(&mut self, slot: u32, due_ms: u64) {
        let s = &mut self.slots[slot as usize];
        if s.deadline.replace(due_ms).is_none() {
            self.live_deadlines += 1;
        }
        let id = s.id;
        self.deadlines.push(Reverse((due_ms, slot, id)));
        if self.deadlines.len() > 2 * self.live_deadlines + 1024 {
            self.rebuild_deadlines();
        }
    }

    /// Removes the slot's deadline.
    pub fn clear_deadline(&mut self, slot: u32) {
        if self.slots[slot as usize].deadline.take().is_some() {
            self.live_deadlines -= 1;
        }
    }

    /// The slot's deadline, if one is set.
    pub fn deadline(&self, slot: u32) -> Option<u64> {
        self.slots[slot as usize].deadline
    }

    /// Entries in the deadline heap, stale ones included (for tests).
    #[cfg(test)]
    pub(super) fn deadline_entries(&self) -> usize {
        self.deadlines.len()
    }

    /// Drops the heap's stale entries.
    fn rebuild_deadlines(&mut self) {
        let live = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.deadline.map(|d| Reverse((d, i as u32, s.id))));
        self.deadlines = live.collect();
    }

    fn expire_deadlines(&mut self) {
        if self.deadlines.is_empty() {
            return;
        }
        let now = now_ms();
        let mut due = Vec::new();
        while let Some(&Reverse((at, slot, id))) = self.deadlines.peek() {
            if at > now {
                break;
            }
            self.deadlines.pop();
            let s = &mut self.slots[slot as usize];
            if s.id != id || s.deadline != Some(at) {
                continue; // replaced, cleared, or the connection is gone
            }
            s.deadline = None;
            self.live_deadlines -= 1;
            due.push(slot);
        }
        for slot in due {
            let proto = self.slots[slot as usize].proto;
            self.dispatch(proto, |p, core| p.on_deadline(core, slot));
        }
    }

    /// Graceful shutdown, step by step: closes every listener and lets each
    /// protocol wind its accepted connections down; outbound connections
    /// (a database pool, an upstream) are wound down only once no accepted
    /// connection remains, so a request still being answered keeps the
    /// connections its handler awaits. Returns the connections that
    /// protocols count as still open (accepted ones first, then outbound).
    pub fn shutdown(&mut self) -> usize {
        let mut accepted = 0;
        let mut outbound = Vec::new();
        for i in 0..self.slots.len() {
            let slot = i as u32;
            let s = &self.slots[i];
            let (id, c, role, proto) = (s.id, s.c, s.role, s.proto);
            if id == 0 || c.is_null() {
                continue;
            }
            match role {
                Role::Listener | Role::Datagram => unsafe { (*c).set_is_closing(1) },
                Role::Accepted => {
                    let mut still_open = false;
                    self.dispatch(proto, |p, core| still_open = p.on_shutdown(core, slot));
                    accepted += usize::from(still_open);
                }
                Role::Outbound => outbound.push((slot, proto)),
                Role::Free => {}
            }
        }
        self.needs_poll = true;
        if accepted > 0 {
            return accepted;
        }
        let mut open = 0;
        for (slot, proto) in outbound {
            let mut still_open = false;
            self.dispatch(proto, |p, core| still_open = p.on_shutdown(core, slot));
            open += usize::from(still_open);
        }
        open
    }

    /// Closes a connection or listener: `drain` sends what is queued first
    /// (the protocol may take that over, see `Protocol::on_close_request`).
    pub fn close(&mut self, slot: u32, id: u64, drain: bool) -> Result<(), i32> {
        let c = self.conn(slot, id)?;
        let s = &self.slots[slot as usize];
        let (role, proto) = (s.role, s.proto);
        let mut handled = false;
        if role != Role::Listener {
            self.dispatch(proto, |p, core| handled = p.on_close_request(core, slot, drain));
        }
        if !handled {
            unsafe {
                if drain && role != Role::Listener {
                    (*c).set_is_draining(1);
                } else {
                    (*c).set_is_closing(1);
                }
            }
        }
        self.needs_poll = true;
        Ok(())
    }

    fn on_accept(
        &mut self,
        c: *mut sys::mg_connection,
        core: *mut Core,
        proto: usize,
        listener: u64,
        transport: Option<&dyn Transport>,
    ) {
        unsafe {
            self.accepted = true;
            self.stats.accepted += 1;
            let id = (*c).id;
            let slot = self.alloc_slot(id, c, Role::Accepted, proto);
            self.slots[slot as usize].listener = listener;
            set_slot_of(c, slot);
            let mut failed = None;
            if let Some(t) = transport {
                // TLS: the handshake runs before any byte reaches the
                // protocol (Mongoose hands it no data until it ends).
                failed = t.start(c).err();
            }
            if (*c).is_tls() == 0 {
                epoll_mode(c, true);
            }
            (*c).fn_ = Some(on_conn);
            (*c).fn_data = core as *mut c_void;
            self.open_record(slot, c, listener);
            self.dispatch(proto, |p, core| p.on_accept(core, slot));
            if let Some(why) = failed {
                self.events.error(id, slot, why.as_bytes());
                (*c).set_is_closing(1);
            }
        }
    }

    /// Queues the OPEN record of the connection in `slot`.
    fn open_record(&mut self, slot: u32, c: *mut sys::mg_connection, listener: u64) {
        unsafe {
            let rem = &(*c).rem;
            let loc = &(*c).loc;
            self.events.open(
                (*c).id,
                slot,
                listener,
                rem.is_ip6,
                (&addr_bytes(rem), u16::from_be(rem.port)),
                (&addr_bytes(loc), u16::from_be(loc.port)),
            );
        }
    }

    unsafe fn on_event(&mut self, c: *mut sys::mg_connection, ev: c_int, ev_data: *mut c_void) {
        let slot = slot_of(c);
        let Some(s) = self.slots.get(slot as usize).filter(|s| s.c == c && s.id != 0) else {
            // Before `listen`/`connect` registered it: a CLOSE still comes.
            // An error here is a connect that failed at once: `connect`
            // reports it once the connection has its slot.
            if ev as u32 == sys::MG_EV_ERROR {
                let os = std::io::Error::last_os_error();
                let why = match os.raw_os_error() {
                    Some(e) if e != 0 => format!("connect failed: {os}"),
                    _ if ev_data.is_null() => "connect failed".to_string(),
                    _ => format!(
                        "connect failed: {}",
                        CStr::from_ptr(ev_data as *const libc::c_char).to_string_lossy()
                    ),
                };
                self.early_error = Some(why.into_bytes());
            }
            return;
        };
        let (id, role, proto) = (s.id, s.role, s.proto);
        match ev as u32 {
            sys::MG_EV_READ => {
                if !ev_data.is_null() {
                    self.stats.bytes_in += *(ev_data as *const libc::c_long) as u64;
                }
                if role == Role::Accepted && ((*c).data[DATA_FIN] != 0 || (*c).recv.len == (*c).recv.size) {
                    // Data may remain in the socket (a full buffer) or the
                    // end of stream is pending: level-triggered from now on
                    // (once: Mongoose's own re-registrations are
                    // level-triggered with EPOLLIN too, and a paused socket
                    // is not read).
                    (*c).data[DATA_FIN] = 0;
                    if (*c).data[DATA_LEVEL] == 0 {
                        epoll_mode(c, false);
                    }
                }
                if role != Role::Listener {
                    self.dispatch(proto, |p, core| p.on_read(core, slot));
                }
            }
            sys::MG_EV_WRITE => {
                if !ev_data.is_null() {
                    self.stats.bytes_out += *(ev_data as *const libc::c_long) as u64;
                }
                self.after_send(slot)
            }
            sys::MG_EV_CONNECT if role == Role::Outbound => {
                if self.slots[slot as usize].half_close {
                    take_half_close((*c).fd as usize as c_int, Some(slot));
                }
                match self.slots[slot as usize].tls.as_deref().map(|t| t.start(c)) {
                    Some(Ok(())) => {} // OPEN once the handshake is done
                    Some(Err(why)) => {
                        self.events.error(id, slot, why.as_bytes());
                        (*c).set_is_closing(1);
                    }
                    None => self.open_record(slot, c, 0),
                }
            }
            sys::MG_EV_TLS_HS if self.slots[slot as usize].upgrading => {
                self.slots[slot as usize].upgrading = false;
                self.events.secure(id, slot, None);
            }
            sys::MG_EV_TLS_HS if role == Role::Outbound => self.open_record(slot, c, 0),
            sys::MG_EV_ERROR => {
                let msg = if ev_data.is_null() {
                    &b"error"[..]
                } else {
                    CStr::from_ptr(ev_data as *const libc::c_char).to_bytes()
                };
                if std::mem::take(&mut self.slots[slot as usize].upgrading) {
                    self.events.secure(id, slot, Some(msg));
                }
                // A failed connect: say why (refused, unreachable...).
                match (role == Role::Outbound).then(|| connect_errno(c)).flatten() {
                    Some(e) => {
                        let why = format!("connect failed: {}", std::io::Error::from_raw_os_error(e));
                        self.events.error(id, slot, why.as_bytes());
                    }
                    None => self.events.error(id, slot, msg),
                }
            }
            sys::MG_EV_CLOSE => {
                if self.slots[slot as usize].half_close {
                    take_half_close((*c).fd as usize as c_int, None);
                }
                // Only connections announce their end: a listener is not one,
                // nor a socket whose creation failed before JS learnt of it.
                if role != Role::Listener && !self.slots[slot as usize].quiet {
                    self.dispatch(proto, |p, core| p.before_close(core, slot));
                    self.events.close(id, slot);
                    self.dispatch(proto, |p, core| p.on_closed(core, slot));
                }
                self.release_slot(slot);
            }
            _ => {}
        }
    }
}

/// Event handler of connections (accepted and outbound; listeners' below).
unsafe extern "C" fn on_conn(c: *mut sys::mg_connection, ev: c_int, ev_data: *mut c_void) {
    if ev == sys::MG_EV_POLL as c_int {
        return; // called for every connection on every poll: stay cheap
    }
    let m = (*c).fn_data as *mut Core;
    guard(|| (*m).on_event(c, ev, ev_data));
}

/// Handler of listening connections. Accepted connections inherit it and
/// switch to [`on_conn`] on their first event.
unsafe extern "C" fn on_listener(c: *mut sys::mg_connection, ev: c_int, ev_data: *mut c_void) {
    if ev == sys::MG_EV_POLL as c_int {
        return;
    }
    let info = &*((*c).fn_data as *const ListenerInfo);
    let (m, proto, id) = (info.core, info.proto, info.id);
    if (*c).is_listening() == 0 {
        if ev == sys::MG_EV_ACCEPT as c_int {
            guard(|| (*m).on_accept(c, m, proto, id, info.transport.as_deref()));
        }
        return;
    }
    guard(|| (*m).on_event(c, ev, ev_data));
}

/// Handler of bound datagram sockets: before Mongoose would read one
/// datagram, the protocol drains the socket itself and Mongoose's read is
/// skipped.
unsafe extern "C" fn on_datagram(c: *mut sys::mg_connection, ev: c_int, ev_data: *mut c_void) {
    let m = (*c).fn_data as *mut Core;
    if ev == sys::MG_EV_POLL as c_int {
        if (*c).is_readable() != 0 && (*c).is_closing() == 0 {
            (*c).set_is_readable(0);
            guard(|| {
                let slot = slot_of(c);
                let core = &mut *m;
                if let Some(s) = core.slots.get(slot as usize).filter(|s| s.c == c && s.id != 0) {
                    let proto = s.proto;
                    core.dispatch(proto, |p, core| p.on_read(core, slot));
                }
            });
        }
        return;
    }
    guard(|| (*m).on_event(c, ev, ev_data));
}

/// Handler of the wake-up socket: drops what it reads.
unsafe extern "C" fn on_wake(c: *mut sys::mg_connection, ev: c_int, _ev_data: *mut c_void) {
    if ev == sys::MG_EV_READ as c_int {
        (*c).recv.len = 0;
        (*((*c).fn_data as *mut Core)).wake_pending = false;
    }
}

/// Runs `f`, turning a panic into a recorded error: unwinding must not cross
/// Mongoose's C frames.
fn guard(f: impl FnOnce()) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err() {
        fail(Status::Panic, "internal error in an event handler");
    }
}
