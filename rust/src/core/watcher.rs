//! A thread that waits for a manager's epoll fd on JS's behalf and tells
//! JS when it is ready, either by calling a thread-safe callback or by
//! writing a byte to a doorbell socket that Deno's own reactor reads.
//!
//! Two of the wake paths compared in docs/architecture.md (section 29); the
//! default stays Deno's `nonblocking` call (`mgnet_wait`), because a Deno
//! callback may be freed under a watcher that is about to call it when an
//! isolate is torn down. The thread sleeps in `epoll_wait` on an
//! epoll set of its own holding the manager's epoll fd and a timerfd, both
//! registered `EPOLLONESHOT`: arming a wait is two `epoll_ctl`/`timerfd`
//! calls on the JS thread and wakes no thread, and each arming yields at most
//! one report, so a busy loop (which never arms it) costs nothing.

use std::cell::Cell;
use std::ffi::c_int;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// How a ready (or timed-out) wait is reported.
#[derive(Clone, Copy)]
pub enum Notify {
    /// Calls this function (a Deno `UnsafeCallback.threadSafe`) with 1 when
    /// the fd is ready, 0 on timeout.
    Callback(extern "C" fn(i32)),
    /// Writes one byte (`1` ready, `0` timeout) to this socket (owned: closed
    /// with the watcher). Its peer is read by Deno's reactor; once that is
    /// gone the write fails quietly (`EPIPE`, no signal).
    Doorbell(c_int),
}

#[derive(Default)]
struct State {
    stop: bool,
    /// Inside a notification: a thread-safe callback blocks its caller until
    /// JS has run it, so a watcher stopped now must not be joined.
    notifying: bool,
}

/// Event data of the watcher's own epoll set.
const EV_READY: u64 = 1;
const EV_TIMER: u64 = 2;
const EV_STOP: u64 = 3;

struct Shared {
    /// The manager's epoll fd (not owned).
    epoll_fd: c_int,
    /// The watcher's epoll set.
    wep: c_int,
    /// The wait's timeout.
    tfd: c_int,
    /// Ends the thread's `epoll_wait` when the watcher stops.
    stop_fd: c_int,
    state: Mutex<State>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        for fd in [self.wep, self.tfd, self.stop_fd] {
            if fd >= 0 {
                unsafe { libc::close(fd) };
            }
        }
    }
}

/// A watcher thread; stopped on drop (and joined unless it is inside a
/// callback that JS has yet to run, which it then leaves without touching
/// anything but its own state).
pub struct Watcher {
    shared: Arc<Shared>,
    notify: Notify,
    thread: Option<JoinHandle<()>>,
    /// The manager's fd and the timerfd are in the set (first arming adds them).
    added: Cell<bool>,
    /// The timerfd is set.
    timing: Cell<bool>,
}

