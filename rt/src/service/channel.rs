//! The shared memory of one connection, and the rings laid out in it.
//!
//! ```text
//! page 0             header: the two ring headers (requests at 0, responses at 64),
//!                    and the client's closing flag (a `u32` at 128)
//! page 1 ..          request ring data   (RING_SIZE bytes, client -> server)
//! .. + RING_SIZE     response ring data  (RING_SIZE bytes, server -> client)
//! .. + RING_SIZE     bulk arena          (BULK_SIZE bytes, written by the client)
//! ```
//!
//! The server creates the channel and hands the client a copy of its capability: a
//! client can then delete or revoke only its own copy, never the server's mapping, so it
//! cannot make the server fault by pulling the memory away.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use keel_abi::Error;
use keel_abi::cap::Handle;
use keel_abi::layout::PAGE_SIZE;
use keel_abi::prot;
use keel_ring::{Consumer, Producer, Ring, RingHeader, cells};

use crate::sys;

/// Bytes of each ring: a record (one request or response) can be half of it.
pub const RING_SIZE: usize = 64 * 1024;
/// The largest record (request or response) a ring carries.
pub const MAX_RECORD: usize = keel_ring::max_record(RING_SIZE);
/// Bytes of the bulk arena: large arguments the client writes in place ([`Bulk`](super::Bulk)).
pub const BULK_SIZE: usize = 2 << 20;
const BULK_OFFSET: usize = PAGE_SIZE + 2 * RING_SIZE;
pub const CHANNEL_SIZE: usize = BULK_OFFSET + BULK_SIZE;
const RESPONSE_HEADER: usize = 64;
/// A `u32` the client sets when it is done with the channel.
const CLOSED: usize = 128;

/// A connection's memory, mapped in this process.
pub struct Channel {
    pub object: Handle,
    addr: usize,
}

impl Channel {
    /// A fresh channel (server side).
    pub fn create() -> Result<Channel, Error> {
        let object = sys::ipc::mem_create(CHANNEL_SIZE)?;
        Channel::map(object).inspect_err(|_| {
            let _ = sys::ipc::cap_delete(object);
        })
    }

    /// Map a channel received from the other side, which must really be a memory object
    /// of the channel's size: a smaller one would leave the rings hanging off its end.
    pub fn map(object: Handle) -> Result<Channel, Error> {
        let info = sys::ipc::cap_info(object)?;
        if info.kind != keel_abi::cap::kind::MEMORY || info.size != CHANNEL_SIZE as u64 {
            return Err(Error::InvalidArgument);
        }
        let addr = sys::ipc::mem_map_object(object, 0, prot::READ | prot::WRITE)?;
        Ok(Channel { object, addr })
    }

    /// Say the client is done with the channel: the server ends the connection when it
    /// next wakes (signal it).
    pub fn close(&self) {
        self.closed().store(1, Ordering::Release);
    }

    /// Whether the client said it is done. The client can write it at will, which ends
    /// only its own connection.
    pub fn is_closed(&self) -> bool {
        self.closed().load(Ordering::Acquire) != 0
    }

    fn closed(&self) -> &AtomicU32 {
        // SAFETY: an aligned word of the header page, mapped while `self` lives; an atomic
        // is valid for any bit pattern the other side writes.
        unsafe { &*((self.addr + CLOSED) as *const AtomicU32) }
    }

    /// Where the bulk arena starts in this process.
    pub fn bulk_base(&self) -> usize {
        self.addr + BULK_OFFSET
    }

    fn ring(&self, header_offset: usize, data_offset: usize) -> Ring<'static> {
        // SAFETY: the channel stays mapped while `self` lives, and `Channel` owners drop
        // their rings first (they are fields declared before it). RingHeader is two atomic
        // words, valid for any bit pattern.
        unsafe {
            let header = &*((self.addr + header_offset) as *const RingHeader);
            Ring::new(
                header,
                cells((self.addr + data_offset) as *mut u8, RING_SIZE),
            )
        }
    }

    /// (request producer, response consumer): the client's ends.
    pub fn client_ends(&self) -> (Producer<'static>, Consumer<'static>) {
        (
            self.ring(0, PAGE_SIZE).producer(),
            self.ring(RESPONSE_HEADER, PAGE_SIZE + RING_SIZE).consumer(),
        )
    }

    /// (request consumer, response producer): the server's ends.
    pub fn server_ends(&self) -> (Consumer<'static>, Producer<'static>) {
        (
            self.ring(0, PAGE_SIZE).consumer(),
            self.ring(RESPONSE_HEADER, PAGE_SIZE + RING_SIZE).producer(),
        )
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        // Deleting the capability the mapping was made through unmaps it too.
        let _ = sys::ipc::cap_delete(self.object);
    }
}

/// Notification bits for this process's channels, handed out round-robin: a shared bit
/// only costs a spurious poll.
pub fn next_bit() -> u32 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    (NEXT.fetch_add(1, Ordering::Relaxed) % crate::executor::wake::CHANNEL_BITS as u64) as u32
}
