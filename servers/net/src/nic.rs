//! The virtio-net device under smoltcp: receive and transmit buffers are slots of two DMA
//! pools, and smoltcp reads a received frame, and writes a frame to send, in place in them.
//! No packet byte is copied between the device and the stack.
//!
//! Receive: every slot of the receive pool is given to the device; a frame the device wrote
//! is handed to smoltcp as a slice of its slot, and the slot goes back to the device once
//! smoltcp is done with it. Transmit: smoltcp builds a frame straight into a free slot after
//! the virtio header, and the slot is given to the device; it is free again once the device
//! has used it.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};

use smoltcp::phy::{self, Checksum, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use virtio_drivers::device::net::VirtIONetRaw;

use crate::transport::NoEventIdx;
use crate::{checksum, loopback};
use keel_rt::driver::DriverError;
use keel_virtio::{Allocation, KeelHal, hal};

/// Descriptors per queue, and so slots per pool.
pub const QUEUE_SIZE: usize = 128;
/// Transmit slots kept for the replies smoltcp makes while it takes frames in (ACKs,
/// SYN-ACKs): sending data never takes the last of them.
const REPLY_RESERVE: usize = 16;
/// One slot: a virtio header and a 1514-byte frame fit, rounded to keep slots apart.
const SLOT: usize = 2048;
/// The largest frame smoltcp may build (Ethernet header included).
const MTU: usize = 1514;

pub type Device = VirtIONetRaw<KeelHal, NoEventIdx, QUEUE_SIZE>;

/// What went through the device.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counters {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

/// A pool of [`QUEUE_SIZE`] slots in one DMA buffer.
struct Pool {
    memory: Allocation,
}

impl Pool {
    fn new() -> Result<Pool, DriverError> {
        let memory = hal::alloc(QUEUE_SIZE * SLOT)?;
        Ok(Pool { memory })
    }

    /// Slot `index`, as bytes. The device may write a slot given to it at any time: only
    /// slots it has handed back are read.
    #[allow(clippy::mut_from_ref)]
    fn slot(&self, index: usize) -> &mut [u8] {
        assert!(index < QUEUE_SIZE);
        // SAFETY: slot `index` lies inside the buffer (checked above), which lives as long
        // as `self`; the pool's owner hands out each slot to one user at a time (the device,
        // or smoltcp through a token), so no two references to it are live at once.
        unsafe {
            core::slice::from_raw_parts_mut((self.memory.virt + index * SLOT) as *mut u8, SLOT)
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        hal::free(self.memory.virt);
    }
}

pub struct Nic {
    /// On the heap: virtio-drivers keeps each queue's descriptors inline, and a value that
    /// size moved from frame to frame would take the main thread's stack.
    device: RefCell<Box<Device>>,
    rx: Pool,
    tx: Pool,
    /// Which receive slot each descriptor token names.
    rx_slot: RefCell<[usize; QUEUE_SIZE]>,
    /// Transmit slots not given to the device, and each token's slot while it has one.
    tx_free: RefCell<Vec<usize>>,
    tx_slot: RefCell<[usize; QUEUE_SIZE]>,
    counters: Cell<Counters>,
    mac: [u8; 6],
    /// Frames sent to ourselves, to be received next.
    looped: RefCell<VecDeque<Vec<u8>>>,
    /// A received frame taken from the device to be looked at ([`Nic::dhcp_next`]), the
    /// next smoltcp receives: its slot, start and length.
    ahead: Cell<Option<(usize, usize, usize)>>,
    /// The port a TCP SYN came in for since [`Nic::take_syn`] last looked.
    syn: Cell<Option<u16>>,
    /// Transmit slots free when the stack last found too few, since the last poll.
    short: Cell<Option<usize>>,
    /// A frame sent since [`Nic::take_unfinished`] last looked may leave its socket more
    /// to send.
    unfinished: Cell<bool>,
}

impl Nic {
    /// The device, its receive slots all handed to it.
    pub fn new(device: Box<Device>) -> Result<Nic, DriverError> {
        let nic = Nic {
            mac: device.mac_address(),
            looped: RefCell::default(),
            ahead: Cell::new(None),
            syn: Cell::new(None),
            short: Cell::new(None),
            unfinished: Cell::new(false),
            device: RefCell::new(device),
            rx: Pool::new()?,
            tx: Pool::new()?,
            rx_slot: RefCell::new([0; QUEUE_SIZE]),
            tx_free: RefCell::new((0..QUEUE_SIZE).collect()),
            tx_slot: RefCell::new([0; QUEUE_SIZE]),
            counters: Cell::default(),
        };
        for slot in 0..QUEUE_SIZE {
            nic.give_rx(slot)?;
        }
        Ok(nic)
    }

    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    pub fn counters(&self) -> Counters {
        self.counters.get()
    }

    /// Hand receive slot `slot` to the device.
    fn give_rx(&self, slot: usize) -> Result<(), DriverError> {
        let mut device = self.device.borrow_mut();
        // SAFETY: the slot is in DMA memory that outlives the queue, and nothing touches it
        // until the device hands it back (`take_rx`).
        let token = unsafe { device.receive_begin(self.rx.slot(slot)) }
            .map_err(|_| DriverError::Device("the receive queue refused a buffer"))?;
        self.rx_slot.borrow_mut()[usize::from(token) % QUEUE_SIZE] = slot;
        Ok(())
    }

    /// A frame the device has received: its slot, where it starts and how long it is.
    fn take_rx(&self) -> Option<(usize, usize, usize)> {
        let mut device = self.device.borrow_mut();
        let token = device.poll_receive()?;
        let slot = self.rx_slot.borrow()[usize::from(token) % QUEUE_SIZE];
        // SAFETY: the same slot `receive_begin` was given for this token.
        match unsafe { device.receive_complete(token, self.rx.slot(slot)) } {
            Ok((header, len)) => Some((slot, header, len)),
            Err(_) => {
                // A frame shorter than its header: drop it, give the slot back.
                drop(device);
                let _ = self.give_rx(slot);
                None
            }
        }
    }

    /// Take back the transmit slots the device is done with.
    fn reclaim_tx(&self) {
        let mut device = self.device.borrow_mut();
        while let Some(token) = device.poll_transmit() {
            let slot = self.tx_slot.borrow()[usize::from(token) % QUEUE_SIZE];
            // SAFETY: the same slot `transmit_begin` was given for this token.
            let _ = unsafe { device.transmit_complete(token, self.tx.slot(slot)) };
            self.tx_free.borrow_mut().push(slot);
        }
    }

    /// Whether frames the stack sent itself wait to be taken in.
    pub fn has_looped(&self) -> bool {
        !self.looped.borrow().is_empty()
    }

    /// Whether the next frame to receive is a DHCP server's message: the stack takes it
    /// in with the DHCP client's own socket set.
    pub fn dhcp_next(&self) -> bool {
        if let Some(frame) = self.looped.borrow().front() {
            return loopback::is_dhcp_reply(frame);
        }
        if self.ahead.get().is_none() {
            self.ahead.set(self.take_rx());
        }
        self.ahead.get().is_some_and(|(slot, start, len)| {
            let frame = start
                .checked_add(len)
                .and_then(|end| self.rx.slot(slot).get(start..end));
            frame.is_some_and(loopback::is_dhcp_reply)
        })
    }

    /// The port a TCP SYN came in for since the last look, if one did: only then may a
    /// listener, the one on that port, need a fresh socket before the next frame.
    pub fn take_syn(&self) -> Option<u16> {
        self.syn.take()
    }

    /// Whether a frame sent since the last look may leave its socket more to send: only
    /// then can another egress pass send anything.
    pub fn take_unfinished(&self) -> bool {
        self.unfinished.replace(false)
    }

    /// Note a received frame that opens a TCP connection.
    fn look_for_syn(&self, frame: &[u8]) {
        if let Some(port) = loopback::tcp_syn_port(frame) {
            self.syn.set(Some(port));
        }
    }

    /// Transmit slots free now, after taking back those the device is done with.
    fn free_tx(&self) -> usize {
        self.reclaim_tx();
        self.tx_free.borrow().len()
    }

    /// Have the device interrupt for frames received and sent, or not. The stack mutes it
    /// while it polls, since it looks at both queues then anyway: a frame sent is
    /// finished at once by QEMU's device, and its interrupt would only wake the stack for
    /// a poll with nothing to do.
    pub fn set_interrupts(&self, on: bool) {
        let mut device = self.device.borrow_mut();
        if on {
            device.enable_interrupts();
        } else {
            device.disable_interrupts();
        }
    }

    /// Whether the stack has work no interrupt will announce: frames received while
    /// interrupts were muted, frames sent to ourselves, or transmit slots freed since the
    /// stack last ran short of them. Call with interrupts on: what comes after the look
    /// interrupts.
    pub fn work_left(&self) -> bool {
        if self.has_looped()
            || self.ahead.get().is_some()
            || self.device.borrow().poll_receive().is_some()
        {
            return true;
        }
        self.short.get().is_some_and(|free| self.free_tx() > free)
    }

    /// A poll begins: it finds out anew whether transmit slots run short.
    pub fn begin_poll(&self) {
        self.short.set(None);
    }

    /// The stack found `free` transmit slots too few.
    fn ran_short(&self, free: usize) {
        self.short.set(Some(free));
    }

    /// Whether the device has finished anything (it interrupted for it); acknowledges.
    pub fn interrupted(&self) -> bool {
        !self.device.borrow_mut().ack_interrupt().is_empty()
    }

    fn count(&self, update: impl FnOnce(&mut Counters)) {
        let mut counters = self.counters.get();
        update(&mut counters);
        self.counters.set(counters);
    }
}

/// smoltcp's view of the NIC.
pub struct Phy<'a>(pub &'a Nic);

pub enum RxToken<'a> {
    /// A frame the device wrote into a receive slot.
    Slot {
        nic: &'a Nic,
        slot: usize,
        start: usize,
        len: usize,
    },
    /// A frame the stack sent itself.
    Looped { nic: &'a Nic, frame: Vec<u8> },
}

pub struct TxToken<'a> {
    nic: &'a Nic,
}

