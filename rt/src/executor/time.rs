//! Timers: `sleep` and `timeout`, kept in a deadline-ordered map the executor consults
//! before it blocks.
//!
//! Reading the clock is a syscall, so the executor reads it once before it blocks (to fire
//! what is due and to bound its sleep), and a [`Sleep`] reads it only when made: once
//! registered, it learns that it fired from finding its entry gone.

use alloc::collections::BTreeMap;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};
use core::time::Duration;
use spin::Mutex;

/// Keyed by (deadline tick, timer id) so equal deadlines coexist.
static TIMERS: Mutex<BTreeMap<(u64, u64), Waker>> = Mutex::new(BTreeMap::new());
static NEXT_ID: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Wake every timer whose deadline has passed; the time until the earliest one left, if
/// any timer is pending.
pub(super) fn fire_due() -> Option<Duration> {
    if TIMERS.lock().is_empty() {
        return None;
    }
    let now = crate::time::ticks();
    let earliest = TIMERS.lock().keys().next().map(|&(deadline, _)| deadline);
    if let Some(deadline) = earliest.filter(|&deadline| deadline > now) {
        return Some(crate::time::ticks_to_duration(deadline - now));
    }
    let (due, next): (alloc::vec::Vec<Waker>, _) = {
        let mut timers = TIMERS.lock();
        let later = timers.split_off(&(now + 1, 0));
        let next = later.keys().next().map(|&(deadline, _)| deadline);
        let due = core::mem::replace(&mut *timers, later)
            .into_values()
            .collect();
        (due, next)
    };
    due.into_iter().for_each(Waker::wake);
    next.map(|deadline| crate::time::ticks_to_duration(deadline - now))
}

/// A future that completes at a tick.
pub struct Sleep {
    deadline: u64,
    id: u64,
    /// Whether its entry is in the timer map: from then on, a missing entry means it fired.
    registered: bool,
}

/// Complete after at least `duration` (rounded up to a timer tick).
pub fn sleep(duration: Duration) -> Sleep {
    Sleep {
        deadline: crate::time::ticks() + crate::time::ticks_in(duration).max(1),
        id: NEXT_ID.fetch_add(1, core::sync::atomic::Ordering::Relaxed),
        registered: false,
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let key = (self.deadline, self.id);
        let mut timers = TIMERS.lock();
        if !self.registered {
            // At least a tick away when made: if it is due by now, the executor's next look
            // at the clock, before it blocks, fires it.
            timers.insert(key, cx.waker().clone());
            drop(timers);
            self.registered = true;
            return Poll::Pending;
        }
        match timers.get_mut(&key) {
            None => Poll::Ready(()),
            Some(waker) => {
                if !waker.will_wake(cx.waker()) {
                    *waker = cx.waker().clone();
                }
                Poll::Pending
            }
        }
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if self.registered {
            TIMERS.lock().remove(&(self.deadline, self.id));
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
