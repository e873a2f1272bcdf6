//! Memory shared between kbench and a helper through a memory object both map.
//!
//! Neither side keeps a reference into it: each borrows it only while the other side is
//! blocked in IPC (the client in its call, the server in its receive), so the two never
//! touch it at the same time.

use keel_abi::Error;
use keel_abi::cap::Handle;

use crate::sys;

/// A mapping of a memory object.
#[derive(Clone, Copy, Debug)]
pub struct Shared {
    addr: usize,
    len: usize,
}

impl Shared {
    /// Maps memory object `handle` (`len` bytes) with protection `prot`.
    pub fn map(handle: Handle, len: usize, prot: usize) -> Result<Shared, Error> {
        let addr = sys::mem_map_object(handle, prot)?;
        Ok(Shared { addr, len })
    }

    /// The first `len` bytes.
    ///
    /// # Safety
    ///
    /// The mapping must still exist and the other side must not write it while the borrow
    /// lives.
    pub unsafe fn bytes(&self, len: usize) -> &[u8] {
        // SAFETY: forwarded from the caller.
        unsafe { core::slice::from_raw_parts(self.addr as *const u8, len.min(self.len)) }
    }

    /// The first `len` bytes, to write.
    ///
    /// # Safety
    ///
    /// The mapping must still exist and be writable, and the other side must not touch it
    /// while the borrow lives.
    pub unsafe fn bytes_mut(&mut self, len: usize) -> &mut [u8] {
        // SAFETY: forwarded from the caller.
        unsafe { core::slice::from_raw_parts_mut(self.addr as *mut u8, len.min(self.len)) }
    }

    /// The first word, read as the other side may just have changed it.
    pub fn read_counter(&self) -> u64 {
        // SAFETY: the mapping is at least a page and page-aligned; a volatile read of an
        // aligned word is fine even while the other side writes it.
        unsafe { core::ptr::read_volatile(self.addr as *const u64) }
    }

    /// Adds one to the first word (only one side ever writes it).
    pub fn bump_counter(&mut self) {
        let counter = self.addr as *mut u64;
        // SAFETY: as for `read_counter`; this side is the counter's only writer.
        unsafe { counter.write_volatile(counter.read_volatile().wrapping_add(1)) };
    }
}
