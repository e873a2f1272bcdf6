//! Locks for user programs: a spin lock that yields the CPU while it waits, and an async
//! lock for tasks that await while they hold it.

use alloc::vec::Vec;
use core::cell::{RefCell, RefMut};
use core::future::poll_fn;
use core::ops::{Deref, DerefMut};
use core::task::{Poll, Waker};
use spin::RelaxStrategy;

/// Waits for a lock by giving the time slice away, so that on one CPU the holder gets to run.
pub struct Yield;

impl RelaxStrategy for Yield {
    fn relax() {
        crate::sys::thread_yield();
    }
}

/// A mutual-exclusion lock whose waiters yield instead of spinning out their time slice.
///
/// Waiters yield only to threads of their own priority or higher: do not share one lock
/// between threads of different priorities.
pub type Mutex<T> = spin::mutex::SpinMutex<T, Yield>;

/// An async lock for the tasks of one executor: a waiter is a future, not a spinning
/// thread, so a holder may await (a service call) while others wait. One server uses it
/// to run one file-system operation at a time, kv to save its store one snapshot at a time.
pub struct AsyncMutex<T> {
    value: RefCell<T>,
    waiting: RefCell<Vec<Waker>>,
}

/// [`AsyncMutex`] held: the value, and the waiters to wake when it goes.
pub struct AsyncGuard<'a, T> {
    value: RefMut<'a, T>,
    waiting: &'a RefCell<Vec<Waker>>,
}

impl<T> AsyncMutex<T> {
    pub fn new(value: T) -> AsyncMutex<T> {
        AsyncMutex {
            value: RefCell::new(value),
            waiting: RefCell::default(),
        }
    }

    pub async fn lock(&self) -> AsyncGuard<'_, T> {
        poll_fn(|cx| match self.value.try_borrow_mut() {
            Ok(value) => Poll::Ready(AsyncGuard {
                value,
                waiting: &self.waiting,
            }),
            Err(_) => {
                self.waiting.borrow_mut().push(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }
}

impl<T> Deref for AsyncGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> DerefMut for AsyncGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.value
    }
}

impl<T> Drop for AsyncGuard<'_, T> {
    fn drop(&mut self) {
        // Every waiter tries again; the first polled takes it, the rest wait anew.
        for waker in self.waiting.take() {
            waker.wake();
        }
    }
}
