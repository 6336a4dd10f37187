//! The core on loopback with real Mongoose and a protocol defined here (an
//! echo server): the core needs no real protocol to be tested, and the
//! seam is all a protocol needs.

use std::any::Any;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use super::error::{last_error_into, Status};
use super::event::{split_records, KIND_CLOSE, KIND_OPEN};
use super::sys_io::{iobuf_append, iobuf_consume};
use super::{Core, Protocol};

/// Echoes what it reads and records its calls. Input `panic` panics.
#[derive(Default)]
struct Echo {
    accepted: Vec<u32>,
    closed: Vec<u32>,
    reads: usize,
    sent: usize,
    /// Slots whose deadline fired, in order.
    deadlines: Vec<u32>,
}

impl Protocol for Echo {
    fn on_accept(&mut self, _core: &mut Core, slot: u32) {
        self.accepted.push(slot);
    }

    fn on_read(&mut self, core: &mut Core, slot: u32) {
        let (_, c) = core.slot_conn(slot);
        unsafe {
            let recv = &mut (*c).recv;
            if recv.len == 0 {
                return;
            }
            let data = std::slice::from_raw_parts(recv.buf, recv.len).to_vec();
            iobuf_consume(recv, data.len());
            if data == b"panic" {
                panic!("the echo protocol was asked to panic");
            }
            assert!(iobuf_append(&mut (*c).send, &[&data]));
        }
        core.mark_dirty(slot);
        self.reads += 1;
    }

    fn on_sent(&mut self, _core: &mut Core, _slot: u32) {
        self.sent += 1;
    }

    fn on_closed(&mut self, _core: &mut Core, slot: u32) {
        self.closed.push(slot);
    }

