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
    let task = Box::pin(Joinable {
        future,
        state: state.clone(),
    });
    (task, JoinHandle { state })
}

/// A task's future and where its output goes. Polled in place: an `async` block that
/// awaited the future would first move it into its own state, a copy of the whole future
/// (often a kilobyte or more) each time a task starts.
struct Joinable<F: Future> {
    future: F,
    state: Rc<RefCell<JoinState<F::Output>>>,
}

impl<F: Future> Future for Joinable<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // SAFETY: `future` is pinned with `self` (structural pinning): it is never moved
        // out, and `Joinable` has neither a `Drop` nor an `Unpin` impl of its own.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: as above, `this.future` stays where it is until `this` is dropped.
        let future = unsafe { Pin::new_unchecked(&mut this.future) };
        let Poll::Ready(output) = future.poll(cx) else {
            return Poll::Pending;
        };
        let mut state = this.state.borrow_mut();
        if !state.detached {
            state.result = Some(output);
            if let Some(waiter) = state.waiter.take() {
                waiter.wake();
            }
        }
        Poll::Ready(())
    }
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
