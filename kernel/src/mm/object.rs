//! Memory objects: sets of frames that several address spaces can map at once.
//!
//! A mapping lives exactly as long as the capability it was made through: deleting or
//! revoking that capability unmaps it. So when the last capability goes, no mapping is
//! left and the frames return to the allocator.

use super::{PAGE_SIZE, PhysAddr, frame};
use crate::id::Pid;
use alloc::vec::Vec;
use keel_abi::Error;

/// Largest memory object: 64 MiB.
pub const MAX_OBJECT_SIZE: usize = 64 << 20;

/// A memory object: its frames are fixed from creation to drop, when they go back to the
/// allocator; or, for device memory, a device's registers, which belong to no allocator.
pub struct MemoryObject {
    frames: Vec<PhysAddr>,
    /// Charged for the frames while it lives.
    owner: Pid,
    /// Device registers (MMIO): mapped uncached, never charged, never released.
    device: bool,
    /// For DMA memory: the process that made it, whose device may still write it after
    /// that process ended (see kernel/dma.rs).
    dma_maker: Option<Pid>,
}

/// How many pages an object of `len` bytes takes: a whole number, at most the limit.
fn pages(len: usize) -> Result<usize, Error> {
    if len == 0 || !len.is_multiple_of(PAGE_SIZE) || len > MAX_OBJECT_SIZE {
        return Err(Error::InvalidArgument);
    }
    Ok(len / PAGE_SIZE)
}

impl MemoryObject {
    pub fn new(len: usize, owner: Pid) -> Result<Self, Error> {
        let pages = pages(len)?;
        let mut frames = Vec::new();
        frames
            .try_reserve_exact(pages)
            .map_err(|_| Error::OutOfMemory)?;
        let mut object = MemoryObject {
            frames,
            owner,
            device: false,
            dma_maker: None,
        };
        for _ in 0..pages {
            // On failure `object` drops and returns the frames taken so far.
            object
                .frames
                .push(frame::alloc_zeroed().ok_or(Error::OutOfMemory)?);
        }
        Ok(object)
    }
}

impl MemoryObject {
    /// Physically contiguous frames, for a device of `owner`'s to reach with DMA.
    pub fn new_dma(len: usize, owner: Pid) -> Result<Self, Error> {
        let pages = pages(len)?;
        let mut frames = Vec::new();
        frames
            .try_reserve_exact(pages)
            .map_err(|_| Error::OutOfMemory)?;
        let start = frame::alloc_contiguous(pages).ok_or(Error::OutOfMemory)?;
        frames.extend((0..pages).map(|i| start + (i * PAGE_SIZE) as PhysAddr));
        Ok(MemoryObject {
            frames,
            owner,
            device: false,
            dma_maker: Some(owner),
        })
    }

    /// Device registers at `[phys, phys + len)`. The caller has checked the range is no
    /// RAM: these frames are never handed to the allocator.
    pub fn new_device(phys: PhysAddr, len: usize, owner: Pid) -> Result<Self, Error> {
        let pages = pages(len)?;
        let mut frames = Vec::new();
        frames
            .try_reserve_exact(pages)
            .map_err(|_| Error::OutOfMemory)?;
        frames.extend((0..pages).map(|i| phys + (i * PAGE_SIZE) as PhysAddr));
        Ok(MemoryObject {
            frames,
            owner,
            device: true,
            dma_maker: None,
        })
    }
}

impl MemoryObject {
    pub fn frames(&self) -> &[PhysAddr] {
        &self.frames
    }

    /// For DMA memory, the process that made it.
    pub fn dma_maker(&self) -> Option<Pid> {
        self.dma_maker
    }

    /// Whether it is device registers (mapped uncached).
    pub fn is_device(&self) -> bool {
        self.device
    }

    /// How many frames it costs its owner's quota: device registers cost none.
    pub fn charged_frames(&self) -> usize {
        if self.device { 0 } else { self.frames.len() }
    }

    /// The process charged for its frames.
    pub fn owner(&self) -> Pid {
        self.owner
    }

    /// Charge `heir` for its frames from now on (its owner ended).
    pub fn pass_to(&mut self, heir: Pid) {
        self.owner = heir;
    }
}

impl Drop for MemoryObject {
    fn drop(&mut self) {
        if self.device {
            return;
        }
        for &phys in &self.frames {
            // SAFETY: no mapping of the object is left (they die with their capabilities).
            unsafe { frame::release(phys) };
        }
    }
}
