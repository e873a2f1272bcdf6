//! `join_all` for a batch of calls: every future in one boxed slice, polled in turn.
//!
//! futures-util's `join_all` takes this shape only up to 30 futures; past that it builds a
//! `FuturesOrdered`, which allocates a reference-counted task per future and wakes through
//! atomics. A batch of calls on one connection is woken about twice (requests out, answers
//! in), so polling every future still pending at each wake-up costs less than keeping
//! track of which one was woken, and the batch allocates once.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::future::{Future, IntoFuture};
use core::pin::Pin;
use core::task::{Context, Poll};

enum Slot<F: Future> {
    Pending(F),
    Done(F::Output),
    Taken,
}

/// The future of [`join_all`].
pub struct JoinAll<F: Future> {
    /// Never moved once made: the futures stay where they were first polled.
    slots: Box<[Slot<F>]>,
    pending: usize,
}

/// Wait for every future of `futures`; their outputs, in order.
///
/// ```ignore
/// let answers = keel_rt::executor::join_all((0..64).map(|x| client.ping(x))).await;
/// ```
pub fn join_all<I>(futures: I) -> JoinAll<<I::Item as IntoFuture>::IntoFuture>
where
    I: IntoIterator,
    I::Item: IntoFuture,
{
    let slots: Box<[_]> = futures
        .into_iter()
        .map(|future| Slot::Pending(future.into_future()))
        .collect();
    JoinAll {
        pending: slots.len(),
        slots,
    }
}

// The futures live in the boxed slice, which `JoinAll` only points to: moving it moves none.
impl<F: Future> Unpin for JoinAll<F> {}

impl<F: Future> Future for JoinAll<F> {
    type Output = Vec<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Vec<F::Output>> {
        let this = &mut *self;
        let _batch = (this.pending > 1).then(super::inline::Batch::begin);
        for slot in this.slots.iter_mut() {
            if let Slot::Pending(future) = slot {
                // SAFETY: the future sits in the boxed slice, which is neither moved nor
                // reallocated while it is there: it leaves only as its output, below.
                let future = unsafe { Pin::new_unchecked(future) };
                if let Poll::Ready(output) = future.poll(cx) {
                    *slot = Slot::Done(output);
                    this.pending -= 1;
                }
            }
        }
        if this.pending > 0 {
            return Poll::Pending;
        }
        let outputs =
            this.slots
                .iter_mut()
                .map(|slot| match core::mem::replace(slot, Slot::Taken) {
                    Slot::Done(output) => output,
                    Slot::Pending(_) | Slot::Taken => unreachable!("polled after it completed"),
                });
        Poll::Ready(outputs.collect())
    }
}
