//! Bulk arguments: bytes the client writes in place in the connection's shared arena and
//! the server reads in place, so they are never copied through a ring or the kernel.
//!
//! ```ignore
//! #[keel_rt::service]
//! pub trait Store {
//!     async fn checksum(&self, data: Bulk) -> u64;
//! }
//!
//! let mut data = client.connection().bulk(1 << 20)?; // room in the shared arena
//! data.as_mut_slice().expect("the client's").fill(7);  // written where the server reads it
//! let sum = client.checksum(data).await?;             // only (offset, length) travel
//! ```
//!
//! On the wire a `Bulk` is its offset and length in the arena. The server checks both
//! against the arena before it touches a byte. The client can still change the bytes while
//! the server reads them, so the server side offers only copying reads (never a reference
//! into memory another process writes; [`copy_out`] says why a plain copy is sound): copy
//! what must not change.
//!
//! A `Bulk` belongs to the link (one start of the server) whose arena holds it: a call
//! encoded for another link refuses it rather than send offsets into the wrong arena.

use alloc::collections::BTreeMap;
use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::TransportError;
use super::channel::{BULK_SIZE, Channel};

const ALIGN: usize = 64;

/// The client's view of a connection's arena: the mapping and what is free in it.
pub(super) struct Arena {
    channel: Channel,
    /// Free ranges: offset -> length.
    free: RefCell<BTreeMap<usize, usize>>,
}

impl Arena {
    pub(super) fn new(channel: Channel) -> Arena {
        Arena {
            channel,
            free: RefCell::new(BTreeMap::from([(0, BULK_SIZE)])),
        }
    }

    pub(super) fn channel(&self) -> &Channel {
        &self.channel
    }

    /// First fit: the lowest free range with room for `len` bytes.
    fn allocate(&self, len: usize) -> Option<usize> {
        let size = len.max(1).next_multiple_of(ALIGN);
        let mut free = self.free.borrow_mut();
        let (&offset, &available) = free.iter().find(|(_, available)| **available >= size)?;
        free.remove(&offset);
        if available > size {
            free.insert(offset + size, available - size);
        }
        Some(offset)
    }

    fn release(&self, offset: usize, len: usize) {
        let size = len.max(1).next_multiple_of(ALIGN);
        let mut free = self.free.borrow_mut();
        let (mut start, mut size) = (offset, size);
        if let Some((&next, &next_size)) = free.range(start + size..).next()
            && next == start + size
        {
            free.remove(&next);
            size += next_size;
        }
        if let Some((&previous, &previous_size)) = free.range(..start).next_back()
            && previous + previous_size == start
        {
            free.remove(&previous);
            start = previous;
            size += previous_size;
        }
        free.insert(start, size);
    }
}

/// Bytes in a connection's bulk arena (2 MiB, shared by the client and the server): an
/// argument that crosses without a copy.
///
/// The client gets one from [`Connection::bulk`](super::Connection::bulk), fills it
/// through [`as_mut_slice`](Bulk::as_mut_slice) and passes it to a method taking `Bulk`;
/// its room is free again once it is dropped. The server's method receives one that it can
/// only read, by copy: [`read_at`](Bulk::read_at), [`to_vec`](Bulk::to_vec),
/// [`words`](Bulk::words).
///
/// ```ignore
/// // The server:
/// async fn checksum(&self, data: Bulk) -> u64 {
///     data.words().fold(0, u64::wrapping_add)
/// }
/// // The client:
/// let mut data = store.connection().bulk(4096)?;
/// data.as_mut_slice().expect("a client's Bulk").copy_from_slice(&page);
/// let sum = store.checksum(data).await?;
/// ```
pub struct Bulk(Side);

enum Side {
    /// Room the client owns until the `Bulk` is dropped (after its call completes).
    Client {
        arena: Rc<Arena>,
        offset: usize,
        len: usize,
    },
    /// What a request named, checked against this server's mapping of the arena.
    Server { addr: usize, len: usize },
}

impl Bulk {
    pub(super) fn allocate(arena: &Rc<Arena>, len: usize) -> Result<Bulk, TransportError> {
        let offset = arena.allocate(len).ok_or(TransportError::TooLarge)?;
        Ok(Bulk(Side::Client {
            arena: arena.clone(),
            offset,
            len,
        }))
    }

    /// How many bytes: the `len` it was made with, on both sides.
    pub fn len(&self) -> usize {
        match self.0 {
            Side::Client { len, .. } | Side::Server { len, .. } => len,
        }
    }

