//! Single-producer single-consumer byte rings in memory shared by two processes.
//!
//! A ring is a [`RingHeader`] and a power-of-two data area. Records are a little-endian `u32`
//! length, the bytes, and padding to 8; a record that does not fit before the end of the
//! area is preceded by a padding marker and starts again at offset 0. `head` and `tail` are
//! free-running 31-bit byte counters: the consumer owns `head`, the producer owns `tail`.
//! A producer pushes a record it has made, or writes one in place at the tail
//! ([`Producer::draft`]), which spares it a copy.
//!
//! The peer is not trusted: everything read from shared memory (both counters, its own too,
//! a record's length) is checked before use, and a bad value is [`RingError::Corrupt`],
//! never a panic or an out-of-bounds access.
//!
//! Sleeping: the top bit of `tail` says the consumer sleeps, the top bit of `head` that the
//! producer waits for space. A consumer about to sleep sets its bit with one read-modify-
//! write that also reads the tail; the producer publishes a record with one swap that also
//! reads (and clears) the bit. Both act on one word, so either the consumer sees the record
//! or the producer sees the sleeper and signals it: a wake-up cannot be lost, without
//! relying on fences (`tests/loom.rs` model-checks this).
#![no_std]

#[cfg(test)]
extern crate std;

mod sync;

use core::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed};
use sync::AtomicU32;
pub use sync::UnsafeCell;
#[cfg(not(loom))]
pub use sync::cells;

/// The shared control block of one ring.
#[repr(C)]
#[derive(Default)]
pub struct RingHeader {
    /// Bytes consumed so far (the consumer's), and [`SLEEPING`]: the producer waits for space.
    head: AtomicU32,
    /// Bytes produced so far (the producer's), and [`SLEEPING`]: the consumer sleeps.
    tail: AtomicU32,
}

/// The flag bit in `head` and `tail`; the other 31 bits count bytes.
const SLEEPING: u32 = 1 << 31;
const COUNT: u32 = SLEEPING - 1;
const LEN_BYTES: usize = 4;
const ALIGN: usize = 8;
const PAD: u32 = u32::MAX;

/// What a push did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Push {
    /// No room now; nothing was written.
    Full,
    /// Published; signal the consumer if it was asleep.
    Done { wake_consumer: bool },
}

/// What a pop did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pop {
    Empty,
    /// A record is in the buffer; signal the producer if it was waiting for space. `last`:
    /// it was the last record published when the pop looked, so the consumer may go
    /// straight to [`Consumer::prepare_wait`] (which looks again) instead of popping again.
    Record {
        wake_producer: bool,
        last: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingError {
    /// The shared counters or a record length make no sense: the peer is broken or hostile.
    Corrupt,
    /// The record can never fit in this ring.
    TooLarge,
}

/// The largest record a ring of `capacity` data bytes carries: half of it, less the
/// length word.
pub const fn max_record(capacity: usize) -> usize {
    capacity / 2 - LEN_BYTES
}

fn record_size(len: usize) -> usize {
    (LEN_BYTES + len).next_multiple_of(ALIGN)
}

/// `copy_nonoverlapping`, with 4 to 16 bytes (most requests and responses are that small)
/// moved as two overlapping words instead of through a call to `memcpy`, whose set-up
/// costs more than such a copy.
///
/// # Safety
/// As `core::ptr::copy_nonoverlapping`.
#[cfg(not(loom))]
#[inline(always)]
unsafe fn copy(from: *const u8, to: *mut u8, len: usize) {
    // SAFETY: each access lies within `from..from + len` or `to..to + len` (the second
    // word of each pair ends at the last byte), which the caller vouches for; unaligned
    // reads and writes need no alignment.
    unsafe {
        match len {
            8..=16 => {
                let (head, tail) = (
                    from.cast::<u64>().read_unaligned(),
                    from.add(len - 8).cast::<u64>().read_unaligned(),
                );
                to.cast::<u64>().write_unaligned(head);
                to.add(len - 8).cast::<u64>().write_unaligned(tail);
            }
            4..8 => {
                let (head, tail) = (
                    from.cast::<u32>().read_unaligned(),
                    from.add(len - 4).cast::<u32>().read_unaligned(),
                );
                to.cast::<u32>().write_unaligned(head);
                to.add(len - 4).cast::<u32>().write_unaligned(tail);
            }
            _ => core::ptr::copy_nonoverlapping(from, to, len),
        }
    }
}

/// One side's view of a ring: the header and the data area, both in shared memory.
pub struct Ring<'a> {
    header: &'a RingHeader,
    data: &'a [UnsafeCell<u8>],
}

