//! 4-level x86_64 page tables: entry bits, walking, mapping and pruning.
//!
//! Tables are reached through the direct map. The user half of a root (entries 0..256) is
//! private to its address space; the kernel half is shared by copying the kernel's top-level
//! entries into every new root.

use super::{PAGE_SIZE, PhysAddr, frame, phys_to_virt};
use keel_abi::Error;

pub const PRESENT: u64 = 1 << 0;
pub const WRITABLE: u64 = 1 << 1;
pub const USER: u64 = 1 << 2;
pub const WRITE_THROUGH: u64 = 1 << 3;
pub const NO_CACHE: u64 = 1 << 4;
pub const HUGE: u64 = 1 << 7;
pub const GLOBAL: u64 = 1 << 8;
pub const NO_EXECUTE: u64 = 1 << 63;
const ADDRESS_MASK: u64 = 0x000f_ffff_ffff_f000;

pub const ENTRIES: usize = 512;
/// First top-level index of the kernel half.
pub const KERNEL_HALF: usize = 256;

pub type Table = [u64; ENTRIES];

/// The table at physical address `phys`.
///
/// # Safety
/// `phys` must be a page-table frame owned by the caller's address space (or the kernel's)
/// with no other live reference to it.
pub unsafe fn table<'a>(phys: PhysAddr) -> &'a mut Table {
    // SAFETY: per the caller, the frame is a page table reachable through the direct map.
    unsafe { &mut *(phys_to_virt(phys) as *mut Table) }
}

pub fn entry_address(entry: u64) -> PhysAddr {
    entry & ADDRESS_MASK
}

fn index(virt: usize, level: usize) -> usize {
    (virt >> (12 + 9 * level)) & (ENTRIES - 1)
}

/// A root's page tables, as a handle for edits of its user half.
pub struct PageTables {
    root: PhysAddr,
    /// Table frames allocated below the root (the root itself not counted).
    pub table_frames: usize,
    /// Most table frames below the root this address space may hold (its owner's quota).
    pub table_limit: usize,
}

impl PageTables {
    /// A new root sharing the kernel half of `kernel_root`.
    pub fn new(kernel_root: PhysAddr) -> Option<Self> {
        let root = frame::alloc_zeroed()?;
        // SAFETY: `root` is a fresh frame; the kernel root is only read.
        let (new, kernel) = unsafe { (table(root), table(kernel_root)) };
        new[KERNEL_HALF..].copy_from_slice(&kernel[KERNEL_HALF..]);
        Some(PageTables {
            root,
            table_frames: 0,
            table_limit: usize::MAX,
        })
    }

    pub fn root(&self) -> PhysAddr {
        self.root
    }

