//! The virtio-blk device: requests in, completions out, many in flight.
//!
//! virtio-drivers gives the PCI transport and the split virtqueue; the block requests are
//! written here rather than through its `VirtIOBlk`, whose flush waits by polling the used
//! ring and whose queue holds 16 entries: here every request, flush included, completes
//! by interrupt, and the queue holds [`QUEUE_SIZE`] descriptors, three a request. Indirect
//! descriptors would fit more requests, but the crate keeps their lists on the heap, to be
//! copied into DMA memory for each request: 85 in flight are plenty.
//!
//! A request's header and status byte live in a DMA page of slots, one per entry; its data
//! is wherever the caller says, in DMA memory (a client's region): the device reads and
//! writes it there.

use alloc::vec::Vec;
use core::ptr::NonNull;

use bitflags::bitflags;
use virtio_drivers::Error;
use virtio_drivers::queue::VirtQueue;
use virtio_drivers::transport::Transport;
use virtio_drivers::transport::pci::PciTransport;

use keel_virtio::{Allocation, KeelHal, hal};

/// Descriptors in the queue (QEMU's default); a request takes three.
pub const QUEUE_SIZE: usize = 256;
/// Each slot: a 16-byte header, then the status byte.
const SLOT: usize = 32;

bitflags! {
    /// The features this driver takes (virtio 1.2, 5.2.3).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    struct Features: u64 {
        const RO = 1 << 5;
        const FLUSH = 1 << 9;
        const VERSION_1 = 1 << 32;
    }
}

/// What a request does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Read,
    Write,
    Flush,
}

impl Op {
    fn code(self) -> u32 {
        match self {
            Op::Read => 0,
            Op::Write => 1,
            Op::Flush => 4,
        }
    }
}

/// Data in DMA memory: `len` bytes at `ptr`.
#[derive(Clone, Copy, Debug)]
pub struct Data {
    pub ptr: NonNull<u8>,
    pub len: usize,
}

struct InFlight {
    slot: usize,
    op: Op,
    data: Option<Data>,
}

pub struct Disk {
    transport: PciTransport,
    queue: VirtQueue<KeelHal, QUEUE_SIZE>,
    slots: Allocation,
    free_slots: Vec<usize>,
    /// By token (the request's first descriptor).
    in_flight: Vec<Option<InFlight>>,
    /// Blocks of 512 bytes.
    pub capacity: u64,
    pub read_only: bool,
    /// Whether the queue interrupts through MSI-X (else INTx).
    pub msix: bool,
    flush: bool,
}

impl Disk {
    /// Reset the device and bring it up with one request queue. `route_queue(0)` gives
    /// the queue its MSI-X vector, after the reset and before the queue is enabled;
    /// whether it did.
    pub fn new(
        mut transport: PciTransport,
        route_queue: impl FnOnce(u16) -> bool,
    ) -> Result<Disk, Error> {
        // Resetting first (begin_init writes status 0) drops whatever a killed earlier
        // start of this driver left queued.
        let features = transport.begin_init(Features::all());
        let low: u32 = transport.read_config_space(0)?;
        let high: u32 = transport.read_config_space(4)?;
        let msix = route_queue(0);
        let queue = VirtQueue::new(&mut transport, 0, false, false)?;
        let slots = hal::alloc(QUEUE_SIZE * SLOT).map_err(|_| Error::DmaError)?;
        transport.finish_init();
        Ok(Disk {
            transport,
            queue,
            slots,
            free_slots: (0..QUEUE_SIZE).rev().collect(),
            in_flight: (0..QUEUE_SIZE).map(|_| None).collect(),
            capacity: u64::from(high) << 32 | u64::from(low),
            read_only: features.contains(Features::RO),
            msix,
            flush: features.contains(Features::FLUSH),
        })
    }

    /// Whether the device has a write cache to flush.
    pub fn caches_writes(&self) -> bool {
        self.flush
    }

    /// Whether another request fits now.
    pub fn has_room(&self) -> bool {
        !self.free_slots.is_empty() && self.queue.available_desc() >= 3
    }