/// What the producer side of a ring can do.
pub struct Producer<'a>(Ring<'a>);
/// What the consumer side of a ring can do.
pub struct Consumer<'a>(Ring<'a>);

impl<'a> Ring<'a> {
    /// # Panics
    /// When `data` is not a power of two from 16 bytes to 1 GiB: a layout bug on our own side.
    pub fn new(header: &'a RingHeader, data: &'a [UnsafeCell<u8>]) -> Self {
        assert!(
            data.len().is_power_of_two() && (16..=1 << 30).contains(&data.len()),
            "ring size"
        );
        Ring { header, data }
    }

    pub fn producer(self) -> Producer<'a> {
        Producer(self)
    }

    pub fn consumer(self) -> Consumer<'a> {
        Consumer(self)
    }

    fn capacity(&self) -> usize {
        self.data.len()
    }

    /// The largest record this ring carries.
    pub fn max_record(&self) -> usize {
        max_record(self.capacity())
    }

    /// Byte by byte under loom, so the model sees every access.
    #[cfg(loom)]
    fn write_bytes(&self, offset: usize, bytes: &[u8]) {
        for (cell, &b) in self.data[offset..offset + bytes.len()].iter().zip(bytes) {
            // SAFETY: as in the copying version below.
            cell.with_mut(|p| unsafe { *p = b });
        }
    }

    #[cfg(loom)]
    fn read_bytes(&self, offset: usize, out: &mut [u8]) {
        for (cell, b) in self.data[offset..offset + out.len()].iter().zip(out) {
            // SAFETY: as in the copying version below.
            *b = cell.with(|p| unsafe { *p });
        }
    }

    #[cfg(not(loom))]
    fn write_bytes(&self, offset: usize, bytes: &[u8]) {
        let cells = &self.data[offset..offset + bytes.len()];
        // SAFETY: only the producer writes the free part of the ring, and the consumer reads
        // it only after the release swap of `tail` that follows; the cells are contiguous
        // bytes (UnsafeCell<u8> is transparent) and writing through them is what they allow.
        unsafe { copy(bytes.as_ptr(), cells.as_ptr() as *mut u8, bytes.len()) }
    }

    #[cfg(not(loom))]
    fn read_bytes(&self, offset: usize, out: &mut [u8]) {
        let cells = &self.data[offset..offset + out.len()];
        // SAFETY: the consumer reads only published records, which the producer does not
        // touch again until `head` moves past them.
        unsafe { copy(cells.as_ptr() as *const u8, out.as_mut_ptr(), out.len()) }
    }

    fn read_len(&self, offset: usize) -> u32 {
        let mut bytes = [0; LEN_BYTES];
        self.read_bytes(offset, &mut bytes);
        u32::from_le_bytes(bytes)
    }

    /// Bytes in use, checked: both counters sit in memory the peer can write, so each must
    /// be a whole number of records (an unaligned offset would place a record across the
    /// end of the data), and together they must not claim more than the ring holds.
    fn used(&self, head: u32, tail: u32) -> Result<usize, RingError> {
        let used = (tail.wrapping_sub(head) & COUNT) as usize;
        // Two aligned counters are aligned apart, so one test covers all three.
        if used > self.capacity() || !((head | tail) as usize).is_multiple_of(ALIGN) {
            return Err(RingError::Corrupt);
        }
        Ok(used)
    }
}

