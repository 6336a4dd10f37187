//! Posting into a manager from another thread (a Worker, or a second
//! manager on any thread).
//!
//! The manager is owned by one thread; nothing here touches it from
//! another. Each manager that asks for one has a [`Mailbox`] (a mutex, a
//! queue of messages, a condition variable and its own descriptor of the
//! manager's wake-up socket), found by a token in a process-wide registry
//! (a number, never a pointer). A poster (any thread) opens it by token
//! into a handle of a second process-wide table; `post` appends under the
//! lock and, if the queue was empty, writes one byte to the wake socket, so
//! a waiting loop wakes at once (the wake-up the core already has). The
//! manager drains the whole queue after each poll into POST records.
//!
//! Bounds: at most [`MAX_COUNT`] messages and [`MAX_BYTES`] bytes wait in a
//! mailbox. A post that does not fit is refused (`post` returns
//! [`PostResult::Full`], nothing is queued); the poster may wait for room
//! with [`wait_room`] (a blocking call, run off the JS thread) and retry.
//! Blocking inside `post` was rejected: a poster on the manager's own
//! thread would deadlock.
//!
//! Closing: the manager's side ([`Posts::close`], on manager free) marks
//! the mailbox closed, drops what waits, closes its wake descriptor and
//! removes it from the registry; later posts get `Closed`. A poster's
//! `close` drops its reference. The mailbox (an `Arc`) is freed when both
//! sides are gone.
//!
//! POST record (`KIND_POST`): header id field 0; slot u32 @16 `u32::MAX`;
//! length u32 @20; the bytes @24. Flag 1: the message was a string (UTF-8).

use std::collections::{HashMap, VecDeque};
use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::core::error::{fail, Status};
use crate::core::event::{EventBuf, HEADER_LEN};
use crate::core::manager::Core;

/// Record kind of a posted message (`src/net/abi.ts`, `NetKind.Post`).
pub const KIND_POST: u8 = 14;
/// POST flag (and `mgnet_post` flag): the message is text.
pub const POST_TEXT: u8 = 1;
/// Most messages waiting in one mailbox.
pub const MAX_COUNT: usize = 16 * 1024;
/// Most bytes waiting in one mailbox (also the largest message).
pub const MAX_BYTES: usize = 16 << 20;

/// What `post` did.
#[derive(Debug, PartialEq, Eq)]
pub enum PostResult {
    Queued,
    Full,
}

struct Inner {
    queue: VecDeque<(u8, Vec<u8>)>,
    bytes: usize,
    closed: bool,
    /// Our descriptor of the manager's wake socket; -1 once closed.
    wake_fd: c_int,
}

/// One manager's mailbox, shared by the manager and its posters.
pub struct Mailbox {
    inner: Mutex<Inner>,
    room: Condvar,
}

