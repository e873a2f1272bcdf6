//! Memory objects: zeroed pages that several processes can map at once.
//!
//! A mapping lasts exactly as long as the capability it was made through: deleting that
//! capability, or revoking one it derives from (which another process may do), unmaps it,
//! and the next access faults. So rt hands out mappings as addresses, never references;
//! code that makes references of them must know the capability outlives them.

use keel_abi::Error;
use keel_abi::cap::Handle;

use crate::sys;

/// A memory object capability, by handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Memory(Handle);

impl Memory {
    /// A new object of `len` zeroed bytes (whole pages), with every memory right.
    pub fn create(len: usize) -> Result<Memory, Error> {
        sys::ipc::mem_create(len).map(Memory)
    }

    /// The memory capability this process holds as `handle`.
    pub const fn from_handle(handle: Handle) -> Memory {
        Memory(handle)
    }

    /// The capability's handle.
    pub fn handle(self) -> Handle {
        self.0
    }

    /// The object's size in bytes.
    pub fn size(self) -> Result<usize, Error> {
        Ok(sys::ipc::cap_info(self.0)?.size as usize)
    }

    /// A copy of this capability with at most `rights` (MAP_*, GRANT).
    pub fn derive(self, rights: u32) -> Result<Memory, Error> {
        sys::ipc::cap_derive(self.0, rights, 0).map(Memory)
    }

    /// Deletes this capability, and the mappings made through it.
    pub fn delete(self) -> Result<(), Error> {
        sys::ipc::cap_delete(self.0)
    }

    /// Maps the whole object where the kernel chooses, with protection `prot` (which needs
    /// the matching MAP_* rights).
    pub fn map(self, prot: usize) -> Result<Mapping, Error> {
        self.map_at(0, prot)
    }

    /// Maps the whole object at `addr` (which must be free), with protection `prot`.
    pub fn map_at(self, addr: usize, prot: usize) -> Result<Mapping, Error> {
        let len = self.size()?;
        let addr = sys::ipc::mem_map_object(self.0, addr, prot)?;
        Ok(Mapping { addr, len })
    }
}

/// Where a memory object is mapped in this process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    addr: usize,
    len: usize,
}

impl Mapping {
    /// The first byte.
    pub fn addr(&self) -> usize {
        self.addr
    }

    /// The length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it covers no bytes (never, for a mapping the kernel made).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The first byte, as a pointer; valid while the capability it was mapped through lives.
    pub fn as_ptr(&self) -> *mut u8 {
        self.addr as *mut u8
    }

    /// Unmaps it before its capability goes.
    ///
    /// # Safety
    ///
    /// Nothing may use the memory afterwards (no live references into it).
    pub unsafe fn unmap(self) -> Result<(), Error> {
        // SAFETY: forwarded from the caller; the range is exactly the object's mapping.
        unsafe { sys::mem_unmap(self.addr, self.len) }
    }
}
