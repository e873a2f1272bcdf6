//! DMA buffers: physically contiguous, pinned memory a device can read and write on its
//! own, and the physical address to program it with.
//!
//! Only a driver can ask: the kernel wants one of its device capabilities as proof. There
//! is no IOMMU, so a device given an address can reach all memory; the buffer's address is
//! for the device the driver owns, nothing else.

use keel_abi::Error;
use keel_abi::prot;

use crate::mem::{Mapping, Memory};
use crate::sys;

/// A DMA buffer, mapped here.
pub struct DmaBuffer {
    memory: Memory,
    mapping: Mapping,
    phys: u64,
}

impl DmaBuffer {
    /// `len` bytes (a whole number of pages), asked for with `device`, one of this driver's
    /// device capabilities (an I/O port range, an interrupt line or device registers).
    pub fn new(device: keel_abi::cap::Handle, len: usize) -> Result<DmaBuffer, Error> {
        let memory = Memory::from_handle(sys::device::mem_create_dma(device, len)?);
        let made = memory
            .map(prot::READ | prot::WRITE)
            .and_then(|mapping| Ok((mapping, sys::device::mem_phys(memory.handle(), 0)?)));
        match made {
            Ok((mapping, phys)) => Ok(DmaBuffer {
                memory,
                mapping,
                phys,
            }),
            Err(error) => {
                let _ = memory.delete();
                Err(error)
            }
        }
    }

    /// The memory capability, to share the buffer (derive a copy, grant it).
    pub fn memory(&self) -> Memory {
        self.memory
    }

    /// The physical address of the first byte: the buffer is contiguous, so byte `i` is at
    /// `phys() + i`.
    pub fn phys(&self) -> u64 {
        self.phys
    }

    /// The physical address of byte `offset`, as the kernel reports it.
    pub fn phys_at(&self, offset: usize) -> Result<u64, Error> {
        sys::device::mem_phys(self.memory.handle(), offset)
    }

    /// Where the buffer is mapped in this process (a device may write it at any time: read
    /// it with volatile accesses).
    pub fn as_ptr(&self) -> *mut u8 {
        self.mapping.as_ptr()
    }

    pub fn len(&self) -> usize {
        self.mapping.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for DmaBuffer {
    fn drop(&mut self) {
        // Deleting the capability unmaps the buffer and returns its frames.
        let _ = self.memory.delete();
    }
}