    /// The leaf entry for `virt`, if every table above it is there.
    fn leaf(&mut self, virt: usize) -> Option<&'static mut u64> {
        self.walk(virt, false).ok().flatten()
    }

    /// The leaf entry for `virt`, creating intermediate tables when `create` is set:
    /// `Ok(None)` when a table is missing and not created; `QuotaExceeded` beyond
    /// `table_limit`, `OutOfMemory` when frames ran out.
    fn walk(&mut self, virt: usize, create: bool) -> Result<Option<&'static mut u64>, Error> {
        let mut table_phys = self.root;
        for level in (1..4).rev() {
            // SAFETY: `table_phys` is this address space's root or a table below it.
            let entry = unsafe { &mut table(table_phys)[index(virt, level)] };
            if *entry & PRESENT == 0 {
                if !create {
                    return Ok(None);
                }
                if self.table_frames >= self.table_limit {
                    return Err(Error::QuotaExceeded);
                }
                let new = frame::alloc_zeroed().ok_or(Error::OutOfMemory)?;
                self.table_frames += 1;
                *entry = new | PRESENT | WRITABLE | USER;
            }
            table_phys = entry_address(*entry);
        }
        // SAFETY: as above, for the last level.
        Ok(Some(unsafe { &mut table(table_phys)[index(virt, 0)] }))
    }

    /// Map one user page. The slot must be empty.
    pub fn map(&mut self, virt: usize, phys: PhysAddr, flags: u64) -> Result<(), Error> {
        let entry = self.walk(virt, true)?.ok_or(Error::OutOfMemory)?;
        debug_assert!(*entry & PRESENT == 0, "mapping over a present page");
        *entry = phys | flags | PRESENT | USER;
        Ok(())
    }

    /// Remove one page's mapping, returning the frame it pointed to.
    pub fn unmap(&mut self, virt: usize) -> Option<PhysAddr> {
        let entry = self.leaf(virt)?;
        if *entry & PRESENT == 0 {
            return None;
        }
        let phys = entry_address(*entry);
        *entry = 0;
        Some(phys)
    }

    pub fn set_flags(&mut self, virt: usize, flags: u64) {
        if let Some(entry) = self.leaf(virt).filter(|e| **e & PRESENT != 0) {
            *entry = entry_address(*entry) | flags | PRESENT | USER;
        }
    }

    /// The physical address `virt` maps to, if it is mapped. Only reads: the tables change
    /// only in the kernel's exclusive mode, so the fast path may ask too.
    pub fn translate(&self, virt: usize) -> Option<PhysAddr> {
        let mut table_phys = self.root;
        for level in (0..4).rev() {
            // SAFETY: `table_phys` is this address space's root or a table below it, in the
            // direct map; an entry is read by value, and only the CPU's accessed and dirty
            // bits change meanwhile.
            let entry = unsafe {
                (phys_to_virt(table_phys) as *const u64)
                    .add(index(virt, level))
                    .read_volatile()
            };
            if entry & PRESENT == 0 {
                return None;
            }
            if level == 0 {
                return Some(entry_address(entry) + (virt % PAGE_SIZE) as u64);
            }
            table_phys = entry_address(entry);
        }
        None
    }

    /// Free every table below the root that maps nothing in `[start, end)`'s neighbourhood.
    pub fn prune(&mut self, start: usize, end: usize) {
        // SAFETY: the root is owned by this address space.
        let root = unsafe { table(self.root) };
        for entry in &mut root[index(start, 3)..=index(end - 1, 3)] {
            self.table_frames -= prune_below(entry, 2);
        }
    }
}

/// Free empty tables under `entry` (a table of level `level`), bottom up; returns how many.
fn prune_below(entry: &mut u64, level: usize) -> usize {
    if *entry & PRESENT == 0 {
        return 0;
    }
    let phys = entry_address(*entry);
    // SAFETY: a present non-leaf entry of a user table points to a table we own.
    let table = unsafe { table(phys) };
    let mut freed = 0;
    if level > 0 {
        for child in table.iter_mut() {
            freed += prune_below(child, level - 1);
        }
    }
    if table.iter().all(|e| *e & PRESENT == 0) {
        *entry = 0;
        // SAFETY: the table is empty and no entry refers to it any more.
        unsafe { frame::release(phys) };
        freed += 1;
    }
    freed
}

impl Drop for PageTables {
    /// Free the tables of the user half and the root. Leaf frames are the owner's business
    /// and must already be unmapped or accounted for.
    fn drop(&mut self) {
        // SAFETY: the root is owned by this address space, which is going away.
        let root = unsafe { table(self.root) };
        for entry in root[..KERNEL_HALF].iter_mut() {
            self.table_frames -= free_tables(entry, 2);
        }
        // SAFETY: nothing refers to the root any more (it is not loaded in CR3: the caller
        // switched away before dropping).
        unsafe { frame::release(self.root) };
    }
}

/// Free every table under `entry` regardless of contents; returns how many.
fn free_tables(entry: &mut u64, level: usize) -> usize {
    if *entry & PRESENT == 0 {
        return 0;
    }
    let phys = entry_address(*entry);
    let mut freed = 1;
    if level > 0 {
        // SAFETY: a present user-half non-leaf entry points to a table we own.
        for child in unsafe { table(phys) }.iter_mut() {
            freed += free_tables(child, level - 1);
        }
    }
    *entry = 0;
    // SAFETY: the table is unlinked and going away with its address space.
    unsafe { frame::release(phys) };
    freed
}

/// Invalidate the TLB entry for `virt` in the current address space.
pub fn flush(virt: usize) {
    x86_64::instructions::tlb::flush(x86_64::VirtAddr::new(virt as u64));
}
