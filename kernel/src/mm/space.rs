//! User address spaces: page tables plus the list of mapped regions.
//!
//! Regions are the truth about user memory: every mapped user page belongs to exactly one
//! region, and anonymous regions are backed eagerly, so a range that lies inside regions with
//! the right protection is safe for the kernel to touch. Regions never overlap: a map that
//! would overlap is refused with `Exists`, as the seed's `map_memory_region` does.

use super::paging::{NO_CACHE, NO_EXECUTE, PageTables, WRITABLE, WRITE_THROUGH, flush};
use super::{PAGE_SIZE, PhysAddr, frame, kernel_root, phys_to_virt};
use crate::arch::pcid;
use crate::id::CapId;
use alloc::collections::BTreeMap;
use keel_abi::{Error, layout, prot};

/// A process may hold at most this many separate regions.
pub const MAX_REGIONS: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backing {
    /// Zeroed frames owned by this address space.
    Anonymous,
    /// Frames owned elsewhere (boot modules), shown read-only.
    Borrowed,
    /// A memory object's frames, mapped through capability `CapId`.
    Shared(CapId),
    /// Device registers, mapped uncached through capability `CapId`.
    Device(CapId),
}

#[derive(Clone, Copy, Debug)]
struct Region {
    pages: usize,
    prot: usize,
    /// What `protect` may grant: everything for anonymous memory, less for frames owned
    /// elsewhere (the capability's rights for shared memory).
    max_prot: usize,
    backing: Backing,
}

pub struct AddressSpace {
    tables: PageTables,
    /// Keyed by start address.
    regions: BTreeMap<usize, Region>,
    /// Frames owned: anonymous pages (not borrowed or shared ones).
    data_frames: usize,
    /// Most frames this space may hold, its own pages and page tables (what the process's
    /// frame quota leaves).
    frame_limit: usize,
    /// Most page-table frames below the root (what the kernel-bytes quota leaves).
    table_quota: usize,
    /// Its TLB tag (0: none).
    pcid: u64,
    /// Bumped whenever a region goes or loses rights: access checks made before may no
    /// longer hold.
    epoch: u64,
}

/// Frames a space may hold until its owner's quota is applied.
pub const DEFAULT_FRAME_LIMIT: usize = keel_abi::DEFAULT_CHILD_FRAMES;

/// Check `[addr, addr + len)` is page-aligned, non-empty and inside the user half.
pub fn check_user_range(addr: usize, len: usize) -> Result<usize, Error> {
    if len == 0 || !addr.is_multiple_of(PAGE_SIZE) || !len.is_multiple_of(PAGE_SIZE) {
        return Err(Error::InvalidArgument);
    }
    let end = addr.checked_add(len).ok_or(Error::BadAddress)?;
    if addr < layout::USER_START || end > layout::USER_END {
        return Err(Error::BadAddress);
    }
    Ok(end)
}

pub fn check_prot(bits: usize) -> Result<usize, Error> {
    if bits & prot::WRITE != 0 && bits & prot::EXEC != 0 {
        return Err(Error::WriteExecute);
    }
    if bits & !prot::ALL != 0 || bits & prot::READ == 0 {
        return Err(Error::InvalidArgument);
    }
    Ok(bits)
}

fn page_flags(prot_bits: usize, backing: Backing) -> u64 {
    let mut flags = 0;
    if let Backing::Device(_) = backing {
        // Registers must see every access, in order: uncached (PCD and PWT).
        flags |= NO_CACHE | WRITE_THROUGH;
    }
    if prot_bits & prot::WRITE != 0 {
        flags |= WRITABLE;
    }
    if prot_bits & prot::EXEC == 0 {
        flags |= NO_EXECUTE;
    }
    flags
}

impl AddressSpace {
    pub fn new() -> Result<Self, Error> {
        Ok(AddressSpace {
            tables: PageTables::new(kernel_root()).ok_or(Error::OutOfMemory)?,
            regions: BTreeMap::new(),
            data_frames: 0,
            frame_limit: DEFAULT_FRAME_LIMIT,
            table_quota: usize::MAX,
            pcid: pcid::alloc(),
            epoch: 0,
        })
    }

