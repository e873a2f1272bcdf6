//! The disk as keel-fat sees it: the block service, through a data region shared with the
//! driver. Data is copied once here, between the caller's buffer and that region; the
//! device DMAs to and from the region itself.
//!
//! When the driver dies, init restarts it: the block client reconnects for idempotent
//! calls by itself, the region is gone with the old driver, so a request that finds it
//! gone opens a new one and is sent again. Reads and writes of whole blocks are safe to
//! repeat, so no request is lost and none is acknowledged before the driver took it.

use core::cell::RefCell;
use core::time::Duration;

use keel_block::{BLOCK_SIZE, BlockClient, BlockError, NAME, Region};
use keel_fat::{BlockDevice, Error, SECTOR};
use keel_rt::executor::sleep;
use keel_rt::println;
use keel_rt::service::TransportError;

/// The region shared with the driver: the most one request moves (1 MiB).
const REGION: u64 = 1 << 20;
/// Tries of one request across driver restarts before it fails.
const TRIES: u32 = 50;
/// How long to wait between tries, for init to start the driver again.
const BACKOFF: Duration = Duration::from_millis(20);

pub struct Disk {
    block: BlockClient,
    region: RefCell<Region>,
    blocks: u64,
    /// Bytes one request may move.
    chunk: usize,
}

/// How a request went, for the retry loop.
enum Outcome {
    Done,
    /// The driver went away (or its region did): open a region and try again.
    Lost,
    Failed(BlockError),
}

impl Disk {
    /// Connect to the block service and open a region.
    pub async fn open() -> Result<Disk, Error> {
        let failed = |what: &str, error: &dyn core::fmt::Debug| {
            println!("fs: {what}: {error:?}");
            Error::Device
        };
        let block = BlockClient::connect_named(NAME).map_err(|e| failed("connecting", &e))?;
        let info = block
            .info()
            .await
            .map_err(|e| failed("asking the disk's size", &e))?;
        if info.block_size != BLOCK_SIZE || BLOCK_SIZE as usize != SECTOR {
            return Err(Error::Unsupported("a block size other than 512"));
        }
        let region = Region::open(&block, REGION).await;
        let region = region.map_err(|e| failed("opening a data region", &e))?;
        let chunk = (info.max_blocks_per_request as usize * SECTOR).min(region.len());
        Ok(Disk {
            block,
            region: RefCell::new(region),
            blocks: info.blocks,
            chunk,
        })
    }

    /// Run `request` (which names the region by id) until the driver takes it.
    async fn retrying<F, R>(&self, mut before: impl FnMut(&Region), request: F) -> Result<(), Error>
    where
        F: Fn(u64) -> R,
        R: Future<Output = Result<Result<(), BlockError>, TransportError>>,
    {
        for _ in 0..TRIES {
            let id = {
                let region = self.region.borrow();
                before(&region);
                region.id()
            };
            let outcome = match request(id).await {
                Ok(Ok(())) => Outcome::Done,
                Ok(Err(BlockError::NoSuchRegion)) | Err(TransportError::ServerGone) => {
                    Outcome::Lost
                }
                Ok(Err(error)) => Outcome::Failed(error),
                Err(_) => Outcome::Lost,
            };
            match outcome {
                Outcome::Done => return Ok(()),
                Outcome::Failed(error) => {
                    println!("fs: the disk refused a request: {error}");
                    return Err(Error::Device);
                }
                Outcome::Lost => self.reopen().await,
            }
        }
        Err(Error::Device)
    }

    /// A new region after a driver restart, once the driver answers again.
    async fn reopen(&self) {
        sleep(BACKOFF).await;
        // An idempotent call makes the client reconnect to the new driver.
        if self.block.info().await.is_err() {
            return;
        }
        if let Ok(region) = Region::open(&self.block, REGION).await {
            let old = self.region.replace(region);
            // A driver that did not restart still holds it; a new one answers NoSuchRegion.
            let _ = self.block.close_region(old.id()).await;
        }
    }
}

impl BlockDevice for Disk {
    fn sectors(&self) -> u64 {
        self.blocks
    }

    async fn read(&self, sector: u64, buf: &mut [u8]) -> Result<(), Error> {
        let chunk = self.chunk;
        for (index, part) in buf.chunks_mut(chunk).enumerate() {
            let lba = sector + (index * chunk / SECTOR) as u64;
            let count = (part.len() / SECTOR) as u32;
            self.retrying(|_| {}, |id| self.block.read(id, 0, lba, count))
                .await?;
            self.region.borrow().read_at(0, part);
        }
        Ok(())
    }

    async fn write(&self, sector: u64, buf: &[u8]) -> Result<(), Error> {
        let chunk = self.chunk;
        for (index, part) in buf.chunks(chunk).enumerate() {
            let lba = sector + (index * chunk / SECTOR) as u64;
            let count = (part.len() / SECTOR) as u32;
            // The bytes go into whichever region the request names, again after a restart.
            let fill = |region: &Region| region.write_at(0, part);
            self.retrying(fill, |id| self.block.write(id, 0, lba, count))
                .await?;
        }
        Ok(())
    }

    async fn flush(&self) -> Result<(), Error> {
        self.retrying(|_| {}, |_| self.block.flush()).await
    }
}