    /// Whether it holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn addr(&self) -> usize {
        match &self.0 {
            Side::Client { arena, offset, .. } => arena.channel.bulk_base() + offset,
            Side::Server { addr, .. } => *addr,
        }
    }

    /// All [`len`](Bulk::len) bytes, to fill before the call: `Some` for the client's
    /// `Bulk` (from [`Connection::bulk`](super::Connection::bulk)); `None` for the one a
    /// server's method receives, whose bytes the client may still be writing (read them by
    /// copy).
    pub fn as_mut_slice(&mut self) -> Option<&mut [u8]> {
        match self.0 {
            Side::Client { len, .. } => {
                let addr = self.addr();
                // SAFETY: the range is this `Bulk`'s own part of the arena, mapped while the
                // arena (held through `Rc`) lives; the server only reads it.
                Some(unsafe { core::slice::from_raw_parts_mut(addr as *mut u8, len) })
            }
            Side::Server { .. } => None,
        }
    }

    /// Copy bytes from `offset` into `out`, as far as both reach; returns how many (0 when
    /// `offset` is at or past the end).
    ///
    /// ```ignore
    /// let mut header = [0u8; 16];
    /// let got = data.read_at(0, &mut header); // 16, or less for a shorter `Bulk`
    /// ```
    pub fn read_at(&self, offset: usize, out: &mut [u8]) -> usize {
        let n = out.len().min(self.len().saturating_sub(offset));
        // SAFETY: `offset..offset + n` lies within the `Bulk`'s range, checked against the
        // mapped arena; `out` is this process's own memory and cannot overlap the arena.
        unsafe { copy_out(self.addr() + offset, out.as_mut_ptr(), n) };
        n
    }

    /// The bytes, as little-endian 64-bit words (the last one zero-padded): for checksums
    /// and scans that need no copy.
    pub fn words(&self) -> impl Iterator<Item = u64> + '_ {
        let (base, len) = (self.addr(), self.len());
        (0..len.div_ceil(8)).map(move |i| {
            if (i + 1) * 8 <= len {
                // SAFETY: a whole word inside the checked range; the arena and offsets are
                // 64-byte aligned, so the read is aligned.
                unsafe { ((base + i * 8) as *const u64).read_volatile() }
            } else {
                let mut tail = [0u8; 8];
                self.read_at(i * 8, &mut tail);
                u64::from_le_bytes(tail)
            }
        })
    }

    /// A private copy of all the bytes: what a server keeps must be copied, since the
    /// client can still write the arena.
    pub fn to_vec(&self) -> Vec<u8> {
        let len = self.len();
        let mut copy = Vec::with_capacity(len);
        // SAFETY: the whole range is the `Bulk`'s, checked against the arena; `copy` has
        // room for `len` bytes, all written before `set_len`.
        unsafe {
            copy_out(self.addr(), copy.as_mut_ptr(), len);
            copy.set_len(len);
        }
        copy
    }
}

/// Copy `len` bytes from the arena at `from` into this process's own memory at `to`.
///
/// One plain `memcpy` (`rep movsq`), though the client may write the same bytes
/// meanwhile. Sound, because the writer is another process, outside this program, as a
/// device writing by DMA would be: nothing in this process writes the arena, no reference
/// into it is ever formed (whose validity or immutability the compiler could assume), the
/// copy reads each byte once through a raw pointer into memory nobody else sees, and every
/// bit pattern is a valid `u8`. The worst a concurrent writer can cause is a copy that
/// mixes old and new bytes, which is what it wrote; the server uses only the copy.
///
/// # Safety
/// `from..from + len` is mapped arena memory; `to..to + len` is writable memory of this
/// process that does not overlap it.
unsafe fn copy_out(from: usize, to: *mut u8, len: usize) {
    // SAFETY: forwarded from the caller; see above for the concurrent writer.
    unsafe { core::ptr::copy_nonoverlapping(from as *const u8, to, len) }
}

impl Drop for Bulk {
    fn drop(&mut self) {
        if let Side::Client { arena, offset, len } = &self.0 {
            arena.release(*offset, *len);
        }
    }
}

/// The arena of the link a call is being encoded for (client side), 0 when none is.
static ENCODING_ARENA: AtomicUsize = AtomicUsize::new(0);
/// Set when a `Bulk` of another arena was met while encoding for `ENCODING_ARENA`.
static FOREIGN_BULK: AtomicBool = AtomicBool::new(false);

/// Encode `arguments` into `out` for the link whose arena is `arena`: the encoding's
/// length, or `TooLarge` when it does not fit. A `Bulk` in them that lives in another arena
/// (made before a reconnect, or on another connection) is `Disconnected`: its offsets mean
/// nothing here.
pub(super) fn encode_for<T: Serialize>(
    arena: &Rc<Arena>,
    arguments: &T,
    out: &mut [u8],
) -> Result<usize, TransportError> {
    // Encoding is synchronous, so no other call's encoding can interleave with this one.
    ENCODING_ARENA.store(Rc::as_ptr(arena) as usize, Ordering::Relaxed);
    FOREIGN_BULK.store(false, Ordering::Relaxed);
    let encoded = postcard::to_slice(arguments, out).map(|encoded| encoded.len());
    ENCODING_ARENA.store(0, Ordering::Relaxed);
    if FOREIGN_BULK.load(Ordering::Relaxed) {
        return Err(TransportError::Disconnected);
    }
    encoded.map_err(|_| TransportError::TooLarge)
}

impl Serialize for Bulk {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Side::Client { arena, offset, len } => {
                let encoding = ENCODING_ARENA.load(Ordering::Relaxed);
                if encoding != 0 && encoding != Rc::as_ptr(arena) as usize {
                    FOREIGN_BULK.store(true, Ordering::Relaxed);
                    return Err(serde::ser::Error::custom(
                        "bulk bytes in another connection's arena",
                    ));
                }
                (*offset as u64, *len as u64).serialize(serializer)
            }
            Side::Server { .. } => Err(serde::ser::Error::custom(
                "a server cannot send bulk bytes back",
            )),
        }
    }
}

impl<'de> Deserialize<'de> for Bulk {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (offset, len) = <(u64, u64)>::deserialize(deserializer)?;
        let end = offset
            .checked_add(len)
            .filter(|&end| end <= BULK_SIZE as u64);
        let Some(base) = super::decoding::current().map(|request| request.arena) else {
            return Err(D::Error::custom("bulk bytes outside a request's decoding"));
        };
        if end.is_none() || offset % ALIGN as u64 != 0 {
            return Err(D::Error::custom(
                "bulk range outside the connection's arena",
            ));
        }
        Ok(Bulk(Side::Server {
            addr: base + offset as usize,
            len: len as usize,
        }))
    }
}