impl phy::Device for Phy<'_> {
    type RxToken<'a>
        = RxToken<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = TxToken<'a>
    where
        Self: 'a;

    fn receive(&mut self, _: Instant) -> Option<(RxToken<'_>, TxToken<'_>)> {
        // No room for a reply: leave the frame in the ring until the device frees a slot
        // (it interrupts when it does), rather than drop the reply.
        if self.0.free_tx() == 0 {
            self.0.ran_short(0);
            return None;
        }
        let looped = self.0.looped.borrow_mut().pop_front();
        let rx = match looped {
            Some(frame) => RxToken::Looped { nic: self.0, frame },
            None => {
                let (slot, start, len) = match self.0.ahead.take() {
                    Some(frame) => frame,
                    None => self.0.take_rx()?,
                };
                RxToken::Slot {
                    nic: self.0,
                    slot,
                    start,
                    len,
                }
            }
        };
        Some((rx, TxToken { nic: self.0 }))
    }

    fn transmit(&mut self, _: Instant) -> Option<TxToken<'_>> {
        let free = self.0.free_tx();
        if free <= REPLY_RESERVE {
            self.0.ran_short(free);
            return None;
        }
        Some(TxToken { nic: self.0 })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MTU;
        caps.max_burst_size = Some(QUEUE_SIZE / 2);
        // TCP checksums of frames sent are filled in by `TxToken::consume`.
        caps.checksum.tcp = Checksum::Rx;
        caps
    }
}

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        match self {
            RxToken::Looped { nic, frame } => {
                nic.look_for_syn(&frame);
                f(&frame)
            }
            RxToken::Slot {
                nic,
                slot,
                start,
                len,
            } => {
                nic.count(|c| {
                    c.rx_packets += 1;
                    c.rx_bytes += len as u64;
                });
                let frame = start
                    .checked_add(len)
                    .and_then(|end| nic.rx.slot(slot).get(start..end))
                    .unwrap_or(&[]);
                nic.look_for_syn(frame);
                let result = f(frame);
                // A queue that refuses its own buffer back is a broken device: the slot is
                // lost, the others go on.
                let _ = nic.give_rx(slot);
                result
            }
        }
    }
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let nic = self.nic;
        // `transmit` and `receive` took back the slots the device was done with just now.
        let slot = nic.tx_free.borrow_mut().pop();
        let Some(slot) = slot else {
            // A token is handed out only with a slot free, and each takes one; should that
            // ever fail, the frame is built and dropped, as a full link would drop it.
            return f(&mut alloc::vec![0; len]);
        };
        let buffer = nic.tx.slot(slot);
        let mut device = nic.device.borrow_mut();
        let header = device.fill_buffer_header(buffer).unwrap_or(0);
        let end = (header + len).min(SLOT);
        let result = f(&mut buffer[header..end]);
        checksum::fill_tcp(&mut buffer[header..end]);
        if loopback::may_send_more(&buffer[header..end]) {
            nic.unfinished.set(true);
        }
        if let Some(frame) = loopback::for_self(&buffer[header..end], nic.mac) {
            nic.looped.borrow_mut().push_back(frame);
            nic.tx_free.borrow_mut().push(slot);
            return result;
        }
        // SAFETY: the slot is DMA memory; nothing touches it until the device hands it back
        // (`reclaim_tx`).
        match unsafe { device.transmit_begin(&buffer[..end]) } {
            Ok(token) => {
                nic.tx_slot.borrow_mut()[usize::from(token) % QUEUE_SIZE] = slot;
                nic.count(|c| {
                    c.tx_packets += 1;
                    c.tx_bytes += len as u64;
                });
            }
            Err(_) => nic.tx_free.borrow_mut().push(slot),
        }
        result
    }
}
