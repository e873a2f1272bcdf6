//! Timers: `sleep` and `timeout`, kept in a deadline-ordered map the executor consults
//! before it blocks.

use alloc::collections::BTreeMap;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};
use core::time::Duration;
use spin::Mutex;

/// Keyed by (deadline tick, timer id) so equal deadlines coexist.
static TIMERS: Mutex<BTreeMap<(u64, u64), Waker>> = Mutex::new(BTreeMap::new());
static NEXT_ID: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Wake every timer whose deadline has passed.
pub(super) fn fire_due() {
    if TIMERS.lock().is_empty() {
        return;
    }
    let now = crate::time::ticks();
    let due: alloc::vec::Vec<Waker> = {
        let mut timers = TIMERS.lock();
        let later = timers.split_off(&(now + 1, 0));
        core::mem::replace(&mut *timers, later)
            .into_values()
            .collect()
    };
    due.into_iter().for_each(Waker::wake);
}

/// The earliest deadline, in ticks, if any timer is pending.
pub(super) fn next_deadline() -> Option<u64> {
    TIMERS.lock().keys().next().map(|&(deadline, _)| deadline)
}

/// A future that completes at a tick.
pub struct Sleep {
    deadline: u64,
    id: u64,
}

/// Complete after at least `duration` (rounded up to a timer tick).
pub fn sleep(duration: Duration) -> Sleep {
    Sleep {
        deadline: crate::time::ticks() + crate::time::ticks_in(duration).max(1),
        id: NEXT_ID.fetch_add(1, core::sync::atomic::Ordering::Relaxed),
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if crate::time::ticks() >= self.deadline {
            TIMERS.lock().remove(&(self.deadline, self.id));
            return Poll::Ready(());
        }
        TIMERS
            .lock()
            .insert((self.deadline, self.id), cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        TIMERS.lock().remove(&(self.deadline, self.id));
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
