//! DMA memory outliving its driver: held back from the allocator until the device that
//! could still write it is stopped.
//!
//! Without an IOMMU a device writes physical memory directly. When a driver ends (exit,
//! kill, fault), its DMA memory would go back to the allocator at once, while its device
//! may still finish a request into it: a write into frames another process now owns. So
//! the DMA memory a driver made is held once the driver has ended, until a SYSTEM process
//! (its supervisor, init) says the device is stopped (`dma_release`, after turning off the
//! function's bus mastering), or until that supervisor itself ends. Memory a live driver
//! frees is its own business: it knows whether its device is done with it.

use super::Kernel;
use crate::mm::object::MemoryObject;
use crate::proc::Pid;
use alloc::vec::Vec;

/// The DMA memory of one ended driver, held for its supervisor.
pub struct Held {
    /// The driver's parent when it ended: ending releases what it held.
    parent: Pid,
    objects: Vec<MemoryObject>,
}

impl Kernel {
    /// `pid` is ending: if it made DMA memory that still exists, hold what of it is freed
    /// from now on (with the capabilities it is about to lose, or later by others).
    pub(super) fn hold_dma_of(&mut self, pid: Pid) {
        let made_dma = self.memory.values().any(|m| m.dma_maker() == Some(pid));
        if made_dma {
            let parent = self.processes.get(&pid).map_or(0, |p| p.parent());
            let held = Held {
                parent,
                objects: Vec::new(),
            };
            self.dma_held.insert(pid, held);
        }
    }

    /// The last capability to memory object `object` went: free it, unless it is DMA
    /// memory of an ended driver whose device may still write it.
    pub(super) fn free_memory(&mut self, object: MemoryObject) {
        let held = object
            .dma_maker()
            .and_then(|pid| self.dma_held.get_mut(&pid));
        match held {
            Some(held) => held.objects.push(object),
            None => drop(object),
        }
    }

    /// The device of ended driver `pid` is stopped: free the DMA memory held for it; how
    /// many frames. From now on its memory is freed as any other.
    pub fn release_dma(&mut self, pid: Pid) -> usize {
        let Some(held) = self.dma_held.remove(&pid) else {
            return 0;
        };
        held.objects.iter().map(|m| m.frames().len()).sum()
    }

    /// `pid` is ending: nobody is left to stop its ended drivers' devices, so what is held
    /// for them goes.
    pub(super) fn release_dma_of_children(&mut self, pid: Pid) {
        self.dma_held.retain(|_, held| held.parent != pid);
    }
}