impl Producer<'_> {
    /// Where a record of `len` bytes would go now: its offset and the padding before it,
    /// or `None` when it does not fit.
    fn place(&self, head: u32, tail: u32, len: usize) -> Result<Option<(usize, usize)>, RingError> {
        let ring = &self.0;
        let free = ring.capacity() - ring.used(head, tail)?;
        let offset = (tail & COUNT) as usize % ring.capacity();
        let to_end = ring.capacity() - offset;
        let size = record_size(len);
        let padding = if size > to_end { to_end } else { 0 };
        Ok((padding + size <= free).then_some((offset, padding)))
    }

    /// Append one record, or find no room for it now.
    pub fn push(&self, record: &[u8]) -> Result<Push, RingError> {
        let ring = &self.0;
        if record.len() > ring.max_record() {
            return Err(RingError::TooLarge);
        }
        let tail = ring.header.tail.load(Relaxed) & COUNT;
        let head = ring.header.head.load(Acquire);
        let Some((offset, padding)) = self.place(head, tail, record.len())? else {
            return Ok(Push::Full);
        };
        let size = record_size(record.len());
        if padding > 0 {
            ring.write_bytes(offset, &PAD.to_le_bytes());
        }
        let at = (offset + padding) % ring.capacity();
        ring.write_bytes(at, &(record.len() as u32).to_le_bytes());
        ring.write_bytes(at + LEN_BYTES, record);
        let new_tail = tail.wrapping_add((padding + size) as u32) & COUNT;
        let old = ring.header.tail.swap(new_tail, AcqRel);
        Ok(Push::Done {
            wake_consumer: old & SLEEPING != 0,
        })
    }

    /// Write the next record in place instead of copying it in: the room free at the tail
    /// now, without wrapping (at most [`Ring::max_record`] bytes, maybe none). Nothing is
    /// visible to the consumer until [`Draft::publish`]; a draft dropped unpublished leaves
    /// the ring as it was. `&mut self`: no other record can be pushed over it meanwhile.
    #[cfg(not(loom))]
    #[inline]
    pub fn draft(&mut self) -> Result<Draft<'_>, RingError> {
        let ring = &self.0;
        let tail = ring.header.tail.load(Relaxed) & COUNT;
        let head = ring.header.head.load(Acquire);
        let free = ring.capacity() - ring.used(head, tail)?;
        let offset = tail as usize % ring.capacity();
        // Counters are multiples of 8 and the area at least 16 bytes: the length word fits.
        let room = (free.min(ring.capacity() - offset))
            .saturating_sub(LEN_BYTES)
            .min(ring.max_record());
        // SAFETY: `room` ends at most at the end of the data, after the length word at
        // `offset`. The free part of the ring is only the producer's to write, the consumer
        // reads it only once `publish` releases it, and `&mut self` keeps every other
        // write of this side out while the draft lives. A peer that breaks the protocol
        // and writes there changes only the bytes this side sends it.
        let room = unsafe {
            let start = ring.data.as_ptr().add(offset + LEN_BYTES) as *mut u8;
            core::slice::from_raw_parts_mut(start, room)
        };
        Ok(Draft {
            ring,
            tail,
            offset,
            room,
        })
    }

    /// Before blocking for space for a `needed`-byte record: announce it and check again in
    /// one step. True means block now; the consumer will signal.
    pub fn prepare_wait(&self, needed: usize) -> Result<bool, RingError> {
        let ring = &self.0;
        let head = ring.header.head.fetch_or(SLEEPING, AcqRel);
        let tail = ring.header.tail.load(Relaxed) & COUNT;
        if self.place(head, tail, needed)?.is_some() {
            ring.header.head.fetch_and(COUNT, Relaxed);
            return Ok(false);
        }
        Ok(true)
    }
}

