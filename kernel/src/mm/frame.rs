//! Physical frames: a free list threaded through the free frames themselves.
//!
//! Every released frame holds the physical address of the next one in its first word, reached
//! through the direct map, so allocation and release are O(1) and need no memory of their
//! own. Frames never used yet are handed out from the boot ranges in order, so start-up does
//! not touch every page of RAM (costly under emulation). Frames come from the loader's memory
//! map minus the kernel image, the boot modules and the kernel heap.

use super::{PAGE_SIZE, PhysAddr, phys_to_virt};
use spin::Mutex;

struct FreeList {
    head: Option<PhysAddr>,
    /// Untouched frames: `[start, end)` ranges, consumed from the front.
    fresh: heapless::Vec<(PhysAddr, PhysAddr), 32>,
    free: usize,
    total: usize,
}

static FRAMES: Mutex<FreeList> = Mutex::new(FreeList {
    head: None,
    fresh: heapless::Vec::new(),
    free: 0,
    total: 0,
});

/// Hand the page-aligned range `[start, end)` to the allocator.
///
/// # Safety
/// The frames must be RAM inside the direct map that nothing else uses, now or later.
pub unsafe fn add_range(start: PhysAddr, end: PhysAddr) {
    let frames = ((end - start) / PAGE_SIZE as u64) as usize;
    let mut list = FRAMES.lock();
    if frames > 0 && list.fresh.push((start, end)).is_ok() {
        list.free += frames;
        list.total += frames;
    }
}

impl FreeList {
    fn take(&mut self) -> Option<PhysAddr> {
        if let Some(frame) = self.head {
            // SAFETY: `frame` is on the free list, so its first word holds the next link.
            let next = unsafe { *(phys_to_virt(frame) as *const u64) };
            self.head = (next != 0).then_some(next);
            return Some(frame);
        }
        let (start, end) = self.fresh.first_mut()?;
        let frame = *start;
        *start += PAGE_SIZE as u64;
        if *start >= *end {
            self.fresh.remove(0);
        }
        Some(frame)
    }
}

/// `count` physically contiguous zeroed frames (for device DMA), taken from memory never
/// used yet; `None` when no such run is left.
pub fn alloc_contiguous(count: usize) -> Option<PhysAddr> {
    let bytes = (count * PAGE_SIZE) as u64;
    let start = {
        let mut list = FRAMES.lock();
        let index = list
            .fresh
            .iter()
            .position(|&(start, end)| end - start >= bytes)?;
        let range = &mut list.fresh[index];
        let start = range.0;
        range.0 += bytes;
        if range.0 >= range.1 {
            list.fresh.remove(index);
        }
        list.free -= count;
        start
    };
    // SAFETY: the run was just taken from never-used RAM; nobody else refers to it.
    unsafe { core::ptr::write_bytes(phys_to_virt(start) as *mut u8, 0, count * PAGE_SIZE) };
    Some(start)
}

/// A zeroed frame, or `None` when physical memory is exhausted.
pub fn alloc_zeroed() -> Option<PhysAddr> {
    let frame = {
        let mut list = FRAMES.lock();
        let frame = list.take()?;
        list.free -= 1;
        frame
    };
    // SAFETY: the frame was just taken off the free list; nobody else refers to it.
    unsafe { core::ptr::write_bytes(phys_to_virt(frame) as *mut u8, 0, PAGE_SIZE) };
    Some(frame)
}

/// Return a frame to the free list.
///
/// # Safety
/// `frame` came from [`alloc_zeroed`] and nothing refers to it any more.
pub unsafe fn release(frame: PhysAddr) {
    let mut list = FRAMES.lock();
    // SAFETY: the caller gives up the frame, so its first word is ours to use as the link.
    unsafe { *(phys_to_virt(frame) as *mut u64) = list.head.unwrap_or(0) };
    list.head = Some(frame);
    list.free += 1;
}

pub fn free_count() -> usize {
    FRAMES.lock().free
}

pub fn total_count() -> usize {
    FRAMES.lock().total
}
