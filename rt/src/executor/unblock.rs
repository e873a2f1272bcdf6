//! Blocking work off the executor's thread: a call that waits in the kernel (a name lookup
//! that waits for a server to restart, say) runs on a thread of its own while the
//! executor goes on polling its other tasks.

use alloc::sync::Arc;
use core::future::poll_fn;
use core::task::{Poll, Waker};

use crate::sync::Mutex;
use crate::sys::Error;

/// The work's result once it is there, and who waits for it.
struct Slot<T> {
    result: Option<T>,
    waiter: Option<Waker>,
}

/// Runs `work` on a new thread; its result, without blocking this executor meanwhile.
/// `Err` only when no thread could be started. If this future is dropped first, the
/// result is dropped when the work ends.
pub async fn unblock<T, F>(work: F) -> Result<T, Error>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let slot = Arc::new(Mutex::new(Slot {
        result: None,
        waiter: None,
    }));
    let theirs = slot.clone();
    crate::thread::spawn(move || {
        let result = work();
        let waiter = {
            let mut slot = theirs.lock();
            slot.result = Some(result);
            slot.waiter.take()
        };
        if let Some(waiter) = waiter {
            waiter.wake();
        }
    })?;
    Ok(poll_fn(|cx| {
        let mut slot = slot.lock();
        match slot.result.take() {
            Some(result) => Poll::Ready(result),
            None => {
                slot.waiter = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    })
    .await)
}
