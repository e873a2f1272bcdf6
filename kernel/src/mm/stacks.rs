//! Kernel stacks: one per thread, each in a slot of its own in a region that holds nothing
//! else, with an unmapped guard below it. A kernel stack overflow then faults on the guard
//! instead of corrupting a neighbour; the fault cannot push its frame on the stack that
//! overflowed, so it becomes a double fault, which runs on its own IST stack and names the
//! cause ([`is_guard`]).

use super::paging::{NO_EXECUTE, PRESENT, Table, WRITABLE, flush};
use super::{PAGE_SIZE, PhysAddr, frame};
use keel_abi::Error;
use spin::Mutex;

/// Usable bytes of each stack.
pub const STACK_SIZE: usize = 16 * 1024;
/// Where the region starts: top-level entry 510 of every address space (shared).
pub const BASE: usize = 0xffff_ff00_0000_0000;
/// Each stack's slot: its guard, then the stack.
const SLOT: usize = 2 * STACK_SIZE;
/// Stacks the region holds: one per thread, so also the system's thread limit
/// (`sched::MAX_THREADS_TOTAL`); all of them must fit the kernel heap.
pub const SLOTS: usize = 768;
const STACK_PAGES: usize = STACK_SIZE / PAGE_SIZE;
/// Page tables mapping the region, each 2 MiB of it.
pub const TABLES: usize = (SLOTS * SLOT).div_ceil(512 * PAGE_SIZE);

/// Free slots, a bit each; the page tables are only edited under this lock.
static FREE: Mutex<[u64; SLOTS.div_ceil(64)]> = Mutex::new([u64::MAX; SLOTS.div_ceil(64)]);

/// A kernel stack, mapped until dropped.
pub struct KernelStack {
    slot: usize,
}

impl KernelStack {
    pub fn new() -> Result<Self, Error> {
        let mut free = FREE.lock();
        let slot = free
            .iter()
            .enumerate()
            .find(|(_, bits)| **bits != 0)
            .map(|(word, bits)| word * 64 + bits.trailing_zeros() as usize)
            .filter(|&slot| slot < SLOTS)
            .ok_or(Error::QuotaExceeded)?;
        for page in 0..STACK_PAGES {
            let Some(frame) = frame::alloc_zeroed() else {
                unmap(slot, page);
                return Err(Error::OutOfMemory);
            };
            *entry(slot, page) = frame | PRESENT | WRITABLE | NO_EXECUTE | super::global_bit();
        }
        free[slot / 64] &= !(1 << (slot % 64));
        Ok(KernelStack { slot })
    }

    pub fn top(&self) -> usize {
        BASE + (self.slot + 1) * SLOT
    }
}

impl Drop for KernelStack {
    fn drop(&mut self) {
        let mut free = FREE.lock();
        unmap(self.slot, STACK_PAGES);
        free[self.slot / 64] |= 1 << (self.slot % 64);
    }
}

/// Whether `addr` lies in a stack's guard: where a kernel stack overflow faults.
pub fn is_guard(addr: u64) -> bool {
    let Some(offset) = (addr as usize).checked_sub(BASE) else {
        return false;
    };
    offset < SLOTS * SLOT && offset % SLOT < SLOT - STACK_SIZE
}

/// The page-table entry of page `page` of slot `slot`'s stack. Caller holds [`FREE`].
fn entry(slot: usize, page: usize) -> &'static mut u64 {
    let index = (slot * SLOT + SLOT - STACK_SIZE) / PAGE_SIZE + page;
    // SAFETY: the region's tables are static and only edited under FREE, which the caller
    // holds; the index lies in them since slot < SLOTS.
    let tables: &mut [Table; TABLES] = unsafe { &mut *super::stack_tables() };
    &mut tables[index / 512][index % 512]
}

/// Unmap the first `pages` pages of slot `slot`'s stack and free their frames. Caller
/// holds [`FREE`].
fn unmap(slot: usize, pages: usize) {
    let mut frames: [PhysAddr; STACK_PAGES] = [0; STACK_PAGES];
    for (page, frame) in frames.iter_mut().enumerate().take(pages) {
        let entry = entry(slot, page);
        *frame = *entry & 0x000f_ffff_ffff_f000;
        *entry = 0;
        // Global entries are cached across address spaces: invlpg drops them from all.
        flush(slot_page(slot, page));
    }
    // Other cores may have cached them too.
    crate::arch::tlb::shoot_global();
    for &frame in &frames[..pages] {
        // SAFETY: the frame was this stack's page, now unmapped and out of every core's
        // TLB; the thread that ran on it is gone.
        unsafe { frame::release(frame) };
    }
}

fn slot_page(slot: usize, page: usize) -> usize {
    BASE + slot * SLOT + SLOT - STACK_SIZE + page * PAGE_SIZE
}
