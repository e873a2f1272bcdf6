//! `virtio-drivers`' [`Hal`] on Keel: DMA memory from the driver framework, the BARs init
//! granted, and translation of buffers to physical addresses.
//!
//! The trait has no `self`, so what it needs is one registry per process (one driver per
//! process). Every buffer the device touches is DMA memory allocated here (queues, request
//! headers, packet pools, clients' data regions) and is translated in place: nothing is
//! copied (no indirect descriptors, whose lists the crate keeps on the heap).

use alloc::vec::Vec;
use core::ptr::NonNull;

use keel_rt::abi::Error;
use keel_rt::abi::cap::Handle;
use keel_rt::driver::{DeviceMemory, DmaBuffer};
use keel_rt::mem::Memory;
use spin::Mutex;
use virtio_drivers::{BufferDirection, Hal, PAGE_SIZE, PhysAddr};

/// DMA memory allocated here, as the device and this process see it.
#[derive(Clone, Copy, Debug)]
pub struct Allocation {
    pub virt: usize,
    pub phys: u64,
    pub len: usize,
    /// Its memory capability (to share it with a client).
    pub memory: Memory,
}

struct Registry {
    /// A device capability: what the kernel wants to see for DMA memory.
    device: Handle,
    dma: Vec<DmaBuffer>,
    /// The BARs: (physical address, where mapped, length).
    bars: Vec<(u64, usize, usize)>,
}

static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);

/// Start afresh: DMA memory is asked for with `device` (one of the driver's device
/// capabilities), and `bars` are the registers the device's capabilities may name.
/// Anything an earlier probe allocated is released.
pub fn start(device: Handle, bars: &[DeviceMemory]) {
    let bars = bars
        .iter()
        .map(|bar| (bar.phys(), bar.as_ptr() as usize, bar.len()))
        .collect();
    *REGISTRY.lock() = Some(Registry {
        device,
        dma: Vec::new(),
        bars,
    });
}

/// `len` bytes (whole pages) of DMA memory, zeroed (the kernel clears it), until [`free`].
pub fn alloc(len: usize) -> Result<Allocation, Error> {
    let mut registry = REGISTRY.lock();
    let registry = registry.as_mut().ok_or(Error::InvalidArgument)?;
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
    /// Newest first: the buffers shared on every request (packet pools, clients' regions)
    /// are allocated after the queues.
    fn translate(&self, virt: usize, len: usize) -> Option<u64> {
        self.dma.iter().rev().find_map(|buffer| {
            let start = buffer.as_ptr() as usize;
            let inside = virt >= start && virt + len <= start + buffer.len();
            inside.then(|| buffer.phys() + (virt - start) as u64)
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
        let bars = registry.as_ref().map_or(&[][..], |r| &r.bars[..]);
        let virt = bars.iter().find_map(|&(phys, virt, len)| {
            let inside = paddr >= phys && paddr + size as u64 <= phys + len as u64;
            inside.then(|| virt + (paddr - phys) as usize)
        });
        // The transport asks only for regions of BARs its capabilities name: one init did
        // not grant is a manifest mistake this driver cannot work around.
        NonNull::new(virt.expect("a BAR the device names was granted") as *mut u8)
            .expect("a mapping is not at 0")
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        let (virt, len) = (buffer.as_ptr() as *mut u8 as usize, buffer.len());
        let registry = REGISTRY.lock();
        let registry = registry.as_ref().expect("the registry is set at probe");
        registry
            .translate(virt, len)
            .expect("a buffer shared with the device is DMA memory")
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {
        // The device wrote the buffer in place: nothing to copy back.
    }
}
