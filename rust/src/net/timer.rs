//! Timers owned by a manager, built on Mongoose's own timer list: they run
//! inside `mg_mgr_poll`, so a fire is one TIMER record in the batch of the
//! poll that found it due (no JS timer per tick), and the loop's wait
//! already ends at the next due timer (`Core::next_timeout` reads
//! Mongoose's list). Mongoose calls the timers due in one poll in list
//! order (newest first), so fires are gathered during the poll and written
//! after it sorted by due time (then by age): timers due together leave in
//! the order they were due.
//!
//! mgnet owns each `mg_timer` (boxed, never `MG_TIMER_AUTODELETE`), so a
//! cancel unlinks and frees it at once; a one-shot timer is unlinked after
//! the poll that fired it (freeing it inside its callback would be a
//! use-after-free: `mg_timer_poll` writes the timer after the call). Timers
//! are touched only by the manager's thread and never during a poll from
//! outside it. `Manager::destroy` unlinks them before `mg_mgr_free`, which
//! `free()`s every timer still in Mongoose's list.
//!
//! TIMER record (`KIND_TIMER`, 24 bytes): the header's id field is the
//! timer id; slot u32 @16 is `u32::MAX` (no connection); 4 bytes padding.

use std::collections::HashMap;
use std::ffi::c_void;
use std::ptr;

use crate::core::error::{fail, Status};
use crate::core::event::HEADER_LEN;
use crate::core::manager::{now_ms, Core};
use crate::sys;

/// Record kind of a timer fire (`src/net/abi.ts`, `NetKind.Timer`).
pub const KIND_TIMER: u8 = 13;
/// Length of a TIMER record.
pub const TIMER_LEN: usize = HEADER_LEN + 8;
/// `mgnet_timer_add` flag: fire every period until cancelled.
pub const TIMER_REPEAT: u32 = 1;
/// `mgnet_timer_add` flag: keep the loop (and the process) running.
pub const TIMER_REF: u32 = 2;
/// Longest period (ms): about 24.8 days, as for JS timers.
pub const TIMER_MAX_MS: u64 = i32::MAX as u64;

/// One timer: Mongoose's record plus what the callback needs.
struct Entry {
    t: sys::mg_timer,
    id: u64,
    repeat: bool,
    refd: bool,
    /// A one-shot timer fired; it is unlinked after the poll.
    fired: bool,
    /// When the next fire is due (Mongoose's `expire` is already the one
    /// after it when the callback runs).
    due: u64,
    /// The owning `Timers::shared`.
    shared: *mut Shared,
}

/// What the callbacks of one poll gather.
#[derive(Default)]
struct Shared {
    /// (due, id) of each fire.
    fires: Vec<(u64, u64)>,
    /// Ids of one-shot timers that fired.
    fired_once: Vec<u64>,
}

/// The timers of one manager.
pub struct Timers {
    entries: HashMap<u64, Box<Entry>>,
    next_id: u64,
    /// Boxed: entries point at it from Mongoose's callbacks, so its address
    /// must not move with `Timers`.
    shared: Box<Shared>,
    /// Fires delivered (TIMER records written), for the metrics.
    pub fired: u64,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            entries: HashMap::new(),
            next_id: 1,
            shared: Box::default(),
            fired: 0,
        }
    }
}

/// Mongoose's callback: notes the fire (records are written after the poll).
unsafe extern "C" fn on_timer(arg: *mut c_void) {
    let _ = std::panic::catch_unwind(|| {
        let e = &mut *(arg as *mut Entry);
        if e.fired {
            return;
        }
        let shared = &mut *e.shared;
        shared.fires.push((e.due, e.id));
        e.due = e.t.expire;
        if !e.repeat {
            e.fired = true;
            shared.fired_once.push(e.id);
        }
    });
}

impl Timers {
    /// Adds a timer due in `ms` (then every `ms` if `repeat`). Returns its id.
    ///
    /// # Safety
    /// `core` is the live core these timers belong to, not in a poll.
    pub unsafe fn add(&mut self, core: *mut Core, ms: f64, flags: u32) -> Result<u64, i32> {
        if !(0.0..=TIMER_MAX_MS as f64).contains(&ms) {
            return Err(fail(
                Status::Invalid,
                format!("timer delay {ms} is not 0..={TIMER_MAX_MS} ms"),
            ));
        }
        let repeat = flags & TIMER_REPEAT != 0;
        // A repeating timer of period 0 would fire on every poll.
        let period = if repeat { (ms as u64).max(1) } else { ms as u64 };
        let id = self.next_id;
        self.next_id += 1;
        let mut e = Box::new(Entry {
            t: std::mem::zeroed(),
            id,
            repeat,
            refd: flags & TIMER_REF != 0,
            fired: false,
            due: 0,
            shared: &mut *self.shared,
        });
        let arg = &mut *e as *mut Entry as *mut c_void;
        let mflags = if repeat {
            sys::MG_TIMER_REPEAT
        } else {
            sys::MG_TIMER_ONCE
        };
        let mgr = (*core).mgr_ptr();
        sys::mg_timer_init(
            ptr::addr_of_mut!((*mgr).timers),
            &mut e.t,
            period,
            mflags,
            Some(on_timer),
            arg,
        );
        // Mongoose starts counting at the next poll; start now instead.
        e.t.expire = now_ms() + period;
        e.due = e.t.expire;
        if e.refd {
            (*core).hold(true);
        }
        self.entries.insert(id, e);
        Ok(id)
    }

