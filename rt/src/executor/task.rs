//! Tasks, their wakers, and join handles.
//!
//! A waker is a reference-counted task header: waking pushes the task's index on the ready
//! queue once (a flag stops duplicates), so a wake-up allocates nothing. The ready queue is
//! crossbeam's lock-free queue, so threads other than the executor's may wake tasks too.

use alloc::boxed::Box;
use alloc::rc::Rc;
use alloc::sync::Arc;
use core::cell::RefCell;
use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::{AtomicBool, Ordering};
use core::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

pub type BoxFuture = Pin<Box<dyn Future<Output = ()>>>;

/// What a waker points at.
pub struct Header {
    pub index: usize,
    queued: AtomicBool,
}

impl Header {
    pub fn new(index: usize) -> Arc<Self> {
        Arc::new(Header {
            index,
            queued: AtomicBool::new(false),
        })
    }

    /// Put the task on the ready queue unless it is there already.
    pub fn schedule(&self) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            super::ready_queue().push(self.index);
            super::wake::executor_may_sleep_on_it();
        }
    }

    /// Called just before the task is polled: a wake from now on queues it again.
    pub fn dequeued(&self) {
        self.queued.store(false, Ordering::Release);
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
