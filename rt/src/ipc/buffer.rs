//! Each thread's IPC buffer: one page, mapped and registered with the kernel the first time
//! the thread sends a payload or capabilities, or waits for a message.
//!
//! The kernel writes the page only during its own thread's receives, and this module only
//! touches it between that thread's syscalls, so references into it never outlive a call.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::ptr::NonNull;

use keel_abi::Error;
use keel_abi::cap::Handle;
use keel_abi::ipc::{IpcBuffer, MAX_PAYLOAD, MESSAGE_CAPS, MessageInfo};
use keel_abi::layout::PAGE_SIZE;
use keel_abi::prot;

use crate::sync::Mutex;
use crate::sys;
use crate::thread::{self, Tid};

const _: () = assert!(size_of::<IpcBuffer>() == PAGE_SIZE);

/// The buffer page of each thread that has one.
static BUFFERS: Mutex<BTreeMap<Tid, usize>> = Mutex::new(BTreeMap::new());

/// The calling thread's IPC buffer, set up on first use.
pub fn current() -> Result<NonNull<IpcBuffer>, Error> {
    let tid = thread::id();
    let mut buffers = BUFFERS.lock();
    let addr = match buffers.get(&tid) {
        Some(&addr) => addr,
        None => {
            let addr = sys::mem_map(0, PAGE_SIZE, prot::READ | prot::WRITE)?;
            // SAFETY: the page was just mapped for this alone; only this module touches it.
            if let Err(error) = unsafe { sys::ipc::ipc_buffer_set(addr) } {
                // SAFETY: nothing refers to the page.
                let _ = unsafe { sys::mem_unmap(addr, PAGE_SIZE) };
                return Err(error);
            }
            buffers.insert(tid, addr);
            addr
        }
    };
    NonNull::new(addr as *mut IpcBuffer).ok_or(Error::BadAddress)
}

/// Puts `payload` and `caps` in the calling thread's buffer for the next send; returns the
/// message info announcing them. Without either, the buffer is left alone (not even set up).
pub fn stage(label: u32, payload: &[u8], caps: &[Handle]) -> Result<MessageInfo, Error> {
    if payload.len() > MAX_PAYLOAD || caps.len() > MESSAGE_CAPS {
        return Err(Error::InvalidArgument);
    }
    if !payload.is_empty() || !caps.is_empty() {
        // SAFETY: the calling thread's own buffer, between its syscalls (see above).
        let buffer = unsafe { current()?.as_mut() };
        buffer.payload[..payload.len()].copy_from_slice(payload);
        buffer.caps[..caps.len()].copy_from_slice(caps);
    }
    Ok(MessageInfo::new(label, payload.len(), caps.len()))
}

/// The payload and capabilities that came with a message received with `info`.
pub fn take(info: MessageInfo) -> (Vec<u8>, Vec<Handle>) {
    let (len, caps) = (
        info.payload_len().min(MAX_PAYLOAD),
        info.caps().min(MESSAGE_CAPS),
    );
    if len == 0 && caps == 0 {
        return (Vec::new(), Vec::new());
    }
    match current() {
        Ok(buffer) => {
            // SAFETY: the calling thread's own buffer, between its syscalls (see above).
            let buffer = unsafe { buffer.as_ref() };
            (buffer.payload[..len].to_vec(), buffer.caps[..caps].to_vec())
        }
        // Every receive sets the buffer up first, so this cannot happen.
        Err(_) => (Vec::new(), Vec::new()),
    }
}

/// Unregisters and unmaps the calling thread's buffer, if it has one: the thread is ending.
pub fn release() {
    let Some(addr) = BUFFERS.lock().remove(&thread::id()) else {
        return;
    };
    // SAFETY: unregistered first, so the kernel no longer writes the page; no reference
    // into it is live, so nothing uses it any more.
    unsafe {
        let _ = sys::ipc::ipc_buffer_set(0);
        let _ = sys::mem_unmap(addr, PAGE_SIZE);
    }
}