    /// Changes when a region goes or loses rights (see [`check_access`](Self::check_access)).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    pub fn root(&self) -> PhysAddr {
        self.tables.root()
    }

    /// The physical address `virt` maps to, if it is mapped.
    pub fn translate(&self, virt: usize) -> Option<PhysAddr> {
        self.tables.translate(virt)
    }

    /// What CR3 loads for this space: its root tagged with its PCID.
    pub fn tagged_root(&self) -> u64 {
        self.root() | self.pcid
    }

    /// After a present entry for `virt` changed: drop it from the TLB if this space is
    /// loaded, else have its next load flush (other PCIDs are out of `invlpg`'s reach);
    /// other cores that have it loaded flush theirs before this returns.
    fn invalidate(&self, virt: usize, current: bool) {
        if current {
            flush(virt);
        } else {
            pcid::mark_stale(self.pcid);
        }
        crate::arch::tlb::shoot_root(self.tagged_root());
    }

    /// Frames this address space holds: its data pages and its page tables.
    pub fn frames(&self) -> usize {
        self.data_frames + self.tables.table_frames + 1
    }

    /// Page-table frames, root included: kernel memory held for this space.
    pub fn table_frames(&self) -> usize {
        self.tables.table_frames + 1
    }

    /// Allow at most `frames` frames, its own pages and page tables (fewer than it holds only
    /// stops it growing).
    pub fn set_frame_limit(&mut self, frames: usize) {
        self.frame_limit = frames;
    }

    /// Allow at most `frames` page-table frames, root included (fewer than it holds only
    /// stops it growing).
    pub fn set_table_limit(&mut self, frames: usize) {
        self.table_quota = frames.saturating_sub(1);
    }

    /// Check that `data_pages` more pages fit the frame limit, and let the page tables grow
    /// only into what is left of both limits after them.
    fn make_room(&mut self, data_pages: usize) -> Result<(), Error> {
        let needed = self.frames() + data_pages;
        if needed > self.frame_limit {
            return Err(Error::QuotaExceeded);
        }
        let room = self.frame_limit - needed;
        self.tables.table_limit = self.table_quota.min(self.tables.table_frames + room);
        Ok(())
    }

    fn is_current(&self) -> bool {
        x86_64::registers::control::Cr3::read_raw()
            .0
            .start_address()
            .as_u64()
            == self.root()
    }

    fn overlaps(&self, start: usize, end: usize) -> bool {
        self.regions
            .range(..end)
            .next_back()
            .is_some_and(|(&s, r)| s + r.pages * PAGE_SIZE > start)
    }

    /// Map zeroed memory at `[start, start + len)`.
    pub fn map_anonymous(
        &mut self,
        start: usize,
        len: usize,
        prot_bits: usize,
    ) -> Result<(), Error> {
        let end = check_user_range(start, len)?;
        self.make_room(len / PAGE_SIZE)?;
        self.insert_region(start, end, prot_bits, prot::ALL, Backing::Anonymous)?;
        for virt in (start..end).step_by(PAGE_SIZE) {
            let mapped = frame::alloc_zeroed()
                .ok_or(Error::OutOfMemory)
                .and_then(|phys| {
                    self.data_frames += 1;
                    self.tables
                        .map(virt, phys, page_flags(prot_bits, Backing::Anonymous))
                        .inspect_err(|_| {
                            // SAFETY: the frame was never mapped; give it back.
                            unsafe { frame::release(phys) };
                            self.data_frames -= 1;
                        })
                });
            if let Err(error) = mapped {
                self.undo_map(start, virt, end, Backing::Anonymous);
                return Err(error);
            }
        }
        Ok(())
    }

    /// Map frames owned elsewhere, `[phys, phys + len)`, read-only at `start`.
    pub fn map_borrowed(&mut self, start: usize, phys: PhysAddr, len: usize) -> Result<(), Error> {
        let frames = (0..len / PAGE_SIZE).map(|i| phys + (i * PAGE_SIZE) as u64);
        self.map_frames(
            start,
            len,
            frames,
            prot::READ,
            prot::READ,
            Backing::Borrowed,
        )
    }

    /// Map a memory object's frames at `start` through capability `cap`, which allows
    /// `max_prot`; `uncached` for device registers.
    pub fn map_shared(
        &mut self,
        start: usize,
        frames: &[PhysAddr],
        prot_bits: usize,
        max_prot: usize,
        cap: CapId,
        uncached: bool,
    ) -> Result<(), Error> {
        let len = frames.len() * PAGE_SIZE;
        let frames = frames.iter().copied();
        let backing = if uncached {
            Backing::Device(cap)
        } else {
            Backing::Shared(cap)
        };
        self.map_frames(start, len, frames, prot_bits, max_prot, backing)
    }

    fn map_frames(
        &mut self,
        start: usize,
        len: usize,
        frames: impl Iterator<Item = PhysAddr>,
        prot_bits: usize,
        max_prot: usize,
        backing: Backing,
    ) -> Result<(), Error> {
        let end = check_user_range(start, len)?;
        self.make_room(0)?;
        self.insert_region(start, end, prot_bits, max_prot, backing)?;
        for (virt, phys) in (start..end).step_by(PAGE_SIZE).zip(frames) {
            if let Err(error) =
                self.tables
                    .map(virt, phys, page_flags(prot_bits, Backing::Anonymous))
            {
                self.undo_map(start, virt, end, backing);
                return Err(error);
            }
        }
        Ok(())
    }

    /// Take back a map that failed after mapping `[start, mapped_to)` of `[start, end)`.
    fn undo_map(&mut self, start: usize, mapped_to: usize, end: usize, backing: Backing) {
        self.remove_pages(start, mapped_to, backing);
        self.tables.prune(start, end);
        self.regions.remove(&start);
    }

    /// Remove every mapping made through capability `cap`.
    pub fn unmap_shared(&mut self, cap: CapId) {
        let doomed: alloc::vec::Vec<(usize, Region)> = self
            .regions
            .iter()
            .filter(
                |(_, r)| matches!(r.backing, Backing::Shared(c) | Backing::Device(c) if c == cap),
            )
            .map(|(&s, &r)| (s, r))
            .collect();
        for (start, region) in doomed {
            self.regions.remove(&start);
            let end = start + region.pages * PAGE_SIZE;
            self.remove_pages(start, end, region.backing);
            self.tables.prune(start, end);
        }
    }

    fn insert_region(
        &mut self,
        start: usize,
        end: usize,
        prot_bits: usize,
        max_prot: usize,
        backing: Backing,
    ) -> Result<(), Error> {
        check_prot(prot_bits)?;
        if prot_bits & !max_prot != 0 {
            return Err(Error::MissingRight);
        }
        if self.overlaps(start, end) {
            return Err(Error::Exists);
        }
        if self.regions.len() >= MAX_REGIONS {
            return Err(Error::QuotaExceeded);
        }
        let region = Region {
            pages: (end - start) / PAGE_SIZE,
            prot: prot_bits,
            max_prot,
            backing,
        };
        self.regions.insert(start, region);
        Ok(())
    }

    /// Unmap the pages of `[start, end)`, releasing anonymous frames.
    fn remove_pages(&mut self, start: usize, end: usize, backing: Backing) {
        self.epoch += 1;
        let current = self.is_current();
        for virt in (start..end).step_by(PAGE_SIZE) {
            if let Some(phys) = self.tables.unmap(virt) {
                self.invalidate(virt, current);
                if backing == Backing::Anonymous {
                    // SAFETY: the page was this space's own frame and is now unmapped.
                    unsafe { frame::release(phys) };
                    self.data_frames -= 1;
                }
            }
        }
    }

    /// Cut regions so that none straddles `addr`.
    fn split_at(&mut self, addr: usize) -> Result<(), Error> {
        let Some((&start, &region)) = self.regions.range(..addr).next_back() else {
            return Ok(());
        };
        let end = start + region.pages * PAGE_SIZE;
        if addr >= end {
            return Ok(());
        }
        if self.regions.len() >= MAX_REGIONS {
            return Err(Error::QuotaExceeded);
        }
        let left = (addr - start) / PAGE_SIZE;
        self.regions.insert(
            start,
            Region {
                pages: left,
                ..region
            },
        );
        self.regions.insert(
            addr,
            Region {
                pages: region.pages - left,
                ..region
            },
        );
        Ok(())
    }

    /// The regions lying in `[start, end)` after splitting at both ends.
    fn isolate(&mut self, start: usize, end: usize) -> Result<alloc::vec::Vec<usize>, Error> {
        self.split_at(start)?;
        self.split_at(end)?;
        Ok(self.regions.range(start..end).map(|(&s, _)| s).collect())
    }

    /// Unmap every page in `[start, start + len)`.
    pub fn unmap(&mut self, start: usize, len: usize) -> Result<(), Error> {
        let end = check_user_range(start, len)?;
        if !self.overlaps(start, end) {
            return Err(Error::NotFound);
        }
        for region_start in self.isolate(start, end)? {
            let region = self
                .regions
                .remove(&region_start)
                .expect("isolated region exists");
            self.remove_pages(
                region_start,
                region_start + region.pages * PAGE_SIZE,
                region.backing,
            );
        }
        self.tables.prune(start, end);
        Ok(())
    }

    /// Change the protection of `[start, start + len)`, which must be mapped throughout.
    pub fn protect(&mut self, start: usize, len: usize, prot_bits: usize) -> Result<(), Error> {
        let end = check_user_range(start, len)?;
        check_prot(prot_bits)?;
        self.check_covered(start, end, |_| true)?;
        if self
            .regions
            .range(..end)
            .filter(|(s, r)| **s + r.pages * PAGE_SIZE > start)
            .any(|(_, r)| prot_bits & !r.max_prot != 0)
        {
            return Err(Error::PermissionDenied);
        }
        let current = self.is_current();
        self.epoch += 1;
        for region_start in self.isolate(start, end)? {
            let region = self
                .regions
                .get_mut(&region_start)
                .expect("isolated region exists");
            region.prot = prot_bits;
            let (pages, backing) = (region.pages, region.backing);
            for virt in (region_start..region_start + pages * PAGE_SIZE).step_by(PAGE_SIZE) {
                self.tables.set_flags(virt, page_flags(prot_bits, backing));
                self.invalidate(virt, current);
            }
        }
        Ok(())
    }

    /// Ok when every byte of `[start, end)` lies in a region that `allowed` accepts.
    fn check_covered(
        &self,
        start: usize,
        end: usize,
        allowed: impl Fn(usize) -> bool,
    ) -> Result<(), Error> {
        let mut cursor = start;
        let first = self
            .regions
            .range(..=start)
            .next_back()
            .map(|(&s, _)| s)
            .unwrap_or(start);
        for (&s, r) in self.regions.range(first..end) {
            let region_end = s + r.pages * PAGE_SIZE;
            if region_end <= cursor {
                continue;
            }
            if s > cursor || !allowed(r.prot) {
                break;
            }
            cursor = region_end;
            if cursor >= end {
                return Ok(());
            }
        }
        Err(Error::NotFound)
    }

    /// Ok when user code could access every byte of `[addr, addr + len)` as asked.
    /// An empty range touches nothing, wherever it points (Rust's empty slices point at 1).
    pub fn check_access(&self, addr: usize, len: usize, write: bool) -> Result<(), Error> {
        if len == 0 {
            return Ok(());
        }
        let end = addr.checked_add(len).ok_or(Error::BadAddress)?;
        if addr < layout::USER_START || end > layout::USER_END {
            return Err(Error::BadAddress);
        }
        let need = if write { prot::WRITE } else { prot::READ };
        self.check_covered(addr, end, |p| p & need != 0)
            .map_err(|_| Error::BadAddress)
    }

    /// Whether `addr` lies in an executable region: a candidate return address when a
    /// faulted thread's stack is scanned for its callers.
    pub fn is_executable(&self, addr: usize) -> bool {
        let end = addr.saturating_add(1);
        (layout::USER_START..layout::USER_END).contains(&addr)
            && self
                .check_covered(addr, end, |p| p & prot::EXEC != 0)
                .is_ok()
    }

    /// The lowest free gap of `len` bytes at or above `layout::MMAP_BASE`.
    pub fn find_free(&self, len: usize) -> Result<usize, Error> {
        let mut candidate = layout::MMAP_BASE;
        for (&s, r) in self.regions.range(layout::MMAP_BASE..) {
            if s >= candidate + len {
                break;
            }
            candidate = candidate.max(s + r.pages * PAGE_SIZE);
        }
        match candidate.checked_add(len) {
            Some(end) if end <= layout::USER_END => Ok(candidate),
            _ => Err(Error::OutOfMemory),
        }
    }

    /// Write `bytes` at user address `virt` through the page tables, whatever the pages'
    /// protection (the loader fills read-only code this way). The pages must be mapped.
    pub fn write_through_tables(&mut self, virt: usize, bytes: &[u8]) -> Result<(), Error> {
        let mut done = 0;
        while done < bytes.len() {
            let at = virt + done;
            let phys = self.tables.translate(at).ok_or(Error::BadAddress)?;
            let chunk = (PAGE_SIZE - at % PAGE_SIZE).min(bytes.len() - done);
            // SAFETY: `phys` is a frame mapped in this space; the chunk stays within it.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    bytes[done..].as_ptr(),
                    phys_to_virt(phys) as *mut u8,
                    chunk,
                )
            };
            done += chunk;
        }
        Ok(())
    }
}

impl Drop for AddressSpace {
    fn drop(&mut self) {
        debug_assert!(!self.is_current(), "dropping the address space in CR3");
        let regions = core::mem::take(&mut self.regions);
        for (start, region) in regions {
            self.remove_pages(start, start + region.pages * PAGE_SIZE, region.backing);
        }
        pcid::free(self.pcid);
    }
}