fn os_err(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

fn ctl(wep: c_int, op: c_int, fd: c_int, events: u32, data: u64) -> c_int {
    let mut ev = libc::epoll_event { events, u64: data };
    unsafe { libc::epoll_ctl(wep, op, fd, &mut ev) }
}

impl Watcher {
    /// Starts a watcher of `epoll_fd`, which must stay open until the
    /// watcher is dropped.
    pub fn start(epoll_fd: c_int, notify: Notify) -> Result<Watcher, String> {
        let mut shared = Shared {
            epoll_fd,
            wep: -1,
            tfd: -1,
            stop_fd: -1,
            state: Mutex::new(State::default()),
        };
        unsafe {
            shared.wep = libc::epoll_create1(libc::EPOLL_CLOEXEC);
            if shared.wep < 0 {
                return Err(os_err("epoll_create1"));
            }
            shared.tfd = libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_CLOEXEC | libc::TFD_NONBLOCK);
            if shared.tfd < 0 {
                return Err(os_err("timerfd_create"));
            }
            shared.stop_fd = libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK);
            if shared.stop_fd < 0 {
                return Err(os_err("eventfd"));
            }
        }
        if ctl(
            shared.wep,
            libc::EPOLL_CTL_ADD,
            shared.stop_fd,
            libc::EPOLLIN as u32,
            EV_STOP,
        ) != 0
        {
            return Err(os_err("epoll_ctl"));
        }
        let shared = Arc::new(shared);
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("mgnet-watcher".into())
            .spawn(move || run(&s, notify))
            .map_err(|e| format!("watcher thread: {e}"))?;
        Ok(Watcher {
            shared,
            notify,
            thread: Some(thread),
            added: Cell::new(false),
            timing: Cell::new(false),
        })
    }

    /// Asks for one report: when the fd is ready or after `timeout_ms`
    /// (negative: none). Call it again only after that report.
    pub fn arm(&self, timeout_ms: i32) -> Result<(), String> {
        let s = &self.shared;
        let oneshot = (libc::EPOLLIN | libc::EPOLLONESHOT) as u32;
        let op = if self.added.get() {
            libc::EPOLL_CTL_MOD
        } else {
            libc::EPOLL_CTL_ADD
        };
        if timeout_ms >= 0 || self.timing.get() {
            // A zero `it_value` disarms a timerfd: a 0 ms wait is 1 ns.
            let ns = (timeout_ms.max(0) as i64 * 1_000_000).max(1);
            let value = if timeout_ms >= 0 {
                libc::timespec {
                    tv_sec: ns / 1_000_000_000,
                    tv_nsec: ns % 1_000_000_000,
                }
            } else {
                libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                }
            };
            let spec = libc::itimerspec {
                it_interval: libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                },
                it_value: value,
            };
            if unsafe { libc::timerfd_settime(s.tfd, 0, &spec, std::ptr::null_mut()) } != 0 {
                return Err(os_err("timerfd_settime"));
            }
            self.timing.set(timeout_ms >= 0);
        }
        if (timeout_ms >= 0 || !self.added.get()) && ctl(s.wep, op, s.tfd, oneshot, EV_TIMER) != 0 {
            return Err(os_err("epoll_ctl"));
        }
        if ctl(s.wep, op, s.epoll_fd, oneshot, EV_READY) != 0 {
            return Err(os_err("epoll_ctl"));
        }
        self.added.set(true);
        Ok(())
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let mut st = lock(&self.shared.state);
        st.stop = true;
        let busy = st.notifying;
        drop(st);
        let one: u64 = 1;
        unsafe { libc::write(self.shared.stop_fd, &one as *const u64 as *const _, 8) };
        if let Some(t) = self.thread.take() {
            if !busy {
                let _ = t.join();
            }
        }
        if let Notify::Doorbell(fd) = self.notify {
            unsafe { libc::close(fd) };
        }
    }
}

