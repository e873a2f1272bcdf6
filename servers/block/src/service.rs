//! The `Block` service over the driver: requests checked against the device and the
//! client's region, then handed to the device with the region's own pages as the data
//! buffer. Zero copies: the device writes (reads) the client's pages itself.

use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::ptr::NonNull;

use keel_abi::cap::rights;
use keel_block::{
    BLOCK_SIZE, Block, BlockError, BlockInfo, BlockStats, MAX_BLOCKS_PER_REQUEST, MAX_REGION_LEN,
    REGION_LABEL, RegionInfo,
};
use keel_rt::ipc::{Message, Port};
use keel_rt::service::Cap;

use crate::disk::{Data, Op};
use crate::driver::BlkDriver;
use keel_virtio::{Allocation, hal};

/// Regions open at once: their memory comes from the driver's frame quota.
const MAX_REGIONS: usize = 8;
/// Region ids carry their index in the low byte; the rest is hard to guess.
const INDEX_BITS: u32 = 8;

/// A data region: DMA memory shared with one client. Freed when the last holder goes: the
/// table, and any request the device is still working on.
struct Region {
    id: u64,
    allocation: Allocation,
}

impl Drop for Region {
    fn drop(&mut self) {
        hal::free(self.allocation.virt);
    }
}

pub struct Service {
    driver: Rc<BlkDriver>,
    regions: RefCell<Vec<Option<Rc<Region>>>>,
    /// State of the generator of region ids.
    seed: Cell<u64>,
}

impl Service {
    pub fn new(driver: Rc<BlkDriver>) -> Service {
        Service {
            driver,
            regions: RefCell::new((0..MAX_REGIONS).map(|_| None).collect()),
            // The TSC at start: ids differ from one start of the driver to the next.
            // SAFETY: rdtsc reads a counter; it has no other effect.
            seed: Cell::new(unsafe { core::arch::x86_64::_rdtsc() }),
        }
    }

    /// A fresh id for the region at `index`: SplitMix64 of a counter (not cryptographic:
    /// hard to guess for a client that sees only its own ids).
    fn new_id(&self, index: usize) -> u64 {
        let seed = self.seed.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        self.seed.set(seed);
        let mut z = seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z << INDEX_BITS) | index as u64
    }

    fn region(&self, id: u64) -> Result<Rc<Region>, BlockError> {
        let index = (id & ((1 << INDEX_BITS) - 1)) as usize;
        let regions = self.regions.borrow();
        match regions.get(index) {
            Some(Some(region)) if region.id == id => Ok(region.clone()),
            _ => Err(BlockError::NoSuchRegion),
        }
    }

    /// Check a read or write and run it: the region's bytes `offset..` for blocks `lba..`.
    async fn transfer(
        &self,
        op: Op,
        region: u64,
        offset: u64,
        lba: u64,
        count: u32,
    ) -> Result<(), BlockError> {
        let (blocks, read_only, _) = self.driver.geometry().ok_or(BlockError::Device)?;
        let region = self.region(region)?;
        if count > MAX_BLOCKS_PER_REQUEST {
            return Err(BlockError::TooLarge);
        }
        if lba.checked_add(count.into()).is_none_or(|end| end > blocks) {
            return Err(BlockError::OutOfRange);
        }
        if !offset.is_multiple_of(BLOCK_SIZE.into()) {
            return Err(BlockError::Misaligned);
        }
        let len = u64::from(count) * u64::from(BLOCK_SIZE);
        if offset
            .checked_add(len)
            .is_none_or(|end| end > region.allocation.len as u64)
        {
            return Err(BlockError::BadOffset);
        }
        if op == Op::Write && read_only {
            return Err(BlockError::ReadOnly);
        }
        if count == 0 {
            return Ok(());
        }
        let data = Data {
            ptr: NonNull::new((region.allocation.virt + offset as usize) as *mut u8)
                .expect("a mapping is not at 0"),
            len: len as usize,
        };
        // SAFETY: the data lies inside the region's DMA memory (checked above), which the
        // request keeps alive until the device is done. The client shares the region and
        // may touch it meanwhile: that is its own data it garbles, never the driver's.
        let ok = unsafe { self.driver.request(op, lba, Some(data), Some(region)) }.await;
        if ok { Ok(()) } else { Err(BlockError::Device) }
    }
}

impl Block for Service {
    async fn info(&self) -> BlockInfo {
        let (blocks, read_only, _) = self.driver.geometry().unwrap_or((0, true, false));
        BlockInfo {
            blocks,
            block_size: BLOCK_SIZE,
            read_only,
            max_blocks_per_request: MAX_BLOCKS_PER_REQUEST,
        }
    }

    async fn stats(&self) -> BlockStats {
        self.driver.stats()
    }

    async fn open_region(&self, len: u64, port: Cap) -> Result<RegionInfo, BlockError> {
        if len == 0 || len > MAX_REGION_LEN {
            return Err(BlockError::TooLarge);
        }
        let port = Port::from_handle(port.handle().ok_or(BlockError::BadPort)?);
        let index = {
            let regions = self.regions.borrow();
            regions
                .iter()
                .position(Option::is_none)
                .ok_or(BlockError::NoRoom)?
        };
        let allocation =
            hal::alloc(len.next_multiple_of(4096) as usize).map_err(|_| BlockError::NoRoom)?;
        let region = Rc::new(Region {
            id: self.new_id(index),
            allocation,
        });
        // The client maps it but cannot learn physical addresses (no DMA right); GRANT,
        // which a capability in a message needs, lets it share its data further.
        let shared = allocation
            .memory
            .derive(rights::MAP_READ | rights::MAP_WRITE | rights::GRANT)
            .map_err(|_| BlockError::NoRoom)?;
        let message =
            Message::new(REGION_LABEL, [region.id, 0, 0, 0]).with_caps(&[shared.handle()]);
        let sent = port.send(&message);
        let _ = shared.delete();
        sent.map_err(|_| BlockError::BadPort)?;
        let info = RegionInfo {
            id: region.id,
            len: allocation.len as u64,
        };
        self.regions.borrow_mut()[index] = Some(region);
        Ok(info)
    }

    async fn close_region(&self, region: u64) -> Result<(), BlockError> {
        let region = self.region(region)?;
        let index = (region.id & ((1 << INDEX_BITS) - 1)) as usize;
        self.regions.borrow_mut()[index] = None;
        Ok(())
    }

    async fn read(&self, region: u64, offset: u64, lba: u64, count: u32) -> Result<(), BlockError> {
        self.transfer(Op::Read, region, offset, lba, count).await
    }

    async fn write(
        &self,
        region: u64,
        offset: u64,
        lba: u64,
        count: u32,
    ) -> Result<(), BlockError> {
        self.transfer(Op::Write, region, offset, lba, count).await
    }

    async fn flush(&self) -> Result<(), BlockError> {
        let (_, _, caches) = self.driver.geometry().ok_or(BlockError::Device)?;
        if !caches {
            return Ok(());
        }
        // SAFETY: a flush carries no data.
        let ok = unsafe { self.driver.request(Op::Flush, 0, None, None) }.await;
        if ok { Ok(()) } else { Err(BlockError::Device) }
    }
}
