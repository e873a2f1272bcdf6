//! The kernel heap: a linked-list allocator over a contiguous range of the direct map.
//!
//! What user space can make the kernel allocate is bounded by per-process limits, so the heap
//! cannot be exhausted from ring 3.

use core::alloc::{GlobalAlloc, Layout};
use linked_list_allocator::Heap;
use spin::Mutex;

struct KernelHeap(Mutex<Heap>);

#[global_allocator]
static HEAP: KernelHeap = KernelHeap(Mutex::new(Heap::empty()));

// SAFETY: allocation is delegated to linked_list_allocator under a lock.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.0
            .lock()
            .allocate_first_fit(layout)
            .map_or(core::ptr::null_mut(), |p| p.as_ptr())
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(ptr) = core::ptr::NonNull::new(ptr) {
            // SAFETY: the caller guarantees `ptr` came from `alloc` with this layout.
            unsafe { self.0.lock().deallocate(ptr, layout) };
        }
    }
}

/// # Safety
/// `[start, start + size)` is writable memory used by nothing else, for ever.
pub unsafe fn init(start: usize, size: usize) {
    // SAFETY: per the caller.
    unsafe { HEAP.0.lock().init(start as *mut u8, size) };
}