    /// Cancels timer `id`: it never fires again (a record already in the
    /// current batch is dropped by JS). Returns whether it was active.
    ///
    /// # Safety
    /// `core` is the live core these timers belong to, not in a poll.
    pub unsafe fn cancel(&mut self, core: *mut Core, id: u64) -> bool {
        match self.entries.remove(&id) {
            Some(mut e) => {
                let active = !e.fired;
                Self::unlink(core, &mut e);
                active
            }
            None => false,
        }
    }

    /// Makes timer `id` keep the loop running (`refd`) or not. Returns
    /// whether the timer exists.
    ///
    /// # Safety
    /// `core` is the live core these timers belong to.
    pub unsafe fn set_ref(&mut self, core: *mut Core, id: u64, refd: bool) -> bool {
        match self.entries.get_mut(&id) {
            Some(e) if !e.fired => {
                if e.refd != refd {
                    e.refd = refd;
                    (*core).hold(refd);
                }
                true
            }
            _ => false,
        }
    }

    /// After a poll: writes the TIMER records of its fires (by due time,
    /// then age) and frees the one-shot timers that fired.
    ///
    /// # Safety
    /// `core` is the live core these timers belong to, not in a poll.
    pub unsafe fn after_poll(&mut self, core: *mut Core) {
        let shared = &mut *self.shared;
        if shared.fires.is_empty() {
            return;
        }
        shared.fires.sort_unstable();
        self.fired += shared.fires.len() as u64;
        let ev = &mut (*core).events;
        for &(_, id) in &shared.fires {
            ev.header(KIND_TIMER, 0, 0, TIMER_LEN, id);
            ev.u32(u32::MAX);
            ev.u32(0);
        }
        shared.fires.clear();
        for id in std::mem::take(&mut shared.fired_once) {
            if let Some(mut e) = self.entries.remove(&id) {
                Self::unlink(core, &mut e);
            }
        }
    }

    unsafe fn unlink(core: *mut Core, e: &mut Entry) {
        let mgr = (*core).mgr_ptr();
        sys::mg_timer_free(ptr::addr_of_mut!((*mgr).timers), &mut e.t);
        if e.refd {
            (*core).hold(false);
        }
    }

    /// Timers not yet fired or cancelled.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Unlinks and frees every timer. Must run before `mg_mgr_free`, which
    /// `free()`s whatever is still in Mongoose's list.
    ///
    /// # Safety
    /// `core` is the live core these timers belong to, not in a poll.
    pub unsafe fn clear(&mut self, core: *mut Core) {
        for (_, mut e) in self.entries.drain() {
            Self::unlink(core, &mut e);
        }
        self.shared.fires.clear();
        self.shared.fired_once.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::event::split_records;
    use std::time::{Duration, Instant};

    /// Polls `core` (reaping like the manager does) until `n` TIMER records
    /// were gathered or `ms` passed; returns the ids seen.
    unsafe fn fires(core: *mut Core, timers: &mut Timers, ms: u64) -> Vec<u64> {
        let deadline = Instant::now() + Duration::from_millis(ms);
        let mut ids = Vec::new();
        while Instant::now() < deadline {
            Core::poll(core);
            timers.after_poll(core);
            let bytes = std::mem::take(&mut (*core).events.bytes);
            for (kind, id, r) in split_records(&bytes) {
                assert_eq!((kind, r.len()), (KIND_TIMER, TIMER_LEN));
                ids.push(id);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        ids
    }

    #[test]
    fn one_shot_fires_once_repeating_until_cancelled_refs_are_counted() {
        unsafe {
            let core = Box::into_raw(Core::new().unwrap());
            let mut t = Timers::default();
            let once = t.add(core, 5.0, TIMER_REF).unwrap();
            let rep = t.add(core, 20.0, TIMER_REPEAT).unwrap();
            assert_eq!((*core).refs(), 1, "only the ref'd timer holds the loop");
            let ids = fires(core, &mut t, 110);
            assert_eq!(ids.iter().filter(|&&i| i == once).count(), 1);
            let n = ids.iter().filter(|&&i| i == rep).count();
            assert!((3..=5).contains(&n), "a 20 ms timer fired {n} times in 110 ms");
            assert_eq!(t.len(), 1, "the one-shot timer was freed");
            assert_eq!((*core).refs(), 0, "its hold was given back");
            assert!(t.cancel(core, rep));
            assert!(!t.cancel(core, rep));
            assert_eq!(fires(core, &mut t, 50), Vec::<u64>::new());
            assert_eq!(t.add(core, -1.0, 0), Err(Status::Invalid as i32));
            // Due together in one poll: they leave in due order, not list order.
            let late = t.add(core, 10.0, 0).unwrap();
            let early = t.add(core, 5.0, 0).unwrap();
            std::thread::sleep(Duration::from_millis(15));
            assert_eq!(fires(core, &mut t, 5), vec![early, late]);
            t.add(core, 1.0, TIMER_REPEAT | TIMER_REF).unwrap();
            t.clear(core);
            assert_eq!(((*core).refs(), t.len()), (0, 0));
            Core::destroy(core);
        }
    }
}
