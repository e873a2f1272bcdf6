//! Timers: `sleep` and `timeout`, kept in a deadline-ordered map the executor consults
//! before it blocks.
//!
//! Reading the clock is a syscall, so the executor reads it only before it blocks with a
//! timer pending (to fire what is due and to bound its sleep), and a [`Sleep`] reads it only
//! when made. Once registered, it learns that it fired from the tick up to which the
//! executor has fired every timer, without looking itself up in the map.

use alloc::collections::BTreeMap;
use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::{AtomicU64, Ordering};
use core::task::{Context, Poll, Waker};
use core::time::Duration;
use spin::Mutex;

/// Keyed by (deadline tick, timer id) so equal deadlines coexist.
static TIMERS: Mutex<BTreeMap<(u64, u64), Waker>> = Mutex::new(BTreeMap::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(0);
/// Every timer with a deadline up to this tick has fired: its entry is gone from the map,
/// and a timer due by then is not entered. Raised under the map's lock.
static FIRED_UP_TO: AtomicU64 = AtomicU64::new(0);
/// The map's earliest deadline, `u64::MAX` when it is empty: the executor's look before it
/// blocks takes neither the lock nor, with no timer pending, the clock. Kept under the lock.
static EARLIEST: AtomicU64 = AtomicU64::new(u64::MAX);

/// Wake every timer whose deadline has passed; the time until the earliest one left, if
/// any timer is pending.
pub(super) fn fire_due() -> Option<Duration> {
    let earliest = EARLIEST.load(Ordering::Acquire);
    if earliest == u64::MAX {
        return None;
    }
    let now = crate::time::ticks();
    if earliest > now {
        return Some(crate::time::ticks_to_duration(earliest - now));
    }
    let (due, next) = {
        let mut timers = TIMERS.lock();
        FIRED_UP_TO.fetch_max(now, Ordering::Release);
        let later = timers.split_off(&(now + 1, 0));
        let next = later.keys().next().map(|&(deadline, _)| deadline);
        EARLIEST.store(next.unwrap_or(u64::MAX), Ordering::Release);
        let due: alloc::vec::Vec<Waker> = core::mem::replace(&mut *timers, later)
            .into_values()
            .collect();
        (due, next)
    };
    due.into_iter().for_each(Waker::wake);
    next.map(|deadline| crate::time::ticks_to_duration(deadline - now))
}

/// Whether no timer is armed.
pub(super) fn none_armed() -> bool {
    EARLIEST.load(Ordering::Relaxed) == u64::MAX
}

/// Whether the timers due at `deadline` have fired.
fn fired(deadline: u64) -> bool {
    deadline <= FIRED_UP_TO.load(Ordering::Acquire)
}

/// A future that completes at a tick.
pub struct Sleep {
    deadline: u64,
    id: u64,
    /// The waker its entry in the timer map holds, once it has one: from then on, the
    /// entry is there until the timer fires.
    registered: Option<Waker>,
}

/// Complete after at least `duration` (rounded up to a timer tick).
pub fn sleep(duration: Duration) -> Sleep {
    Sleep {
        deadline: crate::time::ticks() + crate::time::ticks_in(duration).max(1),
        id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        registered: None,
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if fired(self.deadline) {
            return Poll::Ready(());
        }
        if self
            .registered
            .as_ref()
            .is_some_and(|waker| waker.will_wake(cx.waker()))
        {
            return Poll::Pending;
        }
        // First poll, or polled by another task than before: (re)enter the entry. At least
        // a tick away when made: if it is due by now, the executor's next look at the
        // clock, before it blocks, fires it.
        let waker = cx.waker().clone();
        let mut timers = TIMERS.lock();
        if fired(self.deadline) {
            return Poll::Ready(());
        }
        timers.insert((self.deadline, self.id), waker.clone());
        EARLIEST.fetch_min(self.deadline, Ordering::Release);
        drop(timers);
        self.registered = Some(waker);
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if self.registered.is_some() && !fired(self.deadline) {
            let mut timers = TIMERS.lock();
            timers.remove(&(self.deadline, self.id));
            let earliest = timers
                .keys()
                .next()
                .map_or(u64::MAX, |&(deadline, _)| deadline);
            EARLIEST.store(earliest, Ordering::Release);
        }
    }
}

/// The time ran out before the future finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Elapsed;

/// Run `future`, giving up after `duration`.
pub async fn timeout<F: Future>(duration: Duration, future: F) -> Result<F::Output, Elapsed> {
    use futures_util::future::{Either, select};
    let future = core::pin::pin!(future);
    match select(future, sleep(duration)).await {
        Either::Left((output, _)) => Ok(output),
        Either::Right(((), _)) => Err(Elapsed),
    }
}
