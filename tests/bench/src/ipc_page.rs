//! A thread's IPC buffer: one page of its own, registered with the kernel, through which
//! payloads travel.

use core::ptr::NonNull;

use keel_abi::ipc::{IpcBuffer, MAX_PAYLOAD};
use keel_abi::layout::PAGE_SIZE;
use keel_abi::{Error, prot};
use keel_rt::sys;

use crate::sys::ipc_buffer_set;

/// The calling thread's IPC buffer, unregistered and unmapped when dropped. Not `Send`: it
/// belongs to the thread that registered it.
pub struct IpcPage {
    buffer: NonNull<IpcBuffer>,
}

const _: () = assert!(size_of::<IpcBuffer>() == PAGE_SIZE);

impl IpcPage {
    /// Maps a fresh page and registers it as the calling thread's IPC buffer.
    pub fn register() -> Result<IpcPage, Error> {
        let addr = sys::mem_map(0, PAGE_SIZE, prot::READ | prot::WRITE)?;
        // SAFETY: the page was just mapped for this purpose and nothing else refers to it.
        unsafe { ipc_buffer_set(addr) }?;
        let buffer = NonNull::new(addr as *mut IpcBuffer).ok_or(Error::BadAddress)?;
        Ok(IpcPage { buffer })
    }

    /// The first `len` payload bytes: what the last message received carried.
    pub fn payload(&self, len: usize) -> &[u8] {
        // SAFETY: the page stays mapped while `self` lives; the kernel writes it only during
        // this thread's own syscalls, which cannot run while the borrow is held.
        unsafe { core::slice::from_raw_parts(self.payload_start(), len.min(MAX_PAYLOAD)) }
    }

    /// The first `len` payload bytes, to fill before a send.
    pub fn payload_mut(&mut self, len: usize) -> &mut [u8] {
        // SAFETY: as for `payload`; `&mut self` makes this the only borrow.
        unsafe { core::slice::from_raw_parts_mut(self.payload_start(), len.min(MAX_PAYLOAD)) }
    }

    fn payload_start(&self) -> *mut u8 {
        // SAFETY: `buffer` points to a live, mapped `IpcBuffer`; no reference is made.
        unsafe { (&raw mut (*self.buffer.as_ptr()).payload).cast() }
    }
}

impl Drop for IpcPage {
    fn drop(&mut self) {
        // Teardown is best effort: a failure here cannot change any result.
        // SAFETY: unregistering (0) makes the kernel stop writing to the page...
        let _ = unsafe { ipc_buffer_set(0) };
        // SAFETY: ...so nothing uses it any more once `self` is gone.
        let _ = unsafe { sys::mem_unmap(self.buffer.as_ptr() as usize, PAGE_SIZE) };
    }
}
