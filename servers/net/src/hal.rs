//! `virtio-drivers`' [`Hal`] on Keel: DMA memory is [`DmaBuffer`]s, asked for with one of
//! the driver's device capabilities; a BAR is the device-memory capability init granted for
//! it, already mapped.
//!
//! `Hal` has no `self`, so what it needs lives in process-wide tables: the DMA buffers it
//! made (so that `share` can turn an address in one into a physical address) and the BARs.

use alloc::vec::Vec;
use core::ptr::NonNull;

use keel_rt::abi::cap::Handle;
use keel_rt::driver::DmaBuffer;
use spin::Mutex;
use virtio_drivers::{BufferDirection, Hal, PAGE_SIZE, PhysAddr};

/// A range of this process's memory and where it is physically (contiguous).
#[derive(Clone, Copy)]
struct Window {
    virt: usize,
    len: usize,
    phys: u64,
}

impl Window {
    fn holds_virt(&self, virt: usize, len: usize) -> bool {
        virt >= self.virt && virt - self.virt + len <= self.len
    }

    fn holds_phys(&self, phys: u64, len: usize) -> bool {
        phys >= self.phys && (phys - self.phys) as usize + len <= self.len
    }
}

struct Tables {
    /// The capability DMA buffers are asked for with.
    device: Option<Handle>,
    /// Buffers made by [`KeelHal::dma_alloc`], kept until `dma_dealloc`.
    owned: Vec<DmaBuffer>,
    /// Every DMA window, owned here or by the driver's packet pools.
    dma: Vec<Window>,
    /// The device's BARs, mapped.
    bars: Vec<Window>,
}

static TABLES: Mutex<Tables> = Mutex::new(Tables {
    device: None,
    owned: Vec::new(),
    dma: Vec::new(),
    bars: Vec::new(),
});

/// Make DMA buffers with `device` (one of this driver's device capabilities) from now on.
pub fn set_device(device: Handle) {
    TABLES.lock().device = Some(device);
}

/// A BAR mapped at `virt`: `mmio_phys_to_virt` finds addresses in it.
pub fn add_bar(phys: u64, virt: *mut u8, len: usize) {
    TABLES.lock().bars.push(Window {
        virt: virt as usize,
        len,
        phys,
    });
}

/// A DMA buffer made elsewhere (a packet pool) that buffers given to the device live in.
pub fn add_dma(buffer: &DmaBuffer) {
    TABLES.lock().dma.push(Window {
        virt: buffer.as_ptr() as usize,
        len: buffer.len(),
        phys: buffer.phys(),
    });
}

/// A DMA buffer of `len` bytes with the device capability set by [`set_device`].
pub fn dma_buffer(len: usize) -> Result<DmaBuffer, keel_rt::abi::Error> {
    let device = TABLES
        .lock()
        .device
        .ok_or(keel_rt::abi::Error::InvalidArgument)?;
    DmaBuffer::new(device, len)
}

pub struct KeelHal;

// SAFETY: `dma_alloc` hands out zeroed, page-aligned buffers that nothing else uses until
// `dma_dealloc`; `mmio_phys_to_virt` returns addresses inside BAR mappings this process
// holds for its life; `share` returns the physical address of memory that is pinned and
// contiguous (a DMA buffer), and refuses anything else.
unsafe impl Hal for KeelHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        // virtio-drivers has no way to report failure here: the queues are made at probe,
        // so a driver without DMA memory ends at start, as a failed probe would.
        let buffer = dma_buffer(pages * PAGE_SIZE).expect("virtio-net: no DMA memory");
        // SAFETY: the buffer is mapped writable for `len` bytes, ours alone.
        unsafe { core::ptr::write_bytes(buffer.as_ptr(), 0, buffer.len()) };
        let (phys, virt) = (buffer.phys(), buffer.as_ptr());
        add_dma(&buffer);
        TABLES.lock().owned.push(buffer);
        (phys, NonNull::new(virt).expect("a mapping is never at 0"))
    }

    unsafe fn dma_dealloc(paddr: PhysAddr, _vaddr: NonNull<u8>, _pages: usize) -> i32 {
        let mut tables = TABLES.lock();
        tables.dma.retain(|window| window.phys != paddr);
        tables.owned.retain(|buffer| buffer.phys() != paddr);
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, size: usize) -> NonNull<u8> {
        let tables = TABLES.lock();
        let bar = tables
            .bars
            .iter()
            .find(|bar| bar.holds_phys(paddr, size))
            .expect("virtio-net: a device region outside the BARs granted");
        let virt = bar.virt + (paddr - bar.phys) as usize;
        NonNull::new(virt as *mut u8).expect("a mapping is never at 0")
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        let (virt, len) = (buffer.as_ptr() as *mut u8 as usize, buffer.len());
        let tables = TABLES.lock();
        let window = tables
            .dma
            .iter()
            .find(|window| window.holds_virt(virt, len))
            .expect("virtio-net: a buffer given to the device is not DMA memory");
        window.phys + (virt - window.virt) as u64
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {
        // The device wrote the buffer in place: nothing to copy back.
    }
}