    fn on_deadline(&mut self, _core: &mut Core, slot: u32) {
        self.deadlines.push(slot);
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// Another protocol type, to check typed access.
struct Other;

impl Protocol for Other {
    fn on_accept(&mut self, _core: &mut Core, _slot: u32) {}
    fn on_read(&mut self, _core: &mut Core, _slot: u32) {}
    fn on_sent(&mut self, _core: &mut Core, _slot: u32) {}
    fn on_closed(&mut self, _core: &mut Core, _slot: u32) {}
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// A core with the echo protocol registered; freed on drop.
struct TestCore {
    core: *mut Core,
    echo: usize,
    /// Records gathered by the polls so far.
    events: Vec<u8>,
}

impl TestCore {
    fn new() -> TestCore {
        let mut core = Core::new().unwrap();
        let echo = core.register(Box::<Echo>::default());
        TestCore {
            core: Box::into_raw(core),
            echo,
            events: Vec::new(),
        }
    }

    fn core(&mut self) -> &mut Core {
        unsafe { &mut *self.core }
    }

    fn echo<R>(&mut self, f: impl FnOnce(&mut Echo) -> R) -> R {
        let idx = self.echo;
        self.core().with_protocol(idx, |e: &mut Echo, _| f(e))
    }

    fn listen(&mut self) -> (u32, u64, u16) {
        unsafe { Core::listen(self.core, "echo://127.0.0.1:0", self.echo) }.unwrap()
    }

    /// Polls until `done` holds (given the core and the records gathered),
    /// failing after 5 s.
    fn poll_until(&mut self, what: &str, mut done: impl FnMut(&mut Core, &[u8]) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            unsafe { Core::poll(self.core) };
            let core = unsafe { &mut *self.core };
            self.events.extend_from_slice(&core.events.bytes);
            core.events.clear();
            if done(core, &self.events) {
                return;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Polls until a record of `kind` for connection `id` arrived (any
    /// connection when `id` is 0); returns that record.
    fn wait_record(&mut self, kind: u8, id: u64) -> Vec<u8> {
        let mut found = None;
        self.poll_until(&format!("record kind {kind} of {id}"), |_, ev| {
            found = split_records(ev)
                .into_iter()
                .find(|&(k, i, _)| k == kind && (id == 0 || i == id))
                .map(|(_, _, r)| r.to_vec());
            found.is_some()
        });
        found.unwrap()
    }
}

impl Drop for TestCore {
    fn drop(&mut self) {
        unsafe { Core::destroy(self.core) };
    }
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}

fn id_of(record: &[u8]) -> u64 {
    u32_at(record, 8) as u64 | (u32_at(record, 12) as u64) << 32
}

/// Polls until the echo protocol has read `n` times.
fn wait_reads(t: &mut TestCore, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while t.echo(|e| e.reads) < n {
        assert!(Instant::now() < deadline, "timed out waiting for read {n}");
        unsafe { Core::poll(t.core) };
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn client(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

#[test]
fn an_echo_protocol_serves_a_loopback_client_through_the_seam() {
    let mut t = TestCore::new();
    let (lslot, lid, port) = t.listen();
    assert!(port > 0);
    let mut s = client(port);
    let open = t.wait_record(KIND_OPEN, 0);
    let id = id_of(&open);
    let slot = u32_at(&open, 16);
    assert_ne!(slot, lslot);
    // The OPEN record names the listener.
    assert_eq!(u32_at(&open, 20) as u64 | (u32_at(&open, 24) as u64) << 32, lid);
    assert_eq!(t.echo(|e| e.accepted.clone()), [slot]);

    s.write_all(b"hello").unwrap();
    wait_reads(&mut t, 1);
    // The poll that read it flushed the echo at its end.
    let mut got = [0; 5];
    s.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"hello");
    assert!(t.echo(|e| e.sent) >= 1);

    drop(s);
    t.wait_record(KIND_CLOSE, id);
    assert_eq!(t.echo(|e| e.closed.clone()), [slot]);
    assert_eq!(t.core().stats.accepted, 1);
    assert!(t.core().stats.polls >= 3);
}

#[test]
fn a_closed_connection_is_refused_and_its_slot_reused() {
    let mut t = TestCore::new();
    let (_, _, port) = t.listen();
    let s = client(port);
    let open = t.wait_record(KIND_OPEN, 0);
    let (slot, id) = (u32_at(&open, 16), id_of(&open));
    assert!(t.core().conn(slot, id).is_ok());
    assert_eq!(t.core().conn(slot, id + 1000), Err(Status::Closed as i32));
    drop(s);
    t.wait_record(KIND_CLOSE, id);
    assert_eq!(t.core().conn(slot, id), Err(Status::Closed as i32));
    assert_eq!(t.core().close(slot, id, false), Err(Status::Closed as i32));
    assert_eq!(t.core().close(slot, id, true), Err(Status::Closed as i32));

    // The next connection gets the freed slot under a new id; the old id
    // still does not reach it.
    t.events.clear();
    let _s2 = client(port);
    let open = t.wait_record(KIND_OPEN, 0);
    let (slot2, id2) = (u32_at(&open, 16), id_of(&open));
    assert_eq!(slot2, slot);
    assert_ne!(id2, id);
    assert_eq!(t.core().conn(slot, id), Err(Status::Closed as i32));
    assert!(t.core().conn(slot2, id2).is_ok());
}

#[test]
fn close_without_drain_ends_the_connection() {
    let mut t = TestCore::new();
    let (_, _, port) = t.listen();
    let mut s = client(port);
    let open = t.wait_record(KIND_OPEN, 0);
    let (slot, id) = (u32_at(&open, 16), id_of(&open));
    assert_eq!(t.core().close(slot, id, false), Ok(()));
    t.wait_record(KIND_CLOSE, id);
    let mut buf = [0; 1];
    // EOF or a reset: either way the peer sees the connection end.
    match s.read(&mut buf) {
        Ok(n) => assert_eq!(n, 0),
        Err(e) => assert_ne!(e.kind(), ErrorKind::WouldBlock),
    }
}

#[test]
fn a_panicking_protocol_is_contained_and_the_core_keeps_serving() {
    let mut t = TestCore::new();
    let (_, _, port) = t.listen();
    let mut s = client(port);
    t.wait_record(KIND_OPEN, 0);
    s.write_all(b"panic").unwrap();
    let mut msg = [0u8; 64];
    t.poll_until("the panic to be recorded", |_, _| {
        let n = last_error_into(&mut msg);
        msg[..n.min(64)].starts_with(b"internal error in an event handler")
    });
    // The protocol went back into the registry despite the unwind.
    assert_eq!(t.echo(|e| e.reads), 0);
    s.write_all(b"again").unwrap();
    wait_reads(&mut t, 1);
    let mut got = [0; 5];
    s.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"again");
}

#[test]
fn typed_access_checks_the_protocol_type_and_survives_a_mismatch() {
    let mut t = TestCore::new();
    let other = t.core().register(Box::new(Other));
    assert_eq!(other, t.echo + 1);
    let wrong = catch_unwind(AssertUnwindSafe(|| {
        t.core().with_protocol(other, |_: &mut Echo, _| ())
    }));
    assert!(wrong.is_err());
    // Both protocols are still registered and reachable.
    t.core().with_protocol(other, |_: &mut Other, _| ());
    assert_eq!(t.echo(|e| e.reads), 0);
    assert_eq!(t.core().awaiting(), 0);
}

#[test]
fn bad_listen_urls_are_invalid_and_unbindable_ones_io() {
    let t = TestCore::new();
    let p = t.echo;
    for url in ["echo://", "echo://127.0.0.1:0/path", "no-scheme"] {
        let r = unsafe { Core::listen(t.core, url, p) };
        assert_eq!(r, Err(Status::Invalid as i32), "{url}");
    }
    let r = unsafe { Core::listen(t.core, "echo://203.0.113.1:0", p) };
    assert_eq!(r, Err(Status::Io as i32));
    let mut msg = [0u8; 128];
    let n = last_error_into(&mut msg);
    assert!(msg[..n].starts_with(b"cannot listen on echo://203.0.113.1:0"));
}

#[test]
fn shutdown_closes_listeners() {
    let mut t = TestCore::new();
    let (_, lid, port) = t.listen();
    // Echo has no shutdown step: none of its connections count as open.
    let _s = client(port);
    t.wait_record(KIND_OPEN, 0);
    assert_eq!(t.core().shutdown(), 0);
    t.poll_until("the listener to close", |_, _| {
        TcpStream::connect(("127.0.0.1", port)).is_err()
    });
    // Listeners are not connections: no CLOSE record for one.
    assert!(!split_records(&t.events)
        .iter()
        .any(|&(k, id, _)| k == KIND_CLOSE && id == lid));
}

#[test]
fn deadlines_fire_once_in_order_and_replaced_or_cleared_ones_never() {
    use super::manager::now_ms;
    let mut t = TestCore::new();
    let (_, _, port) = t.listen();
    let _a = client(port);
    let a = u32_at(&t.wait_record(KIND_OPEN, 0), 16);
    t.events.clear();
    let _b = client(port);
    let b = u32_at(&t.wait_record(KIND_OPEN, 0), 16);
    let _c = client(port);
    t.events.clear();
    let c = u32_at(&t.wait_record(KIND_OPEN, 0), 16);
    let now = now_ms();
    let core = t.core();
    core.set_deadline(a, now + 10); // replaced by a later one
    core.set_deadline(a, now + 60);
    core.set_deadline(b, now + 5); // cleared
    core.clear_deadline(b);
    core.set_deadline(c, now + 30);
    assert_eq!(core.deadline(a), Some(now + 60));
    assert_eq!(core.deadline(b), None);
    // The wait ends by the earliest entry (a stale one may end it early).
    assert!(core.next_timeout() <= 10);
    t.poll_until("both deadlines", |core, _| {
        core.deadline(a).is_none() && core.deadline(c).is_none()
    });
    assert!(now_ms() >= now + 60);
    assert_eq!(t.echo(|e| e.deadlines.clone()), [c, a]);
    // Nothing fires twice, and stale entries leave the heap as they come up.
    t.poll_until("stale entries to go", |core, _| core.deadline_entries() == 0);
    assert_eq!(t.echo(|e| e.deadlines.len()), 2);
    // Re-arming one slot again and again keeps the heap bounded.
    let far = now_ms() + 60_000;
    for i in 0..10_000 {
        t.core().set_deadline(a, far + i);
    }
    assert!(
        t.core().deadline_entries() <= 2 + 1024,
        "{}",
        t.core().deadline_entries()
    );
    assert_eq!(t.core().deadline(a), Some(far + 9_999));
}
