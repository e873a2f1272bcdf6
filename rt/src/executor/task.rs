//! Tasks, their wakers, and join handles.
//!
//! A waker is a reference-counted task header: waking marks the task in the ready set
//! ([`super::ready`]) once, and allocates nothing. The ready set is lock-free, so threads
//! other than the executor's may wake tasks too.

use alloc::boxed::Box;
use alloc::rc::Rc;
use alloc::sync::Arc;
use core::cell::RefCell;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

use super::ready;

pub type BoxFuture = Pin<Box<dyn Future<Output = ()>>>;

/// What a waker points at.
pub struct Header {
    pub index: usize,
}

impl Header {
    pub fn new(index: usize) -> Arc<Self> {
        Arc::new(Header { index })
    }

    /// Mark the task ready, and signal the executor if it sleeps.
    pub fn schedule(&self) {
        if ready::insert(self.index) {
            super::wake::executor_may_sleep_on_it();
        }
    }
}

pub fn waker(header: &Arc<Header>) -> Waker {
    let raw = RawWaker::new(Arc::into_raw(header.clone()) as *const (), &VTABLE);
    // SAFETY: the vtable below treats the data pointer as an `Arc<Header>` it owns.
    unsafe { Waker::from_raw(raw) }
}

static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, wake_by_ref, drop);

fn clone(data: *const ()) -> RawWaker {
    // SAFETY: `data` came from `Arc::into_raw` and the waker still owns its count.
    unsafe { Arc::increment_strong_count(data as *const Header) };
    RawWaker::new(data, &VTABLE)
}

fn wake(data: *const ()) {
    // SAFETY: as in `clone`; this consumes the waker's count.
    let header = unsafe { Arc::from_raw(data as *const Header) };
    header.schedule();
}

fn wake_by_ref(data: *const ()) {
    // SAFETY: as in `clone`; the waker keeps its count.
    unsafe { &*(data as *const Header) }.schedule();
}

fn drop(data: *const ()) {
    // SAFETY: as in `clone`; this releases the waker's count.
    unsafe { Arc::decrement_strong_count(data as *const Header) };
}

/// The state a task and its join handle share.
struct JoinState<T> {
    result: Option<T>,
    waiter: Option<Waker>,
    detached: bool,
}

/// Awaits a spawned task's output. Dropping it lets the task run on, detached.
pub struct JoinHandle<T> {
    state: Rc<RefCell<JoinState<T>>>,
}

/// Wrap `future` so its output lands in a join handle.
pub fn joinable<F: Future + 'static>(future: F) -> (BoxFuture, JoinHandle<F::Output>) {
    let state = Rc::new(RefCell::new(JoinState {
        result: None,
        waiter: None,
        detached: false,
    }));
    let task_state = state.clone();
    let task = Box::pin(async move {
        let output = future.await;
        let mut state = task_state.borrow_mut();
        if !state.detached {
            state.result = Some(output);
            if let Some(waiter) = state.waiter.take() {
                waiter.wake();
            }
        }
    });
    (task, JoinHandle { state })
}

impl<T> JoinHandle<T> {
    /// The output, if the task has finished (taken once).
    pub fn try_take(&self) -> Option<T> {
        self.state.borrow_mut().result.take()
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut state = self.state.borrow_mut();
        match state.result.take() {
            Some(output) => Poll::Ready(output),
            None => {
                state.waiter = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        self.state.borrow_mut().detached = true;
    }
}