fn lock(m: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn run(s: &Shared, notify: Notify) {
    let mut evs = [libc::epoll_event { events: 0, u64: 0 }; 4];
    loop {
        let n = unsafe { libc::epoll_wait(s.wep, evs.as_mut_ptr(), evs.len() as c_int, -1) };
        if n < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return; // the set is gone: nothing more can be reported
        }
        let mut ready = false;
        let mut report = false;
        for ev in &evs[..n as usize] {
            match ev.u64 {
                EV_READY => {
                    ready = true;
                    report = true;
                }
                EV_TIMER => {
                    let mut ticks = 0u64;
                    unsafe { libc::read(s.tfd, &mut ticks as *mut u64 as *mut _, 8) };
                    report = true;
                }
                _ => {}
            }
        }
        if report && !ready {
            // A timeout: the fd's registration is still armed and would
            // report later, while JS is busy or into its next wait.
            ctl(
                s.wep,
                libc::EPOLL_CTL_MOD,
                s.epoll_fd,
                libc::EPOLLONESHOT as u32,
                EV_READY,
            );
        }
        {
            let mut st = lock(&s.state);
            if st.stop {
                return;
            }
            if !report {
                continue;
            }
            st.notifying = true;
        }
        match notify {
            Notify::Callback(f) => f(ready as i32),
            Notify::Doorbell(fd) => {
                let b = [ready as u8];
                unsafe {
                    libc::send(
                        fd,
                        b.as_ptr() as *const _,
                        1,
                        libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                    )
                };
            }
        }
        lock(&s.state).notifying = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicI32, Ordering};
    use std::time::{Duration, Instant};

    static LAST: AtomicI32 = AtomicI32::new(-1);
    static CALLS: AtomicI32 = AtomicI32::new(0);

    extern "C" fn record(n: i32) {
        LAST.store(n, Ordering::SeqCst);
        CALLS.fetch_add(1, Ordering::SeqCst);
    }

    fn wait_calls(n: i32) {
        let t = Instant::now();
        while CALLS.load(Ordering::SeqCst) < n {
            assert!(t.elapsed() < Duration::from_secs(5), "no report");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// An epoll fd watching an eventfd, which the test makes readable.
    fn epoll_with_event() -> (c_int, c_int) {
        unsafe {
            let ep = libc::epoll_create1(libc::EPOLL_CLOEXEC);
            let ev = libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC);
            let mut e = libc::epoll_event {
                events: libc::EPOLLIN as u32,
                u64: 0,
            };
            assert_eq!(libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, ev, &mut e), 0);
            (ep, ev)
        }
    }

    #[test]
    fn reports_timeout_then_ready_once_per_arming_and_stops() {
        let (ep, ev) = epoll_with_event();
        let w = Watcher::start(ep, Notify::Callback(record)).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(CALLS.load(Ordering::SeqCst), 0, "reported without being armed");
        w.arm(10).unwrap();
        wait_calls(1);
        assert_eq!(LAST.load(Ordering::SeqCst), 0, "timeout reports 0");
        w.arm(-1).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(
            CALLS.load(Ordering::SeqCst),
            1,
            "reported while nothing was ready"
        );
        let one: u64 = 1;
        unsafe { libc::write(ev, &one as *const u64 as *const _, 8) };
        wait_calls(2);
        assert_eq!(LAST.load(Ordering::SeqCst), 1, "readiness reports 1");
        // Still readable, but not armed: no further report.
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(CALLS.load(Ordering::SeqCst), 2);
        // Armed with no timeout and nothing new: drop ends the thread.
        let mut buf = 0u64;
        unsafe { libc::read(ev, &mut buf as *mut u64 as *mut _, 8) };
        w.arm(-1).unwrap();
        let t = Instant::now();
        drop(w);
        assert!(t.elapsed() < Duration::from_secs(1));
        assert_eq!(CALLS.load(Ordering::SeqCst), 2, "reported after being stopped");
        unsafe {
            libc::close(ev);
            libc::close(ep);
        }
    }

    #[test]
    fn doorbell_gets_one_byte_per_report() {
        let (ep, ev) = epoll_with_event();
        let mut sv = [0 as c_int; 2];
        assert_eq!(
            unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, sv.as_mut_ptr()) },
            0
        );
        let w = Watcher::start(ep, Notify::Doorbell(sv[0])).unwrap();
        w.arm(5).unwrap();
        let mut b = [9u8; 4];
        assert_eq!(unsafe { libc::read(sv[1], b.as_mut_ptr() as *mut _, 4) }, 1);
        assert_eq!(b[0], 0);
        let one: u64 = 1;
        unsafe { libc::write(ev, &one as *const u64 as *const _, 8) };
        w.arm(-1).unwrap();
        assert_eq!(unsafe { libc::read(sv[1], b.as_mut_ptr() as *mut _, 4) }, 1);
        assert_eq!(b[0], 1);
        drop(w); // closes sv[0]
        assert_eq!(
            unsafe { libc::read(sv[1], b.as_mut_ptr() as *mut _, 4) },
            0,
            "doorbell not closed"
        );
        unsafe {
            libc::close(sv[1]);
            libc::close(ev);
            libc::close(ep);
        }
    }
}