/// A record being written in place at a ring's tail ([`Producer::draft`]).
#[cfg(not(loom))]
pub struct Draft<'p> {
    ring: &'p Ring<'p>,
    tail: u32,
    offset: usize,
    room: &'p mut [u8],
}

#[cfg(not(loom))]
impl Draft<'_> {
    /// Where the record goes: every byte of it must fit here.
    pub fn room(&mut self) -> &mut [u8] {
        self.room
    }

    /// Publish the first `len` bytes of the room as a record.
    ///
    /// # Panics
    /// When `len` is more than the room: a bug on this side.
    #[inline]
    pub fn publish(self, len: usize) -> Push {
        assert!(len <= self.room.len(), "a draft past its room");
        let ring = self.ring;
        ring.write_bytes(self.offset, &(len as u32).to_le_bytes());
        let new_tail = self.tail.wrapping_add(record_size(len) as u32) & COUNT;
        let old = ring.header.tail.swap(new_tail, AcqRel);
        Push::Done {
            wake_consumer: old & SLEEPING != 0,
        }
    }
}

impl Consumer<'_> {
    /// Take the next record into `out`. A record larger than `out` is `TooLarge` and stays
    /// in the ring: give `out` room for [`Ring::max_record`] bytes.
    pub fn pop(&self, out: &mut alloc_free::Buffer<'_>) -> Result<Pop, RingError> {
        let ring = &self.0;
        let head = ring.header.head.load(Relaxed) & COUNT;
        let tail = ring.header.tail.load(Acquire);
        let mut used = ring.used(head, tail)?;
        let mut offset = head as usize % ring.capacity();
        let mut consumed = 0;
        if used == 0 {
            return Ok(Pop::Empty);
        }
        if ring.capacity() - offset < LEN_BYTES || ring.read_len(offset) == PAD {
            let pad = ring.capacity() - offset;
            if pad >= used {
                return Err(RingError::Corrupt);
            }
            used -= pad;
            consumed += pad;
            offset = 0;
        }
        let len = ring.read_len(offset) as usize;
        let size = record_size(len);
        if len > ring.max_record() || size > used || offset + size > ring.capacity() {
            return Err(RingError::Corrupt);
        }
        out.fill_from(len, |dst| ring.read_bytes(offset + LEN_BYTES, dst))
            .map_err(|_| RingError::TooLarge)?;
        consumed += size;
        let old = ring
            .header
            .head
            .swap(head.wrapping_add(consumed as u32) & COUNT, AcqRel);
        Ok(Pop::Record {
            wake_producer: old & SLEEPING != 0,
            last: size == used,
        })
    }

    /// Before blocking for records: announce it and check again in one step. True means
    /// block now; the producer will signal.
    pub fn prepare_wait(&self) -> Result<bool, RingError> {
        let ring = &self.0;
        let tail = ring.header.tail.fetch_or(SLEEPING, AcqRel);
        let head = ring.header.head.load(Relaxed) & COUNT;
        if ring.used(head, tail)? != 0 {
            ring.header.tail.fetch_and(COUNT, Relaxed);
            return Ok(false);
        }
        Ok(true)
    }
}

/// A destination for popped records that needs no allocator: a caller-provided slice.
pub mod alloc_free {
    /// Up to `capacity` bytes of record; `len` of them valid after a pop.
    pub struct Buffer<'a> {
        bytes: &'a mut [u8],
        len: usize,
    }

    impl<'a> Buffer<'a> {
        pub fn new(bytes: &'a mut [u8]) -> Self {
            Buffer { bytes, len: 0 }
        }

        pub fn as_slice(&self) -> &[u8] {
            &self.bytes[..self.len]
        }

        pub(crate) fn fill_from(
            &mut self,
            len: usize,
            fill: impl FnOnce(&mut [u8]),
        ) -> Result<(), ()> {
            let dst = self.bytes.get_mut(..len).ok_or(())?;
            fill(dst);
            self.len = len;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests;