impl Mailbox {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A poisoned lock only means a panic elsewhere mid-call; the queue
        // is still consistent (every change is a single push or take).
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Mailbox {
    fn drop(&mut self) {
        let fd = self.lock().wake_fd;
        if fd >= 0 {
            unsafe { libc::close(fd) };
        }
    }
}

/// Mailboxes by token.
static MAILBOXES: Mutex<Option<HashMap<u64, Arc<Mailbox>>>> = Mutex::new(None);
/// Posters by handle.
static POSTERS: Mutex<Option<HashMap<u32, Arc<Mailbox>>>> = Mutex::new(None);
static NEXT_TOKEN: AtomicU64 = AtomicU64::new(1);
static NEXT_POSTER: AtomicU64 = AtomicU64::new(1);

fn registry<K, V>(m: &'static Mutex<Option<HashMap<K, V>>>) -> MutexGuard<'static, Option<HashMap<K, V>>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The manager's side: its mailbox, once asked for.
#[derive(Default)]
pub struct Posts {
    mailbox: Option<(u64, Arc<Mailbox>)>,
    /// Drained messages not yet turned into records (reused buffer).
    taken: VecDeque<(u8, Vec<u8>)>,
    /// Posts delivered (POST records written), for the metrics.
    pub delivered: u64,
}

impl Posts {
    /// The token of this manager's mailbox (created on first call).
    pub fn open(&mut self, core: &Core) -> Result<u64, i32> {
        if let Some((token, _)) = &self.mailbox {
            return Ok(*token);
        }
        let fd = core.dup_wake_fd();
        if fd < 0 {
            return Err(fail(
                Status::Io,
                format!("dup: {}", std::io::Error::last_os_error()),
            ));
        }
        let mb = Arc::new(Mailbox {
            inner: Mutex::new(Inner {
                queue: VecDeque::new(),
                bytes: 0,
                closed: false,
                wake_fd: fd,
            }),
            room: Condvar::new(),
        });
        // Tokens stay below 2^53 (they cross to JS as doubles) and are never reused.
        let token = NEXT_TOKEN.fetch_add(1, Ordering::Relaxed);
        registry(&MAILBOXES)
            .get_or_insert_with(HashMap::new)
            .insert(token, mb.clone());
        self.mailbox = Some((token, mb));
        Ok(token)
    }

    /// True once a mailbox exists (it keeps the loop waiting natively).
    pub fn is_open(&self) -> bool {
        self.mailbox.is_some()
    }

    /// Moves every waiting message into POST records.
    pub fn drain(&mut self, events: &mut EventBuf) {
        let Some((_, mb)) = &self.mailbox else { return };
        {
            let mut inner = mb.lock();
            if inner.queue.is_empty() {
                return;
            }
            std::mem::swap(&mut inner.queue, &mut self.taken);
            inner.bytes = 0;
        }
        mb.room.notify_all();
        let total: usize = self.taken.iter().map(|(_, m)| HEADER_LEN + 8 + m.len()).sum();
        events.reserve(total);
        self.delivered += self.taken.len() as u64;
        for (flags, msg) in self.taken.drain(..) {
            events.header(KIND_POST, flags, 0, HEADER_LEN + 8 + msg.len(), 0);
            events.u32(u32::MAX);
            events.u32(msg.len() as u32);
            events.put(&msg);
        }
    }

    /// The manager is going away: refuse posts from now on, drop what
    /// waits, wake posters waiting for room.
    pub fn close(&mut self) {
        let Some((token, mb)) = self.mailbox.take() else {
            return;
        };
        if let Some(m) = registry(&MAILBOXES).as_mut() {
            m.remove(&token);
        }
        {
            let mut inner = mb.lock();
            inner.closed = true;
            inner.queue = VecDeque::new();
            inner.bytes = 0;
            if inner.wake_fd >= 0 {
                unsafe { libc::close(inner.wake_fd) };
                inner.wake_fd = -1;
            }
        }
        mb.room.notify_all();
    }
}

/// Opens a poster on the mailbox `token` (any thread). Returns its handle.
pub fn open_poster(token: u64) -> Result<u32, i32> {
    let mb = registry(&MAILBOXES)
        .as_ref()
        .and_then(|m| m.get(&token).cloned())
        .ok_or_else(|| fail(Status::BadHandle, "the manager is closed"))?;
    let h = NEXT_POSTER.fetch_add(1, Ordering::Relaxed);
    if h > i32::MAX as u64 {
        return Err(fail(Status::NoMem, "out of poster handles"));
    }
    registry(&POSTERS)
        .get_or_insert_with(HashMap::new)
        .insert(h as u32, mb);
    Ok(h as u32)
}

fn poster(h: u32) -> Result<Arc<Mailbox>, i32> {
    registry(&POSTERS)
        .as_ref()
        .and_then(|m| m.get(&h).cloned())
        .ok_or_else(|| fail(Status::Closed, "the poster is closed"))
}

/// Closes a poster. Returns whether it was open.
pub fn close_poster(h: u32) -> bool {
    registry(&POSTERS).as_mut().and_then(|m| m.remove(&h)).is_some()
}

/// Posts one message through poster `h`.
pub fn post(h: u32, flags: u8, msg: &[u8]) -> Result<PostResult, i32> {
    let mb = poster(h)?;
    if msg.len() > MAX_BYTES {
        return Err(fail(
            Status::Invalid,
            format!(
                "a message of {} bytes is over the mailbox's {MAX_BYTES}",
                msg.len()
            ),
        ));
    }
    let mut inner = mb.lock();
    if inner.closed {
        return Err(fail(Status::BadHandle, "the manager is closed"));
    }
    if inner.queue.len() >= MAX_COUNT || inner.bytes + msg.len() > MAX_BYTES {
        return Ok(PostResult::Full);
    }
    let was_empty = inner.queue.is_empty();
    inner.queue.push_back((flags & POST_TEXT, msg.to_vec()));
    inner.bytes += msg.len();
    if was_empty {
        // One byte per drain cycle wakes the loop; a full socket buffer
        // (EAGAIN) means a wake-up is already pending.
        unsafe {
            libc::send(
                inner.wake_fd,
                b"p".as_ptr() as *const c_void,
                1,
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            );
        }
    }
    Ok(PostResult::Queued)
}

/// Blocks until the mailbox of poster `h` has room for a message of
/// `len` bytes, or `ms` pass. Returns whether there is room.
pub fn wait_room(h: u32, len: usize, ms: u32) -> Result<bool, i32> {
    let mb = poster(h)?;
    let fits = |i: &Inner| i.closed || (i.queue.len() < MAX_COUNT && i.bytes + len <= MAX_BYTES);
    let inner = mb.lock();
    let (inner, _) = mb
        .room
        .wait_timeout_while(inner, Duration::from_millis(ms as u64), |i| !fits(i))
        .unwrap_or_else(|e| e.into_inner());
    if inner.closed {
        return Err(fail(Status::BadHandle, "the manager is closed"));
    }
    Ok(fits(&inner))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::event::split_records;

    fn u32_at(b: &[u8], off: usize) -> u32 {
        u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
    }

    #[test]
    fn messages_from_another_thread_arrive_in_order_and_the_bound_holds() {
        let core = Core::new().unwrap();
        let mut posts = Posts::default();
        let token = posts.open(&core).unwrap();
        assert_eq!(posts.open(&core).unwrap(), token, "one mailbox per manager");
        let t = std::thread::spawn(move || {
            let p = open_poster(token).unwrap();
            let mut full = 0;
            for i in 0..MAX_COUNT + 10 {
                if post(p, 0, format!("{i}").as_bytes()).unwrap() == PostResult::Full {
                    full += 1;
                }
            }
            assert!(close_poster(p));
            assert!(!close_poster(p));
            full
        });
        assert_eq!(
            t.join().unwrap(),
            10,
            "exactly the posts over MAX_COUNT are refused"
        );
        let mut ev = EventBuf::default();
        posts.drain(&mut ev);
        let recs = split_records(&ev.bytes);
        assert_eq!(recs.len(), MAX_COUNT);
        for (i, (kind, _, r)) in recs.iter().enumerate() {
            assert_eq!(*kind, KIND_POST);
            let len = u32_at(r, 20) as usize;
            assert_eq!(&r[24..24 + len], format!("{i}").as_bytes());
        }
        posts.close();
        unsafe { Core::destroy(Box::into_raw(core)) };
    }

    #[test]
    fn posting_after_close_is_refused_and_a_waiting_poster_is_released() {
        let core = Core::new().unwrap();
        let mut posts = Posts::default();
        let token = posts.open(&core).unwrap();
        let p = open_poster(token).unwrap();
        for _ in 0..MAX_COUNT {
            assert_eq!(post(p, 0, b"x"), Ok(PostResult::Queued));
        }
        assert_eq!(post(p, 0, b"x"), Ok(PostResult::Full));
        let waiter = std::thread::spawn(move || wait_room(p, 1, 10_000));
        std::thread::sleep(Duration::from_millis(20));
        posts.close();
        assert_eq!(waiter.join().unwrap(), Err(Status::BadHandle as i32));
        assert_eq!(post(p, 0, b"x"), Err(Status::BadHandle as i32));
        assert_eq!(open_poster(token), Err(Status::BadHandle as i32));
        assert!(close_poster(p));
        assert_eq!(post(p, 0, b"x"), Err(Status::Closed as i32));
        unsafe { Core::destroy(Box::into_raw(core)) };
    }
}
