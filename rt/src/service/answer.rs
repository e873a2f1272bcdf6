//! A request's future in memory its connection recycles: no allocation per request once a
//! connection has served each of its methods.
//!
//! A method's future has a type only the generated dispatcher knows, and a request that
//! waits must outlive the dispatch, so the future goes to the heap. Most requests finish
//! on their first poll, though, and a `Box` per request would allocate and free each time:
//! an [`Answer`] gives its block back to its [`Blocks`] instead, where the next future of
//! the same layout takes it.

use alloc::alloc::{alloc, dealloc, handle_alloc_error};
use alloc::rc::Rc;
use alloc::vec::Vec;
use core::alloc::Layout;
use core::cell::RefCell;
use core::future::Future;
use core::pin::Pin;
use core::ptr::NonNull;
use core::task::{Context, Poll};

/// Blocks kept for reuse, per connection: one per method's future is the usual need.
const KEPT: usize = 8;

/// A connection's spare blocks, by layout.
#[derive(Default)]
pub(super) struct Blocks(RefCell<Vec<(Layout, NonNull<u8>)>>);

impl Blocks {
    /// A block for `layout`: a spare one, or a new one.
    fn take(&self, layout: Layout) -> NonNull<u8> {
        let mut spare = self.0.borrow_mut();
        if let Some(at) = spare.iter().position(|&(kept, _)| kept == layout) {
            return spare.swap_remove(at).1;
        }
        if layout.size() == 0 {
            // A zero-sized future needs no memory, only an aligned address.
            return NonNull::new(core::ptr::without_provenance_mut(layout.align()))
                .expect("alignment is non-zero");
        }
        // SAFETY: `layout` has a non-zero size.
        NonNull::new(unsafe { alloc(layout) }).unwrap_or_else(|| handle_alloc_error(layout))
    }

    /// Keep `block` for the next future of `layout`, or free it when enough are kept.
    fn give_back(&self, layout: Layout, block: NonNull<u8>) {
        let mut spare = self.0.borrow_mut();
        if layout.size() == 0 {
            return;
        }
        if spare.len() < KEPT {
            spare.push((layout, block));
        } else {
            // SAFETY: `take` allocated `block` with `layout`, and nothing refers to it now.
            unsafe { dealloc(block.as_ptr(), layout) };
        }
    }
}

impl Drop for Blocks {
    fn drop(&mut self) {
        for (layout, block) in self.0.get_mut().drain(..) {
            // SAFETY: as in `give_back`: allocated with `layout`, no longer referred to.
            unsafe { dealloc(block.as_ptr(), layout) };
        }
    }
}

/// A request under way: its method, then the sending of its result. Polled where it lies,
/// in a block its connection keeps for the next request, given back when dropped.
pub struct Answer {
    future: NonNull<dyn Future<Output = ()>>,
    layout: Layout,
    /// Where the block goes back to.
    home: Rc<Blocks>,
}

impl Answer {
    /// `future`, moved into a block of `home`'s.
    pub(super) fn new<F: Future<Output = ()> + 'static>(home: Rc<Blocks>, future: F) -> Answer {
        let layout = Layout::new::<F>();
        let block = home.take(layout).cast::<F>();
        // SAFETY: the block is fit for an `F` (its layout) and holds nothing.
        unsafe { block.as_ptr().write(future) };
        let future: NonNull<dyn Future<Output = ()>> = block;
        Answer {
            future,
            layout,
            home,
        }
    }
}

// An `Answer` is a pointer to its future: moving it moves nothing pinned.
impl Unpin for Answer {}

impl Future for Answer {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // SAFETY: the future lives in its block, unmoved, until `drop` below; `self` is
        // its only owner.
        unsafe { Pin::new_unchecked(&mut *self.future.as_ptr()).poll(cx) }
    }
}

impl Drop for Answer {
    fn drop(&mut self) {
        // SAFETY: the block holds the future, which nothing else refers to; it is dropped
        // once, here, where it was pinned.
        unsafe { core::ptr::drop_in_place(self.future.as_ptr()) };
        self.home.give_back(self.layout, self.future.cast::<u8>());
    }
}
