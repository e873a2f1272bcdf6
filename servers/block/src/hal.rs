//! virtio-drivers' `Hal` on Keel: DMA memory from the driver framework, the BARs init
//! granted, and translation of buffers to physical addresses.
//!
//! The trait has no `self`, so what it needs is one registry per process (one driver per
//! process). Every buffer the device touches is either in DMA memory this driver allocated
//! (the queue, request headers, clients' data regions): translated in place, no copy; or a
//! small descriptor list the crate keeps on the heap (indirect descriptors): copied through
//! a bounce pool. Block data is never bounced.

use alloc::vec::Vec;
use core::ptr::NonNull;

use keel_abi::cap::Handle;
use keel_rt::driver::DmaBuffer;
use keel_rt::mem::Memory;
use spin::Mutex;
use virtio_drivers::{BufferDirection, Hal, PAGE_SIZE, PhysAddr};

/// Bounce slots: each holds one indirect descriptor list (16 bytes a descriptor).
const BOUNCE_SLOT: usize = 256;
const BOUNCE_SLOTS: usize = 256;

/// DMA memory allocated here, as the device and this process see it.
#[derive(Clone, Copy, Debug)]
pub struct Allocation {
    pub virt: usize,
    pub phys: u64,
    pub len: usize,
    /// Its memory capability (to share a client's region).
    pub memory: Memory,
}

struct Registry {
    /// A device capability: what the kernel wants to see for DMA memory.
    device: Handle,
    dma: Vec<DmaBuffer>,
    /// The BARs: (physical address, where mapped, length).
    mmio: Vec<(u64, usize, usize)>,
    bounce: Option<Bounce>,
}

struct Bounce {
    buffer: DmaBuffer,
    free: Vec<u16>,
}

static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);

/// Start afresh: `device` is the capability DMA memory is asked for with, `bars` the
/// granted registers. Anything an earlier probe allocated is released.
pub fn reset(device: Handle, bars: Vec<(u64, usize, usize)>) {
    *REGISTRY.lock() = Some(Registry {
        device,
        dma: Vec::new(),
        mmio: bars,
        bounce: None,
    });
}

/// `len` bytes (whole pages) of DMA memory, zeroed, until [`free`].
pub fn alloc(len: usize) -> Result<Allocation, keel_abi::Error> {
    let mut registry = REGISTRY.lock();
    let registry = registry.as_mut().ok_or(keel_abi::Error::InvalidArgument)?;
    let buffer = DmaBuffer::new(registry.device, len)?;
    let allocation = Allocation {
        virt: buffer.as_ptr() as usize,
        phys: buffer.phys(),
        len: buffer.len(),
        memory: buffer.memory(),
    };
    registry.dma.push(buffer);
    Ok(allocation)
}

/// Give back what [`alloc`] returned at `virt`.
pub fn free(virt: usize) {
    if let Some(registry) = REGISTRY.lock().as_mut() {
        registry
            .dma
            .retain(|buffer| buffer.as_ptr() as usize != virt);
    }
}

impl Registry {
    /// The physical address of `[virt, virt + len)`, if it lies in one DMA allocation.
    fn translate(&self, virt: usize, len: usize) -> Option<u64> {
        self.dma.iter().find_map(|buffer| {
            let start = buffer.as_ptr() as usize;
            let inside = virt >= start && virt + len <= start + buffer.len();
            inside.then(|| buffer.phys() + (virt - start) as u64)
        })
    }

    fn bounce(&mut self) -> &mut Bounce {
        let device = self.device;
        self.bounce.get_or_insert_with(|| Bounce {
            buffer: DmaBuffer::new(device, BOUNCE_SLOT * BOUNCE_SLOTS)
                .expect("the driver's quota holds its bounce pool"),
            free: (0..BOUNCE_SLOTS as u16).rev().collect(),
        })
    }
}

/// The Hal virtio-drivers is instantiated with.
pub struct KeelHal;

// SAFETY: `dma_alloc` returns zeroed, physically contiguous memory mapped here for as long
// as it is not deallocated; `share` returns an address the device may use for the whole
// buffer until `unshare`; `mmio_phys_to_virt` maps only registers init granted.
unsafe impl Hal for KeelHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        match alloc(pages * PAGE_SIZE) {
            Ok(allocation) => (
                allocation.phys,
                NonNull::new(allocation.virt as *mut u8).expect("a mapping is not at 0"),
            ),
            // The crate reads physical address 0 as failure.
            Err(_) => (0, NonNull::dangling()),
        }
    }

    unsafe fn dma_dealloc(_paddr: PhysAddr, vaddr: NonNull<u8>, _pages: usize) -> i32 {
        free(vaddr.as_ptr() as usize);
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, size: usize) -> NonNull<u8> {
        let registry = REGISTRY.lock();
        let bars = registry.as_ref().map_or(&[][..], |r| &r.mmio[..]);
        let virt = bars.iter().find_map(|&(phys, virt, len)| {
            let inside = paddr >= phys && paddr + size as u64 <= phys + len as u64;
            inside.then(|| virt + (paddr - phys) as usize)
        });
        // The transport asks only for regions of BARs its capabilities name: one init did
        // not grant is a manifest mistake this driver cannot work around.
        NonNull::new(virt.expect("a BAR the device names was granted") as *mut u8)
            .expect("a mapping is not at 0")
    }

    unsafe fn share(buffer: NonNull<[u8]>, direction: BufferDirection) -> PhysAddr {
        let (virt, len) = (buffer.as_ptr() as *mut u8 as usize, buffer.len());
        let mut registry = REGISTRY.lock();
        let registry = registry.as_mut().expect("the registry is set at probe");
        if let Some(phys) = registry.translate(virt, len) {
            return phys;
        }
        assert!(len <= BOUNCE_SLOT, "only descriptor lists are bounced");
        let bounce = registry.bounce();
        let slot = bounce.free.pop().expect("a bounce slot per queue entry") as usize;
        let at = bounce.buffer.as_ptr() as usize + slot * BOUNCE_SLOT;
        if direction != BufferDirection::DeviceToDriver {
            // SAFETY: `buffer` is readable for `len` bytes (the crate's promise) and the
            // slot is ours, `len <= BOUNCE_SLOT` bytes of mapped DMA memory.
            unsafe { core::ptr::copy_nonoverlapping(virt as *const u8, at as *mut u8, len) };
        }
        bounce.buffer.phys() + (slot * BOUNCE_SLOT) as u64
    }

    unsafe fn unshare(paddr: PhysAddr, buffer: NonNull<[u8]>, direction: BufferDirection) {
        let mut registry = REGISTRY.lock();
        let Some(bounce) = registry.as_mut().and_then(|r| r.bounce.as_mut()) else {
            return;
        };
        let base = bounce.buffer.phys();
        if !(base..base + (BOUNCE_SLOT * BOUNCE_SLOTS) as u64).contains(&paddr) {
            return;
        }
        let slot = ((paddr - base) as usize) / BOUNCE_SLOT;
        if direction != BufferDirection::DriverToDevice {
            let at = bounce.buffer.as_ptr() as usize + slot * BOUNCE_SLOT;
            // SAFETY: the slot holds what the device wrote for `buffer`, which is writable
            // for its length (the crate's promise).
            unsafe {
                core::ptr::copy_nonoverlapping(
                    at as *const u8,
                    buffer.as_ptr() as *mut u8,
                    buffer.len(),
                )
            };
        }
        bounce.free.push(slot as u16);
    }
}