    /// Queue a request for the device; its token, which [`complete`](Disk::complete)
    /// returns when done. `QueueFull` when no room ([`has_room`](Disk::has_room)).
    ///
    /// # Safety
    /// `data` is DMA memory that stays mapped, and is not read (for a read) or written
    /// (for a write) by anyone else, until the token completes.
    pub unsafe fn submit(&mut self, op: Op, sector: u64, data: Option<Data>) -> Result<u16, Error> {
        let slot = self.free_slots.pop().ok_or(Error::QueueFull)?;
        let header = self.slot_ptr(slot);
        // SAFETY: the slot is ours (taken from the free list), inside the slots' mapping.
        unsafe {
            header.cast::<u32>().write_volatile(op.code());
            header.add(4).cast::<u32>().write_volatile(0);
            header.add(8).cast::<u64>().write_volatile(sector);
            header.add(16).write_volatile(0xff);
        }
        // SAFETY: the buffers are DMA memory the caller and this slot keep for the
        // request's life; `complete` passes the same ones to `pop_used`.
        let token = unsafe {
            let buffers = self.buffers(slot, data);
            with_buffers!(op, buffers, |inputs, outputs| self
                .queue
                .add(inputs, outputs))
        };
        match token {
            Ok(token) => {
                self.in_flight[usize::from(token)] = Some(InFlight { slot, op, data });
                if self.queue.should_notify() {
                    self.transport.notify(0);
                }
                Ok(token)
            }
            Err(error) => {
                self.free_slots.push(slot);
                Err(error)
            }
        }
    }

    /// Acknowledge an interrupt at the device (a level-triggered line stays asserted until
    /// the ISR is read); whether it had raised one.
    pub fn interrupt(&mut self) -> bool {
        !self.transport.ack_interrupt().is_empty()
    }

    /// Call `done` with the token of every request the device has finished, and whether it
    /// succeeded; how many there were.
    pub fn complete(&mut self, mut done: impl FnMut(u16, bool)) -> usize {
        let mut count = 0;
        while let Some(token) = self.queue.peek_used() {
            let request = self
                .in_flight
                .get_mut(usize::from(token))
                .and_then(Option::take);
            let Some(request) = request else {
                // Not ours: nothing to pass to pop_used. The device misbehaves; stop here
                // rather than misread its ring.
                break;
            };
            // SAFETY: the same buffers `submit` added under this token.
            let popped = unsafe {
                let buffers = self.buffers(request.slot, request.data);
                with_buffers!(request.op, buffers, |inputs, outputs| {
                    self.queue.pop_used(token, inputs, outputs)
                })
            };
            // SAFETY: the status byte of a slot still ours.
            let status = unsafe { self.slot_ptr(request.slot).add(16).read_volatile() };
            self.free_slots.push(request.slot);
            done(token, popped.is_ok() && status == 0);
            count += 1;
        }
        count
    }

    fn slot_ptr(&self, slot: usize) -> *mut u8 {
        (self.slots.virt + slot * SLOT) as *mut u8
    }

    /// The request's header, status byte and data as slices.
    ///
    /// # Safety
    /// The slot and `data` are the request's, valid DMA memory, for as long as the slices
    /// are used.
    unsafe fn buffers<'b>(
        &self,
        slot: usize,
        data: Option<Data>,
    ) -> (&'b [u8], &'b mut [u8], Option<&'b mut [u8]>) {
        let header = self.slot_ptr(slot);
        // SAFETY: the slot's 16 header bytes and status byte are mapped DMA memory owned by
        // this request; `data` is the caller's promise.
        unsafe {
            (
                core::slice::from_raw_parts(header, 16),
                core::slice::from_raw_parts_mut(header.add(16), 1),
                data.map(|d| core::slice::from_raw_parts_mut(d.ptr.as_ptr(), d.len)),
            )
        }
    }
}

/// Run `$call` with `$inputs` and `$outputs` bound to a request's buffers as the virtqueue
/// wants them: the header (and write data) for the device to read, read data and the
/// status for it to write. A macro, since `add` and `pop_used` want their own lifetimes.
macro_rules! with_buffers {
    ($op:expr, $buffers:expr, |$inputs:ident, $outputs:ident| $call:expr) => {
        match ($op, $buffers) {
            (Op::Read, (header, status, Some(data))) => {
                let ($inputs, $outputs) = (&[header][..], &mut [data, status][..]);
                $call
            }
            (Op::Write, (header, status, Some(data))) => {
                let ($inputs, $outputs) = (&[header, &*data][..], &mut [status][..]);
                $call
            }
            (_, (header, status, _)) => {
                let ($inputs, $outputs) = (&[header][..], &mut [status][..]);
                $call
            }
        }
    };
}
use with_buffers;

impl Drop for Disk {
    fn drop(&mut self) {
        // Stop the device before its queue's memory goes.
        self.transport
            .set_status(virtio_drivers::transport::DeviceStatus::empty());
        hal::free(self.slots.virt);
    }
}
