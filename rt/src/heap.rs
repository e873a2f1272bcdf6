//! The global allocator: a linked-list heap on pages mapped on demand at a fixed region,
//! with free lists for small blocks in front of it.
//!
//! The heap grows upward from [`HEAP_BASE`]; each growth maps the pages right above the
//! current end, so the allocator can simply extend its last hole. Small blocks (the
//! messages, futures and wakers async code allocates and frees all the time) are recycled
//! through one free list per 16-byte size class: a pop or a push, instead of a walk of the
//! heap's holes.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{NonNull, null_mut};

use keel_abi::layout::PAGE_SIZE;
use keel_abi::prot;
use linked_list_allocator::Heap;

use crate::sync::Mutex;
use crate::sys;

/// Where the heap starts: far from `mem_map(0, ..)`'s area, modules and the stack.
const HEAP_BASE: usize = 0x0000_2000_0000_0000;
/// Where it must stop (the start of the next 16 TiB slot).
const HEAP_LIMIT: usize = 0x0000_3000_0000_0000;
/// The smallest growth, so that small allocations do not cost a syscall each.
const MIN_GROWTH: usize = 64 * 1024;

/// Blocks up to this size, aligned to at most [`CLASS_ALIGN`], use the free lists.
const SMALL: usize = 512;
const CLASS_ALIGN: usize = 16;
const CLASSES: usize = SMALL / CLASS_ALIGN;

struct State {
    heap: Heap,
    /// End of the mapped heap region; `HEAP_BASE` until the first growth.
    end: usize,
    /// Per size class, the first free block; each free block holds the next one's address.
    free: [usize; CLASSES],
}

/// The size class of a small block, if it is one.
fn class(layout: Layout) -> Option<usize> {
    (layout.size() <= SMALL && layout.align() <= CLASS_ALIGN)
        .then(|| layout.size().max(1).div_ceil(CLASS_ALIGN) - 1)
}

fn class_layout(class: usize) -> Layout {
    Layout::from_size_align((class + 1) * CLASS_ALIGN, CLASS_ALIGN).expect("a valid small layout")
}

struct GrowingHeap(Mutex<State>);

#[global_allocator]
static HEAP: GrowingHeap = GrowingHeap(Mutex::new(State {
    heap: Heap::empty(),
    end: HEAP_BASE,
    free: [0; CLASSES],
}));

impl State {
    /// Maps enough pages above the heap's end to satisfy `layout` from fresh memory.
    fn grow(&mut self, layout: Layout) -> Result<(), sys::Error> {
        // Room for the block at its alignment plus the allocator's hole header.
        let len = layout
            .size()
            .checked_add(layout.align() + 4 * size_of::<usize>())
            .and_then(|needed| needed.max(MIN_GROWTH).checked_next_multiple_of(PAGE_SIZE))
            .filter(|&len| len <= HEAP_LIMIT - self.end)
            .ok_or(sys::Error::OutOfMemory)?;
        let addr = sys::mem_map(self.end, len, prot::READ | prot::WRITE)?;
        if self.end == HEAP_BASE {
            // SAFETY: `[addr, addr + len)` was just mapped for the heap alone and stays mapped.
            unsafe { self.heap.init(addr as *mut u8, len) };
        } else {
            // SAFETY: the new pages lie directly above the heap's previous end and stay mapped.
            unsafe { self.heap.extend(len) };
        }
        self.end = addr + len;
        Ok(())
    }
}

impl GrowingHeap {
    /// A recycled small block, when one is free and the lock is free now: the common case,
    /// kept small so that it saves no registers and calls nothing.
    #[inline(always)]
    fn recycled(&self, layout: Layout) -> Option<*mut u8> {
        let class = class(layout)?;
        let mut state = self.0.try_lock()?;
        let block = state.free[class];
        if block == 0 {
            return None;
        }
        // SAFETY: a free small block holds the address of the next one.
        state.free[class] = unsafe { *(block as *const usize) };
        Some(block as *mut u8)
    }

    /// Any block: from the free lists, the heap, or the heap grown.
    #[cold]
    #[inline(never)]
    fn allocate(&self, layout: Layout) -> *mut u8 {
        let mut state = self.0.lock();
        let layout = match class(layout) {
            Some(class) => {
                let block = state.free[class];
                if block != 0 {
                    // SAFETY: a free small block holds the address of the next one.
                    state.free[class] = unsafe { *(block as *const usize) };
                    return block as *mut u8;
                }
                class_layout(class)
            }
            None => layout,
        };
        if let Ok(block) = state.heap.allocate_first_fit(layout) {
            return block.as_ptr();
        }
        if state.grow(layout).is_err() {
            return null_mut();
        }
        state
            .heap
            .allocate_first_fit(layout)
            .map_or(null_mut(), NonNull::as_ptr)
    }

    /// Give back `ptr`, a block of `layout` this allocator handed out.
    ///
    /// # Safety
    /// As for [`GlobalAlloc::dealloc`].
    #[cold]
    #[inline(never)]
    unsafe fn free(&self, ptr: *mut u8, layout: Layout) {
        if let Some(class) = class(layout) {
            let mut state = self.0.lock();
            // SAFETY: as in `dealloc`.
            unsafe { *(ptr as *mut usize) = state.free[class] };
            state.free[class] = ptr as usize;
            return;
        }
        let block = NonNull::new(ptr).expect("GlobalAlloc never hands out null");
        // SAFETY: the caller returns a block this allocator handed out with this layout.
        unsafe { self.0.lock().heap.deallocate(block, layout) };
    }
}

// SAFETY: every block comes from `Heap`, under the lock, from memory mapped for the heap only.
unsafe impl GlobalAlloc for GrowingHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match self.recycled(layout) {
            Some(block) => block,
            None => self.allocate(layout),
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // A small block goes on its class's free list; under contention, or for a large
        // block, the slow path.
        if let Some(class) = class(layout)
            && let Some(mut state) = self.0.try_lock()
        {
            // SAFETY: the block is at least a word long and 16-byte aligned (its class's
            // layout), and the caller gives it up: its first word becomes the list link.
            unsafe { *(ptr as *mut usize) = state.free[class] };
            state.free[class] = ptr as usize;
            return;
        }
        // SAFETY: the caller's promises, passed on.
        unsafe { self.free(ptr, layout) }
    }
}
