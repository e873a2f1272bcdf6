//! An async lock: one file-system operation at a time, the others waiting as futures (the
//! volume's state changes across the block calls an operation awaits).

use alloc::vec::Vec;
use core::cell::{RefCell, RefMut};
use core::future::poll_fn;
use core::ops::{Deref, DerefMut};
use core::task::{Poll, Waker};

pub struct Lock<T> {
    value: RefCell<T>,
    waiting: RefCell<Vec<Waker>>,
}

/// The lock held: the value, and the waiters to wake when it goes.
pub struct Guard<'a, T> {
    value: RefMut<'a, T>,
    waiting: &'a RefCell<Vec<Waker>>,
}

impl<T> Lock<T> {
    pub fn new(value: T) -> Lock<T> {
        Lock {
            value: RefCell::new(value),
            waiting: RefCell::default(),
        }
    }

    pub async fn lock(&self) -> Guard<'_, T> {
        poll_fn(|cx| match self.value.try_borrow_mut() {
            Ok(value) => Poll::Ready(Guard {
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

impl<T> Deref for Guard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> DerefMut for Guard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.value
    }
}

impl<T> Drop for Guard<'_, T> {
    fn drop(&mut self) {
        // Every waiter tries again; the first polled takes it, the rest wait anew.
        for waker in self.waiting.take() {
            waker.wake();
        }
    }
}
